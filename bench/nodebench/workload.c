/* bench/nodebench/workload.c - what `agents bench` sends: length
 * distributions, random variates for arrivals, prompts built to a length,
 * and datasets and traces read from files. */
#include "nodebench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "core/base/json.h"

double nb_rand01(uint64_t *s) { /* xorshift64*, 53 bits, never 0 */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return ((double)((*s * 2685821657736338717ull) >> 11) + 0.5) / 9007199254740992.0;
}

static double normal01(uint64_t *s) { /* Box-Muller */
    double u = nb_rand01(s), v = nb_rand01(s);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* Marsaglia and Tsang; shape < 1 by boosting: G(k) = G(k + 1) U^(1/k) */
double nb_gamma(uint64_t *s, double k) {
    if (k < 1) return nb_gamma(s, k + 1) * pow(nb_rand01(s), 1 / k);
    double d = k - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (int tries = 0; tries < 1000; tries++) {
        double x = normal01(s), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = nb_rand01(s);
        if (u < 1 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1 - v + log(v))) return d * v;
    }
    return k; /* not reached in practice: the mean */
}

int nb_dist_parse(const char *s, nb_dist *d) {
    memset(d, 0, sizeof *d);
    char kind[16] = "fixed";
    const char *colon = strchr(s, ':');
    if (colon) {
        if ((size_t)(colon - s) >= sizeof kind) return -1;
        memcpy(kind, s, (size_t)(colon - s));
        kind[colon - s] = 0;
        s = colon + 1;
    }
    char *e;
    d->a = strtod(s, &e);
    if (e == s) return -1;
    if (*e == ',') {
        const char *t = e + 1;
        d->b = strtod(t, &e);
        if (e == t) return -1;
    }
    if (*e) return -1;
    if (!strcmp(kind, "fixed")) d->kind = NB_D_FIXED;
    else if (!strcmp(kind, "uniform")) d->kind = NB_D_UNIFORM;
    else if (!strcmp(kind, "normal")) d->kind = NB_D_NORMAL;
    else if (!strcmp(kind, "lognormal")) d->kind = NB_D_LOGNORMAL;
    else return -1;
    if (!(d->a >= 1) || d->a > 1e6 || d->b < 0 || d->b > 1e6) return -1;
    if (d->kind == NB_D_UNIFORM && d->b < d->a) return -1;
    if (d->kind == NB_D_FIXED && d->b) return -1;
    return 0;
}

int nb_dist_sample(const nb_dist *d, uint64_t *s) {
    double x;
    switch (d->kind) {
    case NB_D_FIXED: x = d->a; break;
    case NB_D_UNIFORM: x = d->a + floor(nb_rand01(s) * (d->b - d->a + 1)); break;
    case NB_D_NORMAL: x = d->a + d->b * normal01(s); break;
    case NB_D_LOGNORMAL: { /* the mean and SD asked of the lengths themselves */
        double s2 = log(1 + d->b * d->b / (d->a * d->a)), mu = log(d->a) - s2 / 2;
        x = exp(mu + sqrt(s2) * normal01(s));
        break;
    }
    default: return 0;
    }
    x = floor(x + 0.5);
    return x < 1 ? 1 : x > 1e6 ? 1000000 : (int)x;
}

/* words of ordinary English, so that tokenizers count them as they count text */
char *nb_make_text(int tokens, double cpt, uint64_t seed) {
    static const char *w[] = {"the", "report", "shows", "that", "our", "system", "handled", "every", "request",
                              "within", "its", "budget", "while", "traffic", "grew", "steadily", "across", "all",
                              "regions", "and", "teams", "reviewed", "results", "weekly", "before", "release",
                              "notes", "were", "written", "for", "customers", "today"};
    size_t want = (size_t)(tokens * (cpt > 0 ? cpt : 4) + 0.5), n = 0;
    if (want < 1) want = 1;
    char *t = malloc(want + 24);
    if (!t) return NULL;
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 1;
    while (n < want) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        n += (size_t)snprintf(t + n, want + 24 - n, "%s ", w[r % 32]);
    }
    t[want] = 0;
    return t;
}

/* ---- datasets and traces ---- */
typedef struct arena {
    char **blocks;
    size_t n;
} arena;

static const char *keep(arena *a, const char *s) {
    char **b = realloc(a->blocks, (a->n + 1) * sizeof *b);
    if (!b) return NULL;
    a->blocks = b;
    char *c = strdup(s ? s : "");
    if (c) a->blocks[a->n++] = c;
    return c;
}

typedef struct loader {
    arena mem;
    nb_item *v;
    size_t n, cap;
    const char **strs; /* roles and contents of every item, back to back */
    size_t ns, scap;
} loader;

static int push_str(loader *l, const char *s) {
    if (l->ns == l->scap) {
        size_t nc = l->scap ? l->scap * 2 : 256;
        const char **ns = realloc(l->strs, nc * sizeof *ns);
        if (!ns) return -1;
        l->strs = ns;
        l->scap = nc;
    }
    const char *k = keep(&l->mem, s);
    if (!k) return -1;
    l->strs[l->ns++] = k;
    return 0;
}

static nb_item *push_item(loader *l) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        nb_item *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return NULL;
        l->v = nv;
        l->cap = nc;
    }
    nb_item *it = &l->v[l->n++];
    memset(it, 0, sizeof *it);
    it->at_ms = -1;
    return it;
}

/* one object: {"prompt"} | {"messages"} | {"conversations"} (ShareGPT), with
 * optional lengths and a timestamp. Messages are stored as (role, content)
 * pairs starting at index `first` of l->strs; an item records the offset in
 * roles (fixed up to pointers once every string is in). */
static const char *add_object(loader *l, yajl_val o, int trace) {
    if (!YAJL_IS_OBJECT(o)) return "not a JSON object";
    size_t first = l->ns;
    const char *prompt = ag__json_str(o, "prompt");
    const char *path_m[] = {"messages", NULL}, *path_c[] = {"conversations", NULL};
    yajl_val msgs = yajl_tree_get(o, path_m, yajl_t_array), conv = yajl_tree_get(o, path_c, yajl_t_array);
    int out_len = (int)ag__json_num(o, "output_len", ag__json_num(o, "output_length", 0));
    int in_len = (int)ag__json_num(o, "input_len", ag__json_num(o, "input_length", 0));
    size_t count = 0;
    if (prompt) {
        if (push_str(l, "user") || push_str(l, prompt)) return "out of memory";
        count = 1;
    } else if (msgs) {
        for (size_t i = 0; i < msgs->u.array.len; i++) {
            yajl_val m = msgs->u.array.values[i];
            const char *role = ag__json_str(m, "role"), *content = ag__json_str(m, "content");
            if (!role || !content) return "a message without a string role and content";
            if (push_str(l, role) || push_str(l, content)) return "out of memory";
            count++;
        }
    } else if (conv) {
        /* ShareGPT: the first human turn is the prompt; the reply's length
         * (about 4 characters a token) is the output length */
        for (size_t i = 0; i < conv->u.array.len && !count; i++) {
            yajl_val m = conv->u.array.values[i];
            const char *from = ag__json_str(m, "from"), *value = ag__json_str(m, "value");
            if (!from || !value || (strcmp(from, "human") && strcmp(from, "user"))) continue;
            if (push_str(l, "user") || push_str(l, value)) return "out of memory";
            count = 1;
            if (i + 1 < conv->u.array.len && !out_len) {
                const char *reply = ag__json_str(conv->u.array.values[i + 1], "value");
                if (reply) out_len = (int)(strlen(reply) / 4) + 1;
            }
        }
        if (!count) return NULL; /* a conversation without a human turn: skipped, as other tools do */
    } else if (!in_len) {
        return "no \"prompt\", \"messages\", \"conversations\" or \"input_len\"";
    }
    nb_item *it = push_item(l);
    if (!it) return "out of memory";
    it->roles = (const char *const *)(uintptr_t)first; /* an offset until fixed up */
    it->n = count;
    it->out_len = out_len > 0 ? out_len : 0;
    it->in_len = in_len > 0 ? in_len : 0;
    double ts = ag__json_num(o, "timestamp", -1);
    if (trace && ts < 0) return "no \"timestamp\" (ms) on a trace line";
    it->at_ms = ts;
    return NULL;
}

static char *slurp(const char *path, size_t cap, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t n = 0, c = 1 << 16;
    char *b = malloc(c);
    size_t k;
    while (b && (k = fread(b + n, 1, c - n - 1, f)) > 0) {
        n += k;
        if (n + 1 == c) {
            if (c >= cap) {
                free(b);
                b = NULL;
                break;
            }
            char *nb = realloc(b, c * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            c *= 2;
        }
    }
    fclose(f);
    if (b) b[n] = 0;
    *len = n;
    return b;
}

static int by_arrival(const void *a, const void *b) {
    const nb_item *x = a, *y = b;
    if (x->at_ms != y->at_ms) return x->at_ms < y->at_ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int nb_items_load(const char *path, int trace, nb_items *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = slurp(path, (size_t)1 << 30, &len); /* 1 GiB: the ShareGPT file is 670 MB */
    if (!text) {
        snprintf(err, errlen, "cannot read %s (or it is over 1 GiB)", path);
        return -1;
    }
    loader l;
    memset(&l, 0, sizeof l);
    const char *bad = NULL;
    size_t lineno = 0;
    char yerr[256];
    const char *p = text;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    if (*p == '[') { /* one JSON array: ShareGPT, or objects of the JSONL kinds */
        yajl_val root = yajl_tree_parse(text, yerr, sizeof yerr);
        if (!root || !YAJL_IS_ARRAY(root)) bad = root ? "not an array" : "not JSON";
        for (size_t i = 0; !bad && i < root->u.array.len; i++) {
            lineno = i + 1;
            bad = add_object(&l, root->u.array.values[i], trace);
        }
        yajl_tree_free(root);
    } else { /* JSON Lines */
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line && !bad; line = strtok_r(NULL, "\n", &save)) {
            lineno++;
            char *q = line;
            while (*q == ' ' || *q == '\t' || *q == '\r') q++;
            if (!*q) continue;
            yajl_val o = yajl_tree_parse(q, yerr, sizeof yerr);
            bad = o ? add_object(&l, o, trace) : "not JSON";
            yajl_tree_free(o);
        }
    }
    free(text);
    if (!bad && !l.n) bad = "no requests in it";
    if (bad) {
        snprintf(err, errlen, "%s: entry %zu: %s", path, lineno, bad);
        for (size_t i = 0; i < l.mem.n; i++) free(l.mem.blocks[i]);
        free(l.mem.blocks);
        free(l.v);
        free(l.strs);
        return -1;
    }
    /* roles and contents: two arrays of pointers, built from the pairs */
    const char **roles = malloc((l.ns / 2 + 1) * sizeof *roles), **contents = malloc((l.ns / 2 + 1) * sizeof *contents);
    if (!roles || !contents) {
        free(roles);
        free(contents);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i + 1 < l.ns; i += 2) {
        roles[i / 2] = l.strs[i];
        contents[i / 2] = l.strs[i + 1];
    }
    double t0 = -1;
    for (size_t i = 0; i < l.n; i++) {
        size_t off = (size_t)(uintptr_t)l.v[i].roles / 2;
        l.v[i].roles = roles + off;
        l.v[i].contents = contents + off;
        if (l.v[i].at_ms >= 0 && (t0 < 0 || l.v[i].at_ms < t0)) t0 = l.v[i].at_ms;
    }
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i].at_ms >= 0) l.v[i].at_ms -= t0; /* from the first */
        l.v[i].seq = i;
    }
    if (trace) qsort(l.v, l.n, sizeof *l.v, by_arrival); /* a trace's lines in time order */
    free(l.strs);
    /* everything in one list for nb_items_free: the arena, the two arrays */
    void **mem = malloc((l.mem.n + 4) * sizeof *mem);
    if (!mem) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < l.mem.n; i++) mem[k++] = l.mem.blocks[i];
    mem[k++] = roles;
    mem[k++] = contents;
    mem[k] = NULL;
    free(l.mem.blocks);
    out->v = l.v;
    out->n = l.n;
    out->mem = mem;
    return 0;
}

void nb_items_free(nb_items *it) {
    if (it->mem)
        for (void **m = it->mem; *m; m++) free(*m);
    free(it->mem);
    free(it->v);
    memset(it, 0, sizeof *it);
}
