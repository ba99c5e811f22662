/* Fuzz target: every Ollama response decoder, fed arbitrary bytes at
 * arbitrary split points. Byte 0 picks the decoder, byte 1 seeds the splits;
 * the rest is the body. Invariants: no crash, no leak, a stop from the sink
 * is honoured, and a decode error is sticky. Ollama chat and generate bodies
 * are decoded a second time in one piece (where whole token lines take the
 * fast path) and a third time a byte at a time (where none can): all three
 * must give the same text, objects, final flag and outcome. /api/embed
 * bodies are decoded by the embed fast path and by yajl alone: the same
 * vectors (bit for bit), model, figures and outcome. */
#include <agents.h>
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

typedef struct text_sink {
    char buf[8192];
    size_t len, chunks;
} text_sink;
static int tsink(void *ctx, const ag_chunk *ch) {
    text_sink *t = ctx;
    t->chunks++;
    size_t room = sizeof t->buf - t->len;
    size_t k = ch->len < room ? ch->len : room;
    if (k) memcpy(t->buf + t->len, ch->text, k);
    t->len += k;
    char kind = (char)('0' + ch->kind); /* the kind of each chunk counts too */
    if (t->len < sizeof t->buf) t->buf[t->len++] = kind;
    return 0;
}
/* decodes body in pieces of `step` bytes (0: one piece) */
static int decode_as(int kind, const char *p, size_t n, size_t step, text_sink *t, int *objects, int *final) {
    ag__dec d;
    memset(t, 0, sizeof *t);
    if (ag__dec_init(&d, kind, NULL, 4096, tsink, t)) return -1000;
    int rc = 0;
    for (size_t off = 0; off < n && !rc;) {
        size_t k = step && step < n - off ? step : n - off;
        rc = ag__dec_feed(&d, p + off, k);
        off += k;
    }
    if (!rc) rc = ag__dec_finish(&d);
    *objects = d.objects;
    *final = d.got_final;
    ag__dec_free(&d);
    return rc;
}

static int sink(void *ctx, const ag_chunk *ch) {
    size_t *n = ctx;
    (*n)++;
    if (ch->len && (!ch->text)) __builtin_trap();
    if (ch->kind == AG_CHUNK_TOOL_CALL && (!ch->arguments_json || !ch->name)) __builtin_trap();
    if (ch->kind == AG_CHUNK_TOOL_CALL) { /* the arguments are always exactly one JSON value (never raw text) */
        char *t = malloc(ch->arguments_len + 1);
        if (!t) __builtin_trap();
        memcpy(t, ch->arguments_json, ch->arguments_len);
        t[ch->arguments_len] = 0;
        char err[8];
        yajl_val v = memchr(t, 0, ch->arguments_len) ? NULL : yajl_tree_parse(t, err, sizeof err);
        free(t);
        if (!v) __builtin_trap();
        yajl_tree_free(v);
    }
    return *n > 100000; /* a sink may stop the decoder */
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 2) return 0;
    int kind = AG__K_CHAT + (data[0] & 0x3f) % (AG__K_PULL - AG__K_CHAT + 1);
    int oai = data[0] & 0x80, sse = data[0] & 0x40; /* the OpenAI dialect, streamed as SSE or whole */
    unsigned seed = data[1];
    const char *p = (const char *)data + 2;
    size_t n = size - 2;
    ag__dec d;
    size_t chunks = 0;
    if (oai ? ag__dec_init_oai(&d, kind, sse != 0, NULL, 4096, sink, &chunks) : ag__dec_init(&d, kind, NULL, 4096, sink, &chunks))
        return 0;
    int rc = 0;
    size_t off = 0;
    while (off < n && !rc) {
        seed = seed * 1103515245u + 12345u;
        size_t k = 1 + (seed >> 16) % 64;
        if (k > n - off) k = n - off;
        rc = ag__dec_feed(&d, p + off, k);
        off += k;
    }
    if (!rc) rc = ag__dec_finish(&d);
    if (rc && ag__dec_feed(&d, "{}", 2) != rc) __builtin_trap(); /* errors stick */
    ag_result res;
    memset(&res, 0, sizeof res);
    ag__dec_result(&d, &res);
    if (res.n_embeddings && res.dim && !res.embeddings) __builtin_trap();
    ag__dec_free(&d);
    if (!oai && kind == AG__K_EMBED && n <= 65536) { /* the embed fast path against yajl */
        ag__dec a, b;
        if (ag__dec_init(&a, kind, NULL, 4096, NULL, NULL) || ag__dec_init(&b, kind, NULL, 4096, NULL, NULL))
            __builtin_trap();
        b.ekeep = 0; /* yajl only */
        int ra = ag__dec_feed(&a, p, n), rb = ag__dec_feed(&b, p, n);
        if (!ra) ra = ag__dec_finish(&a);
        if (!rb) rb = ag__dec_finish(&b);
        if (ra != rb) __builtin_trap();
        if (!ra && (a.nvec != b.nvec || a.rows != b.rows || a.dim != b.dim || strcmp(a.model.p ? a.model.p : "", b.model.p ? b.model.p : "") ||
                    memcmp(&a.server, &b.server, sizeof a.server) ||
                    (a.nvec && memcmp(a.vec, b.vec, a.nvec * sizeof(float)))))
            __builtin_trap();
        ag__dec_free(&a);
        ag__dec_free(&b);
    }
    if (!oai && (kind == AG__K_CHAT || kind == AG__K_GENERATE) && n <= 4096) {
        static text_sink a, b;
        int oa, ob, fa, fb;
        int ra = decode_as(kind, p, n, 0, &a, &oa, &fa), rb = decode_as(kind, p, n, 1, &b, &ob, &fb);
        if (ra != rb) __builtin_trap();
        if (ra == 0 && (a.len != b.len || memcmp(a.buf, b.buf, a.len) || oa != ob || fa != fb)) __builtin_trap();
    }
    return 0;
}
