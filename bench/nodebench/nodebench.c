/* bench/nodebench/nodebench.c - `agents bench`: workloads, measurements, reports. */
#include "nodebench_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <yajl/yajl_tree.h>


double nb__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_s(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}


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
    double t = nb__now_ms();
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
    double t = nb__now_ms();
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
    f->start = nb__now_ms();
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
    f->start = nb__now_ms();
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
        if (!pr->target && pr->issued >= pr->cfg->warmup && nb__now_ms() > pr->deadline) break;
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
    double now = nb__now_ms();
    int sent = 0;
    while (open_more(pr) && now >= pr->next_at && sent < 1000) {
        pr->cur_sched = pr->next_at;
        start_one(pr);
        pr->cur_sched = -1;
        sent++;
        pr->next_at = pr->s0 + schedule_next(pr);
        now = nb__now_ms();
    }
    if (!open_more(pr)) return;
    double wait = pr->next_at - now;
    if (wait < 0) wait = 0;
    struct timeval tv = {(long)(wait / 1e3), (long)(fmod(wait, 1e3) * 1e3)};
    evtimer_add(pr->arrival, &tv);
}

static void progress_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    point_run *pr = arg;
    nb_point *pt = pr->pt;
    double el = (nb__now_ms() - pr->t0) / 1e3;
    double ttft[1024];
    size_t k = 0;
    for (size_t i = pt->n_reqs > 1024 ? pt->n_reqs - 1024 : 0; i < pt->n_reqs; i++)
        if (pt->reqs[i].ttft_ms >= 0) ttft[k++] = pt->reqs[i].ttft_ms;
    nb_stats s = nb__stats_of(ttft, k);
    int total = pr->target ? pr->target : 0;
    double rate = el > 0 ? pt->n_reqs / el : 0;
    double eta = total && rate > 0 && (size_t)total > pt->n_reqs ? (total - (double)pt->n_reqs) / rate : 0;
    fprintf(stderr, "\r%s %g: %zu/%d done, %.1f req/s, ETA %.0fs, running p50 TTFT %.1f ms   ",
            pr->rate ? "rate" : "concurrency", pr->rate ? pr->rate : (double)pr->concurrency, pt->n_reqs,
            total, rate, eta, s.p50);
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
    pr.t0 = nb__now_ms();
    pr.deadline = pr.t0 + cfg->duration * 1e3;
    double cpu0 = cpu_s();
    machine_cpu m0 = machine_now();
    if (cfg->progress) {
        pr.tick = event_new(base, -1, EV_PERSIST, progress_cb, &pr);
        struct timeval tv = {0, 250000};
        event_add(pr.tick, &tv);
    }
    scraper *sc = nb__sc_start(base, cfg, pr.t0);
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
            pr.t0 = nb__now_ms();
            pr.deadline = pr.t0 + cfg->duration * 1e3;
            cpu0 = cpu_s();
            m0 = machine_now();
        }
        int more = pr.open ? open_more(&pr) : pr.target ? pr.issued < pr.target + cfg->warmup : nb__now_ms() < pr.deadline;
        if (!more) pr.i_stop = 1; /* the interactive class runs while the load does */
        if (!more && pr.in_flight == 0 && pr.i_in_flight == 0) break;
        if (event_base_loop(base, EVLOOP_ONCE) < 0) break;
    }
    double wall = (nb__now_ms() - pr.t0) / 1e3, cpu = cpu_s() - cpu0;
    machine_cpu m1 = machine_now();
    nb__sc_finish(sc, base); /* one sample more at the end: what the run added */
    pt->scraped = nb__sc_stop(sc);
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
    nb__summarize(cfg, pt, wall, cpu, m0, m1);
    if (cfg->interactive > 0) {
        pt->i_ttft = nb__stats_of(pr.i_ttft, pr.i_n);
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

