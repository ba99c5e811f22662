/* cli/models.c - the model commands, with Ollama's names, arguments, tables
 * and messages: list/ls, ps, show, stop, pull, push, create, rm, cp, version,
 * ping. Tables are read from the server's JSON (every field it sends, not
 * only what the library decodes); --json prints that JSON instead. */
#include "cli/models.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <yajl/yajl_tree.h>

/* ---- one request: its JSON kept, its progress drawn ---- */


static void keep(one *x, const char *p, size_t n, int append) {
    if (!append) x->len = x->line_start = 0;
    if (x->len + n + 1 > x->cap) {
        size_t c = x->cap ? x->cap : 4096;
        while (c < x->len + n + 1) c *= 2;
        char *q = realloc(x->raw, c);
        if (!q) return;
        x->raw = q;
        x->cap = c;
    }
    memcpy(x->raw + x->len, p, n);
    x->len += n;
    x->raw[x->len] = 0;
}

static const char *jstr(yajl_val v, const char *key) {
    const char *path[] = {key, NULL};
    yajl_val s = yajl_tree_get(v, path, yajl_t_string);
    return s ? YAJL_GET_STRING(s) : NULL;
}
static int64_t jnum(yajl_val v, const char *key) {
    const char *path[] = {key, NULL};
    yajl_val s = yajl_tree_get(v, path, yajl_t_number);
    return s && YAJL_IS_INTEGER(s) ? YAJL_GET_INTEGER(s) : s ? (int64_t)YAJL_GET_DOUBLE(s) : -1;
}

/* a forwarded NDJSON progress stream (push, create): each whole line */
static void body_lines(one *x) {
    for (;;) {
        char *nl = memchr(x->raw + x->line_start, '\n', x->len - x->line_start);
        if (!nl) break;
        *nl = 0;
        char *line = x->raw + x->line_start;
        x->line_start = (size_t)(nl - x->raw) + 1;
        yajl_val v = *line ? yajl_tree_parse(line, NULL, 0) : NULL;
        if (!v) continue;
        const char *e = jstr(v, "error"), *st = jstr(v, "status");
        if (e) snprintf(x->err, sizeof x->err, "%s", e);
        else if (st) progress_step(x->pg, st, strlen(st), jstr(v, "digest"), jnum(v, "total"), jnum(v, "completed"));
        yajl_tree_free(v);
    }
}

void one_chunk(ag_request *r, const ag_chunk *ch, void *ud) {
    (void)r;
    one *x = ud;
    if (ch->kind == AG_CHUNK_RAW) keep(x, ch->text, ch->len, 0);
    else if (ch->kind == AG_CHUNK_PROGRESS)
        progress_step(x->pg, ch->text, ch->len, ch->digest, ch->total, ch->completed);
    else if (ch->kind == AG_CHUNK_BODY) {
        keep(x, ch->text, ch->len, 1);
        if (ch->index < 300) body_lines(x);
    }
}

void one_done(ag_request *r, const ag_result *res, void *ud) {
    (void)r;
    one *x = ud;
    g_req = NULL;
    x->done = 1;
    x->status = res->status;
    x->http = res->http_status;
    if (res->version) snprintf(x->version, sizeof x->version, "%s", res->version);
    if (res->status && !x->err[0]) {
        const char *e = res->error ? res->error : ag_strerror(res->status);
        /* "HTTP 404: model 'x' not found" -> the server's words, as Ollama prints them */
        if (!strncmp(e, "HTTP ", 5) && strchr(e, ':') && res->http_status) e = strchr(e, ':') + 2;
        snprintf(x->err, sizeof x->err, "%s", e);
    }
}

int wait_one(one *x, int rc) {
    if (rc) {
        x->status = rc;
        snprintf(x->err, sizeof x->err, "%s", ag_strerror(rc));
        return rc;
    }
    while (!x->done) event_base_loop(g_base, EVLOOP_ONCE);
    if (x->len && x->line_start < x->len) { /* a last line without its newline */
        keep(x, "\n", 1, 1);
        body_lines(x);
    }
    return x->status;
}

void say_error(const one *x) {
    fprintf(stderr, "%s: %s: %s\n", prog, ag_err_name(x->status), x->err[0] ? x->err : ag_strerror(x->status));
    auth_hint(x->status);
}

static int admin(ag_client *c, int op, const ag_model_params *p, one *x, int raw) {
    memset(x, 0, sizeof *x);
    ag_callbacks cb = {one_chunk, one_done, x};
    int rc = ag_admin(c, op, p, &cb, &g_req);
    if (rc == 0 && raw) ag_request_set_raw(g_req, 1);
    return wait_one(x, rc);
}

/* ---- how people read sizes and times ---- */
static void human_size(int64_t b, char *out, size_t n) {
    if (b < 0) snprintf(out, n, "-");
    else if (b >= 1000000000) snprintf(out, n, "%.1f GB", (double)b / 1e9);
    else if (b >= 1000000) snprintf(out, n, "%.0f MB", (double)b / 1e6);
    else if (b >= 1000) snprintf(out, n, "%.0f KB", (double)b / 1e3);
    else snprintf(out, n, "%lld B", (long long)b);
}

/* RFC 3339 ("2024-06-04T14:38:31.83753-07:00", "...Z") to Unix time; -1 */
static int64_t rfc3339(const char *s) {
    if (!s) return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &n) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t t = (int64_t)timegm(&tm);
    const char *z = s + n;
    if (*z == '.')
        for (z++; *z >= '0' && *z <= '9'; z++) {}
    int zh, zm;
    if ((*z == '+' || *z == '-') && sscanf(z + 1, "%2d:%2d", &zh, &zm) == 2)
        t -= (*z == '+' ? 1 : -1) * (int64_t)(zh * 3600 + zm * 60);
    return t;
}

/* "2 days ago", "4 minutes from now", as Ollama writes them */
static void human_time(const char *ts, char *out, size_t n, const char *forever) {
    int64_t t = rfc3339(ts);
    if (t < 0) {
        snprintf(out, n, "%s", ts && *ts ? ts : "-");
        return;
    }
    int64_t now = (int64_t)time(NULL), d = t - now;
    const char *dir = d < 0 ? "ago" : "from now";
    if (d < 0) d = -d;
    if (d > 10LL * 365 * 86400 && forever) {
        snprintf(out, n, "%s", forever);
        return;
    }
    static const struct {
        int64_t s;
        const char *one, *many;
    } u[] = {{365 * 86400LL, "year", "years"}, {30 * 86400LL, "month", "months"}, {7 * 86400LL, "week", "weeks"},
             {86400, "day", "days"},           {3600, "hour", "hours"},           {60, "minute", "minutes"}};
    for (size_t i = 0; i < sizeof u / sizeof *u; i++)
        if (d >= u[i].s) {
            int64_t k = d / u[i].s;
            if (k == 1) snprintf(out, n, "%s %s %s", i == 4 ? "About an" : "About a", u[i].one, dir);
            else snprintf(out, n, "%lld %s %s", (long long)k, u[i].many, dir);
            return;
        }
    if (d < 1) snprintf(out, n, "%s", dir[0] == 'a' ? "Less than a second ago" : "Less than a second from now");
    else snprintf(out, n, "%lld seconds %s", (long long)d, dir);
}

static yajl_val parse_raw(one *x) {
    char eb[128];
    yajl_val v = x->raw ? yajl_tree_parse(x->raw, eb, sizeof eb) : NULL;
    if (!v) fprintf(stderr, "%s: EJSON: the server's answer is not JSON\n", prog);
    return v;
}

static yajl_val models_of(yajl_val v) {
    const char *path[] = {"models", NULL};
    yajl_val m = yajl_tree_get(v, path, yajl_t_array);
    return m;
}

static const char *detail(yajl_val m, const char *key) {
    const char *path[] = {"details", key, NULL};
    yajl_val s = yajl_tree_get(m, path, yajl_t_string);
    return s ? YAJL_GET_STRING(s) : NULL;
}

static void short_id(const char *digest, char *out) {
    const char *d = digest ? digest : "";
    if (!strncmp(d, "sha256:", 7)) d += 7;
    snprintf(out, 13, "%s", d);
}

static int print_list(one *x, int names) {
    yajl_val v = parse_raw(x);
    if (!v) return EXIT_REQ;
    yajl_val ms = models_of(v);
    const char *dp[] = {"data", NULL};
    yajl_val oai = ms ? NULL : yajl_tree_get(v, dp, yajl_t_array); /* an OpenAI-compatible node's /v1/models */
    if (oai) ms = oai;
    if (!names) printf("%-40s %-14s %-9s %s\n", "NAME", "ID", "SIZE", "MODIFIED");
    for (size_t i = 0; ms && i < ms->u.array.len; i++) {
        yajl_val m = ms->u.array.values[i];
        const char *name = oai ? jstr(m, "id") : jstr(m, "name") ? jstr(m, "name") : jstr(m, "model");
        if (oai && !names) {
            char mod[64] = "-";
            int64_t created = jnum(m, "created");
            if (created > 0) {
                char ts[32];
                time_t t = (time_t)created;
                strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
                human_time(ts, mod, sizeof mod, NULL);
            }
            printf("%-40s %-14s %-9s %s\n", name ? name : "?", "-", "-", mod);
            continue;
        }
        if (names) {
            printf("%s\n", name ? name : "");
            continue;
        }
        char id[16], sz[32], mod[64];
        short_id(jstr(m, "digest"), id);
        human_size(jnum(m, "size"), sz, sizeof sz);
        human_time(jstr(m, "modified_at"), mod, sizeof mod, NULL);
        printf("%-40s %-14s %-9s %s\n", name ? name : "?", id, sz, mod);
    }
    yajl_tree_free(v);
    return 0;
}

static int print_ps(one *x) {
    yajl_val v = parse_raw(x);
    if (!v) return EXIT_REQ;
    yajl_val ms = models_of(v);
    printf("%-32s %-14s %-9s %-16s %-8s %s\n", "NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL");
    for (size_t i = 0; ms && i < ms->u.array.len; i++) {
        yajl_val m = ms->u.array.values[i];
        const char *name = jstr(m, "name") ? jstr(m, "name") : jstr(m, "model");
        char id[16], sz[32], proc[32], ctx[24] = "-", until[64];
        short_id(jstr(m, "digest"), id);
        int64_t size = jnum(m, "size"), vram = jnum(m, "size_vram"), cl = jnum(m, "context_length");
        human_size(size, sz, sizeof sz);
        if (size <= 0 || vram < 0) snprintf(proc, sizeof proc, "-");
        else if (vram == 0) snprintf(proc, sizeof proc, "100%% CPU");
        else if (vram >= size) snprintf(proc, sizeof proc, "100%% GPU");
        else {
            int gpu = (int)(100.0 * (double)vram / (double)size + 0.5);
            snprintf(proc, sizeof proc, "%d%%/%d%% CPU/GPU", 100 - gpu, gpu);
        }
        if (cl > 0) snprintf(ctx, sizeof ctx, "%lld", (long long)cl);
        const char *exp = jstr(m, "expires_at");
        if (!exp) snprintf(until, sizeof until, "-");
        else if (rfc3339(exp) >= 0 && rfc3339(exp) <= (int64_t)time(NULL)) snprintf(until, sizeof until, "Stopping...");
        else human_time(exp, until, sizeof until, "Forever");
        printf("%-32s %-14s %-9s %-16s %-8s %s\n", name ? name : "?", id, sz, proc, ctx, until);
    }
    yajl_tree_free(v);
    return 0;
}

/* the model_info key ending in suffix ("llama.context_length") */
static int64_t info_num(yajl_val v, const char *suffix) {
    const char *path[] = {"model_info", NULL};
    yajl_val mi = yajl_tree_get(v, path, yajl_t_object);
    size_t sl = strlen(suffix);
    for (size_t i = 0; mi && i < mi->u.object.len; i++) {
        const char *k = mi->u.object.keys[i];
        size_t kl = strlen(k);
        yajl_val n = mi->u.object.values[i];
        if (kl > sl && !strcmp(k + kl - sl, suffix) && YAJL_IS_INTEGER(n)) return YAJL_GET_INTEGER(n);
    }
    return -1;
}

static void show_row(const char *k, const char *v) { printf("    %-20s%s\n", k, v); }

/* Ollama's layout: Model, Capabilities, Parameters, System, License */
static int print_show(one *x) {
    yajl_val v = parse_raw(x);
    if (!v) return EXIT_REQ;
    char b[64];
    printf("  Model\n");
    const char *arch = detail(v, "family");
    const char *ap[] = {"model_info", "general.architecture", NULL};
    yajl_val a = yajl_tree_get(v, ap, yajl_t_string);
    if (a) arch = YAJL_GET_STRING(a);
    if (arch) show_row("architecture", arch);
    if (detail(v, "parameter_size")) show_row("parameters", detail(v, "parameter_size"));
    int64_t n;
    if ((n = info_num(v, ".context_length")) > 0) snprintf(b, sizeof b, "%lld", (long long)n), show_row("context length", b);
    if ((n = info_num(v, ".embedding_length")) > 0) snprintf(b, sizeof b, "%lld", (long long)n), show_row("embedding length", b);
    if (detail(v, "quantization_level")) show_row("quantization", detail(v, "quantization_level"));
    const char *cp[] = {"capabilities", NULL};
    yajl_val caps = yajl_tree_get(v, cp, yajl_t_array);
    if (caps && caps->u.array.len) {
        printf("\n  Capabilities\n");
        for (size_t i = 0; i < caps->u.array.len; i++)
            if (YAJL_IS_STRING(caps->u.array.values[i])) printf("    %s\n", YAJL_GET_STRING(caps->u.array.values[i]));
    }
    const char *params = jstr(v, "parameters");
    if (params && *params) {
        printf("\n  Parameters\n");
        /* "stop    \"<|eot|>\"\ntemperature 0.7": one a line, name and value aligned */
        for (const char *p = params; *p;) {
            const char *e = strchr(p, '\n');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            const char *sp = p;
            while (sp < p + l && *sp != ' ' && *sp != '\t') sp++;
            const char *val = sp;
            while (val < p + l && (*val == ' ' || *val == '\t')) val++;
            if (l) printf("    %-20.*s%.*s\n", (int)(sp - p), p, (int)(p + l - val), val);
            p = e ? e + 1 : p + l;
        }
    }
    const char *sys = jstr(v, "system");
    if (sys && *sys) printf("\n  System\n    %s\n", sys);
    const char *lic = jstr(v, "license");
    if (lic && *lic) {
        printf("\n  License\n");
        int k = 0;
        for (const char *p = lic; *p && k < 2; k++) { /* its first lines, as Ollama shows */
            const char *e = strchr(p, '\n');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            printf("    %.*s\n", (int)l, p);
            p = e ? e + 1 : p + l;
        }
    }
    printf("\n");
    yajl_tree_free(v);
    return 0;
}

/* ---- forwarding a body (push, create, blobs): what the library has no call for ---- */
int forward(ag_client *c, const char *method, const char *path, const char *body, size_t len,
                   const char *model, progress *pg, one *x) {
    memset(x, 0, sizeof *x);
    x->pg = pg;
    ag_forward_params f;
    memset(&f, 0, sizeof f);
    f.method = method;
    f.path = path;
    f.body = body;
    f.body_len = len;
    f.model = model;
    f.stream = 1;
    ag_callbacks cb = {one_chunk, one_done, x};
    int rc = wait_one(x, ag_forward(c, &f, &cb, &g_req));
    if (!rc && x->err[0]) { /* an error line inside a 200 stream */
        x->status = AG_ESERVER;
        rc = AG_ESERVER;
    }
    return rc;
}

/* JSON string into a growing buffer */

void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 1024;
        while (c < b->len + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) exit(EXIT_REQ);
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
void sb_json(sbuf *b, const char *s, size_t n) {
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\', esc[1] = (char)ch;
            sb_add(b, esc, 2);
        } else if (ch == '\n') sb_add(b, "\\n", 2);
        else if (ch == '\t') sb_add(b, "\\t", 2);
        else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            sb_add(b, esc, 6);
        } else sb_add(b, (const char *)&ch, 1);
    }
    sb_add(b, "\"", 1);
}

int is_num(const char *s) {
    if (!*s) return 0;
    char *e;
    strtod(s, &e);
    return *e == 0;
}

/* ---- the commands ---- */
static void print_json_str(const char *s) {
    sbuf b = {0};
    sb_json(&b, s ? s : "", s ? strlen(s) : 0);
    fputs(b.p, stdout);
    free(b.p);
}

/* the pool's tables as JSON (--json): a node a row, or a model a row */
static void pool_json(const ag_node_info *info, size_t n, int op) {
    printf(op == AG_OP_PS ? "{\"nodes\":[" : "{\"models\":[");
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        const ag_node_info *x = &info[i];
        if (op == AG_OP_PS) {
            printf("%s{\"name\":", i ? "," : "");
            print_json_str(x->name);
            printf(",\"state\":\"%s\",\"version\":", ag_node_state_name(x->state));
            print_json_str(x->version);
            printf(",\"in_flight\":%u,\"slots\":%u,\"slots_source\":", x->in_flight, x->slots);
            print_json_str(x->slots_source);
            printf(",\"requests\":%llu,\"errors\":%llu,\"retries\":%llu,\"ttft_p50_ms\":%.3f,\"e2e_p99_ms\":%.3f,"
                   "\"tokens_per_s\":%.3f,\"loaded\":[",
                   (unsigned long long)x->requests, (unsigned long long)x->errors, (unsigned long long)x->retries,
                   x->ttft_p50_ms, x->e2e_p99_ms, x->tokens_per_s);
            for (size_t j = 0; j < x->n_loaded; j++) {
                if (j) putchar(',');
                print_json_str(x->loaded[j]);
            }
            printf("]}");
            continue;
        }
        for (size_t j = 0; j < x->n_models; j++) {
            int seen = 0, count = 0;
            for (size_t a = 0; a < n && !seen; a++)
                for (size_t b = 0; b < info[a].n_models; b++)
                    if (!strcmp(info[a].models[b], x->models[j])) {
                        if (a < i || (a == i && b < j)) seen = 1;
                        else count++;
                        break;
                    }
            if (seen) continue;
            printf("%s{\"name\":", first ? "" : ",");
            print_json_str(x->models[j]);
            printf(",\"nodes\":%d}", count);
            first = 0;
        }
    }
    printf("]}\n");
}

static int pool_tables(ag_client *c, int op, int json) {
    /* the cluster as the pool sees it, after one probe of every node */
    wait_probes(c);
    int up = 0;
    ag_node_info info[256];
    size_t n = ag_pool_nodes(c, info, 256);
    if (n > 256) n = 256;
    for (size_t i = 0; i < n; i++) up += info[i].state == AG_NODE_UP;
    if (json) {
        pool_json(info, n, op);
    } else if (op == AG_OP_PS) {
        print_nodes(stdout, c);
    } else {
        printf("%-40s %s\n", "NAME", "NODES");
        for (size_t i = 0; i < n && i < 256; i++)
            for (size_t j = 0; j < info[i].n_models; j++) {
                const char *m = info[i].models[j];
                int seen = 0, count = 0;
                for (size_t a = 0; a < n && a < 256 && !seen; a++)
                    for (size_t b = 0; b < info[a].n_models; b++)
                        if (strcmp(info[a].models[b], m) == 0) {
                            if (a < i || (a == i && b < j)) seen = 1;
                            else count++;
                            break;
                        }
                if (!seen) printf("%-40s %d\n", m, count);
            }
    }
    if (up == 0) {
        fprintf(stderr, "%s: ENONODE: no node answered\n", prog);
        return EXIT_REQ;
    }
    return 0;
}

/* stop: Ollama's way, a generate with keep_alive 0 once the model is seen loaded */
static int stop_one(ag_client *c, const char *model) {
    one x;
    ag_model_params mp;
    memset(&mp, 0, sizeof mp);
    if (admin(c, AG_OP_PS, &mp, &x, 1)) {
        say_error(&x);
        free(x.raw);
        return EXIT_REQ;
    }
    yajl_val v = parse_raw(&x);
    free(x.raw);
    if (!v) return EXIT_REQ;
    yajl_val ms = models_of(v);
    int found = 0;
    size_t ml = strlen(model);
    for (size_t i = 0; ms && i < ms->u.array.len && !found; i++) {
        const char *n = jstr(ms->u.array.values[i], "name");
        if (!n) n = jstr(ms->u.array.values[i], "model");
        /* "llama3.2" names "llama3.2:latest" */
        found = n && (!strcmp(n, model) || (!strchr(model, ':') && !strncmp(n, model, ml) && !strcmp(n + ml, ":latest")));
    }
    yajl_tree_free(v);
    if (!found) {
        fprintf(stderr, "%s: ENOTFOUND: couldn't find a running model '%s' to stop\n", prog, model);
        return EXIT_REQ;
    }
    memset(&x, 0, sizeof x);
    ag_generate_params gp;
    memset(&gp, 0, sizeof gp);
    gp.model = model;
    gp.prompt = "";
    gp.gen.keep_alive = "0";
    ag_callbacks cb = {NULL, one_done, &x};
    if (wait_one(&x, ag_generate(c, &gp, &cb, &g_req))) {
        say_error(&x);
        return EXIT_REQ;
    }
    return 0;
}

int cmd_admin(int argc, char **argv, const char *name) {
    opts o;
    parse_common(argc, argv, 2, &o);
    int op = 0;
    if (!strcmp(name, "list")) op = AG_OP_TAGS;
    else if (!strcmp(name, "ps")) op = AG_OP_PS;
    else if (!strcmp(name, "show")) op = AG_OP_SHOW;
    else if (!strcmp(name, "version")) op = AG_OP_VERSION;
    else if (!strcmp(name, "pull")) op = AG_OP_PULL;
    else if (!strcmp(name, "rm")) op = AG_OP_DELETE;
    else if (!strcmp(name, "cp")) op = AG_OP_COPY;
    else if (!strcmp(name, "ping")) op = AG_OP_PING;
    int is_push = !strcmp(name, "push"), is_stop = !strcmp(name, "stop");
    const char *first = o.nargs > 0 ? o.args[0] : o.model;
    int takes_model = op == AG_OP_SHOW || op == AG_OP_PULL || op == AG_OP_DELETE || op == AG_OP_COPY || is_push || is_stop;
    if (takes_model && !first) die_usage("%s needs a model name (try --help)", name);
    if (op == AG_OP_COPY && o.nargs != 2) die_usage("cp needs SOURCE and DESTINATION%s", "");
    if ((op == AG_OP_SHOW || op == AG_OP_PULL) && o.nargs > 1) die_usage("%s takes one model", name);
    if (!takes_model && o.nargs) die_usage("%s takes no arguments", name);
    if ((o.api || (o.host && !strncmp(o.host, "openai+", 7))) && takes_model)
        die_usage("'%s' is Ollama's model management: not part of the OpenAI-compatible API", name);
    ag_client *c = make_client(&o);
    int rc = 0;
    one x;
    ag_model_params p;
    memset(&p, 0, sizeof p);
    p.insecure = o.insecure;
    p.verbose = o.verbose;
    p.no_stream = o.no_stream;
    if (g_is_pool && (op == AG_OP_PS || op == AG_OP_TAGS) && !o.names) {
        rc = pool_tables(c, op, o.json);
    } else if (is_stop) {
        for (int i = 0; i < (o.nargs ? o.nargs : 1) && !g_interrupted; i++)
            if (stop_one(c, o.nargs ? o.args[i] : first)) rc = EXIT_REQ;
    } else if (op == AG_OP_DELETE) { /* every model named, each said */
        for (int i = 0; i < (o.nargs ? o.nargs : 1) && !g_interrupted; i++) {
            p.model = o.nargs ? o.args[i] : first;
            if (admin(c, op, &p, &x, o.json)) {
                say_error(&x);
                rc = EXIT_REQ;
            } else if (!o.json) printf("deleted '%s'\n", p.model);
            free(x.raw);
        }
    } else if (op == AG_OP_PULL || is_push) {
        progress *pg = o.json ? NULL : progress_new(isatty(2));
        if (is_push) {
            sbuf b = {0};
            sb_str(&b, "{\"model\":");
            sb_json(&b, first, strlen(first));
            sb_str(&b, o.insecure ? ",\"insecure\":true,\"stream\":true}" : ",\"stream\":true}");
            forward(c, "POST", "/api/push", b.p, b.len, first, pg, &x);
            free(b.p);
        } else {
            p.model = first;
            memset(&x, 0, sizeof x);
            x.pg = pg;
            ag_callbacks cb = {one_chunk, one_done, &x};
            int r = ag_admin(c, op, &p, &cb, &g_req);
            if (r == 0 && o.json) ag_request_set_raw(g_req, 1);
            wait_one(&x, r);
        }
        progress_end(pg);
        if (o.json && x.raw) fwrite(x.raw, 1, x.len, stdout), fputc('\n', stdout);
        if (x.status) say_error(&x), rc = EXIT_REQ;
        free(x.raw);
    } else {
        p.model = first;
        p.destination = o.nargs > 1 ? o.args[1] : NULL;
        int raw = o.json || op == AG_OP_TAGS || op == AG_OP_PS || op == AG_OP_SHOW;
        if (admin(c, op, &p, &x, raw)) {
            if (!(g_interrupted && x.status == AG_ECANCELED)) say_error(&x);
            rc = EXIT_REQ;
        } else if (o.json) {
            if (x.raw) printf("%.*s\n", (int)x.len, x.raw);
        } else if (op == AG_OP_TAGS) rc = print_list(&x, o.names);
        else if (op == AG_OP_PS) rc = print_ps(&x);
        else if (op == AG_OP_SHOW) rc = print_show(&x);
        else if (op == AG_OP_COPY) printf("copied '%s' to '%s'\n", p.model, p.destination);
        else if (op == AG_OP_VERSION)
            printf("server version: %s\nclient version: %s\n", x.version[0] ? x.version : "?", ag_version());
        free(x.raw);
    }
    ag_client_free(c);
    free_loop();
    if (g_interrupted) return EXIT_INT;
    return rc;
}
