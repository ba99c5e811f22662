/* core/sync.c - blocking wrappers: run the client's loop until one request
 * completes. */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct sync_ctx {
    ag_sync_out *out;
    ag_chunk_cb user_chunk;
    void *user_ud;
    int done, status, oom;
    ag__buf text, thinking;
} sync_ctx;

static void s_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    sync_ctx *s = ud;
    if (ch->kind == AG_CHUNK_CONTENT) s->oom |= ag__buf_add(NULL, &s->text, ch->text, ch->len);
    else if (ch->kind == AG_CHUNK_THINKING)
        s->oom |= ag__buf_add(NULL, &s->thinking, ch->text, ch->len);
    if (s->user_chunk) s->user_chunk(r, ch, s->user_ud);
}

static void s_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    sync_ctx *s = ud;
    s->done = 1;
    s->status = res->status;
    if (s->out) {
        s->out->result = ag_result_dup(res);
        if (!s->out->result) s->oom = 1;
    }
}

static int run(ag_client *c, sync_ctx *s, int rc) {
    if (rc == 0) {
        /* bounded by the request's own timeouts: every request completes */
        rc = ag__client_wait(c, &s->done) ? s->status : AG_ESHUTDOWN;
        if (rc == 0 && s->oom) rc = AG_ENOMEM;
    }
    if (s->out) {
        s->out->text = s->text.p;
        s->out->text_len = s->text.len;
        s->out->thinking = s->thinking.p;
        s->out->thinking_len = s->thinking.len;
    } else {
        ag__buf_free(NULL, &s->text);
        ag__buf_free(NULL, &s->thinking);
    }
    return rc;
}

static void init(sync_ctx *s, ag_sync_out *out, ag_chunk_cb cb, void *ud) {
    memset(s, 0, sizeof *s);
    s->out = out;
    s->user_chunk = cb;
    s->user_ud = ud;
    if (out) memset(out, 0, sizeof *out);
}

int ag_chat_sync(ag_client *c, const ag_chat_params *p, ag_chunk_cb on_chunk, void *ud,
                 ag_sync_out *out) {
    sync_ctx s;
    init(&s, out, on_chunk, ud);
    ag_callbacks cb = {s_chunk, s_done, &s};
    return run(c, &s, ag_chat(c, p, &cb, NULL));
}

int ag_generate_sync(ag_client *c, const ag_generate_params *p, ag_chunk_cb on_chunk, void *ud,
                     ag_sync_out *out) {
    sync_ctx s;
    init(&s, out, on_chunk, ud);
    ag_callbacks cb = {s_chunk, s_done, &s};
    return run(c, &s, ag_generate(c, p, &cb, NULL));
}

int ag_embed_sync(ag_client *c, const ag_embed_params *p, ag_sync_out *out) {
    sync_ctx s;
    init(&s, out, NULL, NULL);
    ag_callbacks cb = {s_chunk, s_done, &s};
    return run(c, &s, ag_embed(c, p, &cb, NULL));
}

int ag_admin_sync(ag_client *c, int op, const ag_model_params *p, ag_chunk_cb on_chunk, void *ud,
                  ag_sync_out *out) {
    sync_ctx s;
    init(&s, out, on_chunk, ud);
    ag_callbacks cb = {s_chunk, s_done, &s};
    return run(c, &s, ag_admin(c, op, p, &cb, NULL));
}

void ag_sync_out_free(ag_sync_out *o) {
    if (!o) return;
    ag_result_free(o->result);
    free(o->text);
    free(o->thinking);
    memset(o, 0, sizeof *o);
}
