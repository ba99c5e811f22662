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
    positional_model(&o);
    const char *model = model_or_die(&o);
    if (!generate && !o.nargs && isatty(0) && !o.json) return repl_run(&o, model); /* a session, as `ollama run` */
    char *prompt = read_prompt(&o);
    char **images = load_images(&o);
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
        m[n].images = (const char *const *)images;
        m[n].n_images = (size_t)o.nimages;
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
    for (int i = 0; images && i < o.nimages; i++) free(images[i]);
    free(images);
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
    positional_model(&o);
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
