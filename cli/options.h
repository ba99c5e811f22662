/* cli/options.h - the one table of the program's commands and options. The
 * parser, every --help, the manual page (agents __man) and the shell
 * completions (agents completion bash|zsh) are all made from it, so they
 * cannot drift apart. */
#ifndef AG_CLI_OPTIONS_H
#define AG_CLI_OPTIONS_H
#include <stdio.h>

/* families of options; a command takes the families in its mask */
enum {
    F_HELP = 1u << 0,   /* -h, --help */
    F_CONN = 1u << 1,   /* how to reach a node: -H, timeouts, TLS, token, --api, retries */
    F_POOL = 1u << 2,   /* several nodes: -N, --nodes-file, --policy, ... */
    F_MODEL = 1u << 3,  /* -m */
    F_GEN = 1u << 4,    /* generation: -o, --keep-alive, --think, --format, --no-stream, -s */
    F_JSON = 1u << 5,   /* --json: the server's JSON as it arrives */
    F_VERB = 1u << 6,   /* -v */
    F_CHAT = 1u << 7,   /* --tools, --image */
    F_EMBED = 1u << 8,  /* --dimensions, --legacy */
    F_AGENT = 1u << 9,  /* -a, --docs, ... */
    F_BATCH = 1u << 10, /* --in, --out, -c, ... */
    F_GW = 1u << 11,    /* the gateway's own */
    F_PULL = 1u << 12,  /* --insecure */
    F_CREATE = 1u << 13,/* -f, --quantize */
    F_LIST = 1u << 14,  /* --names */
    F_BENCH = 1u << 15, /* bench's own */
    F_SIM = 1u << 16,   /* sim's own */
    F_GWPOOL = 1u << 17 /* pool options the gateway takes (not -H) */
};

enum opt_id {
    O_END = -1, O_ARG = 0,
    O_HELP = 1, O_HOST, O_MODEL, O_SYSTEM, O_KEEP_ALIVE, O_THINK, O_FORMAT, O_TOOLS, O_IMAGE, O_OPTION,
    O_JSON, O_NO_STREAM, O_VERBOSE, O_INSECURE, O_LEGACY, O_DIMENSIONS, O_CONNECT_TIMEOUT,
    O_FIRST_BYTE_TIMEOUT, O_IDLE_TIMEOUT, O_RETRIES, O_RETRY_DELAY, O_RETRY_FACTOR, O_NODES,
    O_NODES_FILE, O_POLICY, O_DISCOVER, O_RESOLVE_INTERVAL, O_RESUME, O_PRIORITY_RESERVE,
    O_LEARN_SLOTS, O_MAX_IN_FLIGHT, O_CA_FILE, O_TLS_INSECURE, O_TOKEN, O_API, O_AGENT, O_DOCS,
    O_EMBED_MODEL, O_TOP_K, O_CONTEXT, O_IN, O_OUT, O_CONCURRENCY, O_STRICT, O_RETRY_FAILED,
    O_NO_PROGRESS, O_LISTEN, O_CLIENT_TOKEN, O_KEYS_FILE, O_TLS_CERT, O_TLS_KEY, O_ORIGINS,
    O_PULL_ALL, O_MAX_CLIENTS, O_MAX_CLIENTS_PER_IP, O_MAX_BODY_MB, O_REQUEST_TIMEOUT,
    O_CLIENT_IDLE_TIMEOUT, O_SEND_TIMEOUT, O_FILE, O_QUANTIZE, O_NAMES, O_ACCESS_LOG, O_OTLP, O_LOG_LEVEL,
    O_LOG_FORMAT,
    /* bench */
    O_B_FIRST, O_B_CONCURRENCY = O_B_FIRST, O_B_RATE, O_B_REQUESTS, O_B_DURATION, O_B_WARMUP,
    O_B_SEED, O_B_MAX_TOKENS, O_B_PROMPTS, O_B_TURNS, O_B_SHARED_PREFIX, O_B_INTERACTIVE,
    O_B_THINK_MS, O_B_CONTEXT_TOKENS, O_B_TURN_TOKENS, O_B_NO_SESSION, O_B_INPUT_LEN,
    O_B_OUTPUT_LEN, O_B_DATASET, O_B_TRACE, O_B_TRACE_SPEED, O_B_ARRIVAL, O_B_BURSTINESS,
    O_B_RAMP_UP, O_B_REPEAT, O_B_SLO_SEARCH, O_B_SCRAPE, O_B_SCRAPE_INTERVAL, O_B_ENDPOINT,
    O_B_SLO, O_B_JSON, O_B_CSV, O_B_HTML,
    /* sim */
    O_S_LISTEN, O_S_PORT, O_S_NODES, O_S_MODELS, O_S_TOKENS, O_S_TTFT, O_S_ITL, O_S_LOAD,
    O_S_SLOTS, O_S_QUEUE, O_S_DIM, O_S_FAULT, O_S_FAULT_AFTER, O_S_FAULT_EVERY, O_S_API,
    O_S_PREFILL_RATE, O_S_PREFIX_CACHE, O_S_SAYS
};

typedef struct cli_opt {
    int id;
    char shrt;        /* 0: none */
    const char *lng;  /* without the dashes */
    const char *arg;  /* the value's name; NULL: a flag */
    unsigned fam;
    const char *help; /* lines separated by '\n' */
} cli_opt;

/* what a command's positional arguments are, for the completion */
enum { A_NONE, A_MODEL, A_MODEL_TEXT, A_MODELS, A_FILE, A_CMD, A_SHELL };

typedef struct cli_cmd {
    const char *name;
    const char *aliases; /* comma-separated other names, or NULL */
    unsigned fam;
    int args;
    const char *usage;   /* after "agents " */
    const char *summary; /* one line */
    const char *about;   /* a paragraph for --help and the manual; may be NULL */
} cli_cmd;

extern const cli_opt cli_opts[];
extern const cli_cmd cli_cmds[];
const cli_cmd *cli_cmd_find(const char *name);

/* The next argument of argv from *i (which it advances): an option's id with
 * its value in *val (NULL for a flag), O_ARG with a positional argument in
 * *val, or O_END. "--opt=value" and "--opt value" both work; after "--" all
 * is positional. An option unknown, or not one of the families in fam, or a
 * value missing, ends the program with a usage error naming cmd. */
int cli_next(int argc, char **argv, int *i, unsigned fam, const char *cmd, const char **val);

void cli_help(FILE *f, const cli_cmd *c);       /* `agents CMD --help` */
void cli_usage(FILE *f);                        /* `agents --help` */
void cli_man(FILE *f);                          /* the manual page, roff */
int cli_completion(FILE *f, const char *shell); /* bash or zsh; -1: neither */
#endif
