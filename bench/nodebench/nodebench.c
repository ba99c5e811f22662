/* bench/nodebench/nodebench.c - `agents bench`: workloads, measurements, reports. */
#include "nodebench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <yajl/yajl_tree.h>

#define MAX_ITL 4000000 /* gap samples kept per point (16 MB) */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_s(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

/* The machine's CPU time so far, from /proc/stat (Linux): all of it, and
 * what the hypervisor took (steal). 0 where there is no such file. */
typedef struct {
    double total, steal, idle;
} machine_cpu;

static machine_cpu machine_now(void) {
    machine_cpu m = {0, 0, 0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return m;
    unsigned long long v[10] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 8) return m;
    for (int i = 0; i < 8; i++) m.total += (double)v[i]; /* guest time is inside user already */
    m.idle = (double)(v[3] + v[4]);
    m.steal = (double)v[7];
    return m;
}

static const char *builtin_prompts[] = {
    "Why is the sky blue?",
    "Write a haiku about the sea.",
    "Explain TCP slow start in two sentences.",
    "What is the capital of Australia, and why not Sydney?",
    "Give three tips for writing readable C.",
    "Summarize the plot of Hamlet in one paragraph.",
    "How does a hash table handle collisions?",
    "List the planets of the solar system in order.",
};

/* ---- one point's run ---- */
typedef struct point_run point_run;
/* a conversation (--turns): its history grows by a question and an answer a
 * turn; ready ones wait in a FIFO for the closed loop's next free slot */
typedef struct conv {
    int id, turn;
    ag_message *m; /* 1 + 2 x turns */
    size_t n;
    char session[48];
    struct conv *next; /* ready list, or the thinking list (--think-ms) */
    struct event *think; /* the end of its think time */
    point_run *pr;
} conv;

typedef struct inflight {
    point_run *pr;
    double start, last, first;
    int tokens, counted;
    int interactive; /* of the --interactive class */
    conv *cv;
    int prompt_tokens;
    int in_target;
    size_t in_chars;
    double lag;
    char *owned; /* a prompt built for this request */
    char *ans; /* the answer as received (conversations) */
    size_t alen, acap;
} inflight;

struct point_run {
    ag_client *c;
    const nb_config *cfg;
    nb_point *pt;
    size_t cap_reqs;
    int issued, done, in_flight, target, warm_done;
    int stop_issuing, concurrency;
    double t0, deadline;
    double rate;
    uint64_t rng;
    struct event *arrival, *tick;
    int tty;
    int convs;             /* conversations started */
    conv *ready, **ready_tail;
    char *system;          /* the shared prefix */
    unsigned point_id;     /* conversations of different points differ */
    /* open loop: the schedule (ms, monotonic), in unit-rate time u */
    double next_at, u, cur_sched, s0; /* cur_sched: the schedule's time of the request being started, or -1 */
    int open;              /* open loop (a rate or a trace) */
    uint64_t wrng;         /* lengths */
    double cpt;            /* characters per token of built prompts, from the server's counts */
    int i_in_flight, i_stop; /* --interactive: its requests running; no more */
    conv *thinking;          /* --think-ms: conversations between an answer and their next turn */
    double *i_ttft;          /* its TTFTs (ms) */
    size_t i_n, i_cap, i_failed;
};

/* about `tokens` tokens (4 characters each) of varied words: the shared
 * system prompt */
static char *make_prefix(int tokens, uint64_t seed) {
    static const char *w[] = {"You", "are", "a", "careful", "assistant", "for", "the", "operations", "team;", "answer",
                              "briefly,", "cite", "the", "runbook", "section,", "and", "never", "guess", "values.", "Policy"};
    size_t want = (size_t)tokens * 4, n = 0;
    char *t = malloc(want + 32);
    if (!t) return NULL;
    uint64_t r = seed | 1;
    while (n < want) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        n += (size_t)snprintf(t + n, want + 32 - n, "%s ", w[r % 20]);
    }
    t[want] = 0;
    return t;
}


static void issue(point_run *pr);
static void start_one(point_run *pr);

static void on_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    inflight *f = ud;
    if (ch->kind != AG_CHUNK_CONTENT && ch->kind != AG_CHUNK_THINKING) return;
    double t = now_ms();
    if (f->tokens == 0) f->first = t;
    else if (f->counted && f->pr->pt->n_itl < MAX_ITL) f->pr->pt->itl_ms[f->pr->pt->n_itl++] = (float)(t - f->last);
    f->last = t;
    f->tokens++;
    if (f->cv && ch->kind == AG_CHUNK_CONTENT && f->alen + ch->len < 65536) {
        if (f->alen + ch->len + 1 > f->acap) {
            size_t nc = f->acap ? f->acap * 2 : 256;
            while (nc < f->alen + ch->len + 1) nc *= 2;
            char *a = realloc(f->ans, nc);
            if (!a) return;
            f->ans = a;
            f->acap = nc;
        }
        memcpy(f->ans + f->alen, ch->text, ch->len);
        f->alen += ch->len;
        f->ans[f->alen] = 0;
    }
}

static void conv_free(conv *cv) {
    if (cv->think) event_free(cv->think);
    for (size_t i = 1; i < cv->n; i++) free((char *)cv->m[i].content);
    free(cv->m);
    free(cv);
}

static void start_interactive(point_run *pr);
static void issue(point_run *pr);
/* --think-ms: a conversation's think time is over: its next turn is ready */
static void think_over(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    conv *cv = arg;
    point_run *pr = cv->pr;
    for (conv **pp = &pr->thinking; *pp; pp = &(*pp)->next)
        if (*pp == cv) {
            *pp = cv->next;
            break;
        }
    cv->next = NULL;
    *pr->ready_tail = cv;
    pr->ready_tail = &cv->next;
    if (!pr->open) issue(pr);
    else start_one(pr);
}
static void on_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    inflight *f = ud;
    point_run *pr = f->pr;
    double t = now_ms();
    if (f->interactive) { /* apart from the load's figures */
        pr->i_in_flight--;
        if (res->status || !f->tokens) pr->i_failed++;
        else if (f->counted) {
            if (pr->i_n == pr->i_cap) {
                size_t nc = pr->i_cap ? pr->i_cap * 2 : 256;
                double *v = realloc(pr->i_ttft, nc * sizeof *v);
                if (v) {
                    pr->i_ttft = v;
                    pr->i_cap = nc;
                }
            }
            if (pr->i_n < pr->i_cap) pr->i_ttft[pr->i_n++] = f->first - f->start;
        }
        free(f);
        if (!pr->i_stop) start_interactive(pr);
        return;
    }
    pr->in_flight--;
    pr->done++;
    if (f->counted) {
        nb_point *pt = pr->pt;
        if (pt->n_reqs == pr->cap_reqs) {
            pr->cap_reqs = pr->cap_reqs ? pr->cap_reqs * 2 : 1024;
            pt->reqs = realloc(pt->reqs, pr->cap_reqs * sizeof *pt->reqs);
        }
        nb_req *q = &pt->reqs[pt->n_reqs++];
        memset(q, 0, sizeof *q);
        q->start_ms = f->start - pr->t0;
        q->ttft_ms = f->tokens ? f->first - f->start : -1;
        q->end_ms = t - pr->t0;
        q->tokens = res->status == 0 && pr->cfg->endpoint == NB_EMBED ? (int)res->n_embeddings : f->tokens;
        q->status = res->status;
        q->srv_total_ms = res->server.total_duration >= 0 ? res->server.total_duration / 1e6 : -1;
        q->srv_load_ms = res->server.load_duration >= 0 ? res->server.load_duration / 1e6 : -1;
        q->srv_prompt_ms = res->server.prompt_eval_duration >= 0 ? res->server.prompt_eval_duration / 1e6 : -1;
        q->srv_eval_ms = res->server.eval_duration >= 0 ? res->server.eval_duration / 1e6 : -1;
        q->turn = f->cv ? f->cv->turn : 0;
        q->send_lag_ms = f->lag;
        q->in_target = f->in_target;
        q->prompt_tokens = f->prompt_tokens;
        q->prompt_evaluated = res->status == 0 ? res->server.prompt_eval_count : -1;
        snprintf(q->node, sizeof q->node, "%s", res->node ? res->node : "");
    } else {
        pr->warm_done++;
    }
    if (f->in_target && res->status == 0 && res->server.prompt_eval_count > 0) {
        /* built prompts follow the server's count: characters per token */
        double seen = (double)f->in_chars / (double)res->server.prompt_eval_count;
        if (seen > 0.5 && seen < 20) pr->cpt = 0.8 * pr->cpt + 0.2 * seen;
    }
    free(f->owned);
    conv *cv = f->cv;
    if (cv) { /* the answer joins the history; the conversation goes on or ends */
        if (res->status == 0 && cv->turn < pr->cfg->turns) {
            cv->m[cv->n++] = (ag_message){.role = "assistant", .content = f->ans ? f->ans : strdup("")};
            f->ans = NULL;
            cv->next = NULL;
            if (pr->cfg->think_ms > 0) { /* the user reads the answer first */
                cv->pr = pr;
                if (!cv->think) cv->think = evtimer_new(ag_client_base(pr->c), think_over, cv);
                struct timeval tv = {(time_t)(pr->cfg->think_ms / 1e3), (suseconds_t)(fmod(pr->cfg->think_ms, 1e3) * 1e3)};
                if (cv->think) {
                    cv->next = pr->thinking;
                    pr->thinking = cv;
                    evtimer_add(cv->think, &tv);
                } else {
                    conv_free(cv);
                }
            } else {
                *pr->ready_tail = cv;
                pr->ready_tail = &cv->next;
            }
        } else {
            conv_free(cv);
        }
    }
    free(f->ans);
    free(f);
    if (!pr->open) issue(pr); /* closed loop: one out, one in */
    else if (pr->ready) start_one(pr); /* open loop: a conversation's next turn follows at once */
}

static void start_one(point_run *pr) {
    const nb_config *cfg = pr->cfg;
    inflight *f = calloc(1, sizeof *f);
    if (!f) return;
    f->pr = pr;
    f->counted = pr->issued >= cfg->warmup;
    f->start = now_ms();
    f->lag = pr->cur_sched >= 0 ? f->start - pr->cur_sched : 0; /* (start - lag is its time on the schedule, exactly) */
    const char *prompt = cfg->prompts[pr->issued % cfg->n_prompts];
    const nb_item *item = cfg->items ? &cfg->items->v[(size_t)pr->issued % cfg->items->n] : NULL;
    int in_tokens = 0, out_tokens = cfg->max_tokens;
    if (item && !item->n) in_tokens = item->in_len;
    else if (!item && cfg->in_len.kind) in_tokens = nb_dist_sample(&cfg->in_len, &pr->wrng);
    if (item && item->out_len) out_tokens = item->out_len;
    if (cfg->out_len.kind) out_tokens = nb_dist_sample(&cfg->out_len, &pr->wrng);
    if (in_tokens > 0) { /* a prompt built to the length, unique to the request */
        f->owned = nb_make_text(in_tokens, pr->cpt, ((uint64_t)pr->point_id << 32) + (uint64_t)pr->issued);
        if (f->owned) {
            prompt = f->owned;
            f->in_target = in_tokens;
            f->in_chars = strlen(f->owned);
        }
    } else if (item && item->n) {
        prompt = item->contents[item->n - 1];
    }
    if ((cfg->turns > 1 || cfg->turn_tokens > 0 || cfg->context_tokens > 0) && cfg->endpoint == NB_CHAT) {
        conv *cv = pr->ready; /* a conversation waiting for its next turn first */
        if (cv) {
            pr->ready = cv->next;
            if (!pr->ready) pr->ready_tail = &pr->ready;
        } else {
            cv = calloc(1, sizeof *cv);
            if (cv) cv->m = calloc((size_t)(2 * (cfg->turns > 1 ? cfg->turns : 1) + 1), sizeof *cv->m);
            if (!cv || !cv->m) {
                free(cv);
                free(f);
                return;
            }
            cv->id = pr->convs++;
            snprintf(cv->session, sizeof cv->session, "bench-%u-%d", pr->point_id, cv->id);
            if (pr->system) cv->m[cv->n++] = (ag_message){.role = "system", .content = pr->system};
            else cv->m[cv->n++] = (ag_message){.role = "system", .content = ""};
        }
        char q[512];
        int ql = snprintf(q, sizeof q, "%s (conversation %u.%d, turn %d)", cfg->prompts[(cv->id + cv->turn) % cfg->n_prompts],
                          pr->point_id, cv->id, cv->turn + 1);
        char *msg = NULL;
        int pad = cfg->turn_tokens + (cv->turn == 0 ? cfg->context_tokens : 0);
        if (pad > 0) { /* a long message: the question, then filler to size */
            char *fill = make_prefix(pad, pr->rng + (uint64_t)cv->id * 131 + (uint64_t)cv->turn);
            if (fill && (msg = malloc((size_t)ql + strlen(fill) + 2))) sprintf(msg, "%s %s", q, fill);
            free(fill);
        } else {
            msg = strdup(q);
        }
        cv->m[cv->n++] = (ag_message){.role = "user", .content = msg ? msg : strdup("")};
        cv->turn++;
        f->cv = cv;
    }
    pr->issued++;
    pr->in_flight++;
    ag_callbacks cb = {on_chunk, on_done, f};
    char opts[64];
    snprintf(opts, sizeof opts, "{\"num_predict\":%d}", out_tokens);
    int rc;
    if (cfg->endpoint == NB_EMBED) {
        ag_embed_params p = {.model = cfg->model, .inputs = &prompt, .n_inputs = 1, .truncate = -1};
        rc = ag_embed(pr->c, &p, &cb, NULL);
    } else if (cfg->endpoint == NB_GENERATE) {
        ag_generate_params p = {.model = cfg->model, .prompt = prompt};
        if (out_tokens > 0) p.gen.options_json = opts;
        rc = ag_generate(pr->c, &p, &cb, NULL);
    } else {
        ag_message one[2] = {{.role = "system", .content = pr->system}, {.role = "user", .content = prompt}};
        ag_chat_params p = {.model = cfg->model, .messages = pr->system ? one : one + 1, .n_messages = pr->system ? 2 : 1};
        ag_request_options ro = {0};
        if (cfg->interactive > 0) { /* the load is the batch class beside the interactive one */
            ro.priority = AG_PRIORITY_BATCH;
            ro.tenant = "batch";
            p.request = &ro;
        }
        ag_message *im = NULL;
        if (item && item->n && !f->owned) { /* the dataset's messages, after the shared prefix */
            im = calloc(item->n + 1, sizeof *im);
            if (im) {
                size_t k = 0;
                if (pr->system) im[k++] = (ag_message){.role = "system", .content = pr->system};
                for (size_t i = 0; i < item->n; i++) im[k++] = (ag_message){.role = item->roles[i], .content = item->contents[i]};
                p.messages = im;
                p.n_messages = k;
            }
        }
        if (f->cv) {
            p.messages = f->cv->m + (pr->system ? 0 : 1); /* no empty system message */
            p.n_messages = f->cv->n - (pr->system ? 0 : 1);
            if (!cfg->no_session) {
                ro.session = f->cv->session;
                p.request = &ro;
            }
        }
        for (size_t i = 0; i < p.n_messages; i++) f->prompt_tokens += (int)ag_estimate_tokens(p.messages[i].content) + 4;
        if (out_tokens > 0) p.gen.options_json = opts;
        rc = ag_chat(pr->c, &p, &cb, NULL);
        free(im);
    }
    if (rc) { /* record a failure that never started */
        ag_result res;
        memset(&res, 0, sizeof res);
        res.status = rc;
        res.server.total_duration = res.server.load_duration = -1;
        res.server.prompt_eval_duration = res.server.eval_duration = -1;
        pr->in_flight++; /* on_done decrements */
        on_done(NULL, &res, f);
        pr->in_flight--;
    }
}

/* --interactive: one short chat of the interactive class */
static void start_interactive(point_run *pr) {
    const nb_config *cfg = pr->cfg;
    inflight *f = calloc(1, sizeof *f);
    if (!f) return;
    f->pr = pr;
    f->interactive = 1;
    f->counted = pr->issued >= cfg->warmup;
    f->start = now_ms();
    ag_message m = {.role = "user", .content = cfg->prompts[(size_t)pr->i_n % cfg->n_prompts]};
    ag_request_options ro = {.priority = AG_PRIORITY_INTERACTIVE, .tenant = "interactive"};
    ag_chat_params p = {.model = cfg->model, .messages = &m, .n_messages = 1, .request = &ro};
    char opts[64];
    if (cfg->max_tokens > 0) {
        snprintf(opts, sizeof opts, "{\"num_predict\":%d}", cfg->max_tokens);
        p.gen.options_json = opts;
    }
    ag_callbacks cb = {on_chunk, on_done, f};
    pr->i_in_flight++;
    if (ag_chat(pr->c, &p, &cb, NULL) != 0) {
        pr->i_in_flight--;
        pr->i_failed++;
        free(f);
    }
}

/* closed loop: keep `concurrency` in flight until the target is issued */
static void issue(point_run *pr) {
    while (!pr->i_stop && pr->i_in_flight < pr->cfg->interactive) {
        int before = pr->i_in_flight;
        start_interactive(pr);
        if (pr->i_in_flight == before) break; /* (it could not start) */
    }
    if (pr->open) return;
    while (!pr->stop_issuing && pr->in_flight < pr->concurrency) {
        if (pr->target && pr->issued >= pr->target + pr->cfg->warmup) break;
        if (!pr->target && pr->issued >= pr->cfg->warmup && now_ms() > pr->deadline) break;
        start_one(pr);
    }
}

/* Open loop: every arrival has a time on a schedule fixed in advance (not
 * "a gap from whenever the last one went"), so lateness is measurable and
 * does not accumulate. Gaps are drawn at unit rate (constant 1, Poisson
 * Exp(1), gamma Gamma(b)/b) and mapped through the inverse of the
 * cumulative rate: rate x t, or with --ramp-up R, rate t^2 / 2R until R. */
static int open_more(point_run *pr) {
    const nb_config *cfg = pr->cfg;
    if (cfg->trace) { /* the trace's length, or -n (past its end: from its start again) */
        size_t n = (pr->target > 0 ? (size_t)pr->target : cfg->items->n) + (size_t)cfg->warmup;
        return (size_t)pr->issued < n;
    }
    return pr->target ? pr->issued < pr->target + cfg->warmup : pr->next_at < pr->deadline;
}

static double schedule_next(point_run *pr) { /* ms after t0 of the next arrival */
    const nb_config *cfg = pr->cfg;
    if (cfg->trace) {
        /* line k of the trace; past its end the trace again, one mean gap
         * after its last line; --trace-speed divides it all */
        const size_t n = cfg->items->n, k = (size_t)pr->issued % n, round = (size_t)pr->issued / n;
        const double last = cfg->items->v[n - 1].at_ms > 0 ? cfg->items->v[n - 1].at_ms : 0;
        const double span = n > 1 ? last * (double)n / (double)(n - 1) : 1000;
        double at = cfg->items->v[k].at_ms > 0 ? cfg->items->v[k].at_ms : 0;
        at += (double)round * span;
        return cfg->trace_speed > 0 ? at / cfg->trace_speed : at;
    }
    double g = 1;
    if (cfg->arrival == NB_POISSON) g = -log(nb_rand01(&pr->rng));
    else if (cfg->arrival == NB_GAMMA) {
        double b = cfg->burstiness > 0 ? cfg->burstiness : 1;
        g = nb_gamma(&pr->rng, b) / b;
    }
    double u0 = pr->u;
    pr->u += g;
    if (!pr->issued && cfg->arrival == NB_CONSTANT) pr->u = u0; /* the first at once */
    double r = pr->rate, R = cfg->ramp_up, t;
    if (R > 0 && pr->u < r * R / 2) t = sqrt(2 * R * pr->u / r);
    else if (R > 0) t = R + (pr->u - r * R / 2) / r;
    else t = pr->u / r;
    return t * 1e3;
}

static void arrival_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    point_run *pr = arg;
    double now = now_ms();
    int sent = 0;
    while (open_more(pr) && now >= pr->next_at && sent < 1000) {
        pr->cur_sched = pr->next_at;
        start_one(pr);
        pr->cur_sched = -1;
        sent++;
        pr->next_at = pr->s0 + schedule_next(pr);
        now = now_ms();
    }
    if (!open_more(pr)) return;
    double wait = pr->next_at - now;
    if (wait < 0) wait = 0;
    struct timeval tv = {(long)(wait / 1e3), (long)(fmod(wait, 1e3) * 1e3)};
    evtimer_add(pr->arrival, &tv);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* v[k] as it would be in sorted order, v[lo..hi) rearranged so that what
 * is left of k is <= v[k] and what is right >= (selection with a three-way
 * partition, so runs of equal gaps cost nothing): O(n) on average, where
 * sorting millions of gaps cost more than the run's own bookkeeping */
static double select_k(double *v, size_t lo, size_t hi, size_t k) {
    while (hi - lo > 1) {
        double p = v[lo + (hi - lo) / 2], t;
        size_t lt = lo, i = lo, gt = hi; /* [lo,lt) < p, [lt,i) == p, [gt,hi) > p */
        while (i < gt) {
            if (v[i] < p) {
                t = v[lt], v[lt++] = v[i], v[i++] = t;
            } else if (v[i] > p) {
                t = v[--gt], v[gt] = v[i], v[i] = t;
            } else {
                i++;
            }
        }
        if (k < lt) hi = lt;
        else if (k >= gt) lo = gt;
        else return p;
    }
    return v[k];
}

static nb_stats stats_of(double *v, size_t n) {
    nb_stats s;
    memset(&s, 0, sizeof s);
    s.n = n;
    if (!n) return s;
    double sum = 0, max = v[0];
    for (size_t i = 0; i < n; i++) {
        sum += v[i];
        if (v[i] > max) max = v[i];
    }
    s.mean = sum / n;
    /* each selection narrows the range of the next (the quantiles ascend) */
    size_t k50 = (size_t)(0.5 * (n - 1) + 0.5), k90 = (size_t)(0.9 * (n - 1) + 0.5),
           k95 = (size_t)(0.95 * (n - 1) + 0.5), k99 = (size_t)(0.99 * (n - 1) + 0.5);
    s.p50 = select_k(v, 0, n, k50);
    s.p90 = select_k(v, k50, n, k90);
    s.p95 = select_k(v, k90, n, k95);
    s.p99 = select_k(v, k95, n, k99);
    s.max = max;
    return s;
}

static void progress_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    point_run *pr = arg;
    nb_point *pt = pr->pt;
    double el = (now_ms() - pr->t0) / 1e3;
    double ttft[1024];
    size_t k = 0;
    for (size_t i = pt->n_reqs > 1024 ? pt->n_reqs - 1024 : 0; i < pt->n_reqs; i++)
        if (pt->reqs[i].ttft_ms >= 0) ttft[k++] = pt->reqs[i].ttft_ms;
    nb_stats s = stats_of(ttft, k);
    int total = pr->target ? pr->target : 0;
    double rate = el > 0 ? pt->n_reqs / el : 0;
    double eta = total && rate > 0 && (size_t)total > pt->n_reqs ? (total - (double)pt->n_reqs) / rate : 0;
    fprintf(stderr, "\r%s %g: %zu/%d done, %.1f req/s, ETA %.0fs, running p50 TTFT %.1f ms   ",
            pr->rate ? "rate" : "concurrency", pr->rate ? pr->rate : (double)pr->concurrency, pt->n_reqs,
            total, rate, eta, s.p50);
}

static void summarize(const nb_config *cfg, nb_point *pt, double wall_s, double cpu, machine_cpu m0, machine_cpu m1) {
    size_t n = pt->n_reqs;
    double *ttft = calloc(n + 1, sizeof *ttft), *e2e = calloc(n + 1, sizeof *e2e),
           *tpot = calloc(n + 1, sizeof *tpot);
    double *itl = calloc(pt->n_itl + 1, sizeof *itl);
    size_t nt = 0, ne = 0, np = 0, nl = 0;
    double *later = calloc(n + 1, sizeof *later);
    double sent = 0, evaluated = 0;
    double load = 0, prompt = 0, eval = 0, total = 0, net = 0;
    size_t nsrv = 0;
    for (size_t i = 0; i < n; i++) {
        nb_req *q = &pt->reqs[i];
        if (q->status) {
            pt->failed++;
            pt->errors[(-q->status) & 31]++;
            continue;
        }
        pt->ok++;
        pt->tokens += (uint64_t)q->tokens;
        double d = q->end_ms - q->start_ms;
        e2e[ne++] = d;
        if (q->ttft_ms >= 0) ttft[nt++] = q->ttft_ms;
        if (q->ttft_ms >= 0 && q->turn > 1) later[nl++] = q->ttft_ms;
        if (q->prompt_evaluated >= 0 && q->prompt_tokens > 0) {
            sent += q->prompt_tokens;
            evaluated += q->prompt_evaluated < q->prompt_tokens ? (double)q->prompt_evaluated : q->prompt_tokens;
        }
        double tp = q->tokens > 1 && q->ttft_ms >= 0 ? (d - q->ttft_ms) / (q->tokens - 1) : -1;
        if (tp >= 0) tpot[np++] = tp;
        int good = (!cfg->slo_ttft_ms || (q->ttft_ms >= 0 && q->ttft_ms <= cfg->slo_ttft_ms)) &&
                   (!cfg->slo_tpot_ms || (tp >= 0 && tp <= cfg->slo_tpot_ms)) && (!cfg->slo_e2e_ms || d <= cfg->slo_e2e_ms);
        pt->good += good;
        if (q->srv_total_ms >= 0) {
            nsrv++;
            total += q->srv_total_ms;
            net += d - q->srv_total_ms;
            load += q->srv_load_ms > 0 ? q->srv_load_ms : 0;
            prompt += q->srv_prompt_ms > 0 ? q->srv_prompt_ms : 0;
            eval += q->srv_eval_ms > 0 ? q->srv_eval_ms : 0;
        }
    }
    for (size_t i = 0; i < pt->n_itl; i++) itl[i] = pt->itl_ms[i];
    pt->ttft = stats_of(ttft, nt);
    pt->ttft_later = stats_of(later, nl);
    /* only where the workload re-sends text (otherwise the estimate of the
     * prompt's size against the server's count says nothing) */
    int resends = cfg->turns > 1 || cfg->shared_prefix > 0;
    pt->cache_hit = sent > 0 && resends ? 1 - evaluated / sent : -1;
    free(later);
    pt->e2e = stats_of(e2e, ne);
    pt->tpot = stats_of(tpot, np);
    pt->itl = stats_of(itl, pt->n_itl);
    pt->wall_s = wall_s;
    pt->req_per_s = wall_s > 0 ? pt->ok / wall_s : 0;
    pt->tok_per_s = wall_s > 0 ? pt->tokens / wall_s : 0;
    pt->goodput_req_per_s = wall_s > 0 ? pt->good / wall_s : 0;
    if (nsrv) {
        pt->srv_total_ms = total / nsrv;
        pt->srv_load_ms = load / nsrv;
        pt->srv_prompt_ms = prompt / nsrv;
        pt->srv_eval_ms = eval / nsrv;
        pt->net_queue_ms = net / nsrv;
    }
    pt->overhead_ns_per_token = pt->tokens ? cpu / (double)pt->tokens * 1e9 : 0;
    /* the self-check: was the tool on time, and was it the bottleneck? */
    int open = pt->rate > 0 || cfg->trace;
    double *lag = calloc(n + 1, sizeof *lag), in_sum = 0;
    size_t nlag = 0, in_n = 0;
    for (size_t i = 0; i < n; i++) {
        nb_req *q = &pt->reqs[i];
        if (open && lag) lag[nlag++] = q->send_lag_ms;
        if (q->in_target > 0 && q->prompt_evaluated > 0) {
            in_sum += (double)q->prompt_evaluated / q->in_target;
            in_n++;
        }
    }
    pt->send_lag = stats_of(lag, nlag);
    free(lag);
    pt->in_len_ratio = in_n ? in_sum / (double)in_n : -1;
    pt->cpu_share = wall_s > 0 ? cpu / wall_s : 0;
    const double mt = m1.total - m0.total;
    pt->steal_share = mt > 0 ? (m1.steal - m0.steal) / mt : -1;
    pt->machine_busy = mt > 0 ? 1 - (m1.idle - m0.idle) / mt : -1;
    pt->flagged = 0;
    pt->flag_why[0] = 0;
    if (open && pt->send_lag.n && pt->send_lag.p99 > 1.0) {
        pt->flagged = 1;
        snprintf(pt->flag_why, sizeof pt->flag_why, "send lag p99 %.2f ms (over 1 ms)", pt->send_lag.p99);
    } else if (pt->cpu_share > 0.9) {
        pt->flagged = 1;
        snprintf(pt->flag_why, sizeof pt->flag_why, "the tool used %.0f %% of a core (saturated)", 100 * pt->cpu_share);
    }
    /* why a point may be late though the tool was idle: the hypervisor took
     * the machine's CPU (steal), or the machine had no core to spare */
    if (pt->flagged && pt->steal_share > 0.01)
        snprintf(pt->flag_why + strlen(pt->flag_why), sizeof pt->flag_why - strlen(pt->flag_why),
                 "; the hypervisor took %.1f %% of the machine's CPU (steal)", 100 * pt->steal_share);
    else if (pt->flagged && pt->machine_busy > 0.9)
        snprintf(pt->flag_why + strlen(pt->flag_why), sizeof pt->flag_why - strlen(pt->flag_why),
                 "; the machine's CPUs were %.0f %% busy", 100 * pt->machine_busy);
    /* per node */
    for (size_t i = 0; i < n; i++) {
        nb_req *q = &pt->reqs[i];
        size_t j = 0;
        while (j < pt->n_nodes && strcmp(pt->nodes[j].name, q->node)) j++;
        if (j == pt->n_nodes) {
            pt->nodes = realloc(pt->nodes, (pt->n_nodes + 1) * sizeof *pt->nodes);
            memset(&pt->nodes[j], 0, sizeof pt->nodes[j]);
            snprintf(pt->nodes[j].name, sizeof pt->nodes[j].name, "%s", q->node);
            pt->n_nodes++;
        }
        pt->nodes[j].requests++;
        if (q->status) pt->nodes[j].errors++;
    }
    for (size_t j = 0; j < pt->n_nodes; j++) {
        nb_node *nd = &pt->nodes[j];
        size_t a = 0, b = 0;
        uint64_t tok = 0;
        for (size_t i = 0; i < n; i++) {
            nb_req *q = &pt->reqs[i];
            if (q->status || strcmp(q->node, nd->name)) continue;
            e2e[b++] = q->end_ms - q->start_ms;
            if (q->ttft_ms >= 0) ttft[a++] = q->ttft_ms;
            tok += (uint64_t)q->tokens;
            if (q->prompt_evaluated >= 0 && q->prompt_tokens > 0) {
                nd->prompt_tokens += q->prompt_tokens;
                nd->prompt_evaluated += q->prompt_evaluated < q->prompt_tokens ? (double)q->prompt_evaluated : q->prompt_tokens;
            }
        }
        nd->cache_hit = nd->prompt_tokens > 0 && resends ? 1 - nd->prompt_evaluated / nd->prompt_tokens : -1;
        nd->ttft = stats_of(ttft, a);
        nd->e2e = stats_of(e2e, b);
        nd->tok_per_s = wall_s > 0 ? tok / wall_s : 0;
    }
    free(ttft);
    free(e2e);
    free(tpot);
    free(itl);
}

/* ---- --scrape-metrics: the servers' own figures during a point ---- */
#define MAX_SCRAPE 8
typedef struct scraper {
    double t0;
    int n, samples;
    ag_client *c[MAX_SCRAPE];
    ag_request *req[MAX_SCRAPE];
    char path[MAX_SCRAPE][256];
    const char *url[MAX_SCRAPE];
    char *body[MAX_SCRAPE];
    size_t blen[MAX_SCRAPE];
    struct event *ev;
    char *out; /* a JSON array being built */
    size_t len, cap;
} scraper;

static void sc_add(scraper *sc, const char *s, size_t n) {
    if (sc->len + n + 2 > sc->cap) {
        size_t nc = sc->cap ? sc->cap * 2 : 4096;
        while (nc < sc->len + n + 2) nc *= 2;
        char *o = realloc(sc->out, nc);
        if (!o) return;
        sc->out = o;
        sc->cap = nc;
    }
    memcpy(sc->out + sc->len, s, n);
    sc->len += n;
    sc->out[sc->len] = 0;
}
static void sc_str(scraper *sc, const char *s, size_t n) { /* a JSON string */
    sc_add(sc, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') sc_add(sc, "\\", 1);
        if (ch >= 0x20) sc_add(sc, s + i, 1);
    }
    sc_add(sc, "\"", 1);
}

static int sc_index(scraper *sc, ag_request *r) {
    for (int i = 0; i < sc->n; i++)
        if (sc->req[i] == r) return i;
    return -1;
}
static void sc_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    scraper *sc = ud;
    int i = sc_index(sc, r);
    if (i < 0 || ch->kind != AG_CHUNK_BODY || sc->blen[i] + ch->len > (1 << 20)) return;
    char *b = realloc(sc->body[i], sc->blen[i] + ch->len + 1);
    if (!b) return;
    memcpy(b + sc->blen[i], ch->text, ch->len);
    sc->blen[i] += ch->len;
    b[sc->blen[i]] = 0;
    sc->body[i] = b;
}
static void sc_done(ag_request *r, const ag_result *res, void *ud) {
    scraper *sc = ud;
    int i = sc_index(sc, r);
    if (i < 0) return;
    sc->req[i] = NULL;
    char *b = sc->body[i];
    size_t bl = sc->blen[i];
    sc->body[i] = NULL;
    sc->blen[i] = 0;
    if (res->status == 0 && res->http_status == 200 && b && sc->samples < 1000 && sc->len < ((size_t)64 << 20)) {
        /* (at most 1,000 samples and 64 MiB of them a point: a server's
         * answers cannot grow the report without bound) */
        char head[160];
        snprintf(head, sizeof head, "%s{\"t_s\":%.3f,\"url\":", sc->samples ? "," : "", (now_ms() - sc->t0) / 1e3);
        sc_add(sc, head, strlen(head));
        sc_str(sc, sc->url[i], strlen(sc->url[i]));
        const char *p = b;
        while (*p == ' ' || *p == '\n') p++;
        if (*p == '{') { /* JSON (Ollama's /api/ps): kept as it came, when it parses */
            char *js = NULL;
            if (ag_json_extract(b, bl, 1, &js) == 0 && js) {
                sc_add(sc, ",\"json\":", 8);
                sc_add(sc, js, strlen(js));
            }
            free(js);
        } else { /* Prometheus text: "name{labels} value" lines */
            sc_add(sc, ",\"metrics\":{", 12);
            int k = 0;
            for (char *sv = NULL, *line = strtok_r(b, "\n", &sv); line && k < 2000; line = strtok_r(NULL, "\n", &sv)) {
                if (*line == '#' || !*line) continue;
                char *sp = strrchr(line, ' ');
                if (!sp) continue;
                char *e;
                double v = strtod(sp + 1, &e);
                if (e == sp + 1 || !isfinite(v)) continue;
                if (k++) sc_add(sc, ",", 1);
                sc_str(sc, line, (size_t)(sp - line));
                char num[40];
                snprintf(num, sizeof num, ":%.9g", v);
                sc_add(sc, num, strlen(num));
            }
            sc_add(sc, "}", 1);
        }
        sc_add(sc, "}", 1);
        sc->samples++;
    }
    free(b);
}
static void sc_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    scraper *sc = arg;
    for (int i = 0; i < sc->n; i++) {
        if (sc->req[i] || !sc->c[i]) continue;
        ag_forward_params fp = {.method = "GET", .path = sc->path[i]};
        ag_callbacks cb = {sc_chunk, sc_done, sc};
        if (ag_forward(sc->c[i], &fp, &cb, &sc->req[i]) != 0) sc->req[i] = NULL;
    }
}
static scraper *sc_start(struct event_base *base, const nb_config *cfg, double t0) {
    if (!cfg->n_scrape) return NULL;
    scraper *sc = calloc(1, sizeof *sc);
    if (!sc) return NULL;
    sc->t0 = t0;
    sc_add(sc, "[", 1);
    for (int i = 0; i < cfg->n_scrape && sc->n < MAX_SCRAPE; i++) {
        const char *u = cfg->scrape[i], *hs = strstr(u, "://");
        hs = hs ? hs + 3 : u;
        const char *slash = strchr(hs, '/');
        char host[300];
        snprintf(host, sizeof host, "%.*s", (int)(slash ? slash - u : (long)strlen(u)), u);
        ag_client_options co = {.host = host};
        int k = sc->n;
        sc->c[k] = ag_client_new(base, &co, NULL);
        if (!sc->c[k]) continue;
        snprintf(sc->path[k], sizeof sc->path[k], "%s", slash ? slash : "/metrics");
        sc->url[k] = u;
        sc->n++;
    }
    sc->ev = event_new(base, -1, EV_PERSIST, sc_tick, sc);
    double iv = cfg->scrape_interval > 0 ? cfg->scrape_interval : 1;
    struct timeval tv = {(long)iv, (long)((iv - floor(iv)) * 1e6)};
    event_add(sc->ev, &tv);
    sc_tick(-1, 0, sc); /* a first sample at the start */
    return sc;
}
static void sc_noop(evutil_socket_t fd, short what, void *arg) { (void)fd, (void)what, (void)arg; }
static char *sc_stop(scraper *sc) {
    if (!sc) return NULL;
    event_free(sc->ev);
    for (int i = 0; i < sc->n; i++) {
        if (sc->req[i]) ag_request_cancel(sc->req[i]);
        ag_client_free(sc->c[i]);
        free(sc->body[i]);
    }
    sc_add(sc, "]", 1);
    char *out = sc->out;
    free(sc);
    return out;
}

static int run_point(ag_client *c, const nb_config *cfg, nb_point *pt, int conc, double rate) {
    point_run pr;
    memset(&pr, 0, sizeof pr);
    pr.cur_sched = -1;
    pr.c = c;
    pr.cfg = cfg;
    pr.pt = pt;
    pr.concurrency = conc;
    pr.rate = rate;
    pr.target = cfg->requests;
    pr.rng = cfg->seed ? cfg->seed : 42;
    pr.wrng = pr.rng ^ 0x5851f42d4c957f2dull;
    pr.cpt = 4;
    static unsigned points_run;
    pr.point_id = points_run++;
    pr.ready_tail = &pr.ready;
    if (cfg->shared_prefix > 0 && !(pr.system = make_prefix(cfg->shared_prefix, pr.rng))) return AG_ENOMEM;
    pt->concurrency = conc;
    pt->rate = rate;
    pt->itl_ms = malloc(MAX_ITL * sizeof *pt->itl_ms);
    if (!pt->itl_ms) return AG_ENOMEM;
    if (pr.target > 0 && (pt->reqs = malloc((size_t)pr.target * sizeof *pt->reqs))) /* no copying mid-run */
        pr.cap_reqs = (size_t)pr.target;
    struct event_base *base = ag_client_base(c);
    pr.t0 = now_ms();
    pr.deadline = pr.t0 + cfg->duration * 1e3;
    double cpu0 = cpu_s();
    machine_cpu m0 = machine_now();
    if (cfg->progress) {
        pr.tick = event_new(base, -1, EV_PERSIST, progress_cb, &pr);
        struct timeval tv = {0, 250000};
        event_add(pr.tick, &tv);
    }
    scraper *sc = sc_start(base, cfg, pr.t0);
    pr.open = rate > 0 || cfg->trace;
    if (pr.open) {
        pr.arrival = evtimer_new(base, arrival_cb, &pr);
        /* the schedule before the answers: when the loop has priorities, the
         * arrival runs first in its turn (the others wait for the next) */
        if (event_base_get_npriorities(base) > 1) event_priority_set(pr.arrival, 0);
        pr.s0 = pr.t0;
        pr.next_at = pr.s0 + schedule_next(&pr);
        for (int i = 0; i < cfg->interactive; i++) start_interactive(&pr);
        arrival_cb(-1, 0, &pr);
    } else {
        issue(&pr);
    }
    /* the warm-up's requests finish before the clock that counts starts */
    int counting = cfg->warmup == 0;
    for (;;) {
        if (!counting && pr.warm_done >= cfg->warmup) {
            counting = 1;
            pr.t0 = now_ms();
            pr.deadline = pr.t0 + cfg->duration * 1e3;
            cpu0 = cpu_s();
            m0 = machine_now();
        }
        int more = pr.open ? open_more(&pr) : pr.target ? pr.issued < pr.target + cfg->warmup : now_ms() < pr.deadline;
        if (!more) pr.i_stop = 1; /* the interactive class runs while the load does */
        if (!more && pr.in_flight == 0 && pr.i_in_flight == 0) break;
        if (event_base_loop(base, EVLOOP_ONCE) < 0) break;
    }
    double wall = (now_ms() - pr.t0) / 1e3, cpu = cpu_s() - cpu0;
    machine_cpu m1 = machine_now();
    if (sc) sc_tick(-1, 0, sc); /* and one at the end: what the run added */
    for (int t = 0; sc && t < 200; t++) { /* let the last samples arrive (bounded: 2 s) */
        int busy = 0;
        for (int i = 0; i < sc->n; i++) busy += sc->req[i] != NULL;
        if (!busy) break;
        struct timeval tv = {0, 10000};
        event_base_once(base, -1, EV_TIMEOUT, sc_noop, NULL, &tv);
        event_base_loop(base, EVLOOP_ONCE);
    }
    pt->scraped = sc_stop(sc);
    if (pr.arrival) event_free(pr.arrival);
    while (pr.thinking) { /* conversations the point's end found thinking */
        conv *cv = pr.thinking;
        pr.thinking = cv->next;
        conv_free(cv);
    }
    while (pr.ready) { /* conversations the point's end cut short */
        conv *cv = pr.ready;
        pr.ready = cv->next;
        conv_free(cv);
    }
    free(pr.system);
    if (pr.tick) {
        event_free(pr.tick);
        fputc('\n', stderr);
    }
    summarize(cfg, pt, wall, cpu, m0, m1);
    if (cfg->interactive > 0) {
        pt->i_ttft = stats_of(pr.i_ttft, pr.i_n);
        pt->i_ok = pr.i_n;
        pt->i_failed = pr.i_failed;
        pt->i_req_per_s = wall > 0 ? (double)pr.i_n / wall : 0;
    }
    free(pr.i_ttft);
    /* the capacity the pool learned (or was told) for each node, beside what it did */
    ag_node_info info[64];
    size_t nn = ag_pool_nodes(pr.c, info, 64);
    for (size_t j = 0; j < pt->n_nodes; j++)
        for (size_t i = 0; i < nn && i < 64; i++)
            if (!strcmp(info[i].name, pt->nodes[j].name)) {
                pt->nodes[j].slots = info[i].slots;
                snprintf(pt->nodes[j].slots_source, sizeof pt->nodes[j].slots_source, "%s", info[i].slots_source);
            }
    return 0;
}

void nb_config_defaults(nb_config *cfg) {
    if (!cfg->n_prompts) {
        cfg->prompts = builtin_prompts;
        cfg->n_prompts = (int)(sizeof builtin_prompts / sizeof builtin_prompts[0]);
    }
    if (!cfg->requests && cfg->duration <= 0) cfg->requests = 100;
}

int nb_run_point(ag_client *c, const nb_config *cfg, nb_point *pt, int conc, double rate) {
    return run_point(c, cfg, pt, conc, rate);
}

int nb_run(ag_client *c, const nb_config *cfg0, nb_report *out) {
    nb_config cfg = *cfg0;
    nb_config_defaults(&cfg);
    memset(out, 0, sizeof *out);
    int n = cfg.trace ? 1 : cfg.n_conc ? cfg.n_conc : cfg.n_rate;
    int runs = cfg.repeat > 1 ? cfg.repeat : 1;
    if (n <= 0) return AG_EINVAL;
    out->points = calloc((size_t)(n * runs), sizeof *out->points);
    if (!out->points) return AG_ENOMEM;
    out->per_run = n;
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < n; i++) {
            nb_point *pt = &out->points[r * n + i];
            int rc = cfg.trace ? run_point(c, &cfg, pt, 0, 0)
                     : cfg.n_conc ? run_point(c, &cfg, pt, cfg.concurrency[i], 0)
                                  : run_point(c, &cfg, pt, 0, cfg.rate[i]);
            pt->repeat_index = r;
            out->n_points = r * n + i + 1;
            if (rc) return rc;
        }
    return 0;
}

/* ---- repeated runs: mean, spread, confidence ---- */
static double t95(int df) { /* two-sided 95 % quantile of Student's t */
    static const double t[] = {0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                               2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    return df < 1 ? 0 : df <= 30 ? t[df] : 1.96;
}

typedef struct spread {
    double mean, sd, cv, lo, hi;
} spread;

static spread spread_of(const double *v, int n) {
    spread s = {0, 0, 0, 0, 0};
    if (n < 1) return s;
    for (int i = 0; i < n; i++) s.mean += v[i];
    s.mean /= n;
    for (int i = 0; i < n; i++) s.sd += (v[i] - s.mean) * (v[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0;
    s.cv = s.mean ? s.sd / fabs(s.mean) : 0;
    double h = n > 1 ? t95(n - 1) * s.sd / sqrt(n) : 0;
    s.lo = s.mean - h;
    s.hi = s.mean + h;
    return s;
}

/* the figures a repeat summarises, by name, from a point */
static const char *const rep_names[] = {"requests_per_s", "output_tokens_per_s", "ttft_p50_ms", "ttft_p99_ms",
                                        "tpot_p50_ms", "itl_p50_ms", "e2e_p50_ms", "e2e_p99_ms"};
#define N_REP 8
static double rep_value(const nb_point *p, int k) {
    switch (k) {
    case 0: return p->req_per_s;
    case 1: return p->tok_per_s;
    case 2: return p->ttft.p50;
    case 3: return p->ttft.p99;
    case 4: return p->tpot.p50;
    case 5: return p->itl.p50;
    case 6: return p->e2e.p50;
    default: return p->e2e.p99;
    }
}

void nb_report_free(nb_report *r) {
    for (int i = 0; i < r->n_points; i++) {
        free(r->points[i].reqs);
        free(r->points[i].nodes);
        free(r->points[i].itl_ms);
        free(r->points[i].scraped);
    }
    free(r->points);
    memset(r, 0, sizeof *r);
}

/* ---- the terminal table ---- */
static void row(FILE *f, const char *name, const nb_stats *s) {
    fprintf(f, "  %-10s %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, s->mean, s->p50, s->p90, s->p95, s->p99, s->max);
}

void nb_print_table(FILE *f, const nb_config *cfg, const nb_report *r) {
    for (int i = 0; i < r->n_points; i++) {
        const nb_point *p = &r->points[i];
        const char *arr = cfg->arrival == NB_CONSTANT ? "constant" : cfg->arrival == NB_GAMMA ? "gamma" : "Poisson";
        if (cfg->trace) {
            char speed[48] = "";
            if (cfg->trace_speed > 0 && cfg->trace_speed != 1) snprintf(speed, sizeof speed, " (%gx as fast)", cfg->trace_speed);
            fprintf(f, "\n== trace replay, %zu requests on their recorded schedule%s\n", cfg->items->n, speed);
        }
        else if (p->rate)
            fprintf(f, "\n== open loop, %.3g requests/s (%s%s)%s\n", p->rate, arr, cfg->ramp_up > 0 ? ", ramped up" : "",
                    r->n_points > r->per_run ? "" : "");
        else fprintf(f, "\n== closed loop, concurrency %d\n", p->concurrency);
        fprintf(f, "  requests %zu ok, %zu failed in %.2f s: %.2f req/s, %.1f output tokens/s", p->ok, p->failed,
                p->wall_s, p->req_per_s, p->tok_per_s);
        if (cfg->slo_ttft_ms || cfg->slo_tpot_ms || cfg->slo_e2e_ms)
            fprintf(f, ", goodput %.2f req/s (%zu within the SLOs)", p->goodput_req_per_s, p->good);
        fprintf(f, "\n  %-10s %9s %9s %9s %9s %9s %9s   (ms)\n", "", "mean", "p50", "p90", "p95", "p99", "max");
        if (cfg->endpoint != NB_EMBED) {
            row(f, "TTFT", &p->ttft);
            row(f, "ITL", &p->itl);
            row(f, "TPOT", &p->tpot);
        }
        row(f, "E2E", &p->e2e);
        if (cfg->turns > 1) row(f, "TTFT t>1", &p->ttft_later);
        if (p->cache_hit >= 0 && cfg->endpoint != NB_EMBED)
            fprintf(f, "  prompt cache: %.1f %% of the prompt tokens sent were not evaluated (from prompt_eval_count)\n",
                    100 * p->cache_hit);
        fprintf(f, "  server (means): total %.2f ms = load %.2f + prompt eval %.2f + eval %.2f (+ other); "
                   "client saw %.2f ms more (network and queue)\n",
                p->srv_total_ms, p->srv_load_ms, p->srv_prompt_ms, p->srv_eval_ms, p->net_queue_ms);
        for (int e = 1; e < 32; e++)
            if (p->errors[e]) fprintf(f, "  errors %s: %zu\n", ag_err_name(-e), p->errors[e]);
        if (p->i_ok + p->i_failed > 0)
            fprintf(f, "  interactive class (beside the load, which ran as batch): %zu ok, %zu failed, %.2f req/s, "
                       "TTFT p50 %.2f p99 %.2f ms\n",
                    p->i_ok, p->i_failed, p->i_req_per_s, p->i_ttft.p50, p->i_ttft.p99);
        if (p->n_nodes > 1)
            for (size_t j = 0; j < p->n_nodes; j++)
                fprintf(f, "  node %-22s %6zu req %4zu err  TTFT p50 %8.2f p99 %8.2f  E2E p50 %8.2f p99 %8.2f  %.1f tok/s  cache %s%.0f%%"
                           "  slots %u %s\n",
                        p->nodes[j].name, p->nodes[j].requests, p->nodes[j].errors, p->nodes[j].ttft.p50,
                        p->nodes[j].ttft.p99, p->nodes[j].e2e.p50, p->nodes[j].e2e.p99, p->nodes[j].tok_per_s,
                        p->nodes[j].cache_hit < 0 ? "-" : "", p->nodes[j].cache_hit < 0 ? 0 : 100 * p->nodes[j].cache_hit,
                        p->nodes[j].slots, p->nodes[j].slots ? p->nodes[j].slots_source : "-");
        fprintf(f, "  the tool's own CPU: %.0f ns per token, %.1f %% of a core", p->overhead_ns_per_token, 100 * p->cpu_share);
        if (p->machine_busy >= 0)
            fprintf(f, "; the machine: %.0f %% busy, %.1f %% stolen", 100 * p->machine_busy, 100 * p->steal_share);
        if (p->send_lag.n)
            fprintf(f, "; send lag against the schedule p50 %.3f p99 %.3f max %.3f ms", p->send_lag.p50, p->send_lag.p99,
                    p->send_lag.max);
        fprintf(f, "\n  self-check: %s%s\n", p->flagged ? "FLAGGED, the figures may be the tool's: " : "ok",
                p->flagged ? p->flag_why : "");
        if (p->in_len_ratio >= 0)
            fprintf(f, "  input lengths: the server counted %.3f tokens per token asked\n", p->in_len_ratio);
    }
    if (r->n_points > r->per_run && r->per_run > 0) {
        int runs = r->n_points / r->per_run;
        for (int i = 0; i < r->per_run; i++) {
            const nb_point *p0 = &r->points[i];
            fprintf(f, "\n== over %d runs: %s %g (mean, coefficient of variation, 95 %% confidence interval)\n", runs,
                    p0->rate ? "rate" : "concurrency", p0->rate ? p0->rate : (double)p0->concurrency);
            for (int k = 0; k < N_REP; k++) {
                double v[256];
                int m = 0;
                for (int j = 0; j < runs && m < 256; j++) v[m++] = rep_value(&r->points[j * r->per_run + i], k);
                spread sp = spread_of(v, m);
                fprintf(f, "  %-20s %12.3f  CV %5.1f %%  [%.3f, %.3f]\n", rep_names[k], sp.mean, 100 * sp.cv, sp.lo, sp.hi);
            }
        }
    }
    if (r->slo_searched) {
        if (r->slo_found > 0)
            fprintf(f, "\n== SLO search: the highest %s meeting every objective is %g\n",
                    r->points[0].rate ? "rate" : "concurrency", r->slo_found);
        else
            fprintf(f, "\n== SLO search: no load tried meets every objective\n");
    }
}

/* ---- JSON ---- */
static void jstats(FILE *f, const char *name, const nb_stats *s, int comma) {
    fprintf(f, "\"%s\":{\"n\":%zu,\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f,\"p95\":%.4f,\"p99\":%.4f,\"max\":%.4f}%s",
            name, s->n, s->mean, s->p50, s->p90, s->p95, s->p99, s->max, comma ? "," : "");
}

static void jstr(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

int nb_write_json(const char *path, const nb_config *cfg, const nb_report *r) {
    FILE *f = fopen(path, "w");
    if (!f) return AG_EINVAL;
    fprintf(f, "{\"tool\":\"agents bench\",\"version\":\"%s\",", ag_version());
    if (cfg->meta_json) fprintf(f, "\"meta\":%s,", cfg->meta_json);
    fprintf(f, "\"model\":");
    jstr(f, cfg->model);
    fprintf(f, ",\"arrival\":\"%s\",\"burstiness\":%g,\"ramp_up_s\":%g,\"trace\":%s,\"trace_speed\":%g",
            cfg->arrival == NB_CONSTANT ? "constant" : cfg->arrival == NB_GAMMA ? "gamma" : "poisson",
            cfg->arrival == NB_GAMMA ? (cfg->burstiness > 0 ? cfg->burstiness : 1) : 1, cfg->ramp_up, cfg->trace ? "true" : "false",
            cfg->trace_speed > 0 ? cfg->trace_speed : 1);
    fprintf(f, ",\"turns\":%d,\"shared_prefix_tokens\":%d,\"turn_tokens\":%d,\"context_tokens\":%d,\"think_ms\":%.1f,"
               "\"session_keys\":%s",
            cfg->turns, cfg->shared_prefix, cfg->turn_tokens, cfg->context_tokens, cfg->think_ms, cfg->turns > 1 && !cfg->no_session ? "true" : "false");
    fprintf(f, ",\"endpoint\":\"%s\",\"max_tokens\":%d,\"warmup\":%d,\"seed\":%llu,\"slo\":{\"ttft_ms\":%g,\"tpot_ms\":%g,\"e2e_ms\":%g},\"points\":[",
            cfg->endpoint == NB_EMBED ? "embed" : cfg->endpoint == NB_GENERATE ? "generate" : "chat", cfg->max_tokens,
            cfg->warmup, (unsigned long long)cfg->seed, cfg->slo_ttft_ms, cfg->slo_tpot_ms, cfg->slo_e2e_ms);
    for (int i = 0; i < r->n_points; i++) {
        const nb_point *p = &r->points[i];
        fprintf(f, "%s{\"mode\":\"%s\",\"concurrency\":%d,\"rate\":%g,\"ok\":%zu,\"failed\":%zu,\"errors\":{", i ? "," : "",
                p->rate ? "open" : "closed", p->concurrency, p->rate, p->ok, p->failed);
        int first = 1;
        for (int e = 1; e < 32; e++)
            if (p->errors[e]) {
                fprintf(f, "%s\"%s\":%zu", first ? "" : ",", ag_err_name(-e), p->errors[e]);
                first = 0;
            }
        fprintf(f, "},\"duration_s\":%.4f,\"requests_per_s\":%.4f,\"output_tokens\":%llu,\"output_tokens_per_s\":%.3f,"
                   "\"goodput_requests_per_s\":%.4f,\"within_slo\":%zu,",
                p->wall_s, p->req_per_s, (unsigned long long)p->tokens, p->tok_per_s, p->goodput_req_per_s, p->good);
        jstats(f, "ttft_ms", &p->ttft, 1);
        jstats(f, "itl_ms", &p->itl, 1);
        jstats(f, "tpot_ms", &p->tpot, 1);
        jstats(f, "e2e_ms", &p->e2e, 1);
        jstats(f, "ttft_later_turns_ms", &p->ttft_later, 1);
        jstats(f, "send_lag_ms", &p->send_lag, 1);
        fprintf(f, "\"self_check\":{\"cpu_share\":%.4f,\"machine_busy\":%.4f,\"steal_share\":%.4f,\"flagged\":%s,\"why\":",
                p->cpu_share, p->machine_busy, p->steal_share, p->flagged ? "true" : "false");
        jstr(f, p->flag_why);
        fprintf(f, "},\"input_len_ratio\":%.4f,\"repeat\":%d,", p->in_len_ratio, p->repeat_index);
        if (p->scraped) fprintf(f, "\"scraped\":%s,", p->scraped);
        fprintf(f, "\"prompt_cache_hit\":%.4f,", p->cache_hit);
        if (p->i_ok + p->i_failed > 0) {
            fprintf(f, "\"interactive\":{\"requests\":%zu,\"failed\":%zu,\"requests_per_s\":%.4f,", p->i_ok, p->i_failed,
                    p->i_req_per_s);
            jstats(f, "ttft_ms", &p->i_ttft, 0);
            fprintf(f, "},");
        }
        fprintf(f, "\"server_ms\":{\"total\":%.4f,\"load\":%.4f,\"prompt_eval\":%.4f,\"eval\":%.4f},\"network_and_queue_ms\":%.4f,"
                   "\"overhead_ns_per_token\":%.1f,\"nodes\":[",
                p->srv_total_ms, p->srv_load_ms, p->srv_prompt_ms, p->srv_eval_ms, p->net_queue_ms, p->overhead_ns_per_token);
        for (size_t j = 0; j < p->n_nodes; j++) {
            fprintf(f, "%s{\"name\":", j ? "," : "");
            jstr(f, p->nodes[j].name);
            fprintf(f, ",\"requests\":%zu,\"errors\":%zu,\"output_tokens_per_s\":%.3f,\"prompt_cache_hit\":%.4f,",
                    p->nodes[j].requests, p->nodes[j].errors, p->nodes[j].tok_per_s, p->nodes[j].cache_hit);
            if (p->nodes[j].slots) {
                fprintf(f, "\"slots\":%u,\"slots_source\":", p->nodes[j].slots);
                jstr(f, p->nodes[j].slots_source);
                fputc(',', f);
            }
            jstats(f, "ttft_ms", &p->nodes[j].ttft, 1);
            jstats(f, "e2e_ms", &p->nodes[j].e2e, 0);
            fputc('}', f);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "]");
    if (r->n_points > r->per_run && r->per_run > 0) { /* --repeat: each point's figures over the runs */
        int runs = r->n_points / r->per_run;
        fprintf(f, ",\"runs\":%d,\"repeats\":[", runs);
        for (int i = 0; i < r->per_run; i++) {
            fprintf(f, "%s{\"point\":%d,\"metrics\":{", i ? "," : "", i);
            for (int k = 0; k < N_REP; k++) {
                double v[256];
                int m = 0;
                for (int j = 0; j < runs && m < 256; j++) v[m++] = rep_value(&r->points[j * r->per_run + i], k);
                spread sp = spread_of(v, m);
                fprintf(f, "%s\"%s\":{\"mean\":%.6g,\"sd\":%.6g,\"cv\":%.6g,\"ci95\":[%.6g,%.6g],\"values\":[", k ? "," : "",
                        rep_names[k], sp.mean, sp.sd, sp.cv, sp.lo, sp.hi);
                for (int j = 0; j < m; j++) fprintf(f, "%s%.6g", j ? "," : "", v[j]);
                fprintf(f, "]}");
            }
            fprintf(f, "}}");
        }
        fprintf(f, "]");
    }
    if (r->slo_searched) fprintf(f, ",\"slo_search\":{\"found\":%g}", r->slo_found);
    fprintf(f, "}\n");
    return fclose(f) == 0 ? 0 : AG_EINVAL;
}

int nb_write_csv(const char *path, const nb_report *r) {
    FILE *f = fopen(path, "w");
    if (!f) return AG_EINVAL;
    fprintf(f, "point,concurrency,rate,request,start_ms,first_token_ms,end_ms,ttft_ms,e2e_ms,tokens,status,"
               "server_total_ms,server_load_ms,server_prompt_eval_ms,server_eval_ms,node,send_lag_ms,repeat,prompt_eval_count\n");
    for (int i = 0; i < r->n_points; i++) {
        const nb_point *p = &r->points[i];
        for (size_t k = 0; k < p->n_reqs; k++) {
            const nb_req *q = &p->reqs[k];
            fprintf(f, "%d,%d,%g,%zu,%.3f,%.3f,%.3f,%.3f,%.3f,%d,%s,%.3f,%.3f,%.3f,%.3f,%s,%.4f,%d,%lld\n", i, p->concurrency, p->rate,
                    k, q->start_ms, q->ttft_ms >= 0 ? q->start_ms + q->ttft_ms : -1, q->end_ms, q->ttft_ms,
                    q->end_ms - q->start_ms, q->tokens, q->status ? ag_err_name(q->status) : "OK", q->srv_total_ms,
                    q->srv_load_ms, q->srv_prompt_ms, q->srv_eval_ms, q->node, q->send_lag_ms, p->repeat_index,
                    (long long)q->prompt_evaluated);
        }
    }
    return fclose(f) == 0 ? 0 : AG_EINVAL;
}

/* ---- HTML: one page, inline SVG, no scripts ---- */
static const char *palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

typedef struct series {
    const double *x, *y;
    size_t n;
    const char *label;
} series;

static double nice_max(double v) {
    if (v <= 0) return 1;
    double p = pow(10, floor(log10(v)));
    double m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* a line chart: axes, ticks, one polyline per series, a legend */
static void svg_lines(FILE *f, const char *title, const char *xl, const char *yl, const series *s, int ns, int steps) {
    const double W = 560, H = 300, L = 60, R = 20, T = 30, B = 45;
    double xmax = 0, ymax = 0;
    for (int i = 0; i < ns; i++)
        for (size_t k = 0; k < s[i].n; k++) {
            if (s[i].x[k] > xmax) xmax = s[i].x[k];
            if (s[i].y[k] > ymax) ymax = s[i].y[k];
        }
    xmax = nice_max(xmax);
    ymax = nice_max(ymax);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/><text x=\"%.0f\" y=\"18\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", L, title);
    for (int t = 0; t <= 5; t++) {
        double y = T + (H - T - B) * (1 - t / 5.0), x = L + (W - L - R) * t / 5.0;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", L, y, W - R, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%g</text>", L - 4, y + 3, ymax * t / 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%g</text>\n", x, H - B + 14, xmax * t / 5);
    }
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#000\"/><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#000\"/>\n",
            L, H - B, W - R, H - B, L, T, L, H - B);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\">%s</text>", (L + W - R) / 2, H - 8, xl);
    fprintf(f, "<text x=\"12\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 %.0f)\">%s</text>\n",
            (T + H - B) / 2, (T + H - B) / 2, yl);
    for (int i = 0; i < ns; i++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", palette[i % 8]);
        double px = L, py = H - B;
        for (size_t k = 0; k < s[i].n; k++) {
            double x = L + (W - L - R) * s[i].x[k] / xmax, y = H - B - (H - T - B) * s[i].y[k] / ymax;
            if (steps && k) fprintf(f, "%.1f,%.1f ", x, py);
            fprintf(f, "%.1f,%.1f ", x, y);
            px = x;
            py = y;
        }
        (void)px;
        fprintf(f, "\"/>");
        if (s[i].n == 1 || !steps) /* points for sweeps */
            for (size_t k = 0; k < s[i].n && !steps; k++)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", L + (W - L - R) * s[i].x[k] / xmax,
                        H - B - (H - T - B) * s[i].y[k] / ymax, palette[i % 8]);
        fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">%s</text>\n",
                W - R - 150, T + 4 + 15.0 * i, palette[i % 8], W - R - 136, T + 13 + 15.0 * i, s[i].label);
    }
    fprintf(f, "</svg>\n");
}

/* ---- the scraped server metrics, charted over the point's time ---- */
typedef struct mseries {
    char *key;  /* "url name{labels}" */
    const char *name; /* into key: the metric's own name and labels */
    double *t, *v;
    size_t n, cap;
    int counter; /* a _total: charted as a rate */
} mseries;
typedef struct mset {
    mseries *s;
    size_t n, cap, cursor;
} mset;

static mseries *ms_get(mset *m, const char *url, const char *name) {
    size_t ul = strlen(url), nl = strlen(name);
    /* the samples list their lines in the same order: try the next first */
    for (size_t probe = 0; probe < m->n; probe++) {
        mseries *x = &m->s[(m->cursor + probe) % m->n];
        if (strncmp(x->key, url, ul) == 0 && x->key[ul] == ' ' && strcmp(x->key + ul + 1, name) == 0) {
            m->cursor = (size_t)(x - m->s) + 1;
            return x;
        }
    }
    if (m->n >= 4096) return NULL;
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        mseries *ns = realloc(m->s, nc * sizeof *ns);
        if (!ns) return NULL;
        m->s = ns;
        m->cap = nc;
    }
    mseries *x = &m->s[m->n];
    memset(x, 0, sizeof *x);
    x->key = malloc(ul + nl + 2);
    if (!x->key) return NULL;
    memcpy(x->key, url, ul);
    x->key[ul] = ' ';
    memcpy(x->key + ul + 1, name, nl + 1);
    x->name = x->key + ul + 1;
    const char *brace = strchr(name, '{');
    size_t base = brace ? (size_t)(brace - name) : nl;
    x->counter = base > 6 && strncmp(name + base - 6, "_total", 6) == 0;
    m->n++;
    m->cursor = m->n;
    return x;
}

static void ms_add(mset *m, const char *url, const char *name, double t, double v) {
    mseries *x = ms_get(m, url, name);
    if (!x || x->n >= 1000) return;
    if (x->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 16;
        double *nt = realloc(x->t, nc * sizeof *nt);
        if (!nt) return;
        x->t = nt;
        double *nv = realloc(x->v, nc * sizeof *nv);
        if (!nv) return;
        x->v = nv;
        x->cap = nc;
    }
    x->t[x->n] = t;
    x->v[x->n++] = v;
}

/* how much a chart of it says about serving: the queue and the batch first */
static int ms_rank(const mseries *x) {
    static const char *const words[] = {"waiting", "running", "queue", "in_flight", "cache", "kv", "preempt",
                                        "swapped", "tokens", "requests", "models loaded", "VRAM"};
    for (int i = 0; i < (int)(sizeof words / sizeof words[0]); i++)
        if (strstr(x->name, words[i])) return i;
    return 100;
}

static int ms_skip(const mseries *x) {
    if (x->n < 2 || strstr(x->name, "_bucket") || strstr(x->name, "_created") || strstr(x->name, "quantile=") ||
        strstr(x->name, "_sum") || strstr(x->name, "_count") || strstr(x->name, "_info"))
        return 1;
    for (size_t k = 1; k < x->n; k++)
        if (x->v[k] != x->v[0]) return 0;
    return 1; /* a flat line says nothing */
}

/* s with HTML's special characters escaped, into out (cut to fit) */
static const char *html_esc(char *out, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        const char *e = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : *s == '"' ? "&quot;" : NULL;
        if (e) {
            memcpy(out + o, e, strlen(e));
            o += strlen(e);
        } else {
            out[o++] = *s;
        }
    }
    out[o] = 0;
    return out;
}

/* Up to 12 charts of the series that moved during the point: gauges as they
 * were, counters (_total) as rates per second, Ollama's /api/ps as the models
 * loaded and their VRAM. */
static void html_scraped(FILE *f, const nb_point *p, const char *label) {
    char err[128];
    if (strlen(p->scraped) > ((size_t)32 << 20)) { /* a parsed tree is many times that: the JSON has it all */
        fprintf(f, "<p>Server metrics during the run (%s): too many samples to chart here; they are in the JSON report.</p>\n", label);
        return;
    }
    yajl_val root = yajl_tree_parse(p->scraped, err, sizeof err);
    if (!root || !YAJL_IS_ARRAY(root)) {
        yajl_tree_free(root);
        return;
    }
    mset m = {0};
    for (size_t i = 0; i < root->u.array.len; i++) {
        yajl_val smp = root->u.array.values[i];
        const char *tp[] = {"t_s", NULL}, *up[] = {"url", NULL}, *mp[] = {"metrics", NULL}, *jp[] = {"json", NULL};
        yajl_val t = yajl_tree_get(smp, tp, yajl_t_number), u = yajl_tree_get(smp, up, yajl_t_string);
        if (!t || !u) continue;
        const double ts = YAJL_GET_DOUBLE(t);
        const char *url = YAJL_GET_STRING(u);
        yajl_val mo = yajl_tree_get(smp, mp, yajl_t_object), jo = yajl_tree_get(smp, jp, yajl_t_object);
        if (mo)
            for (size_t k = 0; k < mo->u.object.len; k++)
                if (YAJL_IS_NUMBER(mo->u.object.values[k])) ms_add(&m, url, mo->u.object.keys[k], ts, YAJL_GET_DOUBLE(mo->u.object.values[k]));
        const char *modp[] = {"models", NULL};
        yajl_val models = jo ? yajl_tree_get(jo, modp, yajl_t_array) : NULL;
        if (models) {
            double vram = 0;
            for (size_t k = 0; k < models->u.array.len; k++) {
                const char *vp[] = {"size_vram", NULL};
                yajl_val v = yajl_tree_get(models->u.array.values[k], vp, yajl_t_number);
                if (v) vram += YAJL_GET_DOUBLE(v);
            }
            ms_add(&m, url, "models loaded", ts, (double)models->u.array.len);
            ms_add(&m, url, "VRAM of the loaded models (GiB)", ts, vram / 1073741824.0);
        }
    }
    yajl_tree_free(root);
    /* the charts: by rank, then in the order first seen */
    size_t order[12];
    int nc = 0;
    int *rank = malloc((m.n + 1) * sizeof *rank);
    for (size_t i = 0; rank && i < m.n; i++) rank[i] = ms_skip(&m.s[i]) ? -1 : ms_rank(&m.s[i]);
    for (int want = 0; rank && want <= 100 && nc < 12; want++)
        for (size_t i = 0; i < m.n && nc < 12; i++)
            if (rank[i] == want) order[nc++] = i;
    free(rank);
    if (nc) {
        fprintf(f, "<h2>Server metrics during the run (%s)</h2><p>Every sample is in the JSON report (\"scraped\"); "
                   "charted here: up to 12 series that moved, counters (<code>_total</code>) as rates per second.</p>"
                   "<div class=\"charts\">\n", label);
    }
    for (int c = 0; c < nc; c++) {
        mseries *x = &m.s[order[c]];
        double *y = malloc(x->n * sizeof *y);
        if (!y) break;
        for (size_t k = 0; k < x->n; k++) {
            if (!x->counter) y[k] = x->v[k] > 0 ? x->v[k] : 0;
            else if (k == 0) y[k] = 0;
            else {
                double dt = x->t[k] - x->t[k - 1], d = x->v[k] - x->v[k - 1];
                y[k] = dt > 0 && d > 0 ? d / dt : 0; /* (a reset counts as nothing) */
            }
        }
        char title[200], etitle[1200], src[120], esrc[720];
        snprintf(title, sizeof title, "%.150s%s", x->name, x->counter ? " per s" : "");
        snprintf(src, sizeof src, "%.*s", (int)(x->name - x->key - 1), x->key); /* the url before the name */
        series sr = {x->t, y, x->n, html_esc(esrc, sizeof esrc, src)};
        svg_lines(f, html_esc(etitle, sizeof etitle, title), "seconds into the point", x->counter ? "per second" : "value", &sr, 1, 0);
        free(y);
    }
    if (nc) fprintf(f, "</div>\n");
    for (size_t i = 0; i < m.n; i++) {
        free(m.s[i].key);
        free(m.s[i].t);
        free(m.s[i].v);
    }
    free(m.s);
}

/* CDF of v (sorted copy), downsampled to at most 400 points */
static void cdf_of(const double *v0, size_t n, double **x, double **y, size_t *m) {
    double *v = malloc((n + 1) * sizeof *v);
    memcpy(v, v0, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_d);
    size_t step = n > 400 ? n / 400 : 1;
    *m = 0;
    *x = malloc((n / step + 2) * sizeof **x);
    *y = malloc((n / step + 2) * sizeof **y);
    for (size_t i = 0; i < n; i += step) {
        (*x)[*m] = v[i];
        (*y)[*m] = (double)(i + 1) / n;
        (*m)++;
    }
    if (n && (*x)[*m - 1] != v[n - 1]) {
        (*x)[*m] = v[n - 1];
        (*y)[*m] = 1;
        (*m)++;
    }
    free(v);
}

static void html_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* the run's metadata as a table: when, what, where, against which nodes */
static void html_meta(FILE *f, const char *meta) {
    yajl_val m = yajl_tree_parse(meta, NULL, 0);
    if (!m) return;
    static const char *keys[][2] = {{"started_at", "started"}, {"version", "agents"}, {"command", "command"},
                                    {"host", "machine"}, {"cpus", "CPUs"}};
    fputs("<table class=\"meta\">", f);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *p[] = {keys[i][0], NULL};
        yajl_val v = yajl_tree_get(m, p, yajl_t_any);
        if (!v) continue;
        fprintf(f, "<tr><th>%s</th><td style=\"text-align:left\">", keys[i][1]);
        if (YAJL_IS_STRING(v)) html_text(f, YAJL_GET_STRING(v));
        else if (YAJL_IS_NUMBER(v)) fprintf(f, "%lld", YAJL_GET_INTEGER(v));
        fputs("</td></tr>", f);
    }
    const char *np[] = {"nodes", NULL};
    yajl_val nodes = yajl_tree_get(m, np, yajl_t_array);
    for (size_t i = 0; nodes && i < nodes->u.array.len; i++) {
        yajl_val n = nodes->u.array.values[i];
        const char *pn[] = {"name", NULL}, *pv[] = {"version", NULL}, *pm[] = {"models", NULL};
        yajl_val nm = yajl_tree_get(n, pn, yajl_t_string), ver = yajl_tree_get(n, pv, yajl_t_string);
        yajl_val ms = yajl_tree_get(n, pm, yajl_t_array);
        fputs("<tr><th>node</th><td style=\"text-align:left\">", f);
        html_text(f, nm ? YAJL_GET_STRING(nm) : "?");
        fputs(" (", f);
        html_text(f, ver && *YAJL_GET_STRING(ver) ? YAJL_GET_STRING(ver) : "version unknown");
        fputs(")", f);
        for (size_t k = 0; ms && k < ms->u.array.len; k++) {
            fputs(k ? ", " : ": ", f);
            if (YAJL_IS_STRING(ms->u.array.values[k])) html_text(f, YAJL_GET_STRING(ms->u.array.values[k]));
        }
        fputs("</td></tr>", f);
    }
    fputs("</table>\n", f);
    yajl_tree_free(m);
}

int nb_write_html(const char *path, const nb_config *cfg, const nb_report *r) {
    FILE *f = fopen(path, "w");
    if (!f) return AG_EINVAL;
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>agents bench: %s</title>\n"
               "<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}"
               "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
               ".charts{display:flex;flex-wrap:wrap;gap:12px}</style></head><body>\n",
            cfg->model);
    fprintf(f, "<h1>agents bench</h1><p>model <b>%s</b>, endpoint %s, %d warm-up request(s), agents %s</p>\n", cfg->model,
            cfg->endpoint == NB_EMBED ? "embed" : cfg->endpoint == NB_GENERATE ? "generate" : "chat", cfg->warmup, ag_version());
    if (cfg->meta_json) html_meta(f, cfg->meta_json);
    fprintf(f, "<table><tr><th>point</th><th>ok</th><th>failed</th><th>req/s</th><th>tokens/s</th><th>goodput req/s</th>"
               "<th>TTFT p50</th><th>TTFT p99</th><th>ITL p50</th><th>TPOT p50</th><th>E2E p50</th><th>E2E p99</th><th>network+queue</th>"
               "<th>send lag p99</th><th>tool CPU</th><th>self-check</th></tr>\n");
    for (int i = 0; i < r->n_points; i++) {
        const nb_point *p = &r->points[i];
        char name[64];
        if (cfg->trace) snprintf(name, sizeof name, "trace");
        else if (p->rate) snprintf(name, sizeof name, "rate %g/s", p->rate);
        else snprintf(name, sizeof name, "concurrency %d", p->concurrency);
        if (r->n_points > r->per_run) snprintf(name + strlen(name), sizeof name - strlen(name), " (run %d)", p->repeat_index + 1);
        fprintf(f, "<tr><td>%s</td><td>%zu</td><td>%zu</td><td>%.2f</td><td>%.1f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td>"
                   "<td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.3f</td><td>%.0f %%</td><td>%s%s</td></tr>\n",
                name, p->ok, p->failed, p->req_per_s, p->tok_per_s, p->goodput_req_per_s, p->ttft.p50, p->ttft.p99, p->itl.p50,
                p->tpot.p50, p->e2e.p50, p->e2e.p99, p->net_queue_ms, p->send_lag.p99, 100 * p->cpu_share,
                p->flagged ? "<b>FLAGGED</b>: " : "ok", p->flagged ? p->flag_why : "");
    }
    fprintf(f, "</table><p>Latencies in milliseconds, measured by the client at its socket callbacks. Self-check: a point "
               "is flagged when its requests left more than 1 ms (p99) behind their schedule or the tool used over 90 %% of "
               "a core: its figures may then be the tool's, not the server's; the reason names the hypervisor's steal or a "
               "machine with no core to spare when there was one.</p>\n");
    if (r->slo_searched)
        fprintf(f, "<p><b>SLO search</b>: the highest %s meeting every objective is <b>%g</b> (the points tried are above).</p>\n",
                r->points[0].rate ? "rate" : "concurrency", r->slo_found);
    fprintf(f, "<div class=\"charts\">\n");
    int np = r->n_points < 8 ? r->n_points : 8;
    series ttft[8], e2e[8];
    double *bufs[32];
    int nb = 0;
    char labels[8][48];
    for (int i = 0; i < np; i++) {
        const nb_point *p = &r->points[i];
        double *v = malloc((p->n_reqs + 1) * sizeof *v), *w = malloc((p->n_reqs + 1) * sizeof *w);
        size_t a = 0, b = 0;
        for (size_t k = 0; k < p->n_reqs; k++)
            if (!p->reqs[k].status) {
                if (p->reqs[k].ttft_ms >= 0) v[a++] = p->reqs[k].ttft_ms;
                w[b++] = p->reqs[k].end_ms - p->reqs[k].start_ms;
            }
        if (p->rate) snprintf(labels[i], sizeof labels[i], "rate %g", p->rate);
        else snprintf(labels[i], sizeof labels[i], "concurrency %d", p->concurrency);
        double *x, *y;
        size_t m;
        cdf_of(v, a, &x, &y, &m);
        ttft[i] = (series){x, y, m, labels[i]};
        bufs[nb++] = x;
        bufs[nb++] = y;
        cdf_of(w, b, &x, &y, &m);
        e2e[i] = (series){x, y, m, labels[i]};
        bufs[nb++] = x;
        bufs[nb++] = y;
        free(v);
        free(w);
    }
    if (cfg->endpoint != NB_EMBED) svg_lines(f, "TTFT, cumulative distribution", "time to first token (ms)", "fraction of requests", ttft, np, 1);
    svg_lines(f, "End-to-end latency, cumulative distribution", "end to end (ms)", "fraction of requests", e2e, np, 1);
    /* ITL histogram of the last point: 40 bins up to its p99 x 1.5 */
    const nb_point *last = &r->points[r->n_points - 1];
    if (cfg->endpoint != NB_EMBED && last->n_itl) {
        double hi = last->itl.p99 * 1.5 > 0 ? last->itl.p99 * 1.5 : 1, bx[40], by[40];
        size_t cnt[40] = {0};
        for (size_t k = 0; k < last->n_itl; k++) {
            int bin = (int)(last->itl_ms[k] / hi * 40);
            if (bin >= 40) bin = 39;
            if (bin < 0) bin = 0;
            cnt[bin]++;
        }
        for (int k = 0; k < 40; k++) {
            bx[k] = hi * (k + 0.5) / 40;
            by[k] = (double)cnt[k];
        }
        series s = {bx, by, 40, "inter-token gaps"};
        svg_lines(f, "Inter-token latency, histogram (last point)", "gap between tokens (ms)", "gaps", &s, 1, 1);
    }
    if (r->n_points > 1) { /* the sweep */
        double x[64], thr[64], p99[64];
        int n = r->n_points < 64 ? r->n_points : 64;
        for (int i = 0; i < n; i++) {
            x[i] = r->points[i].rate ? r->points[i].rate : r->points[i].concurrency;
            thr[i] = r->points[i].tok_per_s;
            p99[i] = r->points[i].ttft.p99;
        }
        const char *xl = r->points[0].rate ? "offered rate (requests/s)" : "concurrency";
        series a = {x, thr, (size_t)n, "output tokens/s"}, b = {x, p99, (size_t)n, "p99 TTFT (ms)"};
        svg_lines(f, "Throughput against load", xl, "output tokens/s", &a, 1, 0);
        svg_lines(f, "p99 TTFT against load", xl, "ms", &b, 1, 0);
    }
    fprintf(f, "</div>\n");
    for (int i = 0, shown = 0; i < r->n_points && shown < 4; i++) /* (a sweep: its first points) */
        if (r->points[i].scraped) {
            char label[64];
            if (r->points[i].rate) snprintf(label, sizeof label, "rate %g", r->points[i].rate);
            else if (cfg->trace) snprintf(label, sizeof label, "trace");
            else snprintf(label, sizeof label, "concurrency %d", r->points[i].concurrency);
            html_scraped(f, &r->points[i], label);
            shown++;
        }
    if (last->n_nodes > 1) {
        fprintf(f, "<h2>Per node (last point)</h2><table><tr><th>node</th><th>requests</th><th>errors</th><th>TTFT p50</th>"
                   "<th>TTFT p99</th><th>E2E p50</th><th>E2E p99</th><th>tokens/s</th><th>prompt cache hit</th></tr>\n");
        double nx[64], ny[64];
        size_t nn = last->n_nodes < 64 ? last->n_nodes : 64;
        for (size_t j = 0; j < nn; j++) {
            const nb_node *d = &last->nodes[j];
            char hit[16] = "-";
            if (d->cache_hit >= 0) snprintf(hit, sizeof hit, "%.1f %%", 100 * d->cache_hit);
            fprintf(f, "<tr><td>%s</td><td>%zu</td><td>%zu</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.1f</td><td>%s</td></tr>\n",
                    d->name, d->requests, d->errors, d->ttft.p50, d->ttft.p99, d->e2e.p50, d->e2e.p99, d->tok_per_s, hit);
            nx[j] = (double)(j + 1);
            ny[j] = d->ttft.p50;
        }
        fprintf(f, "</table><div class=\"charts\">");
        series s = {nx, ny, nn, "TTFT p50 (ms) by node number"};
        svg_lines(f, "TTFT p50 per node", "node (as listed above)", "ms", &s, 1, 0);
        fprintf(f, "</div>\n");
    }
    fprintf(f, "</body></html>\n");
    for (int i = 0; i < nb; i++) free(bufs[i]);
    return fclose(f) == 0 ? 0 : AG_EINVAL;
}
