/* agents/batch.c - the batch runner: JSONL in, JSONL out, bounded in flight,
 * every finished result on disk as it lands, resumable. */
#include "agent_internal.h" /* (private: this folder's, not include/agents/) */
#include "core/base/hash.h"
#include "core/base/json.h"
#include "core/base/jsondepth.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/* ---- a set of ids ---- */
typedef struct idset {
    char **slot;
    size_t cap, n;
    const ag_alloc_funcs *al;
} idset;

static int idset_has(const idset *s, const char *id) {
    if (!s->cap) return 0;
    for (size_t i = ag__fnv1a(id) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i]) return 0;
        if (!strcmp(s->slot[i], id)) return 1;
    }
}

static int idset_add(idset *s, const char *id) {
    if ((s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        char **ns = ag__calloc_n(s->al, nc, sizeof *ns);
        if (!ns) return AG_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) {
                size_t j = ag__fnv1a(s->slot[i]) & (nc - 1);
                while (ns[j]) j = (j + 1) & (nc - 1);
                ns[j] = s->slot[i];
            }
        ag__free(s->al, s->slot);
        s->slot = ns;
        s->cap = nc;
    }
    size_t i = ag__fnv1a(id) & (s->cap - 1);
    while (s->slot[i]) {
        if (!strcmp(s->slot[i], id)) return 0;
        i = (i + 1) & (s->cap - 1);
    }
    s->slot[i] = ag__strdup(s->al, id);
    if (!s->slot[i]) return AG_ENOMEM;
    s->n++;
    return 0;
}

static void idset_free(idset *s) {
    for (size_t i = 0; i < s->cap; i++) ag__free(s->al, s->slot[i]);
    ag__free(s->al, s->slot);
}

/* ---- the run ---- */
typedef struct run run;
typedef struct job {
    run *r;
    char *id_json; /* the id as it appeared: "q1" (quoted) or 7 */
} job;

struct run {
    ag_agent *a;
    const ag_batch_options *o;
    ag_batch_summary *sum;
    FILE *in, *log;
    int out;
    idset seen;
    size_t inflight, conc, lineno, total_lines;
    int eof, stop, write_error, in_fill;
    idset *done_at_start;
    double *lat;
    size_t nlat, caplat;
    int64_t t0;
    struct event *tick;
    int bar;
    char *line;
    size_t linecap;
};

static void report(run *r, const char *what) {
    fprintf(r->log, "line %zu: %s%s\n", r->lineno, what, r->o->strict ? " (stopping: --strict)" : ", skipped");
    r->sum->malformed++;
    if (r->o->strict) {
        r->stop = 1;
        r->sum->stopped = 1;
    }
}

/* yajl_val back to JSON text (the per-task options object) */
static void gen_val(yajl_gen g, yajl_val v) {
    if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            yajl_gen_string(g, (const unsigned char *)v->u.object.keys[i], strlen(v->u.object.keys[i]));
            gen_val(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++) gen_val(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
    } else if (YAJL_IS_STRING(v)) {
        yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
    } else if (YAJL_IS_NUMBER(v)) {
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_TRUE(v)) {
        yajl_gen_bool(g, 1);
    } else if (YAJL_IS_FALSE(v)) {
        yajl_gen_bool(g, 0);
    } else {
        yajl_gen_null(g);
    }
}

static char *val_json(const ag_alloc_funcs *al, yajl_val v) {
    yajl_gen g = ag__gen_new(al);
    if (!g) return NULL;
    gen_val(g, v);
    return ag__gen_take(al, g, NULL);
}

static yajl_val field(yajl_val obj, const char *key) {
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (!strcmp(obj->u.object.keys[i], key)) return obj->u.object.values[i];
    return NULL;
}

/* the id as a set key and as JSON for the output */
static int id_of(const ag_alloc_funcs *al, yajl_val v, char *key, size_t keysz, char **json) {
    if (YAJL_IS_STRING(v)) {
        snprintf(key, keysz, "s:%s", v->u.string);
        ag__buf b = {0}; /* (was a generator not checked for NULL) */
        *json = ag__buf_json(al, &b, v->u.string, strlen(v->u.string)) ? NULL : b.p;
        if (!*json) ag__buf_free(al, &b);
    } else if (YAJL_IS_INTEGER(v)) {
        snprintf(key, keysz, "n:%lld", (long long)YAJL_GET_INTEGER(v));
        *json = ag__strdup(al, v->u.number.r);
    } else {
        return AG_EINVAL;
    }
    return *json ? 0 : AG_ENOMEM;
}

static void write_line(run *r, const char *p, size_t n) {
    while (n > 0) { /* one write for a whole line, but be robust to short writes */
        ssize_t k = write(r->out, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            r->write_error = errno;
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

static void fill(run *r);

static void job_done(ag_task *t, const ag_agent_result *res, void *ud) {
    (void)t;
    job *j = ud;
    run *r = j->r;
    ag__buf b = {0};
    ag__buf_str(r->a->al, &b, "{\"id\":");
    ag__buf_str(r->a->al, &b, j->id_json);
    char num[160];
    if (res->status == 0) {
        ag__buf_str(r->a->al, &b, ",\"response\":");
        ag__buf_json(r->a->al, &b, res->text ? res->text : "", res->text_len);
        if (res->thinking_len) {
            ag__buf_str(r->a->al, &b, ",\"thinking\":");
            ag__buf_json(r->a->al, &b, res->thinking, res->thinking_len);
        }
        snprintf(num, sizeof num, ",\"eval_count\":%lld,\"ttft_ms\":%.3f,\"e2e_ms\":%.3f,\"steps\":%d,\"attempts\":%d",
                 (long long)res->eval_count, res->timing.ttft_ns >= 0 ? res->timing.ttft_ns / 1e6 : -1.0,
                 res->timing.e2e_ns / 1e6, res->steps, res->attempts);
        ag__buf_str(r->a->al, &b, num);
        r->sum->ok++;
        r->sum->tokens += res->eval_count > 0 ? (uint64_t)res->eval_count : 0;
        if (r->nlat == r->caplat) {
            size_t nc = r->caplat ? r->caplat * 2 : 1024;
            double *v = ag__realloc(r->a->al, r->lat, nc * sizeof *v);
            if (v) {
                r->lat = v;
                r->caplat = nc;
            }
        }
        if (r->nlat < r->caplat) r->lat[r->nlat++] = res->timing.e2e_ns / 1e6;
    } else {
        ag__buf_str(r->a->al, &b, ",\"error\":");
        const char *e = res->error ? res->error : ag_strerror(res->status);
        ag__buf_json(r->a->al, &b, e, strlen(e));
        snprintf(num, sizeof num, ",\"code\":\"%s\",\"attempts\":%d", ag_err_name(res->status), res->attempts);
        ag__buf_str(r->a->al, &b, num);
        r->sum->failed++;
    }
    if (res->node) {
        ag__buf_str(r->a->al, &b, ",\"node\":");
        ag__buf_json(r->a->al, &b, res->node, strlen(res->node));
    }
    ag__buf_str(r->a->al, &b, "}\n");
    if (b.p) write_line(r, b.p, b.len);
    ag__buf_free(r->a->al, &b);
    ag__free(r->a->al, j->id_json);
    ag__free(r->a->al, j);
    r->inflight--;
    fill(r);
}

/* one input line -> a task, or a report */
static void start_line(run *r, char *line) {
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return; /* blank */
    char err[200];
    yajl_val v = ag__json_tree(r->a->al, line, err, sizeof err);
    if (!v || !YAJL_IS_OBJECT(v)) {
        char msg[260];
        err[strcspn(err, "\n")] = 0; /* yajl's first line says it */
        snprintf(msg, sizeof msg, "not a JSON object%s%s", v ? "" : ": ", v ? "" : err);
        for (char *q = msg; *q; q++)
            if (*q == '\n') *q = ' ';
        report(r, msg);
        ag__json_tree_free(r->a->al, v);
        return;
    }
    yajl_val idv = field(v, "id"), prompt = field(v, "prompt"), msgs = field(v, "messages");
    yajl_val opts = field(v, "options"), sys = field(v, "system"), sess = field(v, "session");
    char key[512], *id_json = NULL;
    const char *bad = NULL;
    if (!idv || id_of(r->a->al, idv, key, sizeof key, &id_json)) bad = "no \"id\" (a string or an integer)";
    else if (!(prompt && YAJL_IS_STRING(prompt)) && !(msgs && YAJL_IS_ARRAY(msgs) && msgs->u.array.len))
        bad = "no \"prompt\" (a string) or \"messages\" (a non-empty array)";
    else if (opts && !YAJL_IS_OBJECT(opts)) bad = "\"options\" is not an object";
    else if (sys && !YAJL_IS_STRING(sys)) bad = "\"system\" is not a string";
    else if (sess && (!YAJL_IS_STRING(sess) || strlen(sess->u.string) > 256 || strpbrk(sess->u.string, "\r\n")))
        bad = "\"session\" is not a string of at most 256 characters on one line";
    ag_message *m = NULL;
    size_t nm = 0;
    if (!bad && msgs && !(prompt && YAJL_IS_STRING(prompt))) {
        m = ag__calloc_n(r->a->al, msgs->u.array.len, sizeof *m);
        for (size_t i = 0; m && i < msgs->u.array.len && !bad; i++) {
            yajl_val e = msgs->u.array.values[i];
            yajl_val role = YAJL_IS_OBJECT(e) ? field(e, "role") : NULL;
            yajl_val content = YAJL_IS_OBJECT(e) ? field(e, "content") : NULL;
            if (!role || !YAJL_IS_STRING(role) || !content || !YAJL_IS_STRING(content))
                bad = "a message without a string \"role\" and \"content\"";
            else
                m[nm++] = (ag_message){role->u.string, content->u.string, NULL, NULL, 0, NULL, NULL};
        }
    }
    if (bad) {
        report(r, bad);
    } else if (idset_has(&r->seen, key)) {
        if (idset_has(r->done_at_start, key))
            r->sum->skipped++; /* finished in an earlier run */
        else
            r->sum->duplicates++;
    } else {
        idset_add(&r->seen, key);
        job *j = ag__calloc_n(r->a->al, 1, sizeof *j);
        char *opt_json = opts ? val_json(r->a->al, opts) : NULL;
        ag_message one = {"user", prompt && YAJL_IS_STRING(prompt) ? prompt->u.string : "", NULL, NULL, 0, NULL, NULL};
        ag_agent_callbacks cb = {NULL, job_done, j};
        int rc = j ? 0 : AG_ENOMEM;
        if (!rc) {
            j->r = r;
            j->id_json = id_json;
            id_json = NULL;
            rc = ag__agent_run_ex(r->a, m ? m : &one, m ? nm : 1, opt_json, sys ? sys->u.string : NULL,
                                  sess ? sess->u.string : NULL, &cb, NULL);
        }
        ag__free(r->a->al, opt_json);
        if (rc) {
            /* could not even start: record it as a failed task */
            ag_agent_result res = {0};
            res.status = rc;
            res.error = ag_strerror(rc);
            r->inflight++;
            r->sum->tasks++;
            if (j) job_done(NULL, &res, j);
        } else {
            r->inflight++;
            r->sum->tasks++;
        }
    }
    ag__free(r->a->al, m);
    ag__free(r->a->al, id_json);
    ag__json_tree_free(r->a->al, v);
}

static void fill(run *r) {
    if (r->in_fill) return; /* job_done from inside start_line */
    r->in_fill = 1;
    while (!r->eof && !r->stop && r->inflight < r->conc) {
        ssize_t k = getline(&r->line, &r->linecap, r->in);
        if (k < 0) {
            r->eof = 1;
            break;
        }
        r->lineno++;
        r->sum->lines++;
        start_line(r, r->line);
    }
    r->in_fill = 0;
}

static void draw(run *r, int final) {
    size_t done = r->sum->ok + r->sum->failed;
    double el = (double)(ag__now_ns() - r->t0) / 1e9;
    double rate = el > 0 ? done / el : 0;
    size_t todo = r->total_lines > r->sum->skipped ? r->total_lines - r->sum->skipped : 0;
    double frac = todo ? (double)done / (double)todo : 0;
    if (frac > 1) frac = 1;
    char bar[31];
    int fillc = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fillc ? '#' : '.';
    bar[30] = 0;
    double eta = rate > 0 && todo > done ? (todo - done) / rate : 0;
    fprintf(stderr, "\r[%s] %zu/%zu  %.1f tasks/s  ETA %.0fs  errors %zu   %s", bar, done, todo, rate, eta,
            r->sum->failed, final ? "\n" : "");
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    draw(arg, 0);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ids already in the output; a torn last line (a kill mid-write) is cut.
 * With retry_failed, the error lines are taken out (the file rewritten
 * through a temporary one, renamed over it) and their ids run again. */
static int drop_failed(const ag_alloc_funcs *al, const char *path, size_t *dropped);
static int load_done(const char *path, idset *done, int retry_failed, size_t *dropped) {
    if (retry_failed) {
        int rc = drop_failed(done->al, path, dropped);
        if (rc) return rc;
    }
    int fd = open(path, O_RDWR);
    if (fd < 0) return errno == ENOENT ? 0 : AG_EINVAL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return AG_EINVAL;
    }
    FILE *f = fdopen(fd, "r+");
    if (!f) {
        close(fd);
        return AG_EINVAL;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    off_t good = 0, pos = 0;
    while ((k = getline(&line, &cap, f)) > 0) {
        pos += k;
        if (line[k - 1] != '\n') break; /* torn */
        good = pos;
        yajl_val v = ag__json_tree(done->al, line, NULL, 0);
        yajl_val id = v && YAJL_IS_OBJECT(v) ? field(v, "id") : NULL;
        char key[512], *json = NULL;
        if (id && id_of(done->al, id, key, sizeof key, &json) == 0 && idset_add(done, key)) {
            ag__free(done->al, json);
            ag__json_tree_free(done->al, v);
            free(line); /* getline's: libc */
            fclose(f);
            return AG_ENOMEM;
        }
        ag__free(done->al, json);
        ag__json_tree_free(done->al, v);
    }
    free(line); /* getline's: libc */
    if (good < st.st_size && ftruncate(fileno(f), good) != 0) {
        fclose(f);
        return AG_EINVAL;
    }
    fclose(f);
    return 0;
}

static int drop_failed(const ag_alloc_funcs *al, const char *path, size_t *dropped) {
    *dropped = 0;
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : AG_EINVAL;
    size_t plen = strlen(path);
    char *tmp = ag__malloc(al, plen + 16);
    if (!tmp) {
        fclose(f);
        return AG_ENOMEM;
    }
    snprintf(tmp, plen + 16, "%s.retry-tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        ag__free(al, tmp);
        fclose(f);
        return AG_EINVAL;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    int bad = 0;
    while ((k = getline(&line, &cap, f)) > 0) {
        if (line[k - 1] != '\n') break; /* torn: left out */
        yajl_val v = ag__json_tree(al, line, NULL, 0);
        int failed = v && YAJL_IS_OBJECT(v) && field(v, "error") && !field(v, "response");
        ag__json_tree_free(al, v);
        if (failed) (*dropped)++;
        else if (fwrite(line, 1, (size_t)k, o) != (size_t)k) bad = 1;
    }
    free(line); /* getline's: libc */
    fclose(f);
    if (fclose(o) != 0) bad = 1;
    int rc = 0;
    if (bad) rc = AG_EINVAL;
    else if (*dropped && rename(tmp, path) != 0) rc = AG_EINVAL;
    if (rc || !*dropped) unlink(tmp);
    ag__free(al, tmp);
    return rc;
}

static size_t count_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[65536];
    size_t n, lines = 0, last = '\n';
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
        last = (unsigned char)buf[n - 1];
    }
    fclose(f);
    return lines + (last != '\n');
}

int ag_batch_run(ag_agent *a, const ag_batch_options *o, ag_batch_summary *sum) {
    if (!a || !o || !o->in_path || !o->out_path || !sum) return AG_EINVAL;
    memset(sum, 0, sizeof *sum);
    run r;
    memset(&r, 0, sizeof r);
    r.seen.al = a->al;
    r.a = a;
    r.o = o;
    r.sum = sum;
    r.log = o->log ? o->log : stderr;
    r.conc = o->concurrency ? o->concurrency : 16;
    idset done = {0};
    done.al = a->al;
    int rc = load_done(o->out_path, &done, o->retry_failed, &sum->retried);
    if (rc) return rc;
    /* every id already written counts as seen: skipped when met in the input */
    for (size_t i = 0; i < done.cap; i++)
        if (done.slot[i]) idset_add(&r.seen, done.slot[i]);
    r.done_at_start = &done;
    r.in = strcmp(o->in_path, "-") ? fopen(o->in_path, "r") : stdin;
    r.out = open(o->out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (!r.in || r.out < 0) {
        if (r.in && r.in != stdin) fclose(r.in);
        if (r.out >= 0) close(r.out);
        idset_free(&done);
        idset_free(&r.seen);
        return AG_EINVAL;
    }
    r.total_lines = strcmp(o->in_path, "-") ? count_lines(o->in_path) : 0;
    r.bar = o->progress > 0 || (o->progress < 0 && isatty(2));
    struct event_base *base = ag_client_base(a->c);
    if (r.bar) {
        r.tick = event_new(base, -1, EV_PERSIST, tick_cb, &r);
        struct timeval tv = {0, 200000};
        event_add(r.tick, &tv);
    }
    r.t0 = ag__now_ns();
    fill(&r);
    while (r.inflight > 0 || (!r.eof && !r.stop)) {
        if (event_base_loop(base, EVLOOP_ONCE) < 0) break;
        fill(&r);
    }
    sum->wall_s = (double)(ag__now_ns() - r.t0) / 1e9;
    if (r.bar) {
        draw(&r, 1);
        event_free(r.tick);
    }
    sum->tasks_per_s = sum->wall_s > 0 ? (sum->ok + sum->failed) / sum->wall_s : 0;
    sum->tokens_per_s = sum->wall_s > 0 ? sum->tokens / sum->wall_s : 0;
    if (r.nlat) {
        qsort(r.lat, r.nlat, sizeof *r.lat, cmp_d);
        sum->p50_ms = r.lat[(size_t)(0.5 * (r.nlat - 1))];
        sum->p90_ms = r.lat[(size_t)(0.9 * (r.nlat - 1))];
        sum->p99_ms = r.lat[(size_t)(0.99 * (r.nlat - 1))];
    }
    ag__free(a->al, r.lat);
    free(r.line); /* getline's: libc */
    if (r.in != stdin) fclose(r.in);
    close(r.out);
    idset_free(&done);
    idset_free(&r.seen);
    return r.write_error ? AG_EINVAL : 0;
}

