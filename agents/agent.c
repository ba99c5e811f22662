/* agents/agent.c - ag_agent (BaseAgent), its tasks, the built-in agents and
 * the tools loop.
 *
 * A task keeps all its state in its struct and moves through an explicit
 * enum phase. step() starts (or, after a backoff, restarts) it: it picks the
 * kind's first phase. From there each model call's completion continues
 * through the step that started it (t->step_done): chat -> tools -> chat for
 * the tools loop here, the research and summarization steps in their files.
 * Only the public client API is used from here, plus core/client_ext.h (the
 * client's allocator) and core/errclass.h (which failures to retry).
 */
#include "agent_internal.h" /* (private: this folder's, not include/agents/) */
#include "core/base/json.h"
#include "core/errclass.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* ---- message lists ---- */
size_t ag_msgs_count(const ag_msgs *m) {
    return m->n;
}
const ag_message *ag_msgs_at(const ag_msgs *m, size_t i) {
    return i < m->n ? &m->v[i] : NULL;
}

static void msg_free(const ag_alloc_funcs *al, ag_message *x) {
    ag__free(al, (char *)x->role);
    ag__free(al, (char *)x->content);
    ag__free(al, (char *)x->thinking);
    ag__free(al, (char *)x->tool_calls_json);
    ag__free(al, (char *)x->tool_name);
    if (x->images) {
        for (size_t i = 0; i < x->n_images; i++) ag__free(al, (char *)x->images[i]);
        ag__free(al, (void *)x->images);
    }
    memset(x, 0, sizeof *x);
}

int ag__msgs_push(ag_msgs *m, const ag_message *src) {
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 8;
        ag_message *v = ag__realloc(m->al, m->v, nc * sizeof *v);
        if (!v) return AG_ENOMEM;
        m->v = v;
        m->cap = nc;
    }
    ag_message *x = &m->v[m->n];
    memset(x, 0, sizeof *x);
    x->role = ag__strdup(m->al, src->role ? src->role : "user");
    x->content = ag__strdup(m->al, src->content ? src->content : "");
    x->thinking = ag__strdup(m->al, src->thinking);
    x->tool_calls_json = ag__strdup(m->al, src->tool_calls_json);
    x->tool_name = ag__strdup(m->al, src->tool_name);
    if (src->n_images && src->images) {
        const char **im = ag__calloc_n(m->al, src->n_images, sizeof *im);
        if (im)
            for (size_t i = 0; i < src->n_images; i++) im[i] = ag__strdup(m->al, src->images[i]);
        x->images = im;
        x->n_images = im ? src->n_images : 0;
    }
    if (!x->role || !x->content) {
        msg_free(m->al, x);
        return AG_ENOMEM;
    }
    m->n++;
    return 0;
}

int ag_msgs_insert(ag_msgs *m, size_t at, const char *role, const char *content) {
    if (at > m->n) at = m->n;
    ag_message src = {role, content, NULL, NULL, 0, NULL, NULL};
    int rc = ag__msgs_push(m, &src);
    if (rc) return rc;
    ag_message tmp = m->v[m->n - 1];
    memmove(&m->v[at + 1], &m->v[at], (m->n - 1 - at) * sizeof tmp);
    m->v[at] = tmp;
    return 0;
}

int ag_msgs_set_content(ag_msgs *m, size_t i, const char *content) {
    if (i >= m->n) return AG_EINVAL;
    char *c = ag__strdup(m->al, content ? content : "");
    if (!c) return AG_ENOMEM;
    ag__free(m->al, (char *)m->v[i].content);
    m->v[i].content = c;
    return 0;
}

void ag_msgs_remove(ag_msgs *m, size_t i) {
    if (i >= m->n) return;
    msg_free(m->al, &m->v[i]);
    memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof m->v[0]);
    m->n--;
}

void ag__msgs_clear(ag_msgs *m) {
    for (size_t i = 0; i < m->n; i++) msg_free(m->al, &m->v[i]);
    ag__free(m->al, m->v);
    memset(m, 0, sizeof *m);
}

/* ---- agents ---- */
static void agent_set(ag_agent *a, char **dst, const char *src) {
    ag__free(a->al, *dst);
    *dst = ag__strdup(a->al, src);
}

ag_agent *ag_agent_new(ag_client *c, const ag_agent_config *cfg) {
    if (!c || !cfg || !cfg->model || !*cfg->model) return NULL;
    const ag_alloc_funcs *al = ag__client_allocator(c);
    ag_agent *a = ag__calloc_n(al, 1, sizeof *a);
    if (!a) return NULL;
    a->c = c;
    a->al = al;
    a->kind = AGK_PLAIN;
    agent_set(a, &a->name, cfg->name ? cfg->name : "agent");
    agent_set(a, &a->model, cfg->model);
    agent_set(a, &a->system, cfg->system);
    agent_set(a, &a->options_json, cfg->options_json);
    agent_set(a, &a->keep_alive, cfg->keep_alive);
    agent_set(a, &a->format, cfg->format);
    agent_set(a, &a->think, cfg->think);
    a->hooks = cfg->hooks;
    a->max_steps = cfg->max_steps > 0 ? cfg->max_steps : 8;
    a->retries = cfg->retries;
    a->retry_base = cfg->retry_base > 0 ? cfg->retry_base : 0.5;
    a->seed = 0x2545F4914F6CDD1Dull ^ (unsigned long long)(size_t)a;
    if (!a->name || !a->model) {
        ag_agent_free(a);
        return NULL;
    }
    return a;
}

void ag_agent_free(ag_agent *a) {
    if (!a) return;
    ag__free(a->al, a->name);
    ag__free(a->al, a->model);
    ag__free(a->al, a->system);
    ag__free(a->al, a->options_json);
    ag__free(a->al, a->keep_alive);
    ag__free(a->al, a->format);
    ag__free(a->al, a->think);
    ag__free(a->al, a->embed_model);
    for (int i = 0; i < a->ntools; i++) {
        ag__free(a->al, a->tools[i].name);
        ag__free(a->al, a->tools[i].description);
        ag__free(a->al, a->tools[i].schema);
    }
    ag__free(a->al, a->tools);
    ag__free(a->al, a->tools_json);
    ag__free(a->al, a);
}

int ag_agent_set(ag_agent *a, const char *key, const char *value) {
    if (!a || !key) return AG_EINVAL;
    char **slot = !strcmp(key, "model") ? &a->model : !strcmp(key, "system") ? &a->system
                : !strcmp(key, "options") ? &a->options_json : !strcmp(key, "keep_alive") ? &a->keep_alive
                : !strcmp(key, "format") ? &a->format : !strcmp(key, "think") ? &a->think : NULL;
    if (!slot || (slot == &a->model && (!value || !*value))) return AG_EINVAL;
    if (slot == &a->options_json && value && !ag__json_is_object(a->al, value)) return AG_EINVAL;
    char *v = value ? ag__strdup(a->al, value) : NULL;
    if (value && !v) return AG_ENOMEM;
    ag__free(a->al, *slot);
    *slot = v;
    return 0;
}

const char *ag_agent_name(const ag_agent *a) {
    return a->name;
}
ag_client *ag_agent_client(const ag_agent *a) {
    return a->c;
}

/* Our prompts. They are short on purpose: small local models follow short,
 * concrete instructions better than long ones. */
static const char CODING_PROMPT[] =
    "You are a senior software engineer. Answer with working code. Put every piece of code in "
    "a fenced block that names its language (```python, ```c, ...). Keep prose to a few lines "
    "before or after the code; do not explain what the code already makes obvious.";
/* as the original asks: the reasoning is part of the answer (a model that
 * sends thinking on its own still has it split out, see AGK_REASONING) */
static const char REASONING_PROMPT[] =
    "You reason carefully. Split a hard question into steps and work through them in your "
    "answer, one after another, saying what each step shows and which facts or principles it "
    "rests on; then state the conclusion plainly.";
static const char SUMMARY_PROMPT[] =
    "You condense text. Keep every fact, number, name and conclusion that matters; drop "
    "repetition, filler and examples. Write plain prose, shorter than the input, and never add "
    "anything the text does not say.";
/* the research agent without documents: an answer from what the model knows */
static const char RESEARCH_OPEN_PROMPT[] =
    "You are a careful researcher. Give a thorough, well-organised answer with headed sections "
    "where they help. Say where a claim comes from when you know it, and keep established facts "
    "apart from open questions and hypotheses.";
static const char RESEARCH_PROMPT[] =
    "Answer the question using only the numbered sources you are given. Cite the sources you "
    "use with their numbers in square brackets, like [1] or [2][3], right after the statement "
    "they support. If the sources do not contain the answer, say so.";

const char *ag_agent_prompt(const char *kind) {
    if (!kind) return NULL;
    if (!strcmp(kind, "coding")) return CODING_PROMPT;
    if (!strcmp(kind, "reasoning")) return REASONING_PROMPT;
    if (!strcmp(kind, "research")) return RESEARCH_OPEN_PROMPT;
    if (!strcmp(kind, "research-docs")) return RESEARCH_PROMPT;
    if (!strcmp(kind, "summarization")) return SUMMARY_PROMPT;
    return NULL;
}

static ag_agent *builtin(ag_client *c, const char *name, const char *model, const char *system, int kind) {
    ag_agent_config cfg = {.name = name, .model = model, .system = system};
    ag_agent *a = ag_agent_new(c, &cfg);
    if (a) a->kind = kind;
    return a;
}

ag_agent *ag_agent_chat(ag_client *c, const char *model) {
    return builtin(c, "chat", model, NULL, AGK_PLAIN);
}
ag_agent *ag_agent_coding(ag_client *c, const char *model) {
    return builtin(c, "coding", model, CODING_PROMPT, AGK_CODING);
}
ag_agent *ag_agent_reasoning(ag_client *c, const char *model) {
    return builtin(c, "reasoning", model, REASONING_PROMPT, AGK_REASONING);
}
ag_agent *ag_agent_summarizer(ag_client *c, const char *model, size_t context_tokens) {
    ag_agent *a = builtin(c, "summarization", model, SUMMARY_PROMPT, AGK_SUMMARY);
    if (a) a->ctx_tokens = context_tokens ? context_tokens : 2048;
    return a;
}
ag_agent *ag_agent_embedder(ag_client *c, const char *model) {
    return builtin(c, "embedding", model, NULL, AGK_EMBED);
}
ag_agent *ag_agent_research(ag_client *c, const char *model, const char *embed_model,
                            ag_docstore *store, int top_k) {
    if (!store) return builtin(c, "research", model, RESEARCH_OPEN_PROMPT, AGK_PLAIN);
    if (!embed_model) return NULL;
    ag_agent *a = builtin(c, "research", model, RESEARCH_PROMPT, AGK_RESEARCH);
    if (!a) return NULL;
    a->store = store;
    a->embed_model = ag__strdup(a->al, embed_model);
    a->top_k = top_k > 0 ? top_k : 4;
    if (!a->embed_model) {
        ag_agent_free(a);
        return NULL;
    }
    return a;
}

/* tools: kept as JSON for the request, rebuilt when one is added */
int ag_agent_add_tool(ag_agent *a, const char *name, const char *description,
                      const char *schema, ag_tool_fn fn, void *ud) {
    if (!a || !name || !*name || !fn) return AG_EINVAL;
    if (!schema) schema = "{\"type\":\"object\",\"properties\":{}}";
    if (!ag__json_is_object(a->al, schema)) return AG_EINVAL;
    ag_tool *t = ag__realloc(a->al, a->tools, (size_t)(a->ntools + 1) * sizeof *t);
    if (!t) return AG_ENOMEM;
    a->tools = t;
    ag_tool *x = &a->tools[a->ntools];
    x->name = ag__strdup(a->al, name);
    x->description = ag__strdup(a->al, description ? description : "");
    x->schema = ag__strdup(a->al, schema);
    x->fn = fn;
    x->ud = ud;
    if (!x->name || !x->description || !x->schema) return AG_ENOMEM;
    a->ntools++;
    ag__buf b = {0};
    int rc = ag__buf_str(a->al, &b, "[");
    for (int i = 0; i < a->ntools && !rc; i++) {
        rc |= ag__buf_str(a->al, &b, i ? ",{\"type\":\"function\",\"function\":{\"name\":" : "{\"type\":\"function\",\"function\":{\"name\":");
        rc |= ag__buf_json(a->al, &b, a->tools[i].name, strlen(a->tools[i].name));
        rc |= ag__buf_str(a->al, &b, ",\"description\":");
        rc |= ag__buf_json(a->al, &b, a->tools[i].description, strlen(a->tools[i].description));
        rc |= ag__buf_str(a->al, &b, ",\"parameters\":");
        rc |= ag__buf_str(a->al, &b, a->tools[i].schema);
        rc |= ag__buf_str(a->al, &b, "}}");
    }
    rc |= ag__buf_str(a->al, &b, "]");
    if (rc) {
        ag__buf_free(a->al, &b);
        return AG_ENOMEM;
    }
    ag__free(a->al, a->tools_json);
    a->tools_json = b.p;
    return 0;
}

/* ---- tasks ---- */
static void step(ag_task *t);

void ag__task_free(ag_task *t) {
    if (t->timer) event_free(t->timer);
    ag__msgs_clear(&t->msgs);
    ag__buf_free(t->a->al, &t->text);
    ag__buf_free(t->a->al, &t->answer);
    ag__buf_free(t->a->al, &t->thinking);
    ag__buf_free(t->a->al, &t->tool_log);
    ag__buf_free(t->a->al, &t->calls);
    for (int i = 0; i < t->ncalls; i++) {
        ag__free(t->a->al, t->call_name[i]);
        ag__free(t->a->al, t->call_args[i]);
    }
    ag__free(t->a->al, t->error);
    ag__free(t->a->al, t->node);
    free(t->final_text);
    if (t->blocks) ag_code_blocks_free(t->blocks, t->n_blocks);
    ag__research_task_free(t);
    ag__summary_task_free(t);
    ag__free(t->a->al, t->vecs);
    for (size_t i = 0; i < t->n_inputs; i++) ag__free(t->a->al, t->inputs[i]);
    ag__free(t->a->al, t->inputs);
    ag__free(t->a->al, t->options_override);
    ag__free(t->a->al, t->system_override);
    ag__free(t->a->al, (char *)t->ro.headers);
    ag__free(t->a->al, (char *)t->ro.node);
    ag__free(t->a->al, (char *)t->ro.tenant);
    ag__free(t->a->al, t);
}

int ag__task_keep_ro(ag_task *t, const ag_request_options *ro) {
    const ag_alloc_funcs *al = t->a->al;
    t->ro = *ro;
    t->ro.headers = t->ro.node = t->ro.tenant = NULL;
    /* a key that does not fit (over 256 bytes, or more than one line) is
     * refused, as request.h says, never cut */
    if (ro->session && (strlen(ro->session) >= sizeof t->session || strpbrk(ro->session, "\r\n"))) return AG_EINVAL;
    if (ro->session && *ro->session) /* the caller's key, kept in the task */
        snprintf(t->session, sizeof t->session, "%s", ro->session);
    t->ro.session = t->session;
    if (ro->headers && !(t->ro.headers = ag__strdup(al, ro->headers))) return AG_ENOMEM;
    if (ro->node && !(t->ro.node = ag__strdup(al, ro->node))) return AG_ENOMEM;
    if (ro->tenant && !(t->ro.tenant = ag__strdup(al, ro->tenant))) return AG_ENOMEM;
    return 0;
}

static void close_tool_log(ag_task *t) {
    if (t->tool_log.len && t->tool_log.p[t->tool_log.len - 1] != ']') ag__buf_str(t->a->al, &t->tool_log, "]");
}

/* the last step: build the result, tell the caller, free the task */
void ag__task_finish(ag_task *t, int status, const char *detail) {
    if (t->phase == T_DONE) return;
    t->phase = T_DONE;
    close_tool_log(t); /* an array, however the task ended */
    if (status) {
        ag__free(t->a->al, t->error);
        t->error = ag__strdup(t->a->al, detail && *detail ? detail : ag_strerror(status));
    }
    ag_agent_result r;
    memset(&r, 0, sizeof r);
    r.status = status;
    r.error = status ? t->error : NULL;
    if (!status) {
        const char *text = t->answer.p ? t->answer.p : "";
        size_t len = t->answer.len;
        if (t->a->hooks.finish) {
            char *x = t->a->hooks.finish(t->a, text, len, t->a->hooks.ud);
            if (x) {
                t->final_text = x;
                text = x;
                len = strlen(x);
            }
        }
        r.text = text;
        r.text_len = len;
        if (t->a->kind == AGK_CODING) {
            t->n_blocks = ag_code_blocks(text, len, &t->blocks);
            if (t->n_blocks < 0) t->n_blocks = 0;
            r.blocks = t->blocks;
            r.n_blocks = t->n_blocks;
        }
    }
    r.thinking = t->thinking.p;
    r.thinking_len = t->thinking.len;
    r.sources = t->sources;
    r.n_sources = t->n_sources;
    r.tool_log = t->tool_log.len ? t->tool_log.p : NULL;
    r.embeddings = t->vecs;
    r.n_embeddings = t->nvecs;
    r.dim = t->dim;
    r.steps = t->steps;
    r.attempts = t->attempt + 1;
    r.server = t->server;
    r.eval_count = t->eval_count;
    r.timing = t->timing;
    r.timing.e2e_ns = ag__now_ns() - t->t0;
    r.node = t->node;
    if (t->cb.on_done) t->cb.on_done(t, &r, t->cb.ud);
    ag__task_free(t);
}

/* worth running the whole task again after a backoff: the error table says */
static int retryable(int status) {
    return (ag__err_class(status, 0) & AG__EC_RETRY) != 0;
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    ag_task *t = arg;
    t->phase = T_START;
    step(t);
}

/* A model call failed: retry the whole task after a backoff when it is worth
 * it and nothing reached the caller yet, else end. */
void ag__task_fail(ag_task *t, int status, const char *detail) {
    if (!t->cancelled && status != AG_ECANCELED && status != AG_ESHUTDOWN && retryable(status) &&
        t->attempt < t->a->retries && t->delivered == 0) {
        double d = ag_backoff((unsigned)t->attempt, t->a->retry_base, 30.0, &t->a->seed);
        t->attempt++;
        if (!t->timer) t->timer = evtimer_new(ag_client_base(t->a->c), backoff_cb, t);
        if (t->timer) {
            struct timeval tv;
            ag__timeval(&tv, d);
            t->phase = T_BACKOFF;
            ag__research_task_reset(t);
            ag__summary_task_reset(t);
            evtimer_add(t->timer, &tv);
            return;
        }
    }
    ag__task_finish(t, status, detail);
}

/* ---- one model call (chat) ---- */
static int emit_piece(int kind, const char *text, size_t len, void *ud) {
    ag_task *t = ud;
    ag_agent *a = t->a;
    if (a->hooks.filter && a->hooks.filter(a, kind, &text, &len, a->hooks.ud)) return 0;
    if (kind == AG_CHUNK_THINKING) {
        if (ag__buf_add(t->a->al, &t->thinking, text, len)) return AG_ENOMEM;
    } else if (ag__buf_add(t->a->al, &t->text, text, len)) {
        return AG_ENOMEM;
    }
    if (!t->quiet && len) {
        if (t->timing.chunks == 0) t->timing.ttft_ns = ag__now_ns() - t->t0;
        t->timing.chunks++;
        t->timing.bytes += (int64_t)len;
        t->delivered++;
    }
    if (!t->quiet && t->cb.on_chunk && len) {
        ag_chunk c;
        memset(&c, 0, sizeof c);
        c.kind = kind;
        c.text = text;
        c.len = len;
        t->cb.on_chunk(t, &c, t->cb.ud);
    }
    return 0;
}

static void call_chunk(ag_request *r, const ag_chunk *c, void *ud) {
    ag_task *t = ud;
    (void)r;
    if (t->cancelled) return;
    if (c->kind == AG_CHUNK_TOOL_CALL) {
        if (t->ncalls < AG_MAX_CALLS) {
            t->call_name[t->ncalls] = ag__malloc(t->a->al, c->name_len + 1);
            t->call_args[t->ncalls] = ag__malloc(t->a->al, c->arguments_len + 1);
            if (t->call_name[t->ncalls] && t->call_args[t->ncalls]) {
                memcpy(t->call_name[t->ncalls], c->name, c->name_len);
                t->call_name[t->ncalls][c->name_len] = 0;
                memcpy(t->call_args[t->ncalls], c->arguments_json, c->arguments_len);
                t->call_args[t->ncalls][c->arguments_len] = 0;
                t->ncalls++;
            }
        }
        if (!t->quiet && t->cb.on_chunk) t->cb.on_chunk(t, c, t->cb.ud);
        return;
    }
    if (c->kind != AG_CHUNK_CONTENT && c->kind != AG_CHUNK_THINKING) return;
    if (t->a->kind == AGK_REASONING && c->kind == AG_CHUNK_CONTENT) {
        ag_think_feed(&t->split, c->text, c->len, emit_piece, t);
    } else {
        emit_piece(c->kind, c->text, c->len, t);
    }
}

static void call_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    ag_task *t = ud;
    t->req = NULL;
    if (t->a->kind == AGK_REASONING) ag_think_flush(&t->split, emit_piece, t);
    ag__free(t->a->al, t->node);
    t->node = ag__strdup(t->a->al, res->node);
    t->server = res->server;
    if (res->server.eval_count > 0) t->eval_count += res->server.eval_count;
    if (t->cancelled) {
        ag__task_finish(t, AG_ECANCELED, NULL);
        return;
    }
    if (res->status) {
        ag__task_fail(t, res->status, res->error);
        return;
    }
    t->step_done(t);
}

/* Sends t->msgs (after the prepare hooks) as one chat. */
int ag__task_chat(ag_task *t, int with_tools, int quiet) {
    ag_agent *a = t->a;
    /* default prepare: the system prompt first, roles normalised */
    ag_msgs send = {0};
    send.al = a->al;
    int rc = 0;
    /* the agent's prompt first, then the caller's own system messages, if
     * any (as the original package sends them) */
    const char *sys = t->system_override ? t->system_override : a->system;
    if (sys && *sys) {
        ag_message s = {"system", sys, NULL, NULL, 0, NULL, NULL};
        rc = ag__msgs_push(&send, &s);
    }
    for (size_t i = 0; i < t->msgs.n && !rc; i++) {
        ag_message m = t->msgs.v[i];
        const char *role = m.role;
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool"))
            role = "user";
        m.role = role;
        rc = ag__msgs_push(&send, &m);
    }
    if (!rc && a->hooks.prepare) rc = a->hooks.prepare(a, &send, a->hooks.ud);
    if (rc) {
        ag__msgs_clear(&send);
        return rc;
    }
    ag_chat_params p;
    memset(&p, 0, sizeof p);
    p.model = a->model;
    p.messages = send.v;
    p.n_messages = send.n;
    p.tools_json = with_tools && a->ntools ? a->tools_json : NULL;
    p.gen.options_json = t->options_override ? t->options_override : a->options_json;
    p.gen.keep_alive = a->keep_alive;
    p.gen.format = a->format;
    p.gen.think = a->think;
    p.gen.no_stream = t->no_stream;
    p.request = ag__task_ro(t);
    ag_callbacks cb = {call_chunk, call_done, t};
    t->text.len = 0;
    if (t->text.p) t->text.p[0] = 0;
    t->quiet = quiet;
    for (int i = 0; i < t->ncalls; i++) {
        ag__free(t->a->al, t->call_name[i]);
        ag__free(t->a->al, t->call_args[i]);
    }
    t->ncalls = 0;
    memset(&t->split, 0, sizeof t->split);
    t->steps++;
    rc = ag_chat(a->c, &p, &cb, &t->req);
    ag__msgs_clear(&send);
    return rc;
}

/* ---- the tools loop: chat -> run tools -> chat ... ---- */
static void chat_step_done(ag_task *t);

static void run_tools(ag_task *t) {
    ag_agent *a = t->a;
    /* the assistant's turn, with the calls it made */
    ag__buf calls = {0};
    int rc = ag__buf_str(t->a->al, &calls, "[");
    for (int i = 0; i < t->ncalls && !rc; i++) {
        rc |= ag__buf_str(t->a->al, &calls, i ? ",{\"function\":{\"name\":" : "{\"function\":{\"name\":");
        rc |= ag__buf_json(t->a->al, &calls, t->call_name[i], strlen(t->call_name[i]));
        rc |= ag__buf_str(t->a->al, &calls, ",\"arguments\":");
        rc |= ag__buf_str(t->a->al, &calls, t->call_args[i][0] == '{' ? t->call_args[i] : "{}");
        rc |= ag__buf_str(t->a->al, &calls, "}}");
    }
    rc |= ag__buf_str(t->a->al, &calls, "]");
    ag_message am = {"assistant", t->text.p ? t->text.p : "", NULL, NULL, 0, calls.p, NULL};
    if (!rc) rc = ag__msgs_push(&t->msgs, &am);
    ag__buf_free(t->a->al, &calls);
    for (int i = 0; i < t->ncalls && !rc; i++) {
        ag_tool *tool = NULL;
        for (int j = 0; j < a->ntools; j++)
            if (!strcmp(a->tools[j].name, t->call_name[i])) tool = &a->tools[j];
        char *result = NULL;
        char err[300];
        err[0] = 0; /* a tool that succeeds without a result said nothing: "" */
        if (!tool) {
            snprintf(err, sizeof err, "error: there is no tool named \"%.200s\"", t->call_name[i]);
        } else {
            t->in_tool = 1;
            int failed = tool->fn(t->call_args[i], strlen(t->call_args[i]), &result, tool->ud) != 0;
            t->in_tool = 0;
            if (failed) {
                snprintf(err, sizeof err, "error: the tool failed%s%.200s", result ? ": " : "",
                         result ? result : "");
                free(result);
                result = NULL;
            }
        }
        const char *out = result ? result : err;
        ag_message tm = {"tool", out, NULL, NULL, 0, NULL, t->call_name[i]};
        rc = ag__msgs_push(&t->msgs, &tm);
        /* the log: [{"name","arguments","result"}, ...] */
        rc |= ag__buf_str(t->a->al, &t->tool_log, t->tool_log.len ? ",{\"name\":" : "[{\"name\":");
        rc |= ag__buf_json(t->a->al, &t->tool_log, t->call_name[i], strlen(t->call_name[i]));
        rc |= ag__buf_str(t->a->al, &t->tool_log, ",\"arguments\":");
        rc |= ag__buf_str(t->a->al, &t->tool_log, t->call_args[i][0] == '{' ? t->call_args[i] : "{}");
        rc |= ag__buf_str(t->a->al, &t->tool_log, ",\"result\":");
        rc |= ag__buf_json(t->a->al, &t->tool_log, out, strlen(out));
        rc |= ag__buf_str(t->a->al, &t->tool_log, "}");
        free(result);
        /* the tool may have cancelled the task: ag_task_cancel defers to here */
        if (t->cancelled) {
            ag__task_finish(t, AG_ECANCELED, NULL);
            return;
        }
    }
    if (rc) {
        ag__task_finish(t, AG_ENOMEM, NULL);
        return;
    }
    t->step_done = chat_step_done;
    t->phase = T_CHAT;
    rc = ag__task_chat(t, 1, 0);
    if (rc) ag__task_finish(t, rc, NULL);
}

static void chat_step_done(ag_task *t) {
    if (t->ncalls > 0 && t->a->ntools > 0) {
        if (t->steps >= t->a->max_steps) {
            char msg[128];
            snprintf(msg, sizeof msg, "the model still wanted tools after %d steps", t->steps);
            ag__task_finish(t, AG_ESTEPS, msg);
            return;
        }
        t->phase = T_TOOLS;
        run_tools(t);
        return;
    }
    ag__task_answer_done(t);
}

void ag__task_answer_done(ag_task *t) {
    if (ag__buf_add(t->a->al, &t->answer, t->text.p ? t->text.p : "", t->text.len)) ag__task_finish(t, AG_ENOMEM, NULL);
    else ag__task_finish(t, 0, NULL);
}

/* (Re)starts a task from the top: each kind's first phase. */
static void step(ag_task *t) {
    int rc = 0;
    switch (t->phase) {
    case T_START:
        t->answer.len = 0;
        t->thinking.len = 0;
        switch (t->a->kind) {
        case AGK_RESEARCH: ag__research_start(t); return;
        case AGK_SUMMARY: ag__summary_start(t); return;
        case AGK_EMBED: ag__embed_start(t); return;
        default:
            t->phase = T_CHAT;
            t->step_done = chat_step_done;
            rc = ag__task_chat(t, 1, 0);
            break;
        }
        break;
    default:
        break;
    }
    if (rc) ag__task_fail(t, rc, NULL);
}


ag_task *ag__task_new(ag_agent *a, const ag_agent_callbacks *cb) {
    ag_task *t = ag__calloc_n(a->al, 1, sizeof *t);
    if (!t) return NULL;
    static const char hex[] = "0123456789abcdef";
    uint64_t id = (uint64_t)(uintptr_t)t ^ (uint64_t)ag__now_ns(); /* unique among live tasks */
    memcpy(t->session, "task-", 5);
    for (int i = 0; i < 16; i++) t->session[5 + i] = hex[(id >> (60 - 4 * i)) & 15];
    t->session[21] = 0;
    t->ro.session = t->session;
    t->a = a;
    t->msgs.al = a->al;
    if (cb) t->cb = *cb;
    t->t0 = ag__now_ns();
    t->timing.ttft_ns = -1;
    t->phase = T_START;
    return t;
}

int ag__task_launch(ag_task *t, ag_task **out) {
    /* the first step runs from the loop, so that on_done never runs inside
     * the starting call; the same timer serves the retry backoff */
    t->timer = evtimer_new(ag_client_base(t->a->c), backoff_cb, t);
    if (!t->timer) {
        ag__task_free(t);
        return AG_ENOMEM;
    }
    struct timeval zero = {0, 0};
    evtimer_add(t->timer, &zero);
    if (out) *out = t;
    return 0;
}

int ag__agent_run_ex(ag_agent *a, const ag_message *msgs, size_t n, const char *options_override,
                    const char *system_override, const char *session, const ag_agent_callbacks *cb, ag_task **out) {
    ag_run_options ro;
    memset(&ro, 0, sizeof ro);
    ro.system = system_override;
    ro.options_replace = options_override;
    ag_request_options rq = {.session = session};
    if (session && *session) ro.request = &rq;
    return ag_agent_run_with(a, msgs, n, &ro, cb, out);
}

/* the embedding agent on a conversation: the contents joined by blank lines
 * make one text, one vector (a blank text: an empty vector, no request) */
static int embed_conversation(ag_agent *a, const ag_message *msgs, size_t n, const ag_run_options *ro,
                              const ag_agent_callbacks *cb, ag_task **out) {
    ag__buf joined = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (i) rc = ag__buf_add(a->al, &joined, "\n\n", 2);
        if (!rc && msgs[i].content) rc = ag__buf_str(a->al, &joined, msgs[i].content);
    }
    if (!rc && !joined.p) rc = ag__buf_add(a->al, &joined, "", 0);
    if (rc) {
        ag__buf_free(a->al, &joined);
        return rc;
    }
    const char *one = joined.p;
    rc = ag__embed_texts_with(a, &one, 1, ro ? ro->request : NULL, cb, out);
    ag__buf_free(a->al, &joined);
    return rc;
}

int ag_agent_run_with(ag_agent *a, const ag_message *msgs, size_t n, const ag_run_options *ro,
                      const ag_agent_callbacks *cb, ag_task **out) {
    if (!a || (n && !msgs)) return AG_EINVAL;
    if (a->kind == AGK_EMBED) return embed_conversation(a, msgs, n, ro, cb, out);
    ag_task *t = ag__task_new(a, cb);
    if (!t) return AG_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) rc = ag__msgs_push(&t->msgs, &msgs[i]);
    if (!rc && ro && ro->options_replace)
        rc = (t->options_override = ag__strdup(a->al, ro->options_replace)) ? 0 : AG_ENOMEM;
    else if (!rc && ro && ro->options_json) /* this run's keys over the agent's */
        t->options_override = ag__json_merge(a->al, a->options_json, ro->options_json, &rc);
    if (!rc && ro && ro->system) rc = (t->system_override = ag__strdup(a->al, ro->system)) ? 0 : AG_ENOMEM;
    if (!rc && ro) t->no_stream = ro->no_stream ? 1 : 0;
    if (!rc && ro && ro->request) rc = ag__task_keep_ro(t, ro->request);
    if (rc) {
        ag__task_free(t);
        return rc;
    }
    return ag__task_launch(t, out);
}

int ag_agent_run(ag_agent *a, const ag_message *msgs, size_t n, const ag_agent_callbacks *cb,
                 ag_task **out) {
    return ag_agent_run_with(a, msgs, n, NULL, cb, out);
}

int ag_agent_ask(ag_agent *a, const char *prompt, const ag_agent_callbacks *cb, ag_task **out) {
    if (!prompt) return AG_EINVAL;
    ag_message m = {"user", prompt, NULL, NULL, 0, NULL, NULL};
    return ag_agent_run(a, &m, 1, cb, out);
}

void ag_task_cancel(ag_task *t) {
    if (!t || t->phase == T_DONE || t->cancelled) return;
    t->cancelled = 1;
    if (t->in_tool) return; /* run_tools finishes it when the tool returns */
    if (t->req) {
        ag_request_cancel(t->req); /* -> call_done -> finish(ECANCELED) */
        return;
    }
    if (ag__research_cancel(t) || ag__summary_cancel(t) || ag__embed_cancel(t)) return;
    ag__task_finish(t, AG_ECANCELED, NULL);
}
