/* cli/cli.h - what the agents program's command files share: the options
 * every command parses, the loop and client setup, printing, exit codes. */
#ifndef AG_CLI_H
#define AG_CLI_H
#include <agents.h>

#include <stdio.h>

#include <event2/event.h>

#include "cli/options.h"

#define EXIT_REQ 1   /* the request failed: server or network */
#define EXIT_USAGE 2 /* bad command line */
#define EXIT_INT 130 /* interrupted */
typedef struct opts {
    const char *host, *model, *system, *keep_alive, *think, *format, *tools;
    const char *nodes, *nodes_file, *policy, *discover;
    int resume;
    double resolve_interval; /* dns+ node names: seconds between resolutions */
    int priority_reserve; /* -1 = not given: 1 */
    int learn_slots;      /* 1 = --learn-slots off */
    const char *agent, *docs, *embed_model, *in, *out;
    const char *ca_file, *token;
    int tls_insecure, api;
    int top_k, context, concurrency, strict, no_progress, retry_failed;
    char options_json[4096];
    size_t olen;
    int json, no_stream, help, verbose, insecure, legacy, dims;
    double connect_timeout, idle_timeout, first_byte_timeout;
    int retries;
    double retry_delay, retry_factor;
    ag_request_options ro;
    /* gateway */
    const char *listen, *client_token, *origins, *keys_file, *tls_cert, *tls_key;
    const char *access_log, *otlp, *log_level, *log_format;
    int pull_all;
    unsigned max_clients, max_in_flight;
    int max_clients_per_ip;
    double max_body_mb, request_timeout, client_idle, send_timeout;
    const char *args[64];
    int nargs;
    const char *images[16]; /* --image */
    int nimages;
    const char *file, *quantize; /* create */
    int names;                   /* list --names */
} opts;
typedef struct run_state {
    opts *o;
    int done, status;
    int tty;
    int in_thinking;
    int printed_any;
    char *last_char;
    char last;
} run_state;
typedef void (*print_result_fn)(const ag_result *res, opts *o);
typedef struct done_state {
    run_state *rs;
    print_result_fn pr;
} done_state;

/* cli/common.c */
extern const char *prog;
extern struct event_base *g_base;
extern ag_request *g_req;
extern int g_interrupted;
extern ag_task *g_task;
extern struct event *g_sig;
extern int g_is_pool;
extern int g_plain_base;
void die_usage(const char *fmt, const char *arg);
const char *options_json(opts *o);
const char *need(int argc, char **argv, int *i);
/* the command's options (argv[1] names it) from argv[start]; --help prints
 * the command's help and exits 0; options of other families (bench's own)
 * go to extra */
void parse_common(int argc, char **argv, int start, opts *o);
typedef void (*extra_opt_fn)(int id, const char *val, void *ud);
void parse_common_x(int argc, char **argv, int start, opts *o, extra_opt_fn extra, void *ud);
ag_client *make_client(opts *o);
void print_nodes(FILE *f, ag_client *c);
void wait_probes(ag_client *c);
void print_chunk(ag_request *r, const ag_chunk *ch, void *ud);
void free_loop(void);
int finish_run(ag_client *c, run_state *s, int rc);
char *read_prompt(opts *o);
const char *model_or_die(opts *o);
const char *getenv_model(void);
void positional_model(opts *o);
ag_gen_options gen_opts(opts *o);
/* the per-request options from the command line (retries), or NULL */
const ag_request_options *req_opts(opts *o);
void on_done(ag_request *r, const ag_result *res, void *ud);
void auth_hint(int status);
/* -v: a request's node, attempts, timings and the server's counts, to stderr */
void print_stats(const ag_result *res);
void cb_chunk(ag_request *r, const ag_chunk *ch, void *ud);
/* precise timers (EVENT_BASE_FLAG_PRECISE_TIMER): the default monotonic
 * clock ticks every few ms, too coarse for an open-loop arrival schedule and
 * the simulated node's pacing; everything else uses a plain loop (the flag
 * re-arms a timerfd every loop turn) */
struct event_base *cli_base_new(void);

/* one file per family of commands */
/* cli/requests.c: chat, generate, embed, and the model commands */
int cmd_chat(int argc, char **argv, int generate);
int cmd_embed(int argc, char **argv);
/* cli/models.c: list, ps, show, stop, pull, push, create, rm, cp, version, ping */
int cmd_admin(int argc, char **argv, const char *name);
int cmd_create(int argc, char **argv);
/* cli/progress.c: a redrawn bar on a terminal, plain lines elsewhere; stderr */
typedef struct progress progress;
progress *progress_new(int tty);
void progress_step(progress *p, const char *status, size_t slen, const char *digest, int64_t total, int64_t completed);
void progress_end(progress *p);
/* cli/repl.c: the interactive session of run and chat */
int repl_run(opts *o, const char *model);
/* --image files as base64 (NULL-terminated; exits on a file it cannot read) */
char **load_images(opts *o);
/* cli/sim.c */
int cmd_sim(int argc, char **argv);
void sim_sigint(evutil_socket_t fd, short what, void *arg);
/* cli/gateway.c */
int cmd_gateway(int argc, char **argv);
/* cli/demo.c */
int cmd_demo(int argc, char **argv);
/* cli/agents.c: run, batch */
int cmd_run(int argc, char **argv);
int cmd_batch(int argc, char **argv);
/* cli/bench.c */
int cmd_bench(int argc, char **argv);

#endif
