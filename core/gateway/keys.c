/* core/gateway/keys.c - the gateway's clients: keys from a file, found by the
 * digest of the presented secret and compared in constant time, with per-key
 * limits (requests and tokens in any minute, requests at once), allowed
 * models, a priority class, the right to manage models ("admin"), and their
 * figures. A request over its key's limit is refused with 429 and
 * Retry-After, or waits (the key's "over_limit": "wait") until it fits.
 *
 * The keys in force are a table (an array and two hash indexes); a file is
 * parsed into a new table aside (on a thread of its own for a reload of a
 * running gateway), which then replaces the old one on the loop in one short
 * step: keys that stay keep their state and figures, removed ones stop at
 * once (their waiting requests get 403) and are freed when no connection
 * refers to them. The table's memory is libc's: a reload's thread allocates
 * it, and a caller's allocator need not be thread-safe. */
#include "core/gateway/gateway_internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <yajl/yajl_tree.h>

#include "core/base/clock.h"
#include "core/base/hash.h"
#include "core/base/json.h"
#include "core/base/mem.h"

#define MAX_WAIT_S 60     /* a waiting request gets 429 after this long */
#define MAX_WAITING 1024  /* requests a key may have waiting; more get 429 */
#define MAX_KEYS 4000000  /* lines a keys file may hold (positions fit the indexes) */
#define PRIORITY_MAX 1000 /* a numeric "priority" is an integer in [-PRIORITY_MAX, PRIORITY_MAX] */

static void sha256(const char *s, size_t n, unsigned char out[32]) {
    unsigned int ol = 32;
    if (!EVP_Digest(s, n, out, &ol, EVP_sha256(), NULL)) memset(out, 0, 32);
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void wake_cb(evutil_socket_t fd, short what, void *arg);

/* ---- the table ---- */
static uint64_t name_slot(const char *name) { return ag__mix64(ag__fnv1a(name)); }
static uint64_t hash_slot(const unsigned char h[32]) {
    uint64_t x;
    memcpy(&x, h, 8); /* a digest's bytes are already uniform */
    return x;
}

/* the position of the key named name in t, or -1 */
static long tab_find_name(const gktab *t, const char *name) {
    if (!t->cap) return -1;
    for (size_t i = name_slot(name) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        uint32_t v = t->by_name[i];
        if (!v) return -1;
        if (strcmp(t->keys[v - 1]->name, name) == 0) return (long)v - 1;
    }
}

static void tab_free(gktab *t) {
    free(t->keys);
    free(t->by_name);
    free(t->by_hash);
    memset(t, 0, sizeof *t);
}

static void key_free(gkey *k) {
    if (k->wake_set) event_del(&k->wake);
    free(k->models);
    free(k->win);
    free(k->ttft_ms);
    free(k);
}

/* one reference fewer: a removed key nobody refers to is freed */
static void key_unref(gkey *k) {
    if (k->refs) k->refs--;
    if (!k->refs && k->removed && !k->waiting) key_free(k);
}

void ag__gw_key_hold(gconn *gc, gkey *k) {
    gkey *old = gc->key;
    if (old == k) return;
    if (k) k->refs++;
    gc->key = k;
    if (old) key_unref(old);
}

/* ---- parsing ---- */

/* One line of the file into k (a fresh record). NULL, or what is wrong. */
static const char *parse_key(yajl_val o, gkey *k) {
    if (!YAJL_IS_OBJECT(o)) return "not a JSON object";
    const char *name = ag__json_str(o, "name"), *secret = ag__json_str(o, "secret"), *hash = ag__json_str(o, "sha256");
    if (!name || !*name || strlen(name) >= sizeof k->name) return "no \"name\" (1 to 63 characters)";
    for (const char *c = name; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) return "a \"name\" with a quote, backslash or control character";
    if (!!secret == !!hash) return "one of \"secret\" or \"sha256\" (the secret's SHA-256, in hex)";
    if (secret) {
        if (strlen(secret) < 8) return "a \"secret\" shorter than 8 characters";
        sha256(secret, strlen(secret), k->hash);
    } else {
        if (strlen(hash) != 64) return "\"sha256\" is not 64 hex digits";
        for (int i = 0; i < 32; i++) {
            int a = hexval(hash[2 * i]), b = hexval(hash[2 * i + 1]);
            if (a < 0 || b < 0) return "\"sha256\" is not 64 hex digits";
            k->hash[i] = (unsigned char)(a * 16 + b);
        }
    }
    snprintf(k->name, sizeof k->name, "%s", name);
    k->rpm = ag__json_num(o, "rpm", 0);
    k->tpm = ag__json_num(o, "tpm", 0);
    double conc = ag__json_num(o, "concurrent", 0);
    if (!(k->rpm >= 0 && k->rpm <= 1e12) || !(k->tpm >= 0 && k->tpm <= 1e15) || !(conc >= 0 && conc <= 1e6))
        return "a negative or huge limit (rpm, tpm, concurrent)";
    k->concurrent = (unsigned)conc;
    const char *pr = ag__json_str(o, "priority");
    const char *pp[] = {"priority", NULL};
    yajl_val pv = yajl_tree_get(o, pp, yajl_t_any);
    if (pr) {
        if (!strcmp(pr, "interactive")) k->priority = AG_PRIORITY_INTERACTIVE;
        else if (!strcmp(pr, "default")) k->priority = AG_PRIORITY_DEFAULT;
        else if (!strcmp(pr, "batch")) k->priority = AG_PRIORITY_BATCH;
        else return "\"priority\" is interactive, default or batch";
    } else if (pv && YAJL_IS_NUMBER(pv)) {
        double d = YAJL_GET_DOUBLE(pv);
        if (!YAJL_IS_INTEGER(pv) || !(d >= -PRIORITY_MAX && d <= PRIORITY_MAX) ||
            YAJL_GET_INTEGER(pv) < -PRIORITY_MAX || YAJL_GET_INTEGER(pv) > PRIORITY_MAX)
            return "a numeric \"priority\" is an integer from -1000 to 1000";
        k->priority = (int)YAJL_GET_INTEGER(pv);
    } else if (pv) {
        return "\"priority\" is interactive, default, batch or an integer";
    } else {
        k->priority = AG_PRIORITY_DEFAULT;
    }
    const char *adp[] = {"admin", NULL};
    yajl_val ad = yajl_tree_get(o, adp, yajl_t_any);
    if (ad && !YAJL_IS_TRUE(ad) && !YAJL_IS_FALSE(ad)) return "\"admin\" is true or false";
    k->admin = ad && YAJL_IS_TRUE(ad);
    const char *ol = ag__json_str(o, "over_limit");
    if (ol && strcmp(ol, "refuse") && strcmp(ol, "wait")) return "\"over_limit\" is refuse or wait";
    k->wait = ol && !strcmp(ol, "wait");
    /* allowed models: names, or a prefix ending in '*' */
    const char *mp[] = {"models", NULL};
    yajl_val ms = yajl_tree_get(o, mp, yajl_t_array);
    if (ms) {
        size_t n = 0;
        for (size_t i = 0; i < ms->u.array.len; i++) {
            yajl_val m = ms->u.array.values[i];
            if (!YAJL_IS_STRING(m)) return "\"models\" is not a list of names";
            if (strchr(m->u.string, '\n')) return "a model name with a line break";
            n += strlen(m->u.string) + 1;
            if (n >= 1024) return "\"models\" is too long (1 KiB)";
        }
        if (!(k->models = malloc(n + 1))) return "out of memory";
        n = 0;
        for (size_t i = 0; i < ms->u.array.len; i++) {
            size_t l = strlen(ms->u.array.values[i]->u.string);
            memcpy(k->models + n, ms->u.array.values[i]->u.string, l);
            n += l;
            k->models[n++] = '\n';
        }
        k->models[n] = 0;
    }
    return NULL;
}

/* A parsed file: the new table (positions as in the file), the parsed
 * records, which old key each one continues (or NULL), and the old keys the
 * file no longer has. Made on any thread; the old table is only read. */
typedef struct parsed {
    int rc;
    char err[320];
    gktab t;           /* t.keys filled when applied; the indexes by the records */
    gkey **fresh;      /* [nfresh] records, libc (those an apply took are NULL) */
    size_t nfresh;
    gkey **old;        /* [t.n] the old key of that name, or NULL */
    gkey **gone;       /* old keys not in the file */
    size_t ngone;
} parsed;

static void parsed_free(parsed *p) {
    for (size_t i = 0; i < p->nfresh; i++)
        if (p->fresh[i]) key_free(p->fresh[i]);
    free(p->fresh);
    free(p->old);
    free(p->gone);
    tab_free(&p->t);
}

static void parse_file(const char *path, const gktab *cur, parsed *p) {
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(p->err, sizeof p->err, "cannot read %s: %s", path, strerror(errno));
        p->rc = AG_EINVAL;
        return;
    }
    size_t cap = 0, lineno = 0, lcap = 0;
    char *line = NULL;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &lcap, f)) > 0) {
        lineno++;
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s == '#' || *s == '\n' || *s == '\r' || !*s) continue;
        if (p->t.n >= MAX_KEYS) {
            snprintf(p->err, sizeof p->err, "%s line %zu: more than %d keys", path, lineno, MAX_KEYS);
            rc = AG_EINVAL;
            break;
        }
        if (p->t.n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            gkey **nf = realloc(p->fresh, nc * sizeof *nf);
            if (!nf) {
                rc = AG_ENOMEM;
                break;
            }
            p->fresh = nf;
            cap = nc;
        }
        gkey *k = calloc(1, sizeof *k);
        if (!k) {
            rc = AG_ENOMEM;
            break;
        }
        p->fresh[p->t.n++] = k;
        p->nfresh = p->t.n;
        char yerr[128];
        yajl_val o = ag__json_tree(NULL, s, yerr, sizeof yerr); /* nesting capped like every outside JSON */
        const char *bad = o ? parse_key(o, k) : NULL;
        if (!o) {
            yerr[strcspn(yerr, "\n")] = 0;
            snprintf(p->err, sizeof p->err, "%s line %zu: not JSON (%.120s)", path, lineno, yerr);
            rc = AG_EINVAL;
        } else if (bad) {
            snprintf(p->err, sizeof p->err, "%s line %zu: %s", path, lineno, bad);
            rc = AG_EINVAL;
        }
        ag__json_tree_free(NULL, o);
    }
    free(line);
    fclose(f);
    if (!rc && !p->t.n) {
        snprintf(p->err, sizeof p->err, "%s has no keys", path);
        rc = AG_EINVAL;
    }
    if (!rc) {
        /* the indexes, names checked for duplicates on the way */
        size_t n = p->t.n;
        p->t.n = 0;
        size_t c = 16;
        while (c < 2 * n) c <<= 1;
        p->t.cap = c;
        p->t.by_name = calloc(c, sizeof *p->t.by_name);
        p->t.by_hash = calloc(c, sizeof *p->t.by_hash);
        if (!p->t.by_name || !p->t.by_hash) rc = AG_ENOMEM;
        for (size_t k = 0; !rc && k < n; k++) {
            const char *nm = p->fresh[k]->name;
            size_t i = name_slot(nm) & (c - 1);
            for (; p->t.by_name[i]; i = (i + 1) & (c - 1))
                if (!strcmp(p->fresh[p->t.by_name[i] - 1]->name, nm)) {
                    snprintf(p->err, sizeof p->err, "%s: the name \"%s\" is used twice", path, nm);
                    rc = AG_EINVAL;
                    break;
                }
            if (rc) break;
            p->t.by_name[i] = (uint32_t)(k + 1);
            i = hash_slot(p->fresh[k]->hash) & (c - 1);
            while (p->t.by_hash[i]) i = (i + 1) & (c - 1);
            p->t.by_hash[i] = (uint32_t)(k + 1);
        }
        p->t.n = n;
    }
    if (!rc && cur && cur->n) { /* which old key each continues, and which are gone */
        p->old = calloc(p->t.n, sizeof *p->old);
        unsigned char *seen = calloc(cur->n, 1);
        if (!p->old || !seen) rc = AG_ENOMEM;
        for (size_t k = 0; !rc && k < p->t.n; k++) {
            long at = tab_find_name(cur, p->fresh[k]->name);
            if (at >= 0) {
                p->old[k] = cur->keys[at];
                seen[at] = 1;
            }
        }
        size_t ng = 0;
        for (size_t i = 0; !rc && i < cur->n; i++) ng += !seen[i];
        if (!rc && ng && !(p->gone = malloc(ng * sizeof *p->gone))) rc = AG_ENOMEM;
        for (size_t i = 0; !rc && i < cur->n; i++)
            if (!seen[i]) p->gone[p->ngone++] = cur->keys[i];
        free(seen);
    }
    if (!rc && !(p->t.keys = malloc(p->t.n * sizeof *p->t.keys))) rc = AG_ENOMEM;
    if (rc == AG_ENOMEM && !p->err[0]) snprintf(p->err, sizeof p->err, "%s: out of memory", path);
    p->rc = rc;
}

static void refuse_removed(gconn *gc);
static void wait_remove(gconn *gc);

/* On the loop: the parsed table replaces the one in force. Keys that stay
 * take their new settings and keep their state; new ones start; removed
 * ones stop (their waiting requests get 403) and are freed when no
 * connection refers to them. O(keys) of small copies, no parsing. */
static void apply(ag_gateway *g, parsed *p) {
    for (size_t i = 0; i < p->t.n; i++) {
        gkey *fr = p->fresh[i], *k = p->old ? p->old[i] : NULL;
        if (k) {
            memcpy(k->hash, fr->hash, sizeof k->hash);
            char *m = k->models;
            k->models = fr->models;
            fr->models = m; /* freed with the record */
            k->rpm = fr->rpm;
            k->tpm = fr->tpm;
            k->concurrent = fr->concurrent;
            k->priority = fr->priority;
            k->wait = fr->wait;
            k->admin = fr->admin;
            k->removed = 0;
        } else {
            k = fr;
            p->fresh[i] = NULL;
            k->g = g;
            k->wtail = &k->whead;
        }
        p->t.keys[i] = k;
    }
    gktab oldt = g->kt;
    g->kt = p->t;
    memset(&p->t, 0, sizeof p->t);
    tab_free(&oldt);
    for (size_t i = 0; i < p->ngone; i++) {
        gkey *k = p->gone[i];
        k->removed = 1;
        k->refs++; /* held while its waiters are refused */
        while (k->whead) refuse_removed(k->whead);
        key_unref(k);
    }
}

static int keys_load(ag_gateway *g, char *err, size_t errlen) {
    parsed p;
    parse_file(g->keys_file, &g->kt, &p);
    int rc = p.rc;
    if (rc) snprintf(err, errlen, "%s", p.err);
    else apply(g, &p);
    parsed_free(&p);
    return rc;
}

int ag__gw_keys_load(ag_gateway *g, char *err, size_t errlen) {
    if (g->loading) {
        snprintf(err, errlen, "a reload is under way");
        return AG_EBUSY;
    }
    return keys_load(g, err, errlen);
}

/* ---- a reload on a thread of its own ---- */
struct keyload {
    ag_gateway *g;
    pthread_t th;
    int fd[2]; /* the thread writes a byte to fd[1] when done */
    struct event ev;
    parsed p;
    void (*cb)(void *ud, int rc, const char *err);
    void *ud;
};

static void *load_thread(void *arg) {
    struct keyload *l = arg;
    parse_file(l->g->keys_file, &l->g->kt, &l->p); /* reads the table in force: the loop leaves it alone meanwhile */
    char c = 1;
    while (write(l->fd[1], &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

static void load_end(struct keyload *l) {
    pthread_join(l->th, NULL);
    event_del(&l->ev);
    close(l->fd[0]);
    close(l->fd[1]);
    l->g->loading = NULL;
}

static void load_done(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    struct keyload *l = arg;
    ag_gateway *g = l->g;
    load_end(l);
    int rc = l->p.rc;
    if (!rc) apply(g, &l->p);
    if (l->cb) l->cb(l->ud, rc, rc ? l->p.err : "");
    parsed_free(&l->p);
    free(l);
}

int ag__gw_keys_reload_start(ag_gateway *g, void (*cb)(void *ud, int rc, const char *err), void *ud) {
    if (!g || !g->keys_file) return AG_EINVAL;
    if (g->loading) return AG_EBUSY;
    struct keyload *l = calloc(1, sizeof *l);
    if (!l) return AG_ENOMEM;
    l->g = g;
    l->cb = cb;
    l->ud = ud;
    if (pipe(l->fd) != 0) {
        free(l);
        return AG_ENOMEM;
    }
    event_assign(&l->ev, g->base, l->fd[0], EV_READ, load_done, l);
    event_add(&l->ev, NULL);
    if (pthread_create(&l->th, NULL, load_thread, l) != 0) {
        event_del(&l->ev);
        close(l->fd[0]);
        close(l->fd[1]);
        free(l);
        return AG_ENOMEM;
    }
    g->loading = l;
    return 0;
}

/* the gateway is freed with a reload under way: it ends unapplied */
static void load_abandon(ag_gateway *g) {
    struct keyload *l = g->loading;
    if (!l) return;
    load_end(l);
    parsed_free(&l->p);
    free(l);
}

/* ---- who is asking ---- */

/* Which key the presented secret is: found by its SHA-256 (a lookup by the
 * digest says nothing of any secret), confirmed with CRYPTO_memcmp. */
gkey *ag__gw_key_for(ag_gateway *g, const char *secret, size_t len) {
    const gktab *t = &g->kt;
    if (!t->cap) return NULL;
    unsigned char h[32];
    sha256(secret, len, h);
    for (size_t i = hash_slot(h) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        uint32_t v = t->by_hash[i];
        if (!v) return NULL;
        gkey *k = t->keys[v - 1];
        if (CRYPTO_memcmp(h, k->hash, 32) == 0 && !k->removed) return k;
    }
}

int ag__gw_key_allows(const gkey *k, const char *model) {
    if (!k->models || !model) return 1;
    size_t ml = strlen(model);
    for (const char *p = k->models; *p;) {
        const char *e = strchr(p, '\n');
        size_t l = (size_t)(e - p);
        if (l && p[l - 1] == '*' ? ml >= l - 1 && strncmp(model, p, l - 1) == 0
                                 : l == ml && strncmp(model, p, l) == 0)
            return 1;
        /* "llama3.2" allows "llama3.2:latest" as Ollama names it */
        if (l && p[l - 1] != '*' && ml == l + 7 && strncmp(model, p, l) == 0 && strcmp(model + l, ":latest") == 0) return 1;
        p = e + 1;
    }
    return 0;
}

/* The limits are counts over the last minute (a second a slot): requests
 * admitted, tokens the nodes reported. A token bucket a minute deep would
 * let twice the limit through in a minute that starts full; this keeps any
 * minute within the limit (to the second's granularity). */
int64_t ag__gw_clock_skew_ns; /* tests move the limits' clock with it (0 in use) */
static int64_t now_s(void) { return (ag__now_ns() + ag__gw_clock_skew_ns) / 1000000000; }

static void spent(gkey *k, uint32_t req, uint64_t tok) {
    if (!k->win) {
        if (!(k->win = malloc(60 * sizeof *k->win))) return; /* (out of memory: not counted) */
        for (int w = 0; w < 60; w++) k->win[w] = (struct gkwin){-1000, 0, 0}; /* empty */
    }
    int64_t s = now_s();
    int i = (int)(s % 60);
    if (k->win[i].sec != s) {
        k->win[i].sec = s;
        k->win[i].req = 0;
        k->win[i].tok = 0;
    }
    k->win[i].req += req;
    k->win[i].tok += tok;
}

/* what the last minute holds */
static void in_window(const gkey *k, int64_t s, uint64_t *req, uint64_t *tok) {
    *req = *tok = 0;
    if (!k->win) return;
    for (int i = 0; i < 60; i++)
        if (s - k->win[i].sec < 60) {
            *req += k->win[i].req;
            *tok += k->win[i].tok;
        }
}

/* Would one more request of k go over a limit, with r requests and t tokens
 * in the window? Tokens are known when a request ends, so those in flight
 * count at the key's mean until then, and so does the next one: a minute
 * holds the limit even while requests are running. A request of a key with
 * nothing in its window and nothing in flight is let through whatever its
 * size (it would wait forever otherwise); while no request of the key has
 * ended yet its size is unknown, and one runs at a time. */
static int over(const gkey *k, uint64_t r, uint64_t t) {
    if (k->rpm && (double)r >= k->rpm) return 1;
    if (!k->tpm) return 0;
    const double held = (double)t + k->tok_reserved;
    if (held <= 0 && k->in_flight == 0) return 0;
    if (k->tok_est <= 0) return k->in_flight > 0 || held >= k->tpm;
    return held + k->tok_est > k->tpm;
}

/* seconds until k may start one more request: 0 now, < 0 only when a
 * request of its own must end first (its concurrency, or tokens in flight) */
static double fits_in(gkey *k) {
    int64_t s = now_s();
    uint64_t req, tok;
    in_window(k, s, &req, &tok);
    double wait = 0;
    if (over(k, req, tok)) {
        /* until enough of the window's oldest seconds have left it */
        uint64_t r = req, t = tok;
        wait = -1;
        for (int64_t age = 59; age >= 0 && k->win; age--) {
            const int i = (int)((s - age) % 60);
            if (s - k->win[i].sec >= 60 || k->win[i].sec != s - age) continue;
            r -= k->win[i].req;
            t -= k->win[i].tok;
            if (!over(k, r, t)) {
                wait = (double)(60 - age);
                break;
            }
        }
        if (wait >= 0 && wait < 1) wait = 1;
    }
    if (k->concurrent && k->in_flight >= k->concurrent && wait == 0) wait = -1;
    return wait;
}

static void take(gkey *k, gconn *gc) {
    spent(k, 1, 0);
    gc->tok_est = k->tpm ? k->tok_est : 0;
    k->tok_reserved += gc->tok_est;
    k->in_flight++;
    k->requests++;
    gc->key_taken = 1;
    int64_t waited = ag__now_ns() - gc->t_parsed;
    k->wait_ns += waited > 0 ? (uint64_t)waited : 0;
}

static void refuse(gconn *gc, double secs, const char *why) {
    gkey *k = gc->key;
    k->refused++;
    char line[64], msg[256];
    long s = secs > 0 ? (long)ceil(secs) : 1;
    snprintf(line, sizeof line, "Retry-After: %ld\r\n", s);
    ag__sconn_add_headers(gc->sc, line);
    snprintf(msg, sizeof msg, "rate limit exceeded for key \"%s\" (%s); retry after %ld s", k->name, why, s);
    ag__gw_send_error(gc, 429, msg);
    ag__gw_finish(gc);
}

static const char *why_of(gkey *k) {
    uint64_t req, tok;
    in_window(k, now_s(), &req, &tok);
    if (k->rpm && (double)req >= k->rpm) return "requests per minute";
    if (k->concurrent && k->in_flight >= k->concurrent) return "requests at once";
    return "tokens per minute";
}

static void wait_remove(gconn *gc) {
    gkey *k = gc->key;
    if (!gc->waiting) return;
    if (gc->wnext) gc->wnext->wprev = gc->wprev;
    else k->wtail = gc->wprev;
    *gc->wprev = gc->wnext;
    gc->wnext = NULL;
    gc->wprev = NULL;
    gc->waiting = 0;
    k->waiting--;
}

/* a waiting request of a key that a reload removed: 403 */
static void refuse_removed(gconn *gc) {
    gkey *k = gc->key;
    wait_remove(gc);
    char msg[200];
    snprintf(msg, sizeof msg, "key \"%s\" was removed", k->name);
    ag__gw_send_error(gc, 403, msg);
    ag__gw_finish(gc);
}

static void arm(gkey *k, const struct timeval *tv) {
    if (!k->wake_set) {
        evtimer_assign(&k->wake, k->g->base, wake_cb, k);
        k->wake_set = 1;
    }
    evtimer_add(&k->wake, tv);
}

/* the waiting requests of k that fit now, oldest first; a timer for the
 * rest (k is held: a request refused here may drop the last reference) */
static void wake(gkey *k) {
    k->refs++;
    while (k->whead) {
        gconn *gc = k->whead;
        if (k->removed) {
            refuse_removed(gc);
            continue;
        }
        double w = fits_in(k);
        int64_t waited = ag__now_ns() - gc->t_parsed;
        if (w != 0 && (double)waited / 1e9 > MAX_WAIT_S) {
            wait_remove(gc);
            refuse(gc, w > 0 ? w : 1, why_of(k));
            continue;
        }
        if (w != 0) {
            if (w > 0) {
                struct timeval tv;
                tv.tv_sec = (long)w;
                tv.tv_usec = (long)((w - floor(w)) * 1e6) + 1000;
                arm(k, &tv);
            }
            break; /* (a request's end wakes a concurrency wait) */
        }
        wait_remove(gc);
        take(k, gc);
        ag__gw_dispatch_model(gc);
    }
    key_unref(k);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    wake(arg);
}

int ag__gw_admit(gconn *gc) {
    gkey *k = gc->key;
    if (!k) return 1;
    if (k->removed) { /* removed by a reload since the request's head was read */
        char msg[200];
        snprintf(msg, sizeof msg, "key \"%s\" was removed", k->name);
        k->refused++;
        ag__gw_send_error(gc, 403, msg);
        ag__gw_finish(gc);
        return 0;
    }
    if (gc->route == R_ADMIN && !k->admin) { /* managing models is for keys that say so */
        char msg[200];
        snprintf(msg, sizeof msg, "key \"%s\" may not manage models (pull, push, create, copy, delete need \"admin\": true)",
                 k->name);
        k->refused++;
        ag__gw_send_error(gc, 403, msg);
        ag__gw_finish(gc);
        return 0;
    }
    if (gc->route != R_ADMIN && !ag__gw_key_allows(k, gc->model[0] ? gc->model : NULL)) {
        char msg[400];
        snprintf(msg, sizeof msg, "model \"%s\" is not allowed for key \"%s\"", gc->model, k->name);
        k->refused++;
        ag__gw_send_error(gc, 403, msg);
        ag__gw_finish(gc);
        return 0;
    }
    double w = k->whead ? 1 : fits_in(k); /* behind those already waiting */
    if (w == 0) {
        take(k, gc);
        return 1;
    }
    if (!k->wait || k->waiting >= MAX_WAITING) { /* (the wait list has a cap too) */
        refuse(gc, w > 0 ? w : 1, why_of(k));
        return 0;
    }
    gc->waiting = 1; /* over the limit: waits its turn */
    gc->wnext = NULL;
    gc->wprev = k->wtail;
    *k->wtail = gc;
    k->wtail = &gc->wnext;
    k->waiting++;
    if (!k->wake_set || !evtimer_pending(&k->wake, NULL)) {
        struct timeval tv = {0, 1000};
        arm(k, &tv);
    }
    return 0;
}

void ag__gw_key_done(gconn *gc, const ag_result *res) {
    gkey *k = gc->key;
    if (!k || !gc->key_taken) return;
    gc->key_taken = 0;
    if (k->in_flight) k->in_flight--;
    k->tok_reserved -= gc->tok_est;
    if (k->tok_reserved < 0 || k->in_flight == 0) k->tok_reserved = 0;
    gc->tok_est = 0;
    if (res) {
        int64_t in = res->server.prompt_eval_count > 0 ? res->server.prompt_eval_count : 0;
        int64_t out = res->server.eval_count > 0 ? res->server.eval_count : 0;
        k->tokens_in += (uint64_t)in;
        k->tokens_out += (uint64_t)out;
        spent(k, 0, (uint64_t)(in + out));
        if (res->status == 0 && in + out > 0) /* the next requests are counted at this mean */
            k->tok_est = k->tok_est > 0 ? 0.8 * k->tok_est + 0.2 * (double)(in + out) : (double)(in + out);
        else if (res->status == 0 && k->tok_est <= 0)
            k->tok_est = 1; /* a node that reports no counts: nothing to hold back, one at a time no longer */
        if (res->status) k->errors++;
        if (res->timing.ttft_ns > 0 && (k->ttft_ms || (k->ttft_ms = malloc(512 * sizeof *k->ttft_ms))))
            k->ttft_ms[k->nttft++ % 512] = (float)(res->timing.ttft_ns / 1e6);
    }
    wake(k);
}

void ag__gw_key_gone(gconn *gc) {
    if (!gc->key) return;
    wait_remove(gc);
    ag__gw_key_done(gc, NULL);
}

int ag_gateway_keys_check(const char *path, char *err, size_t errlen) {
    char tmp[8];
    if (!err) err = tmp, errlen = sizeof tmp;
    if (!path) return AG_EINVAL;
    parsed p;
    parse_file(path, NULL, &p);
    int rc = p.rc;
    if (rc) snprintf(err, errlen, "%s", p.err);
    parsed_free(&p);
    return rc;
}

void ag__gw_keys_free(ag_gateway *g) {
    load_abandon(g);
    for (size_t i = 0; i < g->kt.n; i++) key_free(g->kt.keys[i]);
    tab_free(&g->kt);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void info_of(const gkey *x, ag_key_info *o) {
    memset(o, 0, sizeof *o);
    o->name = x->name;
    o->priority = x->priority;
    o->in_flight = x->in_flight;
    o->waiting = x->waiting;
    o->requests = x->requests;
    o->refused = x->refused;
    o->errors = x->errors;
    o->prompt_tokens = x->tokens_in;
    o->output_tokens = x->tokens_out;
    o->queue_wait_ms = x->requests ? (double)x->wait_ns / (double)x->requests / 1e6 : 0;
    float v[512];
    unsigned m = x->nttft < 512 ? x->nttft : 512;
    if (m) memcpy(v, x->ttft_ms, m * sizeof *v);
    qsort(v, m, sizeof *v, cmp_float);
    o->ttft_p50_ms = m ? v[(m - 1) / 2] : 0;
    o->ttft_p99_ms = m ? v[(size_t)((m - 1) * 0.99 + 0.5)] : 0;
}

size_t ag__gw_key_infos(const ag_gateway *g, const gkey *only, ag_key_info *out, size_t max) {
    if (only) {
        if (max) info_of(only, out);
        return 1;
    }
    for (size_t i = 0; i < g->kt.n && i < max; i++) info_of(g->kt.keys[i], &out[i]);
    return g->kt.n;
}

size_t ag_gateway_keys(const ag_gateway *g, ag_key_info *out, size_t max) {
    return g ? ag__gw_key_infos(g, NULL, out, max) : 0;
}
