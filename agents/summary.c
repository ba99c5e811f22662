/* agents/summary.c - the summarization agent (map, then reduce, when the text
 * does not fit the context) and the embedding agent (batches). */
#include "agent_internal.h" /* (private: this folder's, not include/agents/) */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_PARALLEL 4
#define EMBED_BATCH 64
#define EMBED_PARALLEL 4

typedef struct part {
    ag_task *t;
    size_t idx;
    ag_request *req;
    ag__buf out;
} part;

typedef struct sstate {
    char *text;        /* the text this level summarises */
    char **parts;
    size_t nparts, next, done, inflight;
    part *run;         /* one per part */
    int level;
} sstate;

static size_t budget_of(const ag_agent *a) {
    size_t b = a->ctx_tokens > 768 ? a->ctx_tokens - 512 : a->ctx_tokens / 2;
    return b < 64 ? 64 : b;
}

static void free_parts(const ag_alloc_funcs *al, sstate *s) {
    for (size_t i = 0; i < s->nparts; i++) {
        ag__free(al, s->parts[i]);
        if (s->run) ag__buf_free(al, &s->run[i].out);
    }
    ag__free(al, s->parts);
    ag__free(al, s->run);
    s->parts = NULL;
    s->run = NULL;
    s->nparts = s->next = s->done = s->inflight = 0;
}

void ag__summary_task_free(ag_task *t) {
    sstate *s = t->ss;
    if (!s) return;
    free_parts(t->a->al, s);
    ag__free(t->a->al, s->text);
    ag__free(t->a->al, s);
    t->ss = NULL;
}

void ag__summary_task_reset(ag_task *t) {
    if (t->a->kind == AGK_SUMMARY) ag__summary_task_free(t);
}

int ag__summary_cancel(ag_task *t) {
    sstate *s = t->ss;
    if (!s || !s->inflight) return 0;
    for (size_t i = 0; i < s->nparts; i++)
        if (s->run[i].req) ag_request_cancel(s->run[i].req);
    return 1;
}

/* splits at paragraph, then sentence, then word boundaries, each part under
 * the budget */
static int split_text(const ag_alloc_funcs *al, const char *text, size_t budget, char ***out, size_t *n) {
    size_t maxc = budget * 4, len = strlen(text), off = 0, cap = 0;
    *out = NULL;
    *n = 0;
    while (off < len) {
        size_t end = off + maxc < len ? off + maxc : len;
        if (end < len) {
            size_t cut = end;
            const char *seps[] = {"\n\n", ". ", " "};
            for (int s = 0; s < 3 && cut == end; s++)
                for (size_t i = end; i > off + maxc / 2; i--)
                    if (!strncmp(text + i - strlen(seps[s]), seps[s], strlen(seps[s]))) {
                        cut = i;
                        break;
                    }
            end = cut;
            while (end < len && (text[end] & 0xC0) == 0x80) end++;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            char **v = ag__realloc(al, *out, cap * sizeof *v);
            if (!v) return AG_ENOMEM;
            *out = v;
        }
        char *p = ag__malloc(al, end - off + 1);
        if (!p) return AG_ENOMEM;
        memcpy(p, text + off, end - off);
        p[end - off] = 0;
        (*out)[(*n)++] = p;
        off = end;
    }
    return 0;
}

/* the last call: streamed to the caller */
static void summarize_final(ag_task *t, const char *intro, const char *text) {
    ag__buf prompt = {0};
    int rc = ag__buf_str(t->a->al, &prompt, intro);
    rc |= ag__buf_str(t->a->al, &prompt, text);
    while (t->msgs.n) ag_msgs_remove(&t->msgs, t->msgs.n - 1);
    ag_message m = {"user", prompt.p, NULL, NULL, 0, NULL, NULL};
    if (!rc) rc = ag__msgs_push(&t->msgs, &m);
    ag__buf_free(t->a->al, &prompt);
    if (rc) {
        ag__task_finish(t, AG_ENOMEM, NULL);
        return;
    }
    t->phase = t->ss && ((sstate *)t->ss)->level ? T_REDUCE : T_CHAT;
    t->step_done = ag__task_answer_done;
    rc = ag__task_chat(t, 0, 0);
    if (rc) ag__task_fail(t, rc, NULL);
}

static void map_launch(ag_task *t);
static void map_level(ag_task *t, char *text);

static void part_chunk(ag_request *r, const ag_chunk *c, void *ud) {
    (void)r;
    part *p = ud;
    if (c->kind == AG_CHUNK_CONTENT) ag__buf_add(p->t->a->al, &p->out, c->text, c->len);
}

static void part_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    part *p = ud;
    ag_task *t = p->t;
    sstate *s = t->ss;
    p->req = NULL;
    s->inflight--;
    t->steps++;
    if (res->server.eval_count > 0) t->eval_count += res->server.eval_count;
    if (t->failed) {
        if (!s->inflight) ag__task_fail(t, t->failed, NULL);
        return;
    }
    if (t->cancelled || res->status) {
        t->failed = t->cancelled ? AG_ECANCELED : res->status;
        ag__free(t->a->al, t->error);
        t->error = res->error ? ag__strdup(t->a->al, res->error) : NULL;
        for (size_t i = 0; i < s->nparts; i++)
            if (s->run[i].req) ag_request_cancel(s->run[i].req);
        if (!s->inflight) {
            int f = t->failed;
            t->failed = 0;
            if (f == AG_ECANCELED) ag__task_finish(t, f, NULL);
            else ag__task_fail(t, f, t->error);
        }
        return;
    }
    s->done++;
    if (s->done < s->nparts) {
        map_launch(t);
        return;
    }
    /* every part summarised: join, and go again if still too long */
    ag__buf joined = {0};
    for (size_t i = 0; i < s->nparts; i++) {
        if (i) ag__buf_str(t->a->al, &joined, "\n\n");
        ag__buf_add(t->a->al, &joined, s->run[i].out.p ? s->run[i].out.p : "", s->run[i].out.len);
    }
    free_parts(t->a->al, s);
    if (!joined.p) {
        ag__task_finish(t, AG_ENOMEM, NULL);
        return;
    }
    if (ag_token_estimate(joined.p) > budget_of(t->a) && s->level < 6) {
        map_level(t, joined.p);
        return;
    }
    summarize_final(t, "These are summaries of consecutive parts of one text. Combine them into a single "
                       "summary of the whole text:\n\n", joined.p);
    ag__buf_free(t->a->al, &joined);
}

static void map_launch(ag_task *t) {
    sstate *s = t->ss;
    ag_agent *a = t->a;
    while (s->inflight < MAP_PARALLEL && s->next < s->nparts) {
        part *p = &s->run[s->next];
        ag__buf prompt = {0};
        int rc = ag__buf_str(t->a->al, &prompt, "Summarize this part of a longer text:\n\n");
        rc |= ag__buf_str(t->a->al, &prompt, s->parts[s->next]);
        ag_message m[2] = {{"system", a->system ? a->system : "", NULL, NULL, 0, NULL, NULL},
                           {"user", prompt.p, NULL, NULL, 0, NULL, NULL}};
        ag_chat_params cp = {.model = a->model, .messages = m, .n_messages = 2,
                             .request = ag__task_ro(t)}; /* the run's options on every call */
        cp.gen.options_json = t->options_override ? t->options_override : a->options_json;
        cp.gen.keep_alive = a->keep_alive;
        cp.gen.no_stream = 1;
        ag_callbacks cb = {part_chunk, part_done, p};
        if (!rc) rc = ag_chat(a->c, &cp, &cb, &p->req);
        ag__buf_free(t->a->al, &prompt);
        if (rc) {
            if (!s->inflight) ag__task_fail(t, rc, NULL);
            else t->failed = rc;
            return;
        }
        s->next++;
        s->inflight++;
    }
}

/* one map level over text (owned by the state from here) */
static void map_level(ag_task *t, char *text) {
    sstate *s = t->ss;
    ag__free(t->a->al, s->text);
    s->text = text;
    s->level++;
    t->phase = T_MAP;
    if (split_text(t->a->al, text, budget_of(t->a), &s->parts, &s->nparts) ||
        !(s->run = ag__calloc_n(t->a->al, s->nparts, sizeof *s->run))) {
        ag__task_finish(t, AG_ENOMEM, NULL);
        return;
    }
    for (size_t i = 0; i < s->nparts; i++) {
        s->run[i].t = t;
        s->run[i].idx = i;
    }
    map_launch(t);
}

void ag__summary_start(ag_task *t) {
    /* a conversation that fits the model's context goes as it is, after the
     * agent's prompt (as the original sends it); a longer text is summarised
     * in parts first (map, then reduce) */
    size_t tokens = 0;
    for (size_t i = 0; i < t->msgs.n; i++)
        if (t->msgs.v[i].content) tokens += ag_token_estimate(t->msgs.v[i].content) + 4;
    if (t->msgs.n && tokens <= budget_of(t->a)) {
        t->phase = T_CHAT;
        t->step_done = ag__task_answer_done;
        int rc = ag__task_chat(t, 0, 0);
        if (rc) ag__task_fail(t, rc, NULL);
        return;
    }
    ag__buf all = {0};
    for (size_t i = 0; i < t->msgs.n; i++)
        if (!strcmp(t->msgs.v[i].role, "user")) {
            if (all.len) ag__buf_str(t->a->al, &all, "\n\n");
            ag__buf_str(t->a->al, &all, t->msgs.v[i].content);
        }
    if (!all.p || !all.len) {
        ag__buf_free(t->a->al, &all);
        ag__task_finish(t, AG_EINVAL, "nothing to summarise (no user message)");
        return;
    }
    sstate *s = ag__calloc_n(t->a->al, 1, sizeof *s);
    if (!s) {
        ag__buf_free(t->a->al, &all);
        ag__task_finish(t, AG_ENOMEM, NULL);
        return;
    }
    t->ss = s;
    if (ag_token_estimate(all.p) <= budget_of(t->a)) {
        summarize_final(t, "Summarize the following text:\n\n", all.p);
        ag__buf_free(t->a->al, &all);
        return;
    }
    map_level(t, all.p); /* takes the buffer */
}

/* ---- the embedding agent ---- */
typedef struct ebatch {
    ag_task *t;
    size_t start, n;
} ebatch;

static void embed_fill(ag_task *t);

static void ebatch_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    ebatch *b = ud;
    ag_task *t = b->t;
    t->inflight--;
    t->steps++;
    if (!t->failed && (t->cancelled || res->status)) {
        t->failed = t->cancelled ? AG_ECANCELED : res->status;
        ag__free(t->a->al, t->error);
        t->error = res->error ? ag__strdup(t->a->al, res->error) : NULL;
    }
    if (!t->failed) {
        if (res->n_embeddings != b->n || (t->dim && res->dim != t->dim)) {
            t->failed = AG_EJSON;
        } else {
            if (!t->dim) {
                t->dim = res->dim;
                t->vecs = ag__calloc_n(t->a->al, t->n_inputs * t->dim, sizeof(float));
                if (!t->vecs) t->failed = AG_ENOMEM;
            }
            if (t->vecs) {
                memcpy(t->vecs + b->start * t->dim, res->embeddings, b->n * t->dim * sizeof(float));
                t->nvecs += b->n;
            }
        }
    }
    ag__free(t->a->al, b);
    if (t->failed) {
        if (!t->inflight) ag__task_finish(t, t->failed, t->error);
        return;
    }
    if (t->nvecs == t->n_inputs) {
        t->nvecs = t->n_inputs;
        ag__task_finish(t, 0, NULL);
        return;
    }
    embed_fill(t);
}

static void embed_fill(ag_task *t) {
    while (t->inflight < EMBED_PARALLEL && t->next_input < t->n_inputs) {
        ebatch *b = ag__calloc_n(t->a->al, 1, sizeof *b);
        if (!b) {
            t->failed = AG_ENOMEM;
            break;
        }
        b->t = t;
        b->start = t->next_input;
        b->n = t->n_inputs - b->start < EMBED_BATCH ? t->n_inputs - b->start : EMBED_BATCH;
        ag_embed_params p = {.model = t->a->model, .inputs = (const char *const *)t->inputs + b->start,
                             .n_inputs = b->n, .truncate = -1, .keep_alive = t->a->keep_alive,
                             .options_json = t->a->options_json, .request = ag__task_ro(t)};
        ag_callbacks cb = {NULL, ebatch_done, b};
        int rc = ag_embed(t->a->c, &p, &cb, NULL);
        if (rc) {
            ag__free(t->a->al, b);
            t->failed = rc;
            break;
        }
        t->next_input += b->n;
        t->inflight++;
    }
    if (t->failed && !t->inflight) ag__task_finish(t, t->failed, NULL);
}

static int blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\f' && *s != '\v') return 0;
    return 1;
}

void ag__embed_start(ag_task *t) {
    t->phase = T_EMBED;
    size_t nblank = 0;
    for (size_t i = 0; i < t->n_inputs; i++) nblank += blank(t->inputs[i]);
    if (nblank == t->n_inputs) {
        /* only blank text: empty vectors, no request (as the original does) */
        t->nvecs = t->n_inputs;
        t->dim = 0;
        ag__task_finish(t, 0, NULL);
        return;
    }
    embed_fill(t);
}

int ag__embed_cancel(ag_task *t) {
    if (t->a->kind != AGK_EMBED || !t->inflight) return 0;
    t->failed = AG_ECANCELED; /* the batches end on their own; results dropped */
    return 1;
}

int ag_agent_embed_texts(ag_agent *a, const char *const *texts, size_t n, const ag_agent_callbacks *cb,
                         ag_task **out) {
    return ag__embed_texts_with(a, texts, n, NULL, cb, out);
}

int ag__embed_texts_with(ag_agent *a, const char *const *texts, size_t n, const ag_request_options *ro,
                         const ag_agent_callbacks *cb, ag_task **out) {
    if (!a || a->kind != AGK_EMBED || !texts || !n) return AG_EINVAL;
    ag_task *t = ag__task_new(a, cb);
    if (!t) return AG_ENOMEM;
    t->inputs = ag__calloc_n(a->al, n, sizeof *t->inputs);
    int rc = t->inputs ? 0 : AG_ENOMEM;
    if (!rc && ro) rc = ag__task_keep_ro(t, ro);
    for (size_t i = 0; i < n && !rc; i++) {
        t->inputs[i] = ag__strdup(a->al, texts[i] ? texts[i] : "");
        if (!t->inputs[i]) rc = AG_ENOMEM;
        t->n_inputs = i + 1;
    }
    if (rc) {
        ag__task_free(t);
        return rc;
    }
    return ag__task_launch(t, out);
}

