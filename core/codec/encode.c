/* core/codec/encode.c - request bodies with yajl_gen, framed as HTTP/1.1.
 *
 * The body is generated first (so that its length is known), then the head
 * and the body are laid out in one buffer that the transport writes as is and
 * can write again on a retry. */
#include "core/internal.h"
#include "core/base/jsondepth.h"
#include "core/base/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- raw JSON pass-through: parse the user's text, re-emit into g ---- */
static int r_null(void *g) { return yajl_gen_null(g) == yajl_gen_status_ok; }
static int r_bool(void *g, int b) { return yajl_gen_bool(g, b) == yajl_gen_status_ok; }
static int r_num(void *g, const char *s, size_t n) {
    return yajl_gen_number(g, s, n) == yajl_gen_status_ok;
}
static int r_str(void *g, const unsigned char *s, size_t n) {
    return yajl_gen_string(g, s, n) == yajl_gen_status_ok;
}
static int r_omap(void *g) { return yajl_gen_map_open(g) == yajl_gen_status_ok; }
static int r_cmap(void *g) { return yajl_gen_map_close(g) == yajl_gen_status_ok; }
static int r_oarr(void *g) { return yajl_gen_array_open(g) == yajl_gen_status_ok; }
static int r_carr(void *g) { return yajl_gen_array_close(g) == yajl_gen_status_ok; }
static const yajl_callbacks raw_cb = {r_null, r_bool, NULL, NULL, r_num, r_str,
                                      r_omap, r_str,  r_cmap, r_oarr, r_carr};

int ag__gen_raw(const ag_alloc_funcs *a, yajl_gen g, const char *json) {
    yajl_alloc_funcs af;
    yajl_handle h = yajl_alloc(&raw_cb, ag__yajl_funcs(a, &af), g);
    if (!h) return AG_ENOMEM;
    yajl_status st = yajl_parse(h, (const unsigned char *)json, strlen(json));
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    yajl_free(h);
    return st == yajl_status_ok ? 0 : AG_EINVAL;
}

#define GS(g, lit) yajl_gen_string(g, (const unsigned char *)(lit), sizeof(lit) - 1)

static void gstr(const ag_alloc_funcs *a, yajl_gen g, const char *s) {
    ag__gen_text(a, g, s, strlen(s));
}

static int is_number(const char *s) {
    if (!*s) return 0;
    char *end;
    strtod(s, &end);
    return *end == 0;
}

static int gen_common(const ag_alloc_funcs *a, yajl_gen g, const ag_gen_options *o, int stream_default_true) {
    int rc = 0;
    if (o->format) {
        GS(g, "format");
        const char *f = o->format;
        while (*f == ' ' || *f == '\n' || *f == '\t') f++;
        if (*f == '{') rc = ag__gen_raw(a, g, f);
        else gstr(a, g, o->format);
        if (rc) return rc;
    }
    if (o->options_json) {
        GS(g, "options");
        const char *f = o->options_json;
        while (*f == ' ' || *f == '\n' || *f == '\t') f++;
        if (*f != '{') return AG_EINVAL;
        if ((rc = ag__gen_raw(a, g, f))) return rc;
    }
    if (o->keep_alive) {
        GS(g, "keep_alive");
        if (is_number(o->keep_alive)) {
            if (ag__gen_raw(a, g, o->keep_alive)) return AG_EINVAL; /* "1e400", "0x10" */
        } else {
            gstr(a, g, o->keep_alive);
        }
    }
    if (o->think) {
        GS(g, "think");
        if (strcmp(o->think, "true") == 0) yajl_gen_bool(g, 1);
        else if (strcmp(o->think, "false") == 0) yajl_gen_bool(g, 0);
        else gstr(a, g, o->think);
    }
    if (stream_default_true) {
        GS(g, "stream");
        yajl_gen_bool(g, !o->no_stream);
    }
    return 0;
}

int ag__frame(const ag_alloc_funcs *a, const ag__target *t, const ag__body *bd, char **wire,
              size_t *len) {
    char head[2048], auth[800] = "";
    int hl;
    if (t->auth && *t->auth) snprintf(auth, sizeof auth, "Authorization: %s\r\n", t->auth);
    ag__body o; /* the OpenAI form, when the node speaks it */
    if (t->dialect == AG_API_OPENAI) {
        if (!bd->oai_path) return AG_EINVAL; /* not expressible in that API */
        o = *bd;
        o.method = bd->oai_method;
        o.path = bd->oai_path;
        o.accept = bd->oai_accept;
        o.data = bd->fwd ? bd->data : bd->oai;
        o.len = bd->fwd ? bd->len : bd->oai_len;
        bd = &o;
    }
    /* the head up to the caller's extra headers, then those, then the blank line */
    if (bd->data)
        hl = snprintf(head, sizeof head,
                      "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n%sAccept: %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      bd->method, t->base_path, bd->path, t->host_header, t->user_agent, auth, bd->accept,
                      bd->len);
    else
        hl = snprintf(head, sizeof head,
                      "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n%sAccept: %s\r\n",
                      bd->method, t->base_path, bd->path, t->host_header, t->user_agent, auth, bd->accept);
    if (hl < 0 || (size_t)hl >= sizeof head) return AG_EINVAL;
    size_t xl = bd->headers ? strlen(bd->headers) : 0, total = (size_t)hl + xl + 2 + bd->len;
    char *w = ag__malloc(a, total + 1);
    if (!w) return AG_ENOMEM;
    memcpy(w, head, (size_t)hl);
    if (xl) memcpy(w + hl, bd->headers, xl);
    memcpy(w + hl + xl, "\r\n", 2);
    if (bd->len) memcpy(w + hl + xl + 2, bd->data, bd->len);
    w[total] = 0;
    *wire = w;
    *len = total;
    return 0;
}

/* "Name: value" lines (split on \n) as CRLF-terminated header lines in *out;
 * AG_EINVAL for anything that could break the framing: a CR, an empty line, a
 * name that is not an HTTP token, or a header the library writes itself. */
int ag__headers(const ag_alloc_funcs *a, const char *in, char **out) {
    *out = NULL;
    if (!in || !*in) return 0;
    static const char *const ours[] = {"host", "content-length", "transfer-encoding", "connection",
                                       "content-type", "user-agent", "accept", "authorization"};
    size_t n = strlen(in);
    if (strchr(in, '\r') || n > 8192) return AG_EINVAL;
    char *o = ag__malloc(a, n + n / 2 + 4); /* every \n becomes \r\n, plus the last */
    if (!o) return AG_ENOMEM;
    size_t k = 0;
    for (const char *p = in; *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        const char *colon = memchr(p, ':', l);
        int ok = colon && colon > p;
        for (const char *q = p; ok && q < colon; q++)
            ok = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
                 strchr("!#$%&'*+-.^_`|~", *q);
        for (size_t i = 0; ok && i < sizeof ours / sizeof ours[0]; i++)
            ok = !((size_t)(colon - p) == strlen(ours[i]) && strncasecmp(p, ours[i], strlen(ours[i])) == 0);
        if (!ok) {
            ag__free(a, o);
            return AG_EINVAL;
        }
        memcpy(o + k, p, l);
        k += l;
        memcpy(o + k, "\r\n", 2);
        k += 2;
        if (!e) break;
        p = e + 1;
        if (!*p) break; /* a final \n ends the list */
    }
    o[k] = 0;
    *out = o;
    return 0;
}

void ag__body_free(const ag_alloc_funcs *a, ag__body *bd) {
    ag__free(a, bd->data);
    ag__free(a, bd->oai);
    ag__free(a, bd->own_path);
    ag__free(a, bd->headers);
    ag__free(a, bd->pin);
    if (bd->model_owned) ag__free(a, bd->model);
    bd->model = NULL;
    bd->model_owned = 0;
    bd->data = bd->oai = bd->own_path = bd->headers = bd->pin = NULL;
    bd->len = bd->oai_len = 0;
}

int ag__body_set_model(const ag_alloc_funcs *a, ag__body *bd, const char *model) {
    if (bd->model_owned) ag__free(a, bd->model);
    bd->model_owned = 0;
    bd->model = (char *)"";
    if (!model || !*model) return 0;
    char *m = ag__strdup(a, model);
    if (!m) return AG_ENOMEM;
    bd->model = m;
    bd->model_owned = 1;
    return 0;
}

/* 0 or AG_ENOMEM (the model's copy) */
static int set_route(const ag_alloc_funcs *a, ag__body *bd, int kind, const char *method, const char *path,
                     const char *accept, const char *model) {
    bd->kind = kind;
    bd->method = method;
    bd->path = path;
    bd->accept = accept;
    return ag__body_set_model(a, bd, model);
}

static yajl_gen gen_new(const ag_alloc_funcs *a) {
    yajl_gen g = ag__gen_new(a);
    if (g) yajl_gen_config(g, yajl_gen_validate_utf8, 0);
    return g;
}

/* closes the top-level object and keeps the text in *out */
static int close_into(const ag_alloc_funcs *a, yajl_gen g, int rc, char **out, size_t *len) {
    if (!rc && yajl_gen_map_close(g) != yajl_gen_status_ok) rc = AG_EINVAL;
    if (rc) {
        yajl_gen_free(g);
        return rc;
    }
    *out = ag__gen_take(a, g, len);
    return *out ? 0 : AG_ENOMEM;
}

/* the Ollama body (the route is already set) */
/* a failed encoding leaves nothing allocated in bd */
static int finish(const ag_alloc_funcs *a, yajl_gen g, int rc, ag__body *bd) {
    rc = close_into(a, g, rc, &bd->data, &bd->len);
    if (rc) ag__body_set_model(a, bd, NULL);
    return rc;
}

static int gen_images(const ag_alloc_funcs *a, yajl_gen g, const char *const *images, size_t n) {
    if (!n) return 0;
    if (!images) return AG_EINVAL;
    GS(g, "images");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        if (!images[i]) return AG_EINVAL;
        gstr(a, g, images[i]);
    }
    yajl_gen_array_close(g);
    return 0;
}

int ag__encode_chat(const ag_alloc_funcs *a, const ag_chat_params *p, ag__body *bd) {
    memset(bd, 0, sizeof *bd);
    if (!p->model || !*p->model || (p->n_messages && !p->messages)) return AG_EINVAL;
    yajl_gen g = gen_new(a);
    if (!g) return AG_ENOMEM;
    int rc = 0;
    yajl_gen_map_open(g);
    GS(g, "model");
    gstr(a, g, p->model);
    GS(g, "messages");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < p->n_messages && !rc; i++) {
        const ag_message *m = &p->messages[i];
        if (!m->role) { rc = AG_EINVAL; break; }
        yajl_gen_map_open(g);
        GS(g, "role");
        gstr(a, g, m->role);
        GS(g, "content");
        gstr(a, g, m->content ? m->content : "");
        if (m->thinking) { GS(g, "thinking"); gstr(a, g, m->thinking); }
        if ((rc = gen_images(a, g, m->images, m->n_images))) break;
        if (m->tool_calls_json) {
            GS(g, "tool_calls");
            if ((rc = ag__gen_raw(a, g, m->tool_calls_json))) break;
        }
        if (m->tool_name) { GS(g, "tool_name"); gstr(a, g, m->tool_name); }
        yajl_gen_map_close(g);
    }
    if (!rc) {
        /* where a resumed request appends the partial answer as a message */
        const unsigned char *buf;
        yajl_gen_get_buf(g, &buf, &bd->msgs_end);
        yajl_gen_array_close(g);
    }
    if (!rc && p->tools_json) {
        GS(g, "tools");
        rc = ag__gen_raw(a, g, p->tools_json);
    }
    if (!rc) rc = gen_common(a, g, &p->gen, 1);
    if (set_route(a, bd, AG__K_CHAT, "POST", "/api/chat",
              p->gen.no_stream ? "application/json" : "application/x-ndjson", p->model) && !rc)
        rc = AG_ENOMEM;
    return finish(a, g, rc, bd);
}

int ag__encode_generate(const ag_alloc_funcs *a, const ag_generate_params *p, ag__body *bd) {
    memset(bd, 0, sizeof *bd);
    if (!p->model || !*p->model) return AG_EINVAL;
    yajl_gen g = gen_new(a);
    if (!g) return AG_ENOMEM;
    int rc = 0;
    yajl_gen_map_open(g);
    GS(g, "model");
    gstr(a, g, p->model);
    if (p->prompt) { GS(g, "prompt"); gstr(a, g, p->prompt); }
    if (p->suffix) { GS(g, "suffix"); gstr(a, g, p->suffix); }
    if (p->system) { GS(g, "system"); gstr(a, g, p->system); }
    if (p->template_) { GS(g, "template"); gstr(a, g, p->template_); }
    if (p->raw) { GS(g, "raw"); yajl_gen_bool(g, 1); }
    rc = gen_images(a, g, p->images, p->n_images);
    if (!rc) rc = gen_common(a, g, &p->gen, 1);
    if (set_route(a, bd, AG__K_GENERATE, "POST", "/api/generate",
              p->gen.no_stream ? "application/json" : "application/x-ndjson", p->model) && !rc)
        rc = AG_ENOMEM;
    return finish(a, g, rc, bd);
}

int ag__encode_embed(const ag_alloc_funcs *a, const ag_embed_params *p, ag__body *bd) {
    memset(bd, 0, sizeof *bd);
    if (!p->model || !*p->model || !p->n_inputs || !p->inputs) return AG_EINVAL;
    if (p->legacy && p->n_inputs != 1) return AG_EINVAL;
    for (size_t i = 0; i < p->n_inputs; i++)
        if (!p->inputs[i]) return AG_EINVAL;
    yajl_gen g = gen_new(a);
    if (!g) return AG_ENOMEM;
    int rc = 0;
    yajl_gen_map_open(g);
    GS(g, "model");
    gstr(a, g, p->model);
    if (p->legacy) {
        GS(g, "prompt");
        gstr(a, g, p->inputs[0]);
    } else {
        GS(g, "input");
        if (p->n_inputs == 1) {
            gstr(a, g, p->inputs[0]);
        } else {
            yajl_gen_array_open(g);
            for (size_t i = 0; i < p->n_inputs; i++) gstr(a, g, p->inputs[i]);
            yajl_gen_array_close(g);
        }
        if (p->truncate >= 0 && p->truncate <= 1 && p->truncate != -1) {
            /* truncate defaults to true on the server: send only when false */
            if (p->truncate == 0) { GS(g, "truncate"); yajl_gen_bool(g, 0); }
        }
        if (p->dimensions > 0) { GS(g, "dimensions"); yajl_gen_integer(g, p->dimensions); }
    }
    ag_gen_options o = {0};
    o.options_json = p->options_json;
    o.keep_alive = p->keep_alive;
    rc = gen_common(a, g, &o, 0);
    if (set_route(a, bd, p->legacy ? AG__K_EMBED_LEGACY : AG__K_EMBED, "POST",
              p->legacy ? "/api/embeddings" : "/api/embed", "application/json", p->model) && !rc)
        rc = AG_ENOMEM;
    return finish(a, g, rc, bd);
}

int ag__encode_admin(const ag_alloc_funcs *a, int op, const ag_model_params *p, ag__body *bd) {
    static const ag_model_params none = {0};
    if (!p) p = &none;
    memset(bd, 0, sizeof *bd);
    switch (op) {
    case AG_OP_TAGS: return set_route(a, bd, AG__K_TAGS, "GET", "/api/tags", "application/json", NULL);
    case AG_OP_PS: return set_route(a, bd, AG__K_PS, "GET", "/api/ps", "application/json", NULL);
    case AG_OP_VERSION: return set_route(a, bd, AG__K_VERSION, "GET", "/api/version", "application/json", NULL);
    case AG_OP_PING:
        set_route(a, bd, AG__K_EMPTY, "HEAD", "/", "*/*", NULL); /* no model: cannot fail */
        bd->is_head = 1;
        return 0;
    default: break;
    }
    if (!p->model || !*p->model) return AG_EINVAL;
    yajl_gen g = gen_new(a);
    if (!g) return AG_ENOMEM;
    int route_rc = 0;
    yajl_gen_map_open(g);
    switch (op) {
    case AG_OP_SHOW:
        route_rc = set_route(a, bd, AG__K_SHOW, "POST", "/api/show", "application/json", p->model);
        GS(g, "model"); gstr(a, g, p->model);
        if (p->verbose) { GS(g, "verbose"); yajl_gen_bool(g, 1); }
        break;
    case AG_OP_PULL:
        route_rc = set_route(a, bd, AG__K_PULL, "POST", "/api/pull",
                  p->no_stream ? "application/json" : "application/x-ndjson", p->model);
        GS(g, "model"); gstr(a, g, p->model);
        if (p->insecure) { GS(g, "insecure"); yajl_gen_bool(g, 1); }
        GS(g, "stream"); yajl_gen_bool(g, !p->no_stream);
        break;
    case AG_OP_DELETE:
        route_rc = set_route(a, bd, AG__K_EMPTY, "DELETE", "/api/delete", "application/json", p->model);
        GS(g, "model"); gstr(a, g, p->model);
        break;
    case AG_OP_COPY:
        if (!p->destination || !*p->destination) { yajl_gen_free(g); return AG_EINVAL; }
        route_rc = set_route(a, bd, AG__K_EMPTY, "POST", "/api/copy", "application/json", p->model);
        GS(g, "source"); gstr(a, g, p->model);
        GS(g, "destination"); gstr(a, g, p->destination);
        break;
    default:
        yajl_gen_free(g);
        return AG_EINVAL;
    }
    return finish(a, g, route_rc, bd);
}

/* ---- the OpenAI-compatible dialect ----
 * The same request as /v1/chat/completions, /v1/completions, /v1/embeddings
 * or /v1/models. Options with an OpenAI name are carried over (num_predict as
 * max_tokens, temperature, top_p, seed, stop, presence and frequency
 * penalties); the others have no equivalent and are left out. */
#include <yajl/yajl_tree.h>

static int oai_options(const ag_alloc_funcs *a, yajl_gen g, const char *options_json) {
    if (!options_json) return 0;
    char err[64];
    yajl_val v = ag__json_tree(a, options_json, err, sizeof err);
    if (!v || !YAJL_IS_OBJECT(v)) {
        ag__json_tree_free(a, v);
        return AG_EINVAL;
    }
    static const char *same[] = {"temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        const char *name = NULL;
        if (!strcmp(k, "num_predict")) name = "max_tokens";
        for (size_t j = 0; j < sizeof same / sizeof same[0] && !name; j++)
            if (!strcmp(k, same[j])) name = k;
        if (!name) continue;
        yajl_val x = v->u.object.values[i];
        if (!strcmp(name, "max_tokens") && YAJL_IS_INTEGER(x) && YAJL_GET_INTEGER(x) < 0) continue; /* -1: no limit */
        gstr(a, g, name);
        if (YAJL_IS_NUMBER(x)) yajl_gen_number(g, x->u.number.r, strlen(x->u.number.r));
        else if (YAJL_IS_STRING(x)) gstr(a, g, x->u.string);
        else if (YAJL_IS_ARRAY(x)) {
            yajl_gen_array_open(g);
            for (size_t j = 0; j < x->u.array.len; j++)
                if (YAJL_IS_STRING(x->u.array.values[j])) gstr(a, g, x->u.array.values[j]->u.string);
            yajl_gen_array_close(g);
        } else {
            yajl_gen_null(g);
        }
    }
    ag__json_tree_free(a, v);
    return 0;
}

static int oai_finish(const ag_alloc_funcs *a, yajl_gen g, int rc, ag__body *bd) {
    return close_into(a, g, rc, &bd->oai, &bd->oai_len);
}

static void oai_stream(yajl_gen g, int no_stream, ag__body *bd) {
    GS(g, "stream");
    yajl_gen_bool(g, !no_stream);
    if (!no_stream) {
        GS(g, "stream_options"); /* token counts in the last chunk */
        yajl_gen_map_open(g);
        GS(g, "include_usage");
        yajl_gen_bool(g, 1);
        yajl_gen_map_close(g);
    }
    bd->oai_sse = !no_stream;
    bd->oai_accept = no_stream ? "application/json" : "text/event-stream";
}

/* Ollama's tool_calls ([{"function":{"name","arguments":{...}}}]) as OpenAI's
 * ([{"id","type","function":{"name","arguments":"<JSON text>"}}]); ids are
 * numbered so that the tool messages after can refer to them */
static int oai_tool_calls(const ag_alloc_funcs *a, yajl_gen g, const char *json, int *next_id) {
    char err[64];
    yajl_val v = ag__json_tree(a, json, err, sizeof err);
    if (!v || !YAJL_IS_ARRAY(v)) {
        ag__json_tree_free(a, v);
        return AG_EINVAL;
    }
    GS(g, "tool_calls");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < v->u.array.len; i++) {
        const char *fp[] = {"function", NULL}, *np[] = {"function", "name", NULL}, *ap[] = {"function", "arguments", NULL};
        yajl_val fn = yajl_tree_get(v->u.array.values[i], fp, yajl_t_object);
        yajl_val name = yajl_tree_get(v->u.array.values[i], np, yajl_t_string);
        yajl_val args = yajl_tree_get(v->u.array.values[i], ap, yajl_t_any);
        if (!fn || !name) continue;
        char id[32];
        snprintf(id, sizeof id, "call_%d", (*next_id)++);
        yajl_gen_map_open(g);
        GS(g, "id");
        gstr(a, g, id);
        GS(g, "type");
        GS(g, "function");
        GS(g, "function");
        yajl_gen_map_open(g);
        GS(g, "name");
        gstr(a, g, name->u.string);
        GS(g, "arguments");
        if (args && YAJL_IS_STRING(args)) {
            gstr(a, g, args->u.string);
        } else { /* the object, as JSON text */
            yajl_gen inner = ag__gen_new(a);
            if (args && YAJL_IS_OBJECT(args)) {
                yajl_gen_map_open(inner);
                for (size_t j = 0; j < args->u.object.len; j++) {
                    gstr(a, inner, args->u.object.keys[j]);
                    yajl_val x = args->u.object.values[j];
                    if (YAJL_IS_STRING(x)) gstr(a, inner, x->u.string);
                    else if (YAJL_IS_NUMBER(x)) yajl_gen_number(inner, x->u.number.r, strlen(x->u.number.r));
                    else if (YAJL_IS_TRUE(x)) yajl_gen_bool(inner, 1);
                    else if (YAJL_IS_FALSE(x)) yajl_gen_bool(inner, 0);
                    else yajl_gen_null(inner); /* nested values: rare in tool arguments */
                }
                yajl_gen_map_close(inner);
            } else {
                yajl_gen_map_open(inner);
                yajl_gen_map_close(inner);
            }
            const unsigned char *b;
            size_t n;
            yajl_gen_get_buf(inner, &b, &n);
            yajl_gen_string(g, b, n);
            yajl_gen_free(inner);
        }
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    ag__json_tree_free(a, v);
    return 0;
}

static int oai_format(const ag_alloc_funcs *a, yajl_gen g, const char *format) {
    if (!format) return 0;
    const char *f = format;
    while (*f == ' ' || *f == '\n' || *f == '\t') f++;
    GS(g, "response_format");
    yajl_gen_map_open(g);
    GS(g, "type");
    if (*f == '{') {
        GS(g, "json_schema");
        GS(g, "json_schema");
        yajl_gen_map_open(g);
        GS(g, "name");
        GS(g, "response");
        GS(g, "schema");
        if (ag__gen_raw(a, g, f)) return AG_EINVAL;
        yajl_gen_map_close(g);
    } else {
        GS(g, "json_object");
    }
    yajl_gen_map_close(g);
    return 0;
}

/* An image as OpenAI's API takes it: Ollama's are base64 without a type,
 * so the type comes from the first bytes (PNG, JPEG, GIF, WebP, BMP); a
 * data: or http(s): URL goes as it is. */
static int oai_image(const ag_alloc_funcs *a, yajl_gen g, const char *img) {
    GS(g, "type");
    GS(g, "image_url");
    GS(g, "image_url");
    yajl_gen_map_open(g);
    GS(g, "url");
    if (!strncmp(img, "data:", 5) || !strncmp(img, "http://", 7) || !strncmp(img, "https://", 8)) {
        gstr(a, g, img);
    } else {
        const char *mime = !strncmp(img, "/9j/", 4)          ? "image/jpeg"
                           : !strncmp(img, "R0lGOD", 6)      ? "image/gif"
                           : !strncmp(img, "UklGR", 5)       ? "image/webp"
                           : !strncmp(img, "Qk", 2)          ? "image/bmp"
                                                             : "image/png";
        size_t ml = strlen(mime), il = strlen(img);
        char *url = ag__malloc(a, 5 + ml + 8 + il + 1);
        if (!url) return AG_ENOMEM;
        memcpy(url, "data:", 5);
        memcpy(url + 5, mime, ml);
        memcpy(url + 5 + ml, ";base64,", 8);
        memcpy(url + 13 + ml, img, il + 1);
        ag__gen_text(a, g, url, 13 + ml + il);
        ag__free(a, url);
    }
    yajl_gen_map_close(g);
    return 0;
}

/* a message's content: the text, or with images the parts OpenAI's API
 * takes (the text first, then each image) */
static int oai_content(const ag_alloc_funcs *a, yajl_gen g, const char *text, const char *const *images, size_t n) {
    GS(g, "content");
    if (!n) {
        gstr(a, g, text ? text : "");
        return 0;
    }
    if (!images) return AG_EINVAL;
    yajl_gen_array_open(g);
    if (text && *text) {
        yajl_gen_map_open(g);
        GS(g, "type");
        GS(g, "text");
        GS(g, "text");
        gstr(a, g, text);
        yajl_gen_map_close(g);
    }
    for (size_t i = 0; i < n; i++) {
        if (!images[i]) return AG_EINVAL;
        yajl_gen_map_open(g);
        int rc = oai_image(a, g, images[i]);
        if (rc) return rc;
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    return 0;
}

int ag__encode_chat_oai(const ag_alloc_funcs *a, const ag_chat_params *p, ag__body *bd) {
    if (!p->model || !*p->model || (p->n_messages && !p->messages)) return AG_EINVAL;
    yajl_gen g = gen_new(a);
    if (!g) return AG_ENOMEM;
    int rc = 0, next_id = 0, tool_id = 0;
    yajl_gen_map_open(g);
    GS(g, "model");
    gstr(a, g, p->model);
    GS(g, "messages");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < p->n_messages && !rc; i++) {
        const ag_message *m = &p->messages[i];
        if (!m->role) {
            rc = AG_EINVAL;
            break;
        }
        yajl_gen_map_open(g);
        GS(g, "role");
        gstr(a, g, m->role);
        if ((rc = oai_content(a, g, m->content, m->images, m->n_images))) break;
        if (m->tool_calls_json) {
            tool_id = next_id;
            rc = oai_tool_calls(a, g, m->tool_calls_json, &next_id);
        }
        if (!strcmp(m->role, "tool")) {
            char id[32];
            snprintf(id, sizeof id, "call_%d", tool_id < next_id ? tool_id++ : tool_id);
            GS(g, "tool_call_id");
            gstr(a, g, id);
            if (m->tool_name) {
                GS(g, "name");
                gstr(a, g, m->tool_name);
            }
        }
        yajl_gen_map_close(g);
    }
    if (!rc) yajl_gen_array_close(g);
    if (!rc && p->tools_json) {
        GS(g, "tools");
        rc = ag__gen_raw(a, g, p->tools_json);
    }
    if (!rc) rc = oai_options(a, g, p->gen.options_json);
    if (!rc) rc = oai_format(a, g, p->gen.format);
    if (!rc && p->gen.think) { /* Ollama's think as OpenAI's reasoning_effort: true is medium, false none */
        const char *t = p->gen.think;
        const char *e = !strcmp(t, "low") || !strcmp(t, "medium") || !strcmp(t, "high") ? t
                        : !strcmp(t, "true") ? "medium" : !strcmp(t, "false") ? "none" : NULL;
        if (e) {
            GS(g, "reasoning_effort");
            gstr(a, g, e);
        }
    }
    if (!rc) oai_stream(g, p->gen.no_stream, bd);
    bd->oai_method = "POST";
    bd->oai_path = "/v1/chat/completions";
    if ((!bd->model || !bd->model[0]) && ag__body_set_model(a, bd, p->model) && !rc) rc = AG_ENOMEM;
    bd->kind = AG__K_CHAT;
    return oai_finish(a, g, rc, bd);
}

int ag__encode_generate_oai(const ag_alloc_funcs *a, const ag_generate_params *p, ag__body *bd) {
    if (!p->model || !*p->model) return AG_EINVAL;
    if (p->n_images || (p->system && *p->system && !p->raw && !p->suffix)) {
        /* completions take no images and no system prompt: a chat of one
         * user message (after the system prompt) carries them, with the
         * model's template applied by the server as Ollama's generate
         * does; its answer reads the same */
        ag_message m[2];
        memset(m, 0, sizeof m);
        size_t nm = 0;
        if (p->system && *p->system) m[nm++] = (ag_message){.role = "system", .content = p->system};
        m[nm++] = (ag_message){.role = "user", .content = p->prompt ? p->prompt : "", .images = p->images, .n_images = p->n_images};
        ag_chat_params cp = {.model = p->model, .messages = m, .n_messages = nm, .gen = p->gen};
        int rc = ag__encode_chat_oai(a, &cp, bd);
        bd->kind = AG__K_GENERATE;
        return rc;
    }
    yajl_gen g = gen_new(a);
    if (!g) return AG_ENOMEM;
    yajl_gen_map_open(g);
    GS(g, "model");
    gstr(a, g, p->model);
    GS(g, "prompt");
    gstr(a, g, p->prompt ? p->prompt : "");
    if (p->suffix) { GS(g, "suffix"); gstr(a, g, p->suffix); }
    int rc = oai_options(a, g, p->gen.options_json);
    if (!rc) oai_stream(g, p->gen.no_stream, bd);
    bd->oai_method = "POST";
    bd->oai_path = "/v1/completions";
    if ((!bd->model || !bd->model[0]) && ag__body_set_model(a, bd, p->model) && !rc) rc = AG_ENOMEM;
    bd->kind = AG__K_GENERATE;
    return oai_finish(a, g, rc, bd);
}

int ag__encode_embed_oai(const ag_alloc_funcs *a, const ag_embed_params *p, ag__body *bd) {
    if (!p->model || !*p->model || !p->n_inputs || !p->inputs) return AG_EINVAL;
    yajl_gen g = gen_new(a);
    if (!g) return AG_ENOMEM;
    yajl_gen_map_open(g);
    GS(g, "model");
    gstr(a, g, p->model);
    GS(g, "input");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < p->n_inputs; i++) gstr(a, g, p->inputs[i] ? p->inputs[i] : "");
    yajl_gen_array_close(g);
    if (p->dimensions > 0) { GS(g, "dimensions"); yajl_gen_integer(g, p->dimensions); }
    bd->oai_method = "POST";
    bd->oai_path = "/v1/embeddings";
    bd->oai_accept = "application/json";
    bd->oai_sse = 0;
    int rc = 0;
    if ((!bd->model || !bd->model[0]) && ag__body_set_model(a, bd, p->model)) rc = AG_ENOMEM;
    bd->kind = AG__K_EMBED;
    return oai_finish(a, g, rc, bd);
}

void ag__encode_admin_oai(int op, ag__body *bd) {
    if (op == AG_OP_TAGS || op == AG_OP_PS || op == AG_OP_VERSION || op == AG_OP_PING) {
        bd->oai_method = "GET";
        bd->oai_path = "/v1/models";
        bd->oai_accept = "application/json";
        bd->oai_sse = 0;
    }
}
