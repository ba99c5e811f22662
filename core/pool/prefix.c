/* core/pool/prefix.c - prefix affinity: each node remembers, in a bounded
 * table, the prompt prefixes it was sent lately (hashed in blocks, each
 * block's hash chained to the one before, so one hash stands for the whole
 * prefix up to it); a request without a session key goes to the node that
 * holds the longest prefix of its prompt, within the same load bound as
 * sessions. */
#include "core/pool/pool_internal.h"

#include <string.h>

#include "core/base/hash.h"

/* A block's hash mixes in 8 bytes at a time on four independent lanes (32
 * bytes a step: the multiplications overlap instead of waiting on each
 * other), folded into one by ag__mix64(); chaining makes the hash of block i stand
 * for blocks 0..i, seeded by the model (a cache holds one model's prefixes). */
static uint64_t rotl(uint64_t x, int r) {
    return (x << r) | (x >> (64 - r));
}

static uint64_t block_hash(uint64_t h, const unsigned char *b) {
    uint64_t l[4] = {h, h ^ 0x243f6a8885a308d3ull, h ^ 0x13198a2e03707344ull, h ^ 0xa4093822299f31d0ull};
    for (size_t i = 0; i < AG__PFX_BLOCK; i += 32)
        for (int k = 0; k < 4; k++) {
            uint64_t w;
            memcpy(&w, b + i + 8 * (size_t)k, 8);
            l[k] = (l[k] ^ w) * 0x9e3779b97f4a7c15ull;
            l[k] ^= l[k] >> 29;
        }
    return ag__mix64(l[0] ^ rotl(l[1], 17) ^ rotl(l[2], 31) ^ rotl(l[3], 47));
}

/* Where the prompt starts in a JSON body: the "messages" array (chat, either
 * API) or the "prompt" string (generate, completions). The literal key with
 * its quotes cannot occur inside a JSON string (quotes there are escaped). */
static const char *prompt_start(const char *d, size_t len, const char **end) {
    static const char *const keys[] = {"\"messages\"", "\"prompt\""};
    for (int k = 0; k < 2; k++) {
        size_t kl = strlen(keys[k]);
        for (const char *s = d; s + kl <= d + len; s++) {
            s = memchr(s, '"', (size_t)(d + len - s));
            if (!s || s + kl > d + len) break;
            if (memcmp(s, keys[k], kl) == 0) {
                *end = d + len;
                return s + kl;
            }
        }
    }
    return NULL;
}

int ag__prefix_of(ag__pool *p, ag_request *r) {
    preq *q = PR(r);
    if (q->pfx_done) return q->npfx;
    q->pfx_done = 1;
    const char *d = q->orig_body ? q->orig_body : r->body.data;
    size_t len = q->orig_body ? q->orig_len : r->body.len;
    if (!d || len < AG__PFX_BLOCK) return 0;
    if (!r->body.fwd && r->kind == AG__K_CHAT && r->body.msgs_end > 0 && r->body.msgs_end <= len)
        len = r->body.msgs_end; /* the messages only, not the options after them */
    const char *end, *s = prompt_start(d, len, &end);
    if (!s) return 0;
    q->pbytes = (size_t)(end - s);
    size_t nb = (size_t)(end - s) / AG__PFX_BLOCK;
    if (nb > AG__PFX_MAX_BLOCKS) nb = AG__PFX_MAX_BLOCKS;
    if (!nb) return 0;
    q->pfx = ag__malloc(p->base.alloc, nb * sizeof *q->pfx);
    if (!q->pfx) return 0; /* routed by load alone */
    uint64_t h = r->body.model ? ag__fnv1a(r->body.model) : AG__FNV_SEED;
    for (size_t i = 0; i < nb; i++) {
        h = block_hash(h, (const unsigned char *)s + i * AG__PFX_BLOCK);
        q->pfx[i] = h ? h : 1; /* 0 marks an empty slot */
    }
    q->npfx = (int)nb;
    return q->npfx;
}

void ag__prefix_release(ag__pool *p, ag_request *r) {
    preq *q = PR(r);
    ag__free(p->base.alloc, q->pfx);
    q->pfx = NULL;
    q->npfx = 0;
    q->pfx_done = 0;
}

/* the table: 4-way set associative, the least recently stored of a set
 * goes first */
static pfx_slot *set_of(const pnode *n, uint64_t h) {
    return n->pfx + ((h >> 9) % (n->pfx_cap / 4)) * 4;
}

static int present(const pnode *n, uint64_t h) {
    if (!n->pfx) return 0;
    pfx_slot *s = set_of(n, h);
    for (int i = 0; i < 4; i++)
        if (s[i].h == h) return 1;
    return 0;
}

static int table(ag__pool *p, pnode *n) {
    if (n->pfx) return 1;
    size_t cap = p->opt.prefix_entries > 0 ? (size_t)p->opt.prefix_entries : 4096;
    cap = (cap + 3) / 4 * 4;
    if (!(n->pfx = ag__calloc(p->base.alloc, cap * sizeof *n->pfx))) return 0;
    n->pfx_cap = cap;
    return 1;
}

static void put(pnode *n, uint64_t h, uint32_t now, uint32_t session) {
    pfx_slot *s = set_of(n, h), *v = NULL;
    for (int i = 0; i < 4 && !v; i++)
        if (s[i].h == h) v = &s[i];
    if (!v) {
        v = &s[0];
        for (int i = 1; i < 4; i++) /* an empty slot (tick 0) or the oldest */
            if (v->tick != 0 && (s[i].tick == 0 || (int32_t)(s[i].tick - v->tick) < 0)) v = &s[i];
        if (v->tick == 0) n->pfx_used++;
        n->sessions -= v->session;
        n->sessions += session;
        v->h = h;
        v->session = session;
    }
    v->tick = now ? now : 1;
}

void ag__prefix_store(ag__pool *p, pnode *n, ag_request *r) {
    if (p->opt.prefix_entries < 0 || p->opt.affinity_slack < 0) return;
    int nb = ag__prefix_of(p, r);
    if (!nb || !table(p, n)) return;
    uint32_t now = n->pfx_seq ? n->pfx_seq : ++n->pfx_seq; /* (counted by the caller, once a prompt) */
    for (int b = 0; b < nb; b++) put(n, PR(r)->pfx[b], now, 0);
}

/* a session routed here: counted among the keys the node holds (as long as
 * the table keeps it) */
void ag__prefix_store_session(ag__pool *p, pnode *n, uint64_t key) {
    if (p->opt.prefix_entries < 0 || !table(p, n)) return;
    uint64_t h = ag__mix64(key ^ 0x2545f4914f6cdd1dull);
    put(n, h ? h : 1, n->pfx_seq ? n->pfx_seq : ++n->pfx_seq, 1); /* (the prompt's count: stored with it) */
}

/* blocks of r's prefix that n holds: the longest run from the start (a
 * binary search: a chained hash present means its prefix was stored) */
static int held(const pnode *n, const uint64_t *h, int nb) {
    if (!present(n, h[0])) return 0; /* most nodes, most of the time: one probe */
    int lo = 1, hi = nb;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (present(n, h[mid - 1])) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

int ag__prefix_held(const pnode *n, const ag_request *r) {
    return PR(r)->npfx > 0 ? held(n, PR(r)->pfx, PR(r)->npfx) : 0;
}

int ag__prefix_has_session(const pnode *n, uint64_t key) {
    uint64_t h = ag__mix64(key ^ 0x2545f4914f6cdd1dull);
    return present(n, h ? h : 1);
}

void ag__prefix_forget(pnode *n) {
    if (n->pfx) memset(n->pfx, 0, n->pfx_cap * sizeof *n->pfx);
    n->pfx_used = 0;
    n->sessions = 0;
}

/* And no node idles while another queues for its affinity: the node an
 * affinity picks has at most slack x the mean (plus one) more in flight than
 * the least loaded candidate (a node that holds nothing yet gets work too). */
void ag__affinity_gap(ag__pool *p, size_t nroom, double *idle, double *gap) {
    unsigned least = ~0u;
    double total = 0;
    for (size_t i = 0; i < nroom; i++) {
        if (p->scratch[i]->in_flight < least) least = p->scratch[i]->in_flight;
        total += p->scratch[i]->in_flight;
    }
    double slack = p->opt.affinity_slack > 0 ? p->opt.affinity_slack : 0.25;
    *idle = nroom ? least : 0;
    *gap = 1 + slack * (total + 1) / (double)(nroom ? nroom : 1);
}

pnode *ag__prefix_choose(ag__pool *p, ag_request *r, size_t nroom, double bound,
                         double (*cost)(const pnode *, const char *, int), const char *model, int any_loaded) {
    int nb = ag__prefix_of(p, r);
    if (!nb) return NULL;
    const uint64_t *h = PR(r)->pfx;
    int least = nb + 1, best_m = 0;
    pnode *best = NULL;
    double best_c = 0;
    double idle, gap;
    ag__affinity_gap(p, nroom, &idle, &gap);
    for (size_t i = 0; i < nroom; i++) {
        pnode *n = p->scratch[i];
        int m = held(n, h, nb);
        if (m < least) least = m;
        if (!m || (double)n->in_flight + 1 > bound || (double)n->in_flight > idle + gap) continue;
        double c = cost(n, model, any_loaded);
        if (m > best_m || (m == best_m && c < best_c)) {
            best = n;
            best_m = m;
            best_c = c;
        }
    }
    /* only a prefix that some node holds and another does not says anything
     * (a system prompt every node holds leaves the choice to the load) */
    return best && best_m > least ? best : NULL;
}
