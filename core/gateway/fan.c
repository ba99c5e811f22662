/* core/gateway/fan.c - /api/tags, /api/ps and /v1/models: every node that
 * is not ejected is asked (ag_forward pinned to it), and the lists are
 * merged, one entry per model name, first node first (an OpenAI-compatible
 * node's /v1/models stands in for its /api lists); and model management
 * (delete, copy) sent to every node, with one answer. */
#include "core/gateway/gateway_internal.h"
#include "agents/host.h"

#include <stdio.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "core/base/buf.h"
#include "core/base/json.h"
#include "core/base/jsondepth.h"
#include "core/base/mem.h"

typedef struct fan_part {
    fan *f;
    ag_request *req;
    ag__buf body; /* the answer (lists, delete, copy); a pull's progress: its unfinished line */
    int ok, status;
    int oai; /* an OpenAI-compatible node asked /v1/models for an Ollama list */
    int said_error; /* a pull's progress ended in an {"error"} line (its HTTP status is 200) */
} fan_part;

/* a pull's progress on every node, merged: per layer, the nodes' totals
 * and completed bytes summed */
typedef struct pull_layer {
    char digest[80];
    size_t part;
    int64_t total, completed;
} pull_layer;
#define MAX_LAYERS 1024

struct fan {
    gconn *gc; /* NULL once the client is gone */
    const ag_alloc_funcs *a;
    int v1;
    int admin; /* delete or copy on every node: one answer for all */
    int ps;    /* the list is /api/ps */
    int pull;  /* a streamed pull on every node: one merged progress stream */
    pull_layer *layers;
    size_t nlayers;
    char said[16][96];     /* the statuses without a layer already sent (each once) */
    int nsaid;
    size_t n, pending;
    char last_error[400];
    fan_part parts[];
};

static void fan_free(fan *f) {
    for (size_t i = 0; i < f->n; i++) ag__buf_free(f->a, &f->parts[i].body);
    ag__free(f->a, f->layers);
    ag__free(f->a, f);
}

/* y's object as a line of the merged stream (y freed) */
static void pull_send(fan *f, const char *line, size_t len);
static void pull_send_gen(fan *f, yajl_gen y) {
    const unsigned char *b;
    size_t bl;
    yajl_gen_get_buf(y, &b, &bl);
    pull_send(f, (const char *)b, bl);
    yajl_gen_free(y);
}

/* a line of the merged stream, its newline with it (one chunk) */
static void pull_send(fan *f, const char *line, size_t len) {
    ag__sconn *sc = f->gc->sc;
    if (!ag__sconn_head_sent(sc)) ag__sconn_head_chunked(sc, 200, "application/x-ndjson");
    char b[1024];
    if (len < sizeof b) {
        memcpy(b, line, len);
        b[len] = '\n';
        ag__sconn_chunk(sc, b, len + 1);
    } else {
        ag__sconn_chunk(sc, line, len);
        ag__sconn_chunk(sc, "\n", 1);
    }
}

/* One progress line of part i: a layer's bytes (summed over the nodes and
 * sent, unless the client is behind: the next one says more), a status of
 * the pull as a whole (sent once, the first node to reach it), or its end
 * (kept for the merged end: success when every node is done). */
static void pull_line(fan *f, size_t i, const char *line) {
    char eb[64];
    yajl_val v = ag__json_tree(f->a, line, eb, sizeof eb);
    if (!v || !YAJL_IS_OBJECT(v)) {
        if (v) ag__json_tree_free(f->a, v);
        return;
    }
    const char *sp[] = {"status", NULL}, *dp[] = {"digest", NULL}, *tp[] = {"total", NULL}, *cp[] = {"completed", NULL},
               *ep[] = {"error", NULL};
    yajl_val st = yajl_tree_get(v, sp, yajl_t_string), dg = yajl_tree_get(v, dp, yajl_t_string),
             tot = yajl_tree_get(v, tp, yajl_t_number), com = yajl_tree_get(v, cp, yajl_t_number),
             err = yajl_tree_get(v, ep, yajl_t_string);
    if (err) {
        f->parts[i].said_error = 1;
        if (!f->last_error[0]) snprintf(f->last_error, sizeof f->last_error, "%s", err->u.string);
    } else if (dg && strlen(dg->u.string) < sizeof f->layers[0].digest) {
        pull_layer *l = NULL;
        for (size_t k = 0; k < f->nlayers && !l; k++)
            if (f->layers[k].part == i && strcmp(f->layers[k].digest, dg->u.string) == 0) l = &f->layers[k];
        if (!l && f->nlayers < MAX_LAYERS) {
            if (!f->layers) f->layers = ag__calloc(f->a, MAX_LAYERS * sizeof *f->layers);
            if (f->layers) {
                l = &f->layers[f->nlayers++];
                snprintf(l->digest, sizeof l->digest, "%s", dg->u.string);
                l->part = i;
            }
        }
        if (l) {
            const int64_t cap = (int64_t)1 << 50; /* (a node's nonsense cannot overflow the sums) */
            if (tot && YAJL_IS_INTEGER(tot)) l->total = YAJL_GET_INTEGER(tot) < 0 ? 0 : YAJL_GET_INTEGER(tot) > cap ? cap : YAJL_GET_INTEGER(tot);
            if (com && YAJL_IS_INTEGER(com)) l->completed = YAJL_GET_INTEGER(com) < 0 ? 0 : YAJL_GET_INTEGER(com) > cap ? cap : YAJL_GET_INTEGER(com);
            int64_t t = 0, c = 0;
            for (size_t k = 0; k < f->nlayers; k++)
                if (strcmp(f->layers[k].digest, l->digest) == 0) {
                    t += f->layers[k].total;
                    c += f->layers[k].completed;
                }
            if (ag__sconn_unsent(f->gc->sc) < 65536) {
                yajl_gen y = ag__gen_new(f->a);
                if (y) {
                    yajl_gen_map_open(y);
                    yajl_gen_string(y, (const unsigned char *)"status", 6);
                    const char *s = st ? st->u.string : "pulling";
                    yajl_gen_string(y, (const unsigned char *)s, strlen(s));
                    yajl_gen_string(y, (const unsigned char *)"digest", 6);
                    yajl_gen_string(y, (const unsigned char *)l->digest, strlen(l->digest));
                    yajl_gen_string(y, (const unsigned char *)"total", 5);
                    yajl_gen_integer(y, t);
                    yajl_gen_string(y, (const unsigned char *)"completed", 9);
                    yajl_gen_integer(y, c);
                    yajl_gen_map_close(y);
                    pull_send_gen(f, y);
                }
            }
        }
    } else if (st && strcmp(st->u.string, "success") != 0 && strlen(st->u.string) < sizeof f->said[0]) {
        int seen = 0;
        for (int k = 0; k < f->nsaid && !seen; k++) seen = strcmp(f->said[k], st->u.string) == 0;
        yajl_gen y = seen ? NULL : ag__gen_new(f->a);
        if (y) {
            if (f->nsaid < (int)(sizeof f->said / sizeof f->said[0])) snprintf(f->said[f->nsaid++], sizeof f->said[0], "%s", st->u.string);
            yajl_gen_map_open(y);
            yajl_gen_string(y, (const unsigned char *)"status", 6);
            yajl_gen_string(y, (const unsigned char *)st->u.string, strlen(st->u.string));
            yajl_gen_map_close(y);
            pull_send_gen(f, y);
        }
    }
    ag__json_tree_free(f->a, v);
}

static void tree_gen(yajl_gen y, yajl_val v) {
    if (YAJL_IS_STRING(v)) yajl_gen_string(y, (const unsigned char *)v->u.string, strlen(v->u.string));
    else if (YAJL_IS_NUMBER(v)) yajl_gen_number(y, v->u.number.r, strlen(v->u.number.r));
    else if (YAJL_IS_TRUE(v)) yajl_gen_bool(y, 1);
    else if (YAJL_IS_FALSE(v)) yajl_gen_bool(y, 0);
    else if (YAJL_IS_NULL(v)) yajl_gen_null(y);
    else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(y);
        for (size_t i = 0; i < v->u.array.len; i++) tree_gen(y, v->u.array.values[i]);
        yajl_gen_array_close(y);
    } else if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(y);
        for (size_t i = 0; i < v->u.object.len; i++) {
            yajl_gen_string(y, (const unsigned char *)v->u.object.keys[i], strlen(v->u.object.keys[i]));
            tree_gen(y, v->u.object.values[i]);
        }
        yajl_gen_map_close(y);
    }
}

/* delete or copy everywhere: done when one node did it; else the first
 * node's own refusal (a 404 when none has the model) */
static void fan_admin_reply(fan *f) {
    gconn *gc = f->gc;
    ag__sconn *sc = gc->sc;
    size_t ok = 0;
    for (size_t i = 0; i < f->n; i++) ok += f->parts[i].ok;
    if (f->pull && ag__sconn_head_sent(sc)) { /* the merged progress's end: success when every node is done */
        char line[600];
        int n = ok == f->n ? snprintf(line, sizeof line, "{\"status\":\"success\"}\n")
                           : 0;
        if (!n) {
            yajl_gen y = ag__gen_new(f->a);
            if (y) {
                char msg[520];
                snprintf(msg, sizeof msg, "%zu of %zu nodes failed to pull: %s", f->n - ok, f->n,
                         f->last_error[0] ? f->last_error : "no reason given");
                yajl_gen_map_open(y);
                yajl_gen_string(y, (const unsigned char *)"error", 5);
                yajl_gen_string(y, (const unsigned char *)msg, strlen(msg));
                yajl_gen_map_close(y);
                const unsigned char *b;
                size_t bl;
                yajl_gen_get_buf(y, &b, &bl);
                n = snprintf(line, sizeof line, "%.*s\n", (int)bl, (const char *)b);
                yajl_gen_free(y);
            }
        }
        if (n > 0) ag__sconn_chunk(sc, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        ag__sconn_end_chunked(sc);
    } else if (ok && gc->pull) { /* not streamed (or nothing came): done when every node is */
        static const char done[] = "{\"status\":\"success\"}\n";
        ag__sconn_send_whole(sc, 200, "application/x-ndjson", done, sizeof done - 1);
    } else if (ok) {
        ag__sconn_send_whole(sc, 200, "application/json; charset=utf-8", "", 0);
    } else if (!f->n) {
        ag__sconn_send_error(sc, 503, "no node is up");
    } else {
        int st = f->parts[0].status >= 400 ? f->parts[0].status : 502;
        ag__sconn_send_error(sc, st, f->last_error[0] ? f->last_error : "no node answered");
    }
    ag__gw_finish(gc);
}

/* an OpenAI-compatible node's model as Ollama lists one: what it does not
 * say (size, digest, details) left empty, the fields present */
static void ollama_entry(yajl_gen y, const char *id, int ps) {
#define S(k, v) yajl_gen_string(y, (const unsigned char *)k, strlen(k)), yajl_gen_string(y, (const unsigned char *)v, strlen(v))
#define N(k, v) yajl_gen_string(y, (const unsigned char *)k, strlen(k)), yajl_gen_integer(y, v)
    yajl_gen_map_open(y);
    S("name", id);
    S("model", id);
    if (!ps) S("modified_at", "1970-01-01T00:00:00Z");
    N("size", 0);
    S("digest", "");
    yajl_gen_string(y, (const unsigned char *)"details", 7);
    yajl_gen_map_open(y);
    S("parent_model", "");
    S("format", "");
    S("family", "");
    yajl_gen_string(y, (const unsigned char *)"families", 8);
    yajl_gen_null(y);
    S("parameter_size", "");
    S("quantization_level", "");
    yajl_gen_map_close(y);
    if (ps) {
        S("expires_at", "0001-01-01T00:00:00Z");
        N("size_vram", 0);
    }
    yajl_gen_map_close(y);
#undef S
#undef N
}

static void fan_reply(fan *f) {
    gconn *gc = f->gc;
    ag__sconn *sc = gc->sc;
    if (f->admin) {
        fan_admin_reply(f);
        return;
    }
    const char *list_key = f->v1 ? "data" : "models", *id_key = f->v1 ? "id" : "name";
    yajl_val trees[256];
    size_t nt = 0, nok = 0;
    yajl_gen y = ag__gen_new(f->a);
    if (!y) {
        ag__sconn_send_error(sc, 500, "out of memory");
        ag__gw_finish(gc);
        return;
    }
    yajl_gen_map_open(y);
    if (f->v1) {
        yajl_gen_string(y, (const unsigned char *)"object", 6);
        yajl_gen_string(y, (const unsigned char *)"list", 4);
    }
    yajl_gen_string(y, (const unsigned char *)list_key, strlen(list_key));
    yajl_gen_array_open(y);
    const char *seen[4096];
    size_t nseen = 0;
    for (size_t i = 0; i < f->n && nt < 256; i++) {
        fan_part *pt = &f->parts[i];
        if (!pt->ok || ag__buf_add(f->a, &pt->body, "", 1)) continue; /* NUL-terminate */
        char eb[128];
        yajl_val root = ag__json_tree(f->a, pt->body.p, eb, sizeof eb);
        if (!root) continue;
        trees[nt++] = root;
        nok++;
        const char *path[] = {pt->oai ? "data" : list_key, NULL};
        yajl_val arr = yajl_tree_get(root, path, yajl_t_array);
        if (!arr) continue;
        for (size_t k = 0; k < arr->u.array.len; k++) {
            yajl_val m = arr->u.array.values[k];
            const char *ip[] = {pt->oai ? "id" : id_key, NULL};
            yajl_val id = yajl_tree_get(m, ip, yajl_t_string);
            int dup = 0;
            if (id)
                for (size_t s = 0; s < nseen && !dup; s++) dup = strcmp(seen[s], id->u.string) == 0;
            if (dup) continue;
            if (id && nseen < sizeof seen / sizeof seen[0]) seen[nseen++] = id->u.string;
            if (pt->oai && id) ollama_entry(y, id->u.string, f->ps);
            else if (!pt->oai) tree_gen(y, m);
        }
    }
    yajl_gen_array_close(y);
    yajl_gen_map_close(y);
    if (nok == 0 && f->n > 0) {
        char msg[500];
        snprintf(msg, sizeof msg, "no node answered: %s", f->last_error[0] ? f->last_error : "none is up");
        ag__sconn_send_error(sc, 502, msg);
    } else {
        const unsigned char *b;
        size_t l;
        yajl_gen_get_buf(y, &b, &l);
        ag__sconn_send_whole(sc, 200, "application/json; charset=utf-8", (const char *)b, l);
    }
    yajl_gen_free(y);
    for (size_t i = 0; i < nt; i++) ag__json_tree_free(f->a, trees[i]);
    ag__gw_finish(gc);
}

static void fan_chunk(ag_request *req, const ag_chunk *ch, void *ud) {
    fan_part *pt = ud;
    fan *f = pt->f;
    if (f->pull && ch->kind == AG_CHUNK_BODY) { /* progress lines: merged as they come */
        const char *p = ch->text, *end = ch->text + ch->len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t k = nl ? (size_t)(nl - p) : (size_t)(end - p);
            if (pt->body.len + k > 65536) { /* no progress line is that long */
                ag_request_cancel(req);
                return;
            }
            if (ag__buf_add(f->a, &pt->body, p, k)) {
                ag_request_cancel(req);
                return;
            }
            if (!nl) break;
            if (!ag__buf_add(f->a, &pt->body, "", 1) && f->gc && !ag__sconn_closing(f->gc->sc))
                pull_line(f, (size_t)(pt - f->parts), pt->body.p);
            pt->body.len = 0;
            p = nl + 1;
        }
        return;
    }
    if (ch->kind != AG_CHUNK_BODY || ch->index >= 300) return;
    if (pt->body.len + ch->len > ((size_t)16 << 20) || ag__buf_add(pt->f->a, &pt->body, ch->text, ch->len))
        ag_request_cancel(req);
}

static void fan_done(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    fan_part *pt = ud;
    fan *f = pt->f;
    pt->req = NULL;
    pt->ok = res->status == 0 && res->http_status < 300 && !pt->said_error;
    pt->status = res->http_status;
    if (!pt->ok && res->error && !f->last_error[0]) snprintf(f->last_error, sizeof f->last_error, "%s", res->error);
    if (--f->pending > 0) return;
    gconn *gc = f->gc;
    if (gc) {
        gc->fan = NULL;
        if (!ag__sconn_closing(gc->sc)) fan_reply(f);
    }
    fan_free(f);
}

/* The same request to every node that is not ejected, one answer merged by
 * fan_reply: a list (admin 0: GET path) or model management (admin 1: the
 * client's own method, path and body). */
static void fan_out(gconn *gc, const char *path, int admin) {
    ag_gateway *g = gc->g;
    ag_node_info info[256];
    size_t n = ag_pool_nodes(g->c, info, 256);
    if (n == 0) { /* a one-node client: just forward */
        ag__gw_forward(gc, NULL, NULL);
        return;
    }
    if (n > 256) n = 256;
    fan *f = ag__calloc(g->a, sizeof *f + n * sizeof(fan_part));
    if (!f) {
        ag__sconn_send_error(gc->sc, 500, "out of memory");
        ag__gw_finish(gc);
        return;
    }
    f->gc = gc;
    f->a = g->a;
    f->v1 = gc->route == R_V1_MODELS;
    f->admin = admin;
    char names[256][300];
    size_t k = 0;
    int oai[256];
    for (size_t i = 0; i < n; i++)
        if (info[i].state != AG_NODE_EJECTED) {
            oai[k] = info[i].api == AG_API_OPENAI;
            snprintf(names[k++], sizeof names[0], "%s", info[i].name);
        }
    f->ps = strcmp(path, "/api/ps") == 0;
    f->pull = admin && gc->pull && gc->stream;
    size_t blen = 0;
    const char *body = admin ? ag__sconn_body(gc->sc, &blen) : NULL;
    gc->fan = f;
    f->pending = 1; /* held while starting, so that no reply goes out midway */
    for (size_t i = 0; i < k; i++) {
        fan_part *pt = &f->parts[f->n];
        pt->f = f;
        ag_forward_params fp;
        memset(&fp, 0, sizeof fp);
        fp.method = admin ? ag__sconn_method_name(gc->sc) : "GET";
        fp.path = path;
        /* an OpenAI-compatible node has no /api list: its /v1/models, translated */
        pt->oai = !admin && oai[i] && strncmp(path, "/api/", 5) == 0;
        if (pt->oai) fp.path = "/v1/models";
        fp.body = body;
        fp.body_len = blen;
        fp.node = names[i];
        ag_callbacks cb = {fan_chunk, fan_done, pt};
        if (ag_forward(g->c, &fp, &cb, &pt->req) == 0) {
            f->n++;
            f->pending++;
        }
    }
    if (admin) ag__sconn_release_body(gc->sc); /* each request has its copy */
    if (--f->pending == 0) { /* nothing started */
        gc->fan = NULL;
        fan_reply(f);
        fan_free(f);
    }
}

void ag__gw_fan(gconn *gc, const char *path) {
    fan_out(gc, path, 0);
}

void ag__gw_fan_admin(gconn *gc) {
    /* every node that is not ejected: a node's model list is as old as its
     * last probe (a pull a moment ago is not in it yet); one without the
     * model answers 404, which only counts when every node does */
    size_t ul;
    const char *url = ag__sconn_url(gc->sc, &ul);
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)(gc->plen < sizeof path ? gc->plen : sizeof path - 1), url);
    fan_out(gc, path, 1);
}

void ag__gw_fan_detach(fan *f) {
    f->gc = NULL;
    f->pending++; /* hold it while cancelling */
    for (size_t i = 0; i < f->n; i++)
        if (f->parts[i].req) ag_request_cancel(f->parts[i].req);
    if (--f->pending == 0) fan_free(f);
}
