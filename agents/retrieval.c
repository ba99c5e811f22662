/* agents/retrieval.c - the document store and the research agent:
 * embed what is not cached -> embed the question -> rank -> cited chat. */
#include "agent_internal.h" /* (private: this folder's, not include/agents/) */
#include "core/base/hash.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EMBED_BATCH 32

typedef struct passage {
    char *name, *text;
} passage;

typedef struct cache_ent {
    uint64_t h;
    char *model, *text;
    float *v;
    size_t dim;
    struct cache_ent *next;
} cache_ent;

struct ag_docstore {
    const ag_alloc_funcs *al; /* its own (ag_docstore_new_with), NULL = libc */
    ag_alloc_funcs al_store;
    passage *p;
    size_t n, cap;
    size_t chunk, overlap;
    cache_ent *bucket[1024];
    size_t cached, requests;
};

static uint64_t hash2(const char *a, const char *b) {
    uint64_t h = ag__fnv1a(a);
    h = (h ^ 0xff) * 1099511628211ull; /* (a separator no text holds) */
    return ag__fnv1a_from(h, b);
}

static cache_ent *cache_get(ag_docstore *s, const char *model, const char *text) {
    uint64_t h = hash2(model, text);
    for (cache_ent *e = s->bucket[h % 1024]; e; e = e->next)
        if (e->h == h && !strcmp(e->model, model) && !strcmp(e->text, text)) return e;
    return NULL;
}

static int cache_put(ag_docstore *s, const char *model, const char *text, const float *v, size_t dim) {
    if (cache_get(s, model, text)) return 0;
    cache_ent *e = ag__calloc_n(s->al, 1, sizeof *e);
    if (!e) return AG_ENOMEM;
    e->h = hash2(model, text);
    e->model = ag__strdup(s->al, model);
    e->text = ag__strdup(s->al, text);
    e->v = ag__malloc(s->al, dim * sizeof *v);
    if (!e->model || !e->text || !e->v) {
        ag__free(s->al, e->model);
        ag__free(s->al, e->text);
        ag__free(s->al, e->v);
        ag__free(s->al, e);
        return AG_ENOMEM;
    }
    memcpy(e->v, v, dim * sizeof *v);
    e->dim = dim;
    e->next = s->bucket[e->h % 1024];
    s->bucket[e->h % 1024] = e;
    s->cached++;
    return 0;
}

ag_docstore *ag_docstore_new(size_t chunk_chars, size_t overlap) {
    return ag_docstore_new_with(chunk_chars, overlap, NULL);
}

ag_docstore *ag_docstore_new_with(size_t chunk_chars, size_t overlap, const ag_alloc_funcs *alloc) {
    ag_docstore *s = ag__calloc(alloc, sizeof *s);
    if (!s) return NULL;
    if (alloc) {
        s->al_store = *alloc;
        s->al = &s->al_store;
    }
    s->chunk = chunk_chars ? chunk_chars : 800;
    s->overlap = overlap ? overlap : 120;
    if (s->overlap >= s->chunk / 2) s->overlap = s->chunk / 4;
    return s;
}

void ag_docstore_free(ag_docstore *s) {
    if (!s) return;
    ag_alloc_funcs copy, *al = NULL; /* the block itself goes last */
    if (s->al) {
        copy = *s->al;
        al = &copy;
    }
    for (size_t i = 0; i < s->n; i++) {
        ag__free(al, s->p[i].name);
        ag__free(al, s->p[i].text);
    }
    ag__free(al, s->p);
    for (int b = 0; b < 1024; b++)
        for (cache_ent *e = s->bucket[b], *nx; e; e = nx) {
            nx = e->next;
            ag__free(al, e->model);
            ag__free(al, e->text);
            ag__free(al, e->v);
            ag__free(al, e);
        }
    ag__free(al, s);
}

static int add_passage(ag_docstore *s, const char *name, const char *p, size_t n) {
    while (n && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\t' || p[n - 1] == '\r')) n--;
    if (!n) return 0;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        passage *v = ag__realloc(s->al, s->p, nc * sizeof *v);
        if (!v) return AG_ENOMEM;
        s->p = v;
        s->cap = nc;
    }
    char *t = ag__malloc(s->al, n + 1);
    char *nm = ag__strdup(s->al, name);
    if (!t || !nm) {
        ag__free(s->al, t);
        ag__free(s->al, nm);
        return AG_ENOMEM;
    }
    memcpy(t, p, n);
    t[n] = 0;
    s->p[s->n].name = nm;
    s->p[s->n].text = t;
    s->n++;
    return 0;
}

/* passages of about `chunk` characters, cut at whitespace, overlapping */
int ag_docstore_add_text(ag_docstore *s, const char *name, const char *text) {
    if (!s || !name || !text) return AG_EINVAL;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        size_t end = off + s->chunk;
        if (end >= len) {
            end = len;
        } else {
            size_t cut = end;
            while (cut > off + s->chunk / 2 && text[cut] != ' ' && text[cut] != '\n') cut--;
            if (cut > off + s->chunk / 2) end = cut;
            while (end < len && (text[end] & 0xC0) == 0x80) end++; /* never split a UTF-8 sequence */
        }
        int rc = add_passage(s, name, text + off, end - off);
        if (rc) return rc;
        if (end >= len) break;
        size_t next = end > s->overlap ? end - s->overlap : end;
        while (next < end && text[next] != ' ' && text[next] != '\n') next++; /* start on a word */
        while (next < len && (text[next] & 0xC0) == 0x80) next++;
        off = next > off ? next : end;
    }
    return 0;
}

int ag_docstore_add_file(ag_docstore *s, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return AG_EINVAL;
    ag__buf b = {0};
    char buf[8192];
    size_t k;
    int rc = 0;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0 && !rc) {
        if (memchr(buf, 0, k)) rc = AG_EINVAL; /* binary: not a document */
        else rc = ag__buf_add(s->al, &b, buf, k);
        if (b.len > (64u << 20)) rc = AG_ETOOBIG;
    }
    fclose(f);
    if (!rc && b.p) rc = ag_docstore_add_text(s, path, b.p);
    ag__buf_free(s->al, &b);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ag_docstore_add_dir(ag_docstore *s, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return AG_EINVAL;
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char **v = ag__realloc(s->al, names, (n + 1) * sizeof *v);
        if (!v) break;
        names = v;
        names[n] = ag__malloc(s->al, strlen(dir) + strlen(e->d_name) + 2);
        if (!names[n]) break;
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str); /* a stable order, whatever the file system */
    int rc = 0, added = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0) {
            if (S_ISDIR(st.st_mode)) rc = ag_docstore_add_dir(s, names[i]);
            else if (S_ISREG(st.st_mode)) rc = ag_docstore_add_file(s, names[i]);
            if (rc == AG_EINVAL) rc = 0; /* skip what is not text */
            else if (!rc) added++;
        }
        ag__free(s->al, names[i]);
        if (rc) {
            for (size_t j = i + 1; j < n; j++) ag__free(s->al, names[j]);
            break;
        }
    }
    ag__free(s->al, names);
    return rc;
}

size_t ag_docstore_passages(const ag_docstore *s) {
    return s->n;
}

void ag_docstore_stats(const ag_docstore *s, size_t *cached, size_t *requests) {
    if (cached) *cached = s->cached;
    if (requests) *requests = s->requests;
}

/* ---- the research task ---- */
typedef struct rstate {
    size_t *missing, nmissing, next;
    ag_request *ereq;
    char *question;
} rstate;

void ag__research_task_free(ag_task *t) {
    rstate *r = t->rs;
    for (int i = 0; t->sources && i < t->n_sources; i++) {
        ag__free(t->a->al, (char *)t->sources[i].name);
        ag__free(t->a->al, (char *)t->sources[i].text);
    }
    ag__free(t->a->al, t->sources);
    t->sources = NULL;
    t->n_sources = 0;
    if (!r) return;
    ag__free(t->a->al, r->missing);
    ag__free(t->a->al, r->question);
    ag__free(t->a->al, r);
    t->rs = NULL;
}

/* before a retry: the question goes back where the cited prompt was */
void ag__research_task_reset(ag_task *t) {
    if (t->a->kind != AGK_RESEARCH) return;
    rstate *r = t->rs;
    if (r && r->question)
        for (size_t i = t->msgs.n; i > 0; i--)
            if (!strcmp(t->msgs.v[i - 1].role, "user")) {
                ag_msgs_set_content(&t->msgs, i - 1, r->question);
                break;
            }
    ag__research_task_free(t);
}

int ag__research_cancel(ag_task *t) {
    rstate *r = t->rs;
    if (!r || !r->ereq) return 0;
    ag_request_cancel(r->ereq);
    return 1;
}

static void embed_next(ag_task *t);
static void rank_and_ask(ag_task *t);

static void embed_done(ag_request *req, const ag_result *res, void *ud) {
    (void)req;
    ag_task *t = ud;
    rstate *r = t->rs;
    ag_docstore *s = t->a->store;
    r->ereq = NULL;
    if (t->cancelled) {
        ag__task_finish(t, AG_ECANCELED, NULL);
        return;
    }
    if (res->status) {
        ag__task_fail(t, res->status, res->error);
        return;
    }
    const char *model = t->a->embed_model;
    if (t->phase == T_EMBED_DOCS) {
        size_t k = r->nmissing - r->next < EMBED_BATCH ? r->nmissing - r->next : EMBED_BATCH;
        if (res->n_embeddings != k) {
            ag__task_finish(t, AG_EJSON, "the embedding answer has the wrong number of vectors");
            return;
        }
        for (size_t i = 0; i < k; i++)
            if (cache_put(s, model, s->p[r->missing[r->next + i]].text, res->embeddings + i * res->dim, res->dim)) {
                ag__task_finish(t, AG_ENOMEM, NULL);
                return;
            }
        r->next += k;
        embed_next(t);
        return;
    }
    if (res->n_embeddings != 1 || cache_put(s, model, r->question, res->embeddings, res->dim)) {
        ag__task_finish(t, AG_EJSON, "no vector for the question");
        return;
    }
    rank_and_ask(t);
}

static void embed_next(ag_task *t) {
    rstate *r = t->rs;
    ag_docstore *s = t->a->store;
    const char *texts[EMBED_BATCH];
    size_t k = 0;
    if (r->next < r->nmissing) {
        t->phase = T_EMBED_DOCS;
        for (; k < EMBED_BATCH && r->next + k < r->nmissing; k++) texts[k] = s->p[r->missing[r->next + k]].text;
    } else if (!cache_get(s, t->a->embed_model, r->question)) {
        t->phase = T_EMBED_Q;
        texts[k++] = r->question;
    } else {
        rank_and_ask(t);
        return;
    }
    ag_embed_params p = {.model = t->a->embed_model, .inputs = texts, .n_inputs = k, .truncate = -1,
                         .request = ag__task_ro(t)}; /* the run's options on every call, as agent.h promises */
    ag_callbacks cb = {NULL, embed_done, t};
    s->requests++;
    int rc = ag_embed(t->a->c, &p, &cb, &r->ereq);
    if (rc) ag__task_fail(t, rc, NULL);
}

void ag__research_start(ag_task *t) {
    ag_docstore *s = t->a->store;
    rstate *r = ag__calloc_n(t->a->al, 1, sizeof *r);
    if (!r) {
        ag__task_finish(t, AG_ENOMEM, NULL);
        return;
    }
    t->rs = r;
    for (size_t i = t->msgs.n; i > 0; i--)
        if (!strcmp(t->msgs.v[i - 1].role, "user")) {
            r->question = ag__strdup(t->a->al, t->msgs.v[i - 1].content);
            break;
        }
    if (!r->question || !*r->question) {
        ag__task_finish(t, AG_EINVAL, "the research agent needs a question (a user message)");
        return;
    }
    if (s->n == 0) {
        ag__task_finish(t, AG_EINVAL, "the document store is empty");
        return;
    }
    r->missing = ag__malloc(t->a->al, s->n * sizeof *r->missing);
    if (!r->missing) {
        ag__task_finish(t, AG_ENOMEM, NULL);
        return;
    }
    for (size_t i = 0; i < s->n; i++)
        if (!cache_get(s, t->a->embed_model, s->p[i].text)) r->missing[r->nmissing++] = i;
    embed_next(t);
}

static void rank_and_ask(ag_task *t) {
    rstate *r = t->rs;
    ag_docstore *s = t->a->store;
    const char *model = t->a->embed_model;
    t->phase = T_RANK;
    cache_ent *q = cache_get(s, model, r->question);
    int k = t->a->top_k < (int)s->n ? t->a->top_k : (int)s->n;
    size_t *best = ag__calloc_n(t->a->al, (size_t)k, sizeof *best);
    double *score = ag__calloc_n(t->a->al, (size_t)k, sizeof *score);
    t->sources = ag__calloc_n(t->a->al, (size_t)k, sizeof *t->sources);
    if (!best || !score || !t->sources || !q) {
        ag__free(t->a->al, best);
        ag__free(t->a->al, score);
        ag__task_finish(t, AG_ENOMEM, NULL);
        return;
    }
    int have = 0;
    for (size_t i = 0; i < s->n; i++) { /* top k by insertion */
        cache_ent *e = cache_get(s, model, s->p[i].text);
        if (!e || e->dim != q->dim) continue;
        double c = ag_cosine(q->v, e->v, q->dim);
        int pos = have < k ? have : k;
        while (pos > 0 && score[pos - 1] < c) {
            if (pos < k) {
                score[pos] = score[pos - 1];
                best[pos] = best[pos - 1];
            }
            pos--;
        }
        if (pos < k) {
            score[pos] = c;
            best[pos] = i;
            if (have < k) have++;
        }
    }
    /* the prompt: numbered sources, then the question */
    ag__buf prompt = {0};
    int rc = ag__buf_str(t->a->al, &prompt, "Sources:\n");
    for (int i = 0; i < have && !rc; i++) {
        char head[64];
        snprintf(head, sizeof head, "\n[%d] (", i + 1);
        rc |= ag__buf_str(t->a->al, &prompt, head);
        rc |= ag__buf_str(t->a->al, &prompt, s->p[best[i]].name);
        rc |= ag__buf_str(t->a->al, &prompt, ")\n");
        rc |= ag__buf_str(t->a->al, &prompt, s->p[best[i]].text);
        rc |= ag__buf_str(t->a->al, &prompt, "\n");
        t->sources[i].index = i + 1;
        t->sources[i].name = ag__strdup(t->a->al, s->p[best[i]].name);
        t->sources[i].text = ag__strdup(t->a->al, s->p[best[i]].text);
        t->sources[i].score = score[i];
        t->n_sources = i + 1;
    }
    rc |= ag__buf_str(t->a->al, &prompt, "\nQuestion: ");
    rc |= ag__buf_str(t->a->al, &prompt, r->question);
    ag__free(t->a->al, best);
    ag__free(t->a->al, score);
    for (size_t i = t->msgs.n; i > 0 && !rc; i--)
        if (!strcmp(t->msgs.v[i - 1].role, "user")) {
            rc = ag_msgs_set_content(&t->msgs, i - 1, prompt.p);
            break;
        }
    ag__buf_free(t->a->al, &prompt);
    if (rc) {
        ag__task_finish(t, AG_ENOMEM, NULL);
        return;
    }
    t->phase = T_CHAT;
    t->step_done = ag__task_answer_done;
    rc = ag__task_chat(t, 0, 0);
    if (rc) ag__task_fail(t, rc, NULL);
}

