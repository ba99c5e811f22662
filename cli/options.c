/* cli/options.c - the table of commands and options, the parser over it, and
 * what is printed from it: --help, the manual page, the shell completions. */
#include "cli/options.h"

#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CLIENT (F_HELP | F_CONN | F_POOL)

/* clang-format off */
const cli_opt cli_opts[] = {
    {O_HELP, 'h', "help", NULL, F_HELP, "this help"},
    /* how to reach a node */
    {O_HOST, 'H', "host", "ADDR", F_CONN, "node address (default: $OLLAMA_HOST, else $OLLAMA_URL, else 127.0.0.1:11434);\n"
        "host, host:port, :port, [::1]:11435, http://host, https://host/base"},
    {O_CONNECT_TIMEOUT, 0, "connect-timeout", "S", F_CONN | F_GWPOOL, "seconds to connect, DNS included (default 10)"},
    {O_FIRST_BYTE_TIMEOUT, 0, "first-byte-timeout", "S", F_CONN | F_GWPOOL, "seconds to the answer's first byte (default 300: a cold model load\n"
        "takes minutes); -1 = none"},
    {O_IDLE_TIMEOUT, 0, "idle-timeout", "S", F_CONN | F_GWPOOL, "seconds of silence once the answer began (default 120); -1 = none"},
    {O_RETRIES, 0, "retries", "N", F_CONN, "after a transient failure before any output, wait and retry up to N times"},
    {O_RETRY_DELAY, 0, "retry-delay", "S", F_CONN, "the first wait before a retry (default 1)"},
    {O_RETRY_FACTOR, 0, "retry-factor", "F", F_CONN, "each wait F times the one before (default 2)"},
    {O_CA_FILE, 0, "ca-file", "F", F_CONN | F_GWPOOL, "CA certificates (PEM) for https:// nodes"},
    {O_TLS_INSECURE, 0, "tls-insecure", NULL, F_CONN | F_GWPOOL, "do not verify the nodes' certificates"},
    {O_TOKEN, 0, "token", "T", F_CONN | F_GWPOOL, "a Bearer token for the node(s) (default: $AGENTS_TOKEN); per node, in the\n"
        "address: https://TOKEN@host or https://user:pass@host"},
    {O_API, 0, "api", "API", F_CONN | F_GWPOOL, "ollama (default) or openai: the nodes speak the OpenAI-compatible API\n"
        "(llama.cpp, vLLM, LocalAI, LM Studio, TGI); per node: openai+http://host:8000"},
    /* several nodes */
    {O_NODES, 'N', "nodes", "LIST", F_POOL | F_GWPOOL, "several nodes (a:11434,b:11434): a pool with routing and failover;\n"
        "an address may carry slots=N, what that node runs at once"},
    {O_NODES_FILE, 0, "nodes-file", "F", F_POOL | F_GWPOOL, "nodes from a file, one a line (re-read on SIGHUP); also $OLLAMA_HOSTS"},
    {O_POLICY, 0, "policy", "P[+A]", F_POOL | F_GWPOOL, "p2c (default), rr, random, least; +cache (default): a request goes to the\n"
        "node holding its session or its prompt's prefix, within a load bound;\n"
        "+session: sessions only; +load: load alone"},
    {O_DISCOVER, 0, "discover", "RANGE", F_POOL | F_GWPOOL, "probe HOST[-HOST]:PORT[-PORT] for nodes (opt-in); a node dns+NAME:PORT\n"
        "is every address NAME resolves to (a headless Service)"},
    {O_RESOLVE_INTERVAL, 0, "resolve-interval", "S", F_POOL | F_GWPOOL, "dns+ names resolved again every S seconds (30) and on SIGHUP"},
    {O_RESUME, 0, "resume", NULL, F_POOL | F_GWPOOL, "a stream that dies mid-answer continues on another node"},
    {O_PRIORITY_RESERVE, 0, "priority-reserve", "N", F_POOL | F_GWPOOL, "lower priority classes leave the last N free places of a model's\n"
        "nodes while a higher class was seen for it in the last minute (1)"},
    {O_LEARN_SLOTS, 0, "learn-slots", "on|off", F_POOL | F_GWPOOL, "learn what each node runs at once where neither its slots=N nor the\n"
        "node says it (on); off: --max-in-flight each"},
    {O_MAX_IN_FLIGHT, 0, "max-in-flight", "N", F_POOL | F_GWPOOL, "requests per node at once at most; more wait in the pool's queue (64)"},
    /* a model and how it generates */
    {O_MODEL, 'm', "model", "NAME", F_MODEL, "model (default: the first argument, else $AGENTS_MODEL, else\n"
        "$OLLAMA_MODEL)"},
    {O_SYSTEM, 's', "system", "TEXT", F_GEN, "system prompt"},
    {O_OPTION, 'o', "option", "K=V", F_GEN, "a model option (num_predict=64, temperature=0.2, stop=[\"x\"]); repeatable"},
    {O_KEEP_ALIVE, 0, "keep-alive", "D", F_GEN, "how long the model stays loaded (5m, 1h, 0 = unload, -1 = forever;\n"
        "default: $OLLAMA_KEEP_ALIVE, else the server's)"},
    {O_THINK, 0, "think", "V", F_GEN, "true, false, low, medium or high"},
    {O_FORMAT, 0, "format", "F", F_GEN, "json, or a JSON schema object"},
    {O_NO_STREAM, 0, "no-stream", NULL, F_GEN, "ask for one whole answer"},
    {O_TOOLS, 0, "tools", "JSON", F_CHAT, "tool definitions (a JSON array); calls print as [tool call] name({...})"},
    {O_IMAGE, 0, "image", "FILE", F_CHAT, "an image for the (first) question, sent base64; repeatable"},
    {O_JSON, 0, "json", NULL, F_JSON, "print the server's JSON objects as they arrive, nothing else"},
    {O_VERBOSE, 'v', "verbose", NULL, F_VERB, "print timings and counts to stderr afterwards"},
    {O_DIMENSIONS, 0, "dimensions", "N", F_EMBED, "ask for N dimensions"},
    {O_LEGACY, 0, "legacy", NULL, F_EMBED, "use /api/embeddings (one text a request)"},
    /* model management */
    {O_INSECURE, 0, "insecure", NULL, F_PULL, "allow a registry without TLS"},
    {O_FILE, 'f', "file", "FILE", F_CREATE, "the Modelfile (default: ./Modelfile)"},
    {O_QUANTIZE, 'q', "quantize", "Q", F_CREATE, "quantize the model to Q (q4_K_M, q8_0, ...)"},
    {O_NAMES, 0, "names", NULL, F_LIST, "print the model names only, one a line"},
    /* agents and batches */
    {O_AGENT, 'a', "agent", "NAME", F_AGENT, "chat, coding, reasoning, research, summarization, embedding (default chat)"},
    {O_DOCS, 0, "docs", "PATH", F_AGENT, "research: answer from these documents, citing them (a file or a\n"
        "directory); without it, from what the model knows"},
    {O_EMBED_MODEL, 0, "embed-model", "M", F_AGENT, "research: the embedding model (default nomic-embed-text)"},
    {O_TOP_K, 0, "top-k", "N", F_AGENT, "research: passages given to the model (default 4)"},
    {O_CONTEXT, 0, "context", "N", F_AGENT, "summarization: the model's context in tokens (default 2048)"},
    {O_IN, 0, "in", "FILE", F_BATCH, "the tasks, JSON Lines"},
    {O_OUT, 0, "out", "FILE", F_BATCH, "the results, appended as each finishes"},
    {O_CONCURRENCY, 'c', "concurrency", "N", F_BATCH, "tasks in flight (default 16)"},
    {O_STRICT, 0, "strict", NULL, F_BATCH, "stop at the first malformed line (default: report, skip)"},
    {O_RETRY_FAILED, 0, "retry-failed", NULL, F_BATCH, "resume: run again the ids whose result in --out is an error (their error\n"
        "lines are taken out of --out first)"},
    {O_NO_PROGRESS, 0, "no-progress", NULL, F_BATCH, "no progress bar (it shows only on a terminal anyway)"},
    /* the gateway */
    {O_LISTEN, 0, "listen", "ADDR", F_GW, "address:port to serve (default 127.0.0.1:11434; port 0 = any)"},
    {O_CLIENT_TOKEN, 0, "client-token", "T", F_GW, "clients must send 'Authorization: Bearer T' (default:\n"
        "$AGENTS_GATEWAY_TOKEN; none when unset)"},
    {O_KEYS_FILE, 0, "keys-file", "F", F_GW, "client keys, one JSON object a line: name, secret (or sha256), models,\n"
        "rpm, tpm, concurrent, priority, over_limit, admin; re-read on SIGHUP"},
    {O_TLS_CERT, 0, "tls-cert", "F", F_GW, "serve https with this certificate chain (PEM; with --tls-key)"},
    {O_TLS_KEY, 0, "tls-key", "F", F_GW, "the certificate's private key (PEM)"},
    {O_ORIGINS, 0, "origins", "LIST", F_GW, "browser origins allowed besides Ollama's defaults, comma-separated,\n"
        "* wildcards (default: $OLLAMA_ORIGINS)"},
    {O_PULL_ALL, 0, "pull-all", NULL, F_GW, "a pull without X-Agents-Node goes to every node (one merged progress)"},
    {O_MAX_CLIENTS, 0, "max-clients", "N", F_GW, "client connections at once (default 1024)"},
    {O_MAX_CLIENTS_PER_IP, 0, "max-clients-per-ip", "N", F_GW, "connections at once from one address (default 64; -1: no cap)"},
    {O_MAX_BODY_MB, 0, "max-body-mb", "N", F_GW, "request body cap in MiB (default 64)"},
    {O_REQUEST_TIMEOUT, 0, "request-timeout", "S", F_GW, "a request must arrive within S seconds (default 30)"},
    {O_CLIENT_IDLE_TIMEOUT, 0, "client-idle-timeout", "S", F_GW, "idle keep-alive connections close after S seconds (default 60)"},
    {O_SEND_TIMEOUT, 0, "send-timeout", "S", F_GW, "a client that reads none of its answer for S seconds is closed and its\n"
        "upstream request cancelled (default 30)"},
    {O_ACCESS_LOG, 0, "access-log", "FILE", F_GW, "one JSON line a request (time, request id, trace id, client, key, path,\n"
        "model, status, bytes, duration, queue, TTFT, tokens, attempts); - = stdout;\n"
        "reopened on SIGHUP (logrotate)"},
    {O_OTLP, 0, "otlp-endpoint", "URL", F_GW, "export traces as OTLP/HTTP JSON (http://collector:4318): a span a\n"
        "request and one per attempt on a node, with gen_ai attributes"},
    {O_LOG_LEVEL, 0, "log-level", "L", F_GW, "the event log on stderr: debug, info (default), warn or error"},
    {O_LOG_FORMAT, 0, "log-format", "F", F_GW, "logfmt (default) or json: node up/down with the reason, capacity\n"
        "learned, failovers, keys reloaded, listening"},
    /* bench */
    {O_B_CONCURRENCY, 'c', "concurrency", "N[,N...]", F_BENCH, "closed loop at each concurrency (default 1)"},
    {O_B_RATE, 0, "rate", "R[,R...]", F_BENCH, "open loop: arrivals at R requests/s"},
    {O_B_REQUESTS, 'n', "requests", "N", F_BENCH, "requests per point (default 100)"},
    {O_B_DURATION, 0, "duration", "S", F_BENCH, "seconds per point (instead of -n)"},
    {O_B_WARMUP, 0, "warmup", "N", F_BENCH, "requests before each point, not counted (default 0)"},
    {O_B_SEED, 0, "seed", "N", F_BENCH, "for the arrivals and lengths (default 42)"},
    {O_B_MAX_TOKENS, 0, "max-tokens", "N", F_BENCH, "num_predict"},
    {O_B_PROMPTS, 0, "prompts", "FILE", F_BENCH, "one prompt a line, or JSONL with \"prompt\""},
    {O_B_TURNS, 0, "turns", "K", F_BENCH, "conversations of K turns: each re-sends the history (questions and\n"
        "answers as received) plus a new question; -n counts turns"},
    {O_B_SHARED_PREFIX, 0, "shared-prefix", "T", F_BENCH, "a system prompt of about T tokens shared by every request"},
    {O_B_TURN_TOKENS, 0, "turn-tokens", "T", F_BENCH, "each turn adds a message of about T tokens (an agent's tool result)\n"
        "instead of a short question"},
    {O_B_INTERACTIVE, 0, "interactive", "C", F_BENCH, "beside the load (then of priority batch), C short chats at a time of\n"
        "priority interactive, reported apart (through a pool, -N)"},
    {O_B_THINK_MS, 0, "think-ms", "T", F_BENCH, "a conversation's next turn goes T ms after its answer (a user reading)"},
    {O_B_CONTEXT_TOKENS, 0, "context-tokens", "T", F_BENCH, "each conversation opens with a context of about T tokens of its own"},
    {O_B_NO_SESSION, 0, "no-session", NULL, F_BENCH, "conversations without a session key (see --policy)"},
    {O_B_INPUT_LEN, 0, "input-len", "D", F_BENCH, "prompts built to D tokens (checked against the server's count)"},
    {O_B_OUTPUT_LEN, 0, "output-len", "D", F_BENCH, "num_predict drawn from D; D is N, uniform:MIN,MAX, normal:MEAN,SD or\n"
        "lognormal:MEAN,SD"},
    {O_B_DATASET, 0, "dataset", "FILE", F_BENCH, "requests from ShareGPT JSON, or JSONL of {\"prompt\"} / {\"messages\"}\n"
        "(optional \"output_len\"), in turn"},
    {O_B_TRACE, 0, "trace", "FILE", F_BENCH, "JSONL with \"timestamp\" (ms) and a prompt, messages or\n"
        "\"input_len\"/\"output_len\": replayed on its schedule"},
    {O_B_TRACE_SPEED, 0, "trace-speed", "X", F_BENCH, "the trace X times faster (0.5: half as fast)"},
    {O_B_ARRIVAL, 0, "arrival", "A", F_BENCH, "open loop arrivals: poisson (default), constant or gamma"},
    {O_B_BURSTINESS, 0, "burstiness", "B", F_BENCH, "gamma arrivals of shape B (1 = Poisson, < 1 burstier)"},
    {O_B_RAMP_UP, 0, "ramp-up", "S", F_BENCH, "the rate grows linearly from 0 over S seconds"},
    {O_B_REPEAT, 0, "repeat", "N", F_BENCH, "the whole sweep N times: mean, CV and 95 % intervals"},
    {O_B_SLO_SEARCH, 0, "slo-search", "OBJ", F_BENCH, "the highest concurrency (or, with --rate R, rate from R) meeting every\n"
        "objective: ttft_p99=500ms,tpot_p50=50ms,e2e_mean=5s"},
    {O_B_SCRAPE, 0, "scrape-metrics", "URLS", F_BENCH, "poll Prometheus /metrics or Ollama /api/ps during each point"},
    {O_B_SCRAPE_INTERVAL, 0, "scrape-interval", "S", F_BENCH, "seconds between scrapes (default 1)"},
    {O_B_ENDPOINT, 0, "endpoint", "E", F_BENCH, "chat (default), generate or embed"},
    {O_B_SLO, 0, "slo", "LIST", F_BENCH, "ttft=500ms,tpot=50ms,e2e=10s: goodput counts requests within all of them"},
    {O_B_JSON, 0, "json", "FILE", F_BENCH, "every point: config, percentiles, server timings, nodes"},
    {O_B_CSV, 0, "csv", "FILE", F_BENCH, "one row per request with every timestamp"},
    {O_B_HTML, 0, "html", "FILE", F_BENCH, "a self-contained page: CDFs, ITL histogram, sweep charts, nodes"},
    /* sim */
    {O_S_LISTEN, 0, "listen", "ADDR", F_SIM, "address to bind (default 127.0.0.1)"},
    {O_S_PORT, 0, "port", "N", F_SIM, "first port (default 11434; 0 = ephemeral)"},
    {O_S_NODES, 0, "nodes", "N", F_SIM, "N nodes on consecutive ports (default 1)"},
    {O_S_MODELS, 0, "models", "a,b", F_SIM, "model names (default llama3.2,qwen3:4b,nomic-embed-text)"},
    {O_S_TOKENS, 0, "tokens", "N", F_SIM, "tokens per answer when num_predict is absent (default 32)"},
    {O_S_TTFT, 0, "ttft", "MS", F_SIM, "delay before the first token"},
    {O_S_ITL, 0, "itl", "MS", F_SIM, "delay between tokens (0 = as fast as the socket takes them)"},
    {O_S_LOAD, 0, "load", "MS", F_SIM, "cold-load delay the first time a model is used"},
    {O_S_SLOTS, 0, "slots", "N[,N...]", F_SIM, "parallel generations (0 = unlimited); more wait in the node's own queue,\n"
        "as Ollama's do, unsaid; a list gives each node its own (the last repeats)"},
    {O_S_QUEUE, 0, "queue", "N", F_SIM, "waiting requests before 503 (default 512)"},
    {O_S_DIM, 0, "dim", "N", F_SIM, "embedding dimensions (default 768)"},
    {O_S_FAULT, 0, "fault", "KIND", F_SIM, "reset, error-line, malformed, http500, http503, http429, stall, silent,\n"
        "close-before-final, close-after-final, truncate, keepalive"},
    {O_S_FAULT_AFTER, 0, "fault-after", "N", F_SIM, "tokens before the fault (default 0); http429: Retry-After N s"},
    {O_S_FAULT_EVERY, 0, "fault-every", "N", F_SIM, "fault every Nth generation request (default 1)"},
    {O_S_API, 0, "api", "API", F_SIM, "ollama (default) or openai: /v1/chat/completions, SSE"},
    {O_S_PREFILL_RATE, 0, "prefill-rate", "N", F_SIM, "prompt tokens evaluated per second per slot; a prefix cache keeps what\n"
        "was evaluated (0 = no prefill time, no cache)"},
    {O_S_PREFIX_CACHE, 0, "prefix-cache", "N|slots", F_SIM, "conversations the prefix cache keeps, LRU (default 64); slots: one a slot"},
    {O_S_SAYS, 0, "says", "WHAT", F_SIM, "with --api openai, what the node says of its capacity: props, metrics,\n"
        "or props,metrics"},
    {0, 0, NULL, NULL, 0, NULL}};

#define REQ (CLIENT | F_MODEL | F_GEN | F_VERB)
const cli_cmd cli_cmds[] = {
    {"run", NULL, REQ | F_AGENT | F_CHAT, A_MODEL_TEXT, "run [MODEL] [PROMPT...]",
     "chat with a model: a session on a terminal, or one answer",
     "With no prompt and a terminal, an interactive session as Ollama's (/? for its commands).\n"
     "With a prompt (arguments, or stdin when it is not a terminal), one task through an agent\n"
     "(-a, default chat) and its answer streamed."},
    {"chat", NULL, REQ | F_CHAT | F_JSON, A_MODEL_TEXT, "chat [MODEL] [PROMPT...]", "stream a chat answer (/api/chat)",
     "PROMPT from the arguments, else stdin; with no prompt on a terminal, an interactive session."},
    {"generate", NULL, REQ | F_JSON, A_MODEL_TEXT, "generate [MODEL] [PROMPT...]", "stream a completion (/api/generate)",
     "PROMPT from the arguments, else stdin."},
    {"embed", NULL, REQ | F_JSON | F_EMBED, A_MODEL_TEXT, "embed [MODEL] [TEXT...]", "embeddings for texts (/api/embed)",
     "One vector per TEXT, a JSON array a line; texts from stdin, one a line, when none is given."},
    {"list", "ls,models,tags", CLIENT | F_JSON | F_LIST, A_NONE, "list", "list models (/api/tags)",
     "With several nodes (-N), every model and on how many nodes it is."},
    {"ps", NULL, CLIENT | F_JSON, A_NONE, "ps", "models loaded now (/api/ps)",
     "With several nodes (-N), the cluster: state, version, slots, requests, errors, TTFT, loaded models."},
    {"show", NULL, CLIENT | F_JSON | F_VERB, A_MODEL, "show MODEL", "a model's details (/api/show)", NULL},
    {"stop", NULL, CLIENT, A_MODELS, "stop MODEL...", "unload models now (keep_alive 0)", NULL},
    {"pull", NULL, CLIENT | F_JSON | F_PULL, A_MODEL, "pull MODEL", "download a model, progress on stderr", NULL},
    {"push", NULL, CLIENT | F_JSON | F_PULL, A_MODEL, "push MODEL", "upload a model to a registry, progress on stderr",
     NULL},
    {"create", NULL, CLIENT | F_JSON | F_CREATE, A_MODEL, "create MODEL [-f Modelfile]", "a model from a Modelfile",
     "Reads the Modelfile as Ollama's client does: FROM a model, or a local GGUF file or\n"
     "safetensors directory (uploaded as blobs first), ADAPTER, TEMPLATE, SYSTEM, PARAMETER,\n"
     "MESSAGE, LICENSE."},
    {"rm", "delete", CLIENT | F_JSON, A_MODELS, "rm MODEL...", "remove models", NULL},
    {"cp", "copy", CLIENT | F_JSON, A_MODELS, "cp SOURCE DESTINATION", "copy a model", NULL},
    {"version", NULL, CLIENT | F_JSON, A_NONE, "version", "the server's and the client's versions", NULL},
    {"ping", NULL, CLIENT, A_NONE, "ping", "is the server up (HEAD /)", NULL},
    {"batch", NULL, REQ | F_AGENT | F_BATCH, A_NONE, "batch -m MODEL --in TASKS.jsonl --out RESULTS.jsonl",
     "a JSON Lines file of tasks through an agent",
     "Runs every task through an agent, a bounded number at once, appending each result as it\n"
     "finishes. Rerun with the same --out to finish an interrupted run: ids already there are\n"
     "skipped. Input lines: {\"id\": ..., \"prompt\": \"...\"} or {\"id\": ..., \"messages\": [...]},\n"
     "optionally \"system\" and \"options\". Output lines: id, response, eval_count, ttft_ms,\n"
     "e2e_ms, steps, attempts, node; or id, error, code."},
    {"bench", NULL, CLIENT | F_MODEL | F_GEN | F_BENCH, A_MODEL, "bench [MODEL] [options] | bench compare A.json B.json",
     "node latency: TTFT, ITL, TPOT, throughput, goodput",
     "Measures what a node (or, with --nodes, a cluster) delivers: time to first token,\n"
     "inter-token latency, time per output token, end to end, throughput and goodput.\n"
     "'bench compare A.json B.json' shows the differences of two saved runs and whether each\n"
     "is beyond noise."},
    {"gateway", NULL, F_HELP | F_CONN | F_POOL | F_GW, A_NONE, "gateway -N NODES [options]",
     "Ollama's API in front of a pool: any Ollama client uses the whole cluster",
     "Serves Ollama's API (and /v1) on one address in front of a pool of nodes: point any\n"
     "Ollama client's OLLAMA_HOST at it. Runs until SIGINT or SIGTERM; SIGHUP re-reads\n"
     "--nodes-file and --keys-file. Live view: http://ADDR/dashboard; Prometheus: /metrics."},
    {"sim", NULL, F_HELP | F_SIM, A_NONE, "sim [options]", "run simulated Ollama nodes",
     "Runs simulated Ollama nodes until interrupted; prints 'listening on ADDR:PORT' per node."},
    {"demo", NULL, F_HELP, A_NONE, "demo", "a tour against simulated nodes",
     "Starts three simulated Ollama nodes inside this process (loopback, ephemeral ports) and\n"
     "shows the client at work: a streamed chat, 24 concurrent chats spread over the nodes,\n"
     "and embeddings."},
    {"completion", NULL, F_HELP, A_SHELL, "completion bash|zsh", "a shell completion script",
     "bash: source <(agents completion bash); zsh: agents completion zsh > \"${fpath[1]}/_agents\"."},
    {"help", NULL, 0, A_CMD, "help [COMMAND]", "help on a command", NULL},
    {NULL, NULL, 0, 0, NULL, NULL, NULL}};
/* clang-format on */

static int name_is(const char *name, const char *list) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !memcmp(p, name, n)) return 1;
        p = e ? e + 1 : p + l;
    }
    return 0;
}

const cli_cmd *cli_cmd_find(const char *name) {
    for (const cli_cmd *c = cli_cmds; c->name; c++)
        if (!strcmp(c->name, name) || name_is(name, c->aliases)) return c;
    return NULL;
}

int cli_next(int argc, char **argv, int *i, unsigned fam, const char *cmd, const char **val) {
    *val = NULL;
    if (*i >= argc) return O_END;
    const char *a = argv[(*i)++];
    static char **rest_argv; /* after "--" in this argv: positional */
    static int rest_from;
    if ((argv == rest_argv && *i > rest_from) || a[0] != '-' || !a[1]) {
        *val = a;
        return O_ARG;
    }
    if (!strcmp(a, "--")) {
        rest_argv = argv;
        rest_from = *i;
        return cli_next(argc, argv, i, fam, cmd, val);
    }
    const char *name = a[1] == '-' ? a + 2 : a + 1;
    const char *eq = a[1] == '-' ? strchr(name, '=') : NULL;
    size_t nl = eq ? (size_t)(eq - name) : strlen(name);
    int known = 0;
    for (const cli_opt *o = cli_opts; o->lng; o++) {
        int hit = a[1] == '-' ? strlen(o->lng) == nl && !memcmp(o->lng, name, nl) : (nl == 1 && o->shrt == name[0]);
        if (!hit) continue;
        known = 1;
        if (!(o->fam & fam)) continue;
        if (!o->arg) {
            if (eq) {
                fprintf(stderr, "%s: --%s takes no value (try %s %s --help)\n", prog, o->lng, prog, cmd);
                exit(EXIT_USAGE);
            }
            return o->id;
        }
        if (eq) *val = eq + 1;
        else if (*i < argc) *val = argv[(*i)++];
        else {
            fprintf(stderr, "%s: %s needs a value: %s (try %s %s --help)\n", prog, a, o->arg, prog, cmd);
            exit(EXIT_USAGE);
        }
        return o->id;
    }
    if (known) fprintf(stderr, "%s: '%.*s' is not an option of '%s' (try %s %s --help)\n", prog, (int)(eq ? eq - a : (long)strlen(a)), a, cmd, prog, cmd);
    else fprintf(stderr, "%s: unknown option '%.*s' (try %s %s --help)\n", prog, (int)(eq ? eq - a : (long)strlen(a)), a, prog, cmd);
    exit(EXIT_USAGE);
}

/* "  -m, --model NAME" padded to a column, then the help's lines */
static void opt_line(FILE *f, const cli_opt *o) {
    char head[64];
    int n = snprintf(head, sizeof head, "  %c%c%s--%s%s%s", o->shrt ? '-' : ' ', o->shrt ? o->shrt : ' ',
                     o->shrt ? ", " : "  ", o->lng, o->arg ? " " : "", o->arg ? o->arg : "");
    const int col = 28;
    fputs(head, f);
    if (n >= col - 1) fprintf(f, "\n%*s", col, "");
    else fprintf(f, "%*s", col - n, "");
    for (const char *p = o->help; *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        fprintf(f, "%.*s\n", (int)l, p);
        if (!e) break;
        fprintf(f, "%*s", col, "");
        p = e + 1;
    }
}

static const struct {
    unsigned fam;
    const char *title;
} sections[] = {{F_MODEL | F_GEN | F_CHAT | F_JSON | F_VERB | F_EMBED, "The model and its answer"},
                {F_AGENT, "Agents"},
                {F_BATCH, "Batches"},
                {F_PULL | F_CREATE | F_LIST, "Models"},
                {F_BENCH, "Benchmark"},
                {F_GW, "The gateway's own"},
                {F_SIM, "Simulated nodes"},
                {F_CONN, "Reaching a node"},
                {F_POOL | F_GWPOOL, "Several nodes (a pool)"},
                {F_HELP, "Help"}};

static void print_opts(FILE *f, unsigned fam, unsigned sect) {
    for (const cli_opt *o = cli_opts; o->lng; o++) {
        /* in the first section of its own that the command takes */
        unsigned mine = o->fam & fam;
        if (!mine) continue;
        unsigned first = 0;
        for (size_t s = 0; s < sizeof sections / sizeof *sections; s++)
            if (sections[s].fam & mine) {
                first = sections[s].fam;
                break;
            }
        if (first == sect) opt_line(f, o);
    }
}

static int sect_has(unsigned fam, unsigned sect) {
    for (const cli_opt *o = cli_opts; o->lng; o++) {
        unsigned mine = o->fam & fam;
        if (!mine) continue;
        for (size_t s = 0; s < sizeof sections / sizeof *sections; s++)
            if (sections[s].fam & mine) {
                if (sections[s].fam == sect) return 1;
                break;
            }
    }
    return 0;
}

void cli_help(FILE *f, const cli_cmd *c) {
    fprintf(f, "usage: %s %s\n\n%s%s.\n", prog, c->usage, c->summary[0] >= 'a' && c->summary[0] <= 'z' ? "" : "",
            c->summary);
    if (c->aliases) fprintf(f, "Also: %s.\n", c->aliases);
    if (c->about) fprintf(f, "\n%s\n", c->about);
    for (size_t s = 0; s < sizeof sections / sizeof *sections; s++)
        if (sect_has(c->fam, sections[s].fam)) {
            fprintf(f, "\n%s:\n", sections[s].title);
            print_opts(f, c->fam, sections[s].fam);
        }
}

void cli_usage(FILE *f) {
    fprintf(f, "usage: %s COMMAND [options]\n\nCommands:\n", prog);
    for (const cli_cmd *c = cli_cmds; c->name; c++) fprintf(f, "  %-11s%s\n", c->name, c->summary);
    fprintf(f, "\n'%s COMMAND --help' or '%s help COMMAND' for each; 'man agents' for all.\n"
               "Exit codes: 0 ok, 1 the request failed (server or network; one line on stderr),\n"
               "2 bad usage, 130 interrupted.\n",
            prog, prog);
}

/* roff: a backslash and a leading dot or quote need escaping */
static void roff(FILE *f, const char *s, size_t n) {
    int bol = 1;
    for (size_t i = 0; i < n && s[i]; i++) {
        char ch = s[i];
        if (bol && (ch == '.' || ch == '\'')) fputs("\\&", f);
        if (ch == '\\') fputs("\\e", f);
        else if (ch == '-') fputs("\\-", f);
        else fputc(ch, f);
        bol = ch == '\n';
    }
}
static void roffs(FILE *f, const char *s) { roff(f, s, strlen(s)); }

void cli_man(FILE *f) {
    fprintf(f, ".TH AGENTS 1 \"\" \"agents %s\" \"User Commands\"\n", ag_version());
    fputs(".SH NAME\nagents \\- drive LLM servers that speak Ollama's API, from one node to a cluster\n"
          ".SH SYNOPSIS\n.B agents\n.I COMMAND\n[\\fIoptions\\fR] [\\fIarguments\\fR]\n"
          ".SH DESCRIPTION\nThe command line of the agents library. Its everyday commands are Ollama's\n"
          "(run, list, ps, show, stop, pull, push, create, rm, cp) with the same arguments;\n"
          "every request command also takes several nodes (\\fB\\-N\\fR) as one pool, with\n"
          "routing, failover and a queue. Beyond Ollama: agents and batches, a node-latency\n"
          "benchmark, simulated nodes and a gateway that serves Ollama's API in front of a pool.\n"
          "Options take their value as \\fB\\-\\-opt value\\fR or \\fB\\-\\-opt=value\\fR.\n"
          ".SH COMMANDS\n",
          f);
    for (const cli_cmd *c = cli_cmds; c->name; c++) {
        fputs(".TP\n.B agents ", f);
        roffs(f, c->usage);
        fputc('\n', f);
        roffs(f, c->summary);
        fputs(".\n", f);
        if (c->aliases) {
            fputs("Also: ", f);
            roffs(f, c->aliases);
            fputs(".\n", f);
        }
        if (c->about) {
            fputs(".br\n", f);
            roffs(f, c->about);
            fputc('\n', f);
        }
        /* its own options by name; the shared families by their section */
        int any = 0;
        unsigned shared = F_HELP | F_CONN | F_POOL | F_GWPOOL;
        for (const cli_opt *o = cli_opts; o->lng; o++)
            if (o->fam & c->fam & ~shared) {
                fputs(any ? ", " : ".br\nOptions: ", f);
                fputs("\\fB\\-\\-", f);
                roffs(f, o->lng);
                fputs("\\fR", f);
                any = 1;
            }
        if (c->fam & F_CONN) fputs(any ? "; and those for reaching a node and several nodes" : ".br\nOptions: those for reaching a node and several nodes", f), any = 1;
        if (any) fputs(".\n", f);
    }
    fputs(".SH OPTIONS\n", f);
    for (size_t s = 0; s < sizeof sections / sizeof *sections; s++) {
        fputs(".SS ", f);
        roffs(f, sections[s].title);
        fputc('\n', f);
        for (const cli_opt *o = cli_opts; o->lng; o++) {
            unsigned first = 0;
            for (size_t k = 0; k < sizeof sections / sizeof *sections; k++)
                if (sections[k].fam & o->fam) {
                    first = sections[k].fam;
                    break;
                }
            if (first != sections[s].fam) continue;
            fputs(".TP\n", f);
            if (o->shrt) fprintf(f, "\\fB\\-%c\\fR, ", o->shrt);
            fputs("\\fB\\-\\-", f);
            roffs(f, o->lng);
            fputs("\\fR", f);
            if (o->arg) {
                fputs(" \\fI", f);
                roffs(f, o->arg);
                fputs("\\fR", f);
            }
            fputc('\n', f);
            roffs(f, o->help);
            fputc('\n', f);
        }
    }
    fputs(".SH INTERACTIVE SESSION\n"
          "\\fBagents run MODEL\\fR on a terminal opens a session: line editing (arrows, Home,\n"
          "End, Ctrl-A/E/K/U/W), history (up and down), Ctrl-C cancels the answer being written\n"
          "(or the line being typed), Ctrl-D on an empty line leaves. A line starting with\n"
          "\"\"\" begins text of several lines, ended by \"\"\". Commands: /set system TEXT,\n"
          "/set parameter NAME VALUE, /set think, /set nothink, /set format json,\n"
          "/set noformat, /set verbose, /set quiet, /show info|system|parameters,\n"
          "/load MODEL, /save FILE (the conversation as JSON), /clear, /bye, /?.\n"
          ".SH ENVIRONMENT\n"
          ".TP\n.B OLLAMA_HOST\\fR, \\fBOLLAMA_URL\nthe node (default 127.0.0.1:11434)\n"
          ".TP\n.B OLLAMA_HOSTS\nseveral nodes, as \\fB\\-N\\fR\n"
          ".TP\n.B AGENTS_MODEL\\fR, \\fBOLLAMA_MODEL\nthe model when none is given\n"
          ".TP\n.B OLLAMA_KEEP_ALIVE\nhow long a model stays loaded\n"
          ".TP\n.B AGENTS_TOKEN\na Bearer token for the nodes\n"
          ".TP\n.B AGENTS_GATEWAY_TOKEN\nthe token clients of the gateway must send\n"
          ".TP\n.B OLLAMA_ORIGINS\nbrowser origins the gateway allows\n"
          ".SH EXIT STATUS\n0 success; 1 the request failed (server or network), with one line on\n"
          "stderr naming the error (EAUTH: the credentials); 2 bad usage; 130 interrupted.\n"
          ".SH SEE ALSO\n\\fBollama\\fR(1); the README and cli/README.md of the source tree.\n",
          f);
}

static void words(FILE *f, unsigned fam) {
    for (const cli_opt *o = cli_opts; o->lng; o++)
        if (o->fam & fam) {
            if (o->shrt) fprintf(f, " -%c", o->shrt);
            fprintf(f, " --%s", o->lng);
        }
}

static const char *argkind(int a) {
    return a == A_MODEL || a == A_MODEL_TEXT ? "model" : a == A_MODELS ? "models" : a == A_CMD ? "cmd"
           : a == A_SHELL ? "shell" : "none";
}

/* options whose value is a model name, a file or a fixed word */
static void value_cases(FILE *f, const char *indent) {
    fprintf(f, "%s-m|--model|--embed-model) __agents_models; return ;;\n", indent);
    fprintf(f, "%s--think) COMPREPLY=($(compgen -W 'true false low medium high' -- \"$cur\")); return ;;\n", indent);
    fprintf(f, "%s--api) COMPREPLY=($(compgen -W 'ollama openai' -- \"$cur\")); return ;;\n", indent);
    fprintf(f, "%s--learn-slots) COMPREPLY=($(compgen -W 'on off' -- \"$cur\")); return ;;\n", indent);
    fprintf(f, "%s-a|--agent) COMPREPLY=($(compgen -W 'chat coding reasoning research summarization embedding' -- \"$cur\")); return ;;\n", indent);
    fprintf(f, "%s--endpoint) COMPREPLY=($(compgen -W 'chat generate embed' -- \"$cur\")); return ;;\n", indent);
    fprintf(f, "%s--arrival) COMPREPLY=($(compgen -W 'poisson constant gamma' -- \"$cur\")); return ;;\n", indent);
}

/* a command's name and aliases, joined by sep ("|" for a case label, " " for a word list) */
static void names_of(FILE *f, const cli_cmd *c, const char *sep) {
    fputs(c->name, f);
    for (const char *p = c->aliases; p && *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        fprintf(f, "%s%.*s", sep, (int)l, p);
        p = e ? e + 1 : p + l;
    }
}

/* the case arm of each command: its options and what its arguments are */
static void command_cases(FILE *f, const char *indent, const char *open, const char *close) {
    for (const cli_cmd *c = cli_cmds; c->name; c++) {
        fputs(indent, f);
        names_of(f, c, "|");
        fprintf(f, ") %s", open);
        words(f, c->fam);
        fprintf(f, " %s; kind=%s ;;\n", close, argkind(c->args));
    }
}

int cli_completion(FILE *f, const char *shell) {
    if (!strcmp(shell, "bash")) {
        fputs("# bash completion for agents (made by `agents completion bash` from its option table)\n"
              "__agents_models() {\n"
              "    local IFS=$'\\n'\n"
              "    COMPREPLY=($(compgen -W \"$(agents list --names 2>/dev/null)\" -- \"$cur\"))\n"
              "}\n"
              "_agents() {\n"
              "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
              "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
              "        COMPREPLY=($(compgen -W '",
              f);
        for (const cli_cmd *c = cli_cmds; c->name; c++) {
            if (c != cli_cmds) fputc(' ', f);
            names_of(f, c, " ");
        }
        fputs("' -- \"$cur\"))\n        return\n    fi\n    case \"$prev\" in\n", f);
        value_cases(f, "        ");
        fputs("        -f|--file|--in|--out|--docs|--nodes-file|--ca-file|--keys-file|--tls-cert|--tls-key|--prompts|--dataset|--trace|--csv|--html|--image)\n"
              "            COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
              "        --json) [ \"${COMP_WORDS[1]}\" = bench ] && { COMPREPLY=($(compgen -f -- \"$cur\")); return; } ;;\n"
              "    esac\n    local opts kind\n    case \"${COMP_WORDS[1]}\" in\n",
              f);
        command_cases(f, "        ", "opts='", "'");
        fputs("        *) return ;;\n    esac\n"
              "    if [[ \"$cur\" == -* ]]; then COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\")); return; fi\n"
              "    case $kind in\n"
              "        model) [ \"$COMP_CWORD\" -eq 2 ] && __agents_models ;;\n"
              "        models) __agents_models ;;\n",
              f);
        fputs("        cmd) COMPREPLY=($(compgen -W '", f);
        for (const cli_cmd *c = cli_cmds; c->name; c++) fprintf(f, "%s%s", c == cli_cmds ? "" : " ", c->name);
        fputs("' -- \"$cur\")) ;;\n"
              "        shell) COMPREPLY=($(compgen -W 'bash zsh' -- \"$cur\")) ;;\n"
              "    esac\n}\ncomplete -o default -F _agents agents\n",
              f);
        return 0;
    }
    if (!strcmp(shell, "zsh")) {
        fputs("#compdef agents\n# zsh completion for agents (made by `agents completion zsh` from its option table)\n"
              "__agents_models() {\n  local -a m\n  m=(${(f)\"$(agents list --names 2>/dev/null)\"})\n"
              "  compadd -a m\n}\n"
              "_agents() {\n  local -a cmds\n  cmds=(\n",
              f);
        for (const cli_cmd *c = cli_cmds; c->name; c++) {
            fprintf(f, "    '%s:", c->name);
            for (const char *p = c->summary; *p; p++) fputs(*p == '\'' ? "'\\''" : *p == ':' ? "\\:" : (char[]){*p, 0}, f);
            fputs("'\n", f);
        }
        fputs("  )\n  if (( CURRENT == 2 )); then _describe command cmds; return; fi\n"
              "  local cur=${words[CURRENT]} prev=${words[CURRENT-1]}\n"
              "  case $prev in\n"
              "    -m|--model|--embed-model) __agents_models; return ;;\n"
              "    --think) compadd true false low medium high; return ;;\n"
              "    --api) compadd ollama openai; return ;;\n"
              "    --learn-slots) compadd on off; return ;;\n"
              "    -a|--agent) compadd chat coding reasoning research summarization embedding; return ;;\n"
              "    --endpoint) compadd chat generate embed; return ;;\n"
              "    --arrival) compadd poisson constant gamma; return ;;\n"
              "    -f|--file|--in|--out|--docs|--nodes-file|--ca-file|--keys-file|--tls-cert|--tls-key|--prompts|--dataset|--trace|--csv|--html|--image) _files; return ;;\n"
              "  esac\n  local -a opts\n  local kind\n  case $words[2] in\n",
              f);
        command_cases(f, "    ", "opts=(", ")");
        fputs("    *) return ;;\n  esac\n"
              "  if [[ $cur == -* ]]; then compadd -a opts; return; fi\n"
              "  case $kind in\n"
              "    model) (( CURRENT == 3 )) && __agents_models ;;\n"
              "    models) __agents_models ;;\n"
              "    cmd) _describe command cmds ;;\n"
              "    shell) compadd bash zsh ;;\n"
              "  esac\n}\n_agents \"$@\"\n",
              f);
        return 0;
    }
    return -1;
}
