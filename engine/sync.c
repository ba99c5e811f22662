/* engine/sync.c - the engine's blocking calls: a request submitted like any
 * other, its caller waiting on the engine's condition variable until the
 * loop's thread completes it (or the engine stops); and ag_engine_call. */
#include "engine/engine_internal.h"
#include "agents/error.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/mem.h"

static int wait_sync(ag_engine *e, ereq *r, sync_wait *s) {
    if (!r) return AG_ENOMEM;
    r->sw = s;
    int rc = ag__eng_submit(e, r, NULL);
    if (rc != 0) return rc;
    pthread_mutex_lock(&e->mu);
    e->inside++;
    /* every accepted request completes, the engine's stop included */
    while (!s->done && !e->stopped) pthread_cond_wait(&e->done_cv, &e->mu);
    rc = s->done ? s->status : AG_ESHUTDOWN;
    if (--e->inside == 0 && e->stopped) pthread_cond_broadcast(&e->done_cv);
    ag__eng_unlock_signal(e);
    if (rc == 0 && s->oom) rc = AG_ENOMEM;
    return rc;
}

static int finish_sync(sync_wait *s, int rc, ag_sync_out *out) {
    if (out) {
        out->result = s->result;
        out->text = s->text.p;
        out->text_len = s->text.len;
        out->thinking = s->thinking.p;
        out->thinking_len = s->thinking.len;
    } else {
        ag_result_free(s->result);
        ag__buf_free(NULL, &s->text);
        ag__buf_free(NULL, &s->thinking);
    }
    return rc;
}

#define SYNC_PRELUDE(out)                                                                          \
    sync_wait s;                                                                                   \
    memset(&s, 0, sizeof s);                                                                       \
    if (out) memset(out, 0, sizeof *out);                                                          \
    if (!e || ag__eng_on_engine_thread(e)) return AG_EINVAL

int ag_engine_chat_sync(ag_engine *e, const ag_chat_params *p, ag_sync_out *out) {
    SYNC_PRELUDE(out);
    if (!p) return AG_EINVAL;
    return finish_sync(&s, wait_sync(e, ag__eng_copy_chat(p, NULL), &s), out);
}

int ag_engine_generate_sync(ag_engine *e, const ag_generate_params *p, ag_sync_out *out) {
    SYNC_PRELUDE(out);
    if (!p) return AG_EINVAL;
    return finish_sync(&s, wait_sync(e, ag__eng_copy_generate(p, NULL), &s), out);
}

int ag_engine_embed_sync(ag_engine *e, const ag_embed_params *p, ag_sync_out *out) {
    SYNC_PRELUDE(out);
    if (!p) return AG_EINVAL;
    return finish_sync(&s, wait_sync(e, ag__eng_copy_embed(p, NULL), &s), out);
}

int ag_engine_admin_sync(ag_engine *e, int op, const ag_model_params *p, ag_sync_out *out) {
    SYNC_PRELUDE(out);
    return finish_sync(&s, wait_sync(e, ag__eng_copy_model(p, op, NULL), &s), out);
}

int ag_engine_agent_run_sync(ag_engine *e, ag_agent *a, const ag_message *msgs, size_t n,
                             const ag_run_options *ro, ag_agent_result **out) {
    sync_wait s;
    memset(&s, 0, sizeof s);
    if (out) *out = NULL;
    if (!e || ag__eng_on_engine_thread(e) || !a || (n && !msgs)) return AG_EINVAL;
    int rc = wait_sync(e, ag__eng_copy_agent(a, msgs, n, ro, NULL), &s);
    ag__buf_free(NULL, &s.text);
    ag__buf_free(NULL, &s.thinking);
    if (out) *out = s.agent_result;
    else ag_agent_result_free(s.agent_result);
    return rc;
}

int ag_engine_call(ag_engine *e, void (*fn)(ag_client *c, void *ud), void *ud) {
    if (!e || !fn || ag__eng_on_engine_thread(e)) return AG_EINVAL;
    int done = 0;
    cmd *c = calloc(1, sizeof *c);
    if (!c) return AG_ENOMEM;
    c->type = C_CALL;
    c->fn = fn;
    c->ud = ud;
    c->done = &done;
    pthread_mutex_lock(&e->mu);
    if (e->closing) {
        ag__eng_unlock_signal(e);
        free(c);
        return AG_ESHUTDOWN;
    }
    ag__eng_inbox_push(e, c);
    ag__eng_unlock_signal(e); /* wakes the loop: a wait does not */
    pthread_mutex_lock(&e->mu);
    e->inside++;
    while (!done && !e->stopped) pthread_cond_wait(&e->done_cv, &e->mu);
    if (--e->inside == 0 && e->stopped) pthread_cond_broadcast(&e->done_cv);
    ag__eng_unlock_signal(e);
    return done ? 0 : AG_ESHUTDOWN;
}
