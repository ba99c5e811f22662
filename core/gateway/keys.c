/* core/gateway/keys.c - the gateway's clients: keys from a file, checked in
 * constant time, with per-key limits (requests and tokens in any minute,
 * requests at once), allowed models, a priority class, and
 * their figures. A request over its key's limit is refused with 429 and
 * Retry-After, or waits (the key's "over_limit": "wait") until it fits. */
#include "core/gateway/gateway_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <yajl/yajl_tree.h>

#include "core/base/clock.h"
#include "core/base/json.h"
#include "core/base/mem.h"

#define MAX_WAIT_S 60     /* a waiting request gets 429 after this long */
#define MAX_WAITING 1024  /* requests a key may have waiting; more get 429 */

static void sha256(const char *s, size_t n, unsigned char out[32]) {
    unsigned int ol = 32;
    if (!EVP_Digest(s, n, out, &ol, EVP_sha256(), NULL)) memset(out, 0, 32);
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static gkey *find_name(ag_gateway *g, const char *name) {
    for (size_t i = 0; i < g->nkeys; i++)
        if (strcmp(g->keys[i]->name, name) == 0) return g->keys[i];
    return NULL;
}

static void wake_cb(evutil_socket_t fd, short what, void *arg);

/* One line of the file into k (new or updated). NULL, or what is wrong. */
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
    if (k->rpm < 0 || k->tpm < 0 || conc < 0 || conc > 1e6) return "a negative or huge limit";
    k->concurrent = (unsigned)conc;
    const char *pr = ag__json_str(o, "priority");
    const char *pp[] = {"priority", NULL};
    yajl_val pn = yajl_tree_get(o, pp, yajl_t_number);
    if (pr) {
        if (!strcmp(pr, "interactive")) k->priority = AG_PRIORITY_INTERACTIVE;
        else if (!strcmp(pr, "default")) k->priority = AG_PRIORITY_DEFAULT;
        else if (!strcmp(pr, "batch")) k->priority = AG_PRIORITY_BATCH;
        else return "\"priority\" is interactive, default or batch";
    } else if (pn) {
        k->priority = (int)YAJL_GET_INTEGER(pn);
    } else {
        k->priority = AG_PRIORITY_DEFAULT;
    }
    const char *ol = ag__json_str(o, "over_limit");
    if (ol && strcmp(ol, "refuse") && strcmp(ol, "wait")) return "\"over_limit\" is refuse or wait";
    k->wait = ol && !strcmp(ol, "wait");
    /* allowed models: names, or a prefix ending in '*' */
    const char *mp[] = {"models", NULL};
    yajl_val ms = yajl_tree_get(o, mp, yajl_t_array);
    k->models[0] = 0;
    if (ms) {
        size_t n = 0;
        for (size_t i = 0; i < ms->u.array.len; i++) {
            yajl_val m = ms->u.array.values[i];
            if (!YAJL_IS_STRING(m)) return "\"models\" is not a list of names";
            size_t l = strlen(m->u.string);
            if (n + l + 2 >= sizeof k->models) return "\"models\" is too long (1 KiB)";
            memcpy(k->models + n, m->u.string, l);
            n += l;
            k->models[n++] = '\n';
        }
        k->models[n] = 0;
        k->any_model = 0;
    } else {
        k->any_model = 1;
    }
    return NULL;
}

static int keys_load(ag_gateway *g, char *err, size_t errlen, int check_only) {
    FILE *f = fopen(g->keys_file, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s", g->keys_file);
        return AG_EINVAL;
    }
    /* parsed into fresh records first: a bad file changes nothing */
    gkey *fresh = NULL;
    size_t nf = 0, lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || !*p) continue;
        char yerr[128];
        yajl_val o = yajl_tree_parse(p, yerr, sizeof yerr);
        gkey *nk = realloc(fresh, (nf + 1) * sizeof *fresh);
        if (!nk) {
            yajl_tree_free(o);
            rc = AG_ENOMEM;
            break;
        }
        fresh = nk;
        memset(&fresh[nf], 0, sizeof fresh[nf]);
        const char *bad = o ? parse_key(o, &fresh[nf]) : "not JSON";
        for (size_t i = 0; !bad && i < nf; i++)
            if (!strcmp(fresh[i].name, fresh[nf].name)) bad = "a name used twice";
        yajl_tree_free(o);
        if (bad) {
            snprintf(err, errlen, "%s line %zu: %s", g->keys_file, lineno, bad);
            rc = AG_EINVAL;
        }
        nf++;
    }
    free(line);
    fclose(f);
    if (!rc && !nf) {
        snprintf(err, errlen, "%s has no keys", g->keys_file);
        rc = AG_EINVAL;
    }
    if (rc || check_only) {
        free(fresh);
        return rc;
    }
    /* keys keep their figures and buckets across reloads; gone ones stop working */
    for (size_t i = 0; i < g->nkeys; i++) g->keys[i]->removed = 1;
    for (size_t i = 0; i < nf && !rc; i++) {
        gkey *k = find_name(g, fresh[i].name);
        if (!k) {
            gkey **ks = ag__realloc(g->a, g->keys, (g->nkeys + 1) * sizeof *ks);
            if (!ks || !(k = ag__calloc(g->a, sizeof *k))) {
                if (ks) g->keys = ks;
                rc = AG_ENOMEM;
                break;
            }
            g->keys = ks;
            g->keys[g->nkeys++] = k;
            k->g = g;
            k->wtail = &k->whead;
            for (int w = 0; w < 60; w++) k->win[w].sec = -1000; /* empty */
            evtimer_assign(&k->wake, g->base, wake_cb, k);
        }
        memcpy(k->name, fresh[i].name, sizeof k->name);
        memcpy(k->hash, fresh[i].hash, sizeof k->hash);
        memcpy(k->models, fresh[i].models, sizeof k->models);
        k->any_model = fresh[i].any_model;
        k->rpm = fresh[i].rpm;
        k->tpm = fresh[i].tpm;
        k->concurrent = fresh[i].concurrent;
        k->priority = fresh[i].priority;
        k->wait = fresh[i].wait;
        k->removed = 0;
    }
    free(fresh);
    return rc;
}

int ag__gw_keys_load(ag_gateway *g, char *err, size_t errlen) {
    return keys_load(g, err, errlen, 0);
}

/* Which key the presented secret is: every key is compared (no early exit,
 * CRYPTO_memcmp), so the time says nothing of which, or of how close. */
gkey *ag__gw_key_for(ag_gateway *g, const char *secret, size_t len) {
    unsigned char h[32];
    sha256(secret, len, h);
    gkey *found = NULL;
    for (size_t i = 0; i < g->nkeys; i++) {
        int same = CRYPTO_memcmp(h, g->keys[i]->hash, 32) == 0;
        if (same && !g->keys[i]->removed) found = g->keys[i];
    }
    return found;
}

int ag__gw_key_allows(const gkey *k, const char *model) {
    if (k->any_model || !model) return 1;
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
static int64_t now_s(void) { return ag__now_ns() / 1000000000; }

static void spent(gkey *k, uint32_t req, uint64_t tok) {
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
        for (int64_t age = 59; age >= 0; age--) {
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

/* the waiting requests of k that fit now, oldest first; a timer for the rest */
static void wake(gkey *k) {
    while (k->whead) {
        gconn *gc = k->whead;
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
                evtimer_add(&k->wake, &tv);
            }
            return; /* (a request's end wakes a concurrency wait) */
        }
        wait_remove(gc);
        take(k, gc);
        ag__gw_dispatch_model(gc);
    }
}

static void wake_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    wake(arg);
}

int ag__gw_admit(gconn *gc) {
    gkey *k = gc->key;
    if (!k) return 1;
    if (!ag__gw_key_allows(k, gc->model[0] ? gc->model : NULL)) {
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
    if (!evtimer_pending(&k->wake, NULL)) {
        struct timeval tv = {0, 1000};
        evtimer_add(&k->wake, &tv);
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
        if (res->timing.ttft_ns > 0) k->ttft_ms[k->nttft++ % 512] = (float)(res->timing.ttft_ns / 1e6);
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
    ag_gateway g;
    memset(&g, 0, sizeof g);
    g.a = NULL; /* libc */
    g.keys_file = (char *)path;
    int rc = keys_load(&g, err, errlen, 1);
    ag__gw_keys_free(&g);
    return rc;
}

void ag__gw_keys_free(ag_gateway *g) {
    for (size_t i = 0; i < g->nkeys; i++) {
        event_del(&g->keys[i]->wake);
        ag__free(g->a, g->keys[i]);
    }
    ag__free(g->a, g->keys);
    g->keys = NULL;
    g->nkeys = 0;
}
