/* examples/epoll_server.c - a server on plain epoll (no libevent in sight)
 * that streams model answers to its own clients.
 *
 *   OLLAMA_HOST=127.0.0.1:11434 ./epoll_server llama3.2 8080
 *   printf 'why is the sky blue?\n' | nc 127.0.0.1 8080
 *
 * Protocol: a client sends one line, the prompt; the server streams the
 * answer back as it comes, then a line "[N tokens]" and closes. The engine's
 * fd sits in the same epoll set as the sockets. A client that hangs up early
 * cancels its request; a client that reads slowly gets its bytes buffered,
 * and the engine's backpressure slows the node down once its queue is full.
 * Port 0 picks a free port; the first line printed says which. SIGINT or
 * SIGTERM stops it. */
#include <agents.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
    int fd;          /* -1 once the client is gone */
    uint64_t req;    /* the running request, 0 before the prompt */
    char line[4096]; /* the prompt being read */
    size_t line_len;
    char *out;       /* bytes not yet written to the client */
    size_t out_len, out_cap;
    int finished;    /* the answer is complete: close once out is written */
    int rd_closed;   /* the client finished sending (half-close): answer anyway */
    struct conn *next_dead;
    struct conn *prev, *next; /* every connection not yet freed */
} conn;

static int ep;
static ag_engine *engine;
static const char *model;
/* connections closed during one epoll batch, freed after it (a later event of
 * the same batch may still name them) */
static conn *dead, *all;

static void conn_release(conn *c) {
    if (c->prev) c->prev->next = c->next;
    else all = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->fd >= 0) close(c->fd);
    free(c->out);
    free(c);
}

static void conn_bury(conn *c) {
    if (c->fd >= 0) close(c->fd); /* close removes it from the epoll set */
    c->fd = -1;
    c->next_dead = dead;
    dead = c;
}

/* the client is gone or done with: a running request is cancelled, and the
 * connection is buried when its done event comes */
static void conn_gone(conn *c) {
    if (c->req && !c->finished) {
        close(c->fd);
        c->fd = -1;
        ag_engine_cancel(engine, c->req);
    } else {
        conn_bury(c);
    }
}

/* writes what it can; the rest waits for EPOLLOUT */
static void conn_flush(conn *c) {
    while (c->fd >= 0 && c->out_len > 0) {
        ssize_t n = write(c->fd, c->out, c->out_len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n < 0) { /* the client went away */
            conn_gone(c);
            return;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    if (c->finished && c->out_len == 0) {
        conn_bury(c); /* all said */
        return;
    }
    struct epoll_event ev = {.events = (c->rd_closed ? 0 : EPOLLIN | EPOLLRDHUP) | (c->out_len ? EPOLLOUT : 0),
                             .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_send(conn *c, const char *p, size_t n) {
    if (c->fd < 0) return;
    if (c->out_len + n > c->out_cap) {
        size_t cap = (c->out_len + n) * 2;
        char *o = realloc(c->out, cap);
        if (!o) {
            conn_gone(c);
            return;
        }
        c->out = o;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    conn_flush(c);
}

static void start_answer(conn *c) {
    c->line[c->line_len] = 0;
    ag_message m = {.role = "user", .content = c->line};
    ag_chat_params p = {.model = model, .messages = &m, .n_messages = 1};
    if (ag_engine_chat(engine, &p, c, &c->req) != 0) {
        c->finished = 1;
        conn_send(c, "[busy]\n", 7);
    }
}

static void on_readable(conn *c) {
    char buf[1024];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n == 0 && c->req) { /* a half-close after the prompt: keep answering */
        c->rd_closed = 1;
        conn_flush(c);
        return;
    }
    if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
        conn_gone(c); /* hung up before a whole prompt, or a reset */
        return;
    }
    for (ssize_t i = 0; i < n && !c->req; i++) {
        if (buf[i] == '\n' || c->line_len == sizeof c->line - 1) start_answer(c);
        else c->line[c->line_len++] = buf[i];
    }
}

/* the engine's events: chunks to their client, the end closes it */
static void on_engine(void) {
    ag_event *ev;
    while (ag_engine_next(engine, &ev, 0) == 1) {
        conn *c = ev->ud;
        if (ev->kind == AG_EVENT_CHUNK && ev->chunk.kind == AG_CHUNK_CONTENT) {
            conn_send(c, ev->chunk.text, ev->chunk.len);
        } else if (ev->kind == AG_EVENT_DONE) {
            char tail[256];
            int n = ev->status == 0
                        ? snprintf(tail, sizeof tail, "\n[%lld tokens]\n", (long long)ev->result->server.eval_count)
                        : snprintf(tail, sizeof tail, "\n[error: %s]\n", ag_strerror(ev->status));
            c->finished = 1;
            if (c->fd < 0) conn_bury(c); /* gone: the done event was the last word */
            else conn_send(c, tail, (size_t)n); /* closes once written */
        }
        ag_event_free(ev);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: %s MODEL PORT\n", argv[0]), 2;
    model = argv[1];
    int err = 0;
    engine = ag_engine_new(NULL, &err); /* a local client on $OLLAMA_HOST */
    if (!engine) return fprintf(stderr, "engine: %s\n", ag_strerror(err)), 1;

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 128) ||
        getsockname(lfd, (struct sockaddr *)&a, &alen))
        return perror("listen"), 1;
    printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

    ep = epoll_create1(EPOLL_CLOEXEC);
    static int tag_listen, tag_engine, tag_signal; /* data.ptr markers */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_listen};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.ptr = &tag_engine;
    epoll_ctl(ep, EPOLL_CTL_ADD, ag_engine_fd(engine), &ev);
    ev.data.ptr = &tag_signal;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    for (int running = 1; running;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &tag_signal) {
                running = 0;
            } else if (p == &tag_engine) {
                on_engine();
            } else if (p == &tag_listen) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    conn *c = calloc(1, sizeof *c);
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    c->next = all;
                    if (all) all->prev = c;
                    all = c;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
            } else {
                conn *c = p;
                if (c->fd >= 0 && (evs[i].events & EPOLLOUT)) conn_flush(c);
                if (c->fd >= 0 && (evs[i].events & (EPOLLHUP | EPOLLERR))) conn_gone(c);
                else if (c->fd >= 0 && !c->finished && !c->rd_closed && (evs[i].events & (EPOLLIN | EPOLLRDHUP)))
                    on_readable(c);
            }
        }
        while (dead) {
            conn *c = dead;
            dead = c->next_dead;
            conn_release(c);
        }
    }
    /* requests still running complete with AG_ESHUTDOWN (their events are
     * dropped); then the connections go */
    ag_engine_free(engine);
    while (all) conn_release(all);
    close(ep);
    close(lfd);
    close(sfd);
    return 0;
}
