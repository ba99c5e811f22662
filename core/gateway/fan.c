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
    ag__buf body;
    int ok, status;
    int oai; /* an OpenAI-compatible node asked /v1/models for an Ollama list */
} fan_part;

struct fan {
    gconn *gc; /* NULL once the client is gone */
    const ag_alloc_funcs *a;
    int v1;
    int admin; /* delete or copy on every node: one answer for all */
    int ps;    /* the list is /api/ps */
    size_t n, pending;
    char last_error[400];
    fan_part parts[];
};

static void fan_free(fan *f) {
    for (size_t i = 0; i < f->n; i++) ag__buf_free(f->a, &f->parts[i].body);
    ag__free(f->a, f);
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
    if (ok && gc->pull) { /* the merged progress: done when every node is */
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
    if (ch->kind != AG_CHUNK_BODY || ch->index >= 300) return;
    if (pt->body.len + ch->len > ((size_t)16 << 20) || ag__buf_add(pt->f->a, &pt->body, ch->text, ch->len))
        ag_request_cancel(req);
}

static void fan_done(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    fan_part *pt = ud;
    fan *f = pt->f;
    pt->req = NULL;
    pt->ok = res->status == 0 && res->http_status < 300;
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
