/* cli/requests.c - the request commands: chat, generate, embed, and the model
 * commands (models, ps, show, version, pull, delete, copy, ping). */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

int cmd_chat(int argc, char **argv, int generate) {
    opts o;
    parse_common(argc, argv, 2, &o);
    if (o.help) {
        printf("usage: %s %s [options] [PROMPT...]   (PROMPT from stdin when absent)\n\n%s%s",
               prog, generate ? "generate" : "chat",
               generate ? "Streams a completion from /api/generate.\n\n" : "Streams a chat answer from /api/chat.\n\n",
               common_help);
        printf("  -s, --system TEXT     system prompt\n%s", generate ? "" : "      --tools JSON      tool definitions (a JSON array)\n");
        return 0;
    }
    const char *model = model_or_die(&o);
    char *prompt = read_prompt(&o);
    ag_client *c = make_client(&o);
    run_state s;
    memset(&s, 0, sizeof s);
    s.o = &o;
    s.tty = isatty(1);
    done_state d = {&s, NULL};
    ag_callbacks cb = {cb_chunk, on_done, &d};
    int rc;
    if (generate) {
        ag_generate_params p;
        memset(&p, 0, sizeof p);
        p.model = model;
        p.prompt = prompt;
        p.system = o.system;
        p.gen = gen_opts(&o);
        p.request = req_opts(&o);
        rc = ag_generate(c, &p, &cb, &g_req);
    } else {
        ag_message m[2];
        size_t n = 0;
        memset(m, 0, sizeof m);
        if (o.system) { m[n].role = "system"; m[n].content = o.system; n++; }
        m[n].role = "user";
        m[n].content = prompt;
        n++;
        ag_chat_params p;
        memset(&p, 0, sizeof p);
        p.model = model;
        p.messages = m;
        p.n_messages = n;
        p.tools_json = o.tools;
        p.gen = gen_opts(&o);
        p.request = req_opts(&o);
        rc = ag_chat(c, &p, &cb, &g_req);
    }
    if (rc == 0 && o.json) ag_request_set_raw(g_req, 1);
    int ex = finish_run(c, &s, rc);
    free(prompt);
    return ex;
}

static void print_embed(const ag_result *res, opts *o) {
    (void)o;
    for (size_t i = 0; i < res->n_embeddings; i++) {
        fputc('[', stdout);
        for (size_t j = 0; j < res->dim; j++)
            printf(j ? ",%.9g" : "%.9g", (double)res->embeddings[i * res->dim + j]);
        fputs("]\n", stdout);
    }
}

int cmd_embed(int argc, char **argv) {
    opts o;
    parse_common(argc, argv, 2, &o);
    if (o.help) {
        printf("usage: %s embed [options] TEXT...   (one vector per TEXT, a JSON array a line;\n"
               "       texts from stdin, one a line, when none is given)\n\n%s"
               "      --dimensions N    ask for N dimensions\n      --legacy          use /api/embeddings\n",
               prog, common_help);
        return 0;
    }
    const char *model = model_or_die(&o);
    const char **inputs = NULL;
    size_t n = 0;
    char *text = NULL;
    if (o.nargs) {
        inputs = o.args;
        n = (size_t)o.nargs;
    } else {
        text = read_prompt(&o);
        size_t cap = 16;
        inputs = malloc(cap * sizeof *inputs);
        for (char *save = NULL, *t = strtok_r(text, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
            if (n == cap) inputs = realloc(inputs, (cap *= 2) * sizeof *inputs);
            inputs[n++] = t;
        }
    }
    ag_client *c = make_client(&o);
    run_state s;
    memset(&s, 0, sizeof s);
    s.o = &o;
    done_state d = {&s, print_embed};
    ag_callbacks cb = {NULL, on_done, &d};
    ag_embed_params p;
    memset(&p, 0, sizeof p);
    p.model = model;
    p.inputs = inputs;
    p.n_inputs = n;
    p.truncate = -1;
    p.dimensions = o.dims;
    p.options_json = options_json(&o);
    p.keep_alive = o.keep_alive;
    p.legacy = o.legacy;
    p.request = req_opts(&o);
    if (o.json) { /* raw body passes through */
        cb.on_chunk = cb_chunk;
        d.pr = NULL;
    }
    int rc = ag_embed(c, &p, &cb, &g_req);
    if (rc == 0 && o.json) ag_request_set_raw(g_req, 1);
    int ex = finish_run(c, &s, rc);
    if (text) { free(text); free(inputs); }
    return ex;
}

static void human_size(int64_t b, char *out, size_t n) {
    if (b < 0) snprintf(out, n, "-");
    else if (b >= 1000000000) snprintf(out, n, "%.1f GB", b / 1e9);
    else if (b >= 1000000) snprintf(out, n, "%.0f MB", b / 1e6);
    else snprintf(out, n, "%lld B", (long long)b);
}

static void print_models(const ag_result *res, opts *o) {
    (void)o;
    printf("%-32s %-14s %-10s %-10s %s\n", "NAME", "ID", "SIZE", "PARAMS", "QUANT");
    for (size_t i = 0; i < res->n_models; i++) {
        const ag_model_info *m = &res->models[i];
        char sz[32];
        human_size(m->size, sz, sizeof sz);
        printf("%-32s %-14.12s %-10s %-10s %s\n", m->name ? m->name : "?", m->digest ? m->digest : "", sz,
               m->parameter_size ? m->parameter_size : "", m->quantization_level ? m->quantization_level : "");
    }
}

static void print_ps(const ag_result *res, opts *o) {
    (void)o;
    printf("%-32s %-14s %-10s %-10s %s\n", "NAME", "ID", "SIZE", "VRAM", "UNTIL");
    for (size_t i = 0; i < res->n_models; i++) {
        const ag_model_info *m = &res->models[i];
        char sz[32], vr[32];
        human_size(m->size, sz, sizeof sz);
        human_size(m->size_vram, vr, sizeof vr);
        printf("%-32s %-14.12s %-10s %-10s %s\n", m->name ? m->name : "?", m->digest ? m->digest : "", sz, vr,
               m->expires_at ? m->expires_at : "");
    }
}

static void print_show(const ag_result *res, opts *o) {
    (void)o;
    const ag_show_info *s = res->show;
    if (!s) return;
    printf("  Model\n");
    if (s->family) printf("    architecture    %s\n", s->family);
    if (s->parameter_size) printf("    parameters      %s\n", s->parameter_size);
    if (s->quantization_level) printf("    quantization    %s\n", s->quantization_level);
    if (s->n_capabilities) {
        printf("\n  Capabilities\n");
        for (size_t i = 0; i < s->n_capabilities; i++) printf("    %s\n", s->capabilities[i]);
    }
    if (s->parameters) printf("\n  Parameters\n    %s\n", s->parameters);
}

static void print_version(const ag_result *res, opts *o) {
    (void)o;
    printf("server version: %s\nclient version: %s\n", res->version ? res->version : "?", ag_version());
}

static void print_ok(const ag_result *res, opts *o) {
    (void)res;
    (void)o;
}

int cmd_admin(int argc, char **argv, const char *name) {
    opts o;
    parse_common(argc, argv, 2, &o);
    int op = 0;
    print_result_fn pr = NULL;
    const char *usage = "";
    if (!strcmp(name, "models") || !strcmp(name, "list") || !strcmp(name, "tags")) { op = AG_OP_TAGS; pr = print_models; usage = "models   lists the node's models (/api/tags)"; }
    else if (!strcmp(name, "ps")) { op = AG_OP_PS; pr = print_ps; usage = "ps   lists the models loaded now (/api/ps)"; }
    else if (!strcmp(name, "show")) { op = AG_OP_SHOW; pr = print_show; usage = "show MODEL   details of a model (/api/show)"; }
    else if (!strcmp(name, "version")) { op = AG_OP_VERSION; pr = print_version; usage = "version   the server's and the client's versions"; }
    else if (!strcmp(name, "pull")) { op = AG_OP_PULL; pr = print_ok; usage = "pull MODEL [--insecure]   downloads a model, progress on stderr"; }
    else if (!strcmp(name, "delete") || !strcmp(name, "rm")) { op = AG_OP_DELETE; pr = print_ok; usage = "delete MODEL   removes a model"; }
    else if (!strcmp(name, "copy") || !strcmp(name, "cp")) { op = AG_OP_COPY; pr = print_ok; usage = "copy SOURCE DESTINATION   copies a model"; }
    else if (!strcmp(name, "ping")) { op = AG_OP_PING; pr = print_ok; usage = "ping   HEAD / (is the server up?)"; }
    if (o.help) {
        printf("usage: %s %s\n\n"
               "  -H, --host ADDR       node address (default: $OLLAMA_HOST or 127.0.0.1:11434)\n"
               "  -N, --nodes LIST      several nodes: `ps` and `models` then show the whole cluster\n"
               "      --nodes-file F    nodes from a file (also $OLLAMA_HOSTS)\n"
               "      --json            print the server's JSON as it arrives\n", prog, usage);
        return 0;
    }
    ag_model_params p;
    memset(&p, 0, sizeof p);
    p.model = o.nargs > 0 ? o.args[0] : o.model;
    p.destination = o.nargs > 1 ? o.args[1] : NULL;
    p.insecure = o.insecure;
    p.verbose = o.verbose;
    p.no_stream = o.no_stream;
    if ((op == AG_OP_SHOW || op == AG_OP_PULL || op == AG_OP_DELETE || op == AG_OP_COPY) && !p.model)
        die_usage("%s needs a model name", name);
    if (op == AG_OP_COPY && !p.destination) die_usage("copy needs SOURCE and DESTINATION%s", "");
    if ((o.api || (o.host && !strncmp(o.host, "openai+", 7))) &&
        (op == AG_OP_SHOW || op == AG_OP_PULL || op == AG_OP_DELETE || op == AG_OP_COPY))
        die_usage("'%s' is Ollama's model management: not part of the OpenAI-compatible API", name);
    ag_client *c = make_client(&o);
    if (g_is_pool && (op == AG_OP_PS || op == AG_OP_TAGS) && !o.json) {
        /* the cluster as the pool sees it, after one probe of every node */
        wait_probes(c);
        int up = 0;
        ag_node_info info[256];
        size_t n = ag_pool_nodes(c, info, 256);
        for (size_t i = 0; i < n && i < 256; i++) up += info[i].state == AG_NODE_UP;
        if (op == AG_OP_PS) {
            print_nodes(stdout, c);
        } else {
            printf("%-40s %s\n", "NAME", "NODES");
            for (size_t i = 0; i < n && i < 256; i++)
                for (size_t j = 0; j < info[i].n_models; j++) {
                    const char *m = info[i].models[j];
                    int seen = 0, count = 0;
                    for (size_t a = 0; a < n && a < 256 && !seen; a++)
                        for (size_t b = 0; b < info[a].n_models; b++)
                            if (strcmp(info[a].models[b], m) == 0) {
                                if (a < i || (a == i && b < j)) seen = 1;
                                else count++;
                                break;
                            }
                    if (!seen) printf("%-40s %d\n", m, count);
                }
        }
        ag_client_free(c);
        free_loop();
        if (up == 0) {
            fprintf(stderr, "%s: ENONODE: no node answered\n", prog);
            return EXIT_REQ;
        }
        return 0;
    }
    run_state s;
    memset(&s, 0, sizeof s);
    s.o = &o;
    o.verbose = 0;
    done_state d = {&s, o.json ? NULL : pr};
    ag_callbacks cb = {cb_chunk, on_done, &d};
    int rc = ag_admin(c, op, &p, &cb, &g_req);
    if (rc == 0 && o.json) ag_request_set_raw(g_req, 1);
    return finish_run(c, &s, rc);
}

