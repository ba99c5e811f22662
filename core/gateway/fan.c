/* core/gateway/fan.c - /api/tags, /api/ps and /v1/models: every node that
 * is not ejected is asked (ag_forward pinned to it), and the lists are
 * merged, one entry per model name, first node first (an OpenAI-compatible
 * node's /v1/models stands in for its /api lists); and model management
 * (delete, copy) sent to every node, with one answer. A client with a key
 * restricted to some models is shown those only. */
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

/* a line of the merged stream (b, which gets its newline), then b emptied */
static void pull_send(fan *f, ag__buf *b) {
    ag__sconn *sc = f->gc->sc;
    if (!ag__sconn_head_sent(sc)) ag__sconn_head_chunked(sc, 200, "application/x-ndjson");
    if (ag__buf_add(f->a, b, "\n", 1) == 0) ag__sconn_chunk(sc, b->p, b->len);
    b->len = 0;
}

/* a node's byte count, kept to [0, 2^50] so that no sum over the nodes overflows */
static int64_t bytes_of(yajl_val v, int64_t was) {
    if (!v || !YAJL_IS_INTEGER(v)) return was;
    int64_t x = YAJL_GET_INTEGER(v);
    return x < 0 ? 0 : x > ((int64_t)1 << 50) ? (int64_t)1 << 50 : x;
}

/* part i's progress on a layer: summed over the nodes and sent, unless the
 * client is behind (the next line says more) */
static void pull_layer_line(fan *f, size_t i, const char *status, const char *digest, yajl_val total, yajl_val done) {
    pull_layer *l = NULL;
    for (size_t k = 0; k < f->nlayers && !l; k++)
        if (f->layers[k].part == i && strcmp(f->layers[k].digest, digest) == 0) l = &f->layers[k];
    if (!l) {
        if (f->nlayers == MAX_LAYERS || (!f->layers && !(f->layers = ag__calloc(f->a, MAX_LAYERS * sizeof *f->layers))))
            return;
        l = &f->layers[f->nlayers++];
        snprintf(l->digest, sizeof l->digest, "%s", digest);
        l->part = i;
    }
    l->total = bytes_of(total, l->total);
    l->completed = bytes_of(done, l->completed);
    if (ag__sconn_unsent(f->gc->sc) >= 65536) return;
    int64_t t = 0, c = 0;
    for (size_t k = 0; k < f->nlayers; k++)
        if (strcmp(f->layers[k].digest, digest) == 0) {
            t += f->layers[k].total;
            c += f->layers[k].completed;
        }
    char nums[80];
    snprintf(nums, sizeof nums, ",\"total\":%lld,\"completed\":%lld}", (long long)t, (long long)c);
    ag__buf b = {0};
    ag__buf_str(f->a, &b, "{\"status\":");
    ag__buf_json(f->a, &b, status, strlen(status));
    ag__buf_str(f->a, &b, ",\"digest\":");
    ag__buf_json(f->a, &b, digest, strlen(digest));
    ag__buf_str(f->a, &b, nums);
    pull_send(f, &b);
    ag__buf_free(f->a, &b);
}

/* a status of the pull as a whole: sent once, when the first node reaches it */
static void pull_status_line(fan *f, const char *status) {
    if (strcmp(status, "success") == 0 || strlen(status) >= sizeof f->said[0]) return; /* (the end is merged) */
    for (int k = 0; k < f->nsaid; k++)
        if (strcmp(f->said[k], status) == 0) return;
    if (f->nsaid < (int)(sizeof f->said / sizeof f->said[0])) snprintf(f->said[f->nsaid++], sizeof f->said[0], "%s", status);
    ag__buf b = {0};
    ag__buf_str(f->a, &b, "{\"status\":");
    ag__buf_json(f->a, &b, status, strlen(status));
    ag__buf_str(f->a, &b, "}");
    pull_send(f, &b);
    ag__buf_free(f->a, &b);
}

/* One progress line of part i: an error (kept for the merged end), a
 * layer's bytes, or a status. */
static void pull_line(fan *f, size_t i, const char *line) {
    char eb[64];
    yajl_val v = ag__json_tree(f->a, line, eb, sizeof eb);
    if (v && YAJL_IS_OBJECT(v)) {
        const char *st = ag__json_str(v, "status"), *dg = ag__json_str(v, "digest"), *err = ag__json_str(v, "error");
        const char *tp[] = {"total", NULL}, *cp[] = {"completed", NULL};
        if (err) {
            f->parts[i].said_error = 1;
            if (!f->last_error[0]) snprintf(f->last_error, sizeof f->last_error, "%s", err);
        } else if (dg && strlen(dg) < sizeof f->layers[0].digest) {
            pull_layer_line(f, i, st ? st : "pulling", dg, yajl_tree_get(v, tp, yajl_t_number), yajl_tree_get(v, cp, yajl_t_number));
        } else if (st) {
            pull_status_line(f, st);
        }
    }
    ag__json_tree_free(f->a, v);
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
            /* a key sees the models it may use, nothing else */
            if (gc->key && gc->key->models && (!id || !ag__gw_key_allows(gc->key, id->u.string))) continue;
            int dup = 0;
            if (id)
                for (size_t s = 0; s < nseen && !dup; s++) dup = strcmp(seen[s], id->u.string) == 0;
            if (dup) continue;
            if (id && nseen < sizeof seen / sizeof seen[0]) seen[nseen++] = id->u.string;
            if (pt->oai && id) ollama_entry(y, id->u.string, f->ps);
            else if (!pt->oai) ag__gen_value(f->a, y, m);
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
    if (!pt->ok && res->error && !f->last_error[0]) {
        /* the node's own words ("model 'x' not found"), as Ollama answers, not
         * the client library's "HTTP 404: ..." */
        const char *e = res->error, *colon = strstr(e, ": ");
        if (res->http_status >= 400 && !strncmp(e, "HTTP ", 5) && colon && colon - e <= 8) e = colon + 2;
        snprintf(f->last_error, sizeof f->last_error, "%s", e);
    }
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
