/* transport/http.h - private: HTTP/1.1 exchanges over a per-node connection
 * pool. Knows HTTP, not Ollama. */
#ifndef AG_TRANSPORT_HTTP_H
#define AG_TRANSPORT_HTTP_H
#include <stddef.h>
#include <stdint.h>
#include "agents/alloc.h"

struct event_base;
struct evdns_base;
typedef struct ag__node ag__node;
typedef struct ag__conn ag__conn;
typedef struct ag__http ag__http;

/* What an exchange reports to its owner. on_sent says the request went out
 * on a connection (the wait for the answer begins). on_head and on_body
 * return 0 to go on; nonzero means the owner has abandoned the exchange (the
 * transport then closes the connection quietly and never calls on_end).
 * on_end is the last call: err 0 when the whole response arrived, or an AG_E*
 * code. */
typedef struct ag__http_ops {
    void (*on_sent)(void *owner);
    int (*on_head)(void *owner, int status);
    int (*on_body)(void *owner, const char *p, size_t n);
    /* what was buffered has been parsed (NULL = not wanted); the exchange goes on */
    void (*on_read_end)(void *owner);
    void (*on_end)(void *owner, int err, const char *detail);
} ag__http_ops;

struct ag__http {
    /* set by the owner */
    const ag__http_ops *ops;
    void *owner;
    const char *wire; /* request head + body, owned by the owner until on_end */
    size_t wire_len;
    int is_head;      /* HEAD request: the response has no body */
    double first_byte_timeout, idle_timeout; /* this exchange's, when nonzero (negative = none) */
    /* transport's */
    ag__node *node;
    ag__conn *conn;
    ag__http *qnext, **qprev;
    unsigned queued : 1, retried : 1, got_bytes : 1, paused : 1;
    /* the answer's Retry-After (a 429 or 503), in ms: -1 when it had none */
    int retry_after_ms;
};

typedef struct ag__node_cfg {
    struct event_base *base;
    struct evdns_base *dns; /* may be NULL: made lazily for names */
    const char *host;       /* name or address (IPv6 without brackets) */
    int port;
    double connect_timeout;    /* seconds */
    double idle_timeout;       /* seconds without a byte once the answer began; <= 0 = none */
    double first_byte_timeout; /* seconds from sending to the answer's first byte; <= 0 = none */
    unsigned max_conns, max_idle, max_queue;
    const ag_alloc_funcs *alloc;
    struct ssl_ctx_st *tls; /* non-NULL: https, with this context (borrowed) */
    int tls_verify;         /* check the certificate's name against host */
} ag__node_cfg;

typedef struct ag__node_stats {
    uint64_t opened, reused, stale_retries;
    unsigned open, idle, queued, active;
} ag__node_stats;

ag__node *ag__node_new(const ag__node_cfg *cfg);
/* Closes every connection. Exchanges still attached are dropped silently:
 * the owner must have aborted or completed them first. */
void ag__node_free(ag__node *n);
void ag__node_get_stats(const ag__node *n, ag__node_stats *out);
const char *ag__node_name(const ag__node *n); /* "host:port" */

/* Starts an exchange: an idle connection, a new one, or the wait queue.
 * Returns 0 or AG_EQUEUEFULL. The outcome always comes through ops later. */
int ag__http_start(ag__node *n, ag__http *h);
/* Drops an exchange without calling back; closes its connection if one was
 * attached (a half-read response cannot be reused). */
void ag__http_abort(ag__http *h);
void ag__http_pause(ag__http *h, int paused);

#endif
