/* core/result.c - keeping a result past its callback. */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

/* Two passes over the same walk: the first sizes, the second copies, so the
 * copy is one malloc block that ag_result_free releases at once. */
typedef struct dupper {
    char *base;
    size_t off;
} dupper;

static void *take(dupper *d, size_t n, size_t align) {
    d->off = (d->off + align - 1) & ~(align - 1);
    void *p = d->base ? d->base + d->off : NULL;
    d->off += n;
    return p;
}

static const char *str(dupper *d, const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = take(d, n, 1);
    if (p) memcpy(p, s, n);
    return p;
}

static void walk(dupper *d, const ag_result *in, ag_result *out) {
    ag_result *o = take(d, sizeof *o, sizeof(void *));
    if (!o) o = out; /* sizing pass: write into scratch */
    *o = *in;
    o->error = str(d, in->error);
    o->model = str(d, in->model);
    o->created_at = str(d, in->created_at);
    o->done_reason = str(d, in->done_reason);
    o->version = str(d, in->version);
    o->node = str(d, in->node);
    if (in->n_tries) {
        ag_attempt *t = take(d, in->n_tries * sizeof *t, sizeof(void *));
        ag_attempt scratch;
        for (size_t i = 0; i < in->n_tries; i++) {
            ag_attempt *x = t ? &t[i] : &scratch;
            *x = in->tries[i];
            x->node = str(d, in->tries[i].node);
            x->span_id = str(d, in->tries[i].span_id);
        }
        o->tries = t;
    }
    if (in->n_context) {
        int64_t *c = take(d, in->n_context * sizeof *c, sizeof(int64_t));
        if (c) memcpy(c, in->context, in->n_context * sizeof *c);
        o->context = c;
    }
    if (in->n_embeddings && in->dim) {
        size_t n = in->n_embeddings * in->dim;
        float *v = take(d, n * sizeof *v, sizeof(float));
        if (v) memcpy(v, in->embeddings, n * sizeof *v);
        o->embeddings = v;
    }
    if (in->n_models) {
        ag_model_info *m = take(d, in->n_models * sizeof *m, sizeof(void *));
        ag_model_info scratch;
        for (size_t i = 0; i < in->n_models; i++) {
            const ag_model_info *s = &in->models[i];
            ag_model_info *t = m ? &m[i] : &scratch;
            *t = *s;
            t->name = str(d, s->name);
            t->model = str(d, s->model);
            t->digest = str(d, s->digest);
            t->modified_at = str(d, s->modified_at);
            t->expires_at = str(d, s->expires_at);
            t->family = str(d, s->family);
            t->format = str(d, s->format);
            t->parameter_size = str(d, s->parameter_size);
            t->quantization_level = str(d, s->quantization_level);
            t->parent_model = str(d, s->parent_model);
        }
        o->models = m;
    }
    if (in->show) {
        ag_show_info *sh = take(d, sizeof *sh, sizeof(void *));
        ag_show_info scratch;
        ag_show_info *t = sh ? sh : &scratch;
        *t = *in->show;
        t->modelfile = str(d, in->show->modelfile);
        t->parameters = str(d, in->show->parameters);
        t->template_ = str(d, in->show->template_);
        t->family = str(d, in->show->family);
        t->parameter_size = str(d, in->show->parameter_size);
        t->quantization_level = str(d, in->show->quantization_level);
        t->format = str(d, in->show->format);
        if (in->show->n_capabilities) {
            const char **caps = take(d, in->show->n_capabilities * sizeof *caps, sizeof(void *));
            for (size_t i = 0; i < in->show->n_capabilities; i++) {
                const char *c = str(d, in->show->capabilities[i]);
                if (caps) caps[i] = c;
            }
            t->capabilities = caps;
        }
        o->show = sh;
    }
}

ag_result *ag_result_dup(const ag_result *res) {
    if (!res) return NULL;
    dupper d = {NULL, 0};
    ag_result scratch;
    walk(&d, res, &scratch);
    d.base = malloc(d.off);
    if (!d.base) return NULL;
    d.off = 0;
    walk(&d, res, &scratch);
    return (ag_result *)d.base;
}

void ag_result_free(ag_result *res) {
    free(res);
}
