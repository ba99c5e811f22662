/* Fuzz target: the request encoder with arbitrary strings. Whatever the
 * input, an accepted request must be valid JSON behind a valid HTTP head
 * whose lines never contain a bare CR or LF. */
#include <agents.h>
#include "core/internal.h"

static int valid_json(const char *s, size_t n) {
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    yajl_config(h, yajl_dont_validate_strings, 1);
    int ok = yajl_parse(h, (const unsigned char *)s, n) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

static void check_wire(const char *w, size_t n) {
    const char *end = strstr(w, "\r\n\r\n");
    if (!end) __builtin_trap();
    for (const char *q = w; q < end; q++) {
        if (*q == '\n' && (q == w || q[-1] != '\r')) __builtin_trap();
        if (*q == '\r' && q[1] != '\n') __builtin_trap();
    }
    const char *body = end + 4;
    if (body < w + n && !valid_json(body, (size_t)(w + n - body))) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    /* fields separated by NUL: model, content, options, tools, format, keep_alive, think */
    char *buf = malloc(size + 8);
    memcpy(buf, data, size);
    memset(buf + size, 0, 8);
    const char *f[7];
    size_t off = 0;
    for (int i = 0; i < 7; i++) {
        f[i] = buf + (off < size ? off : size);
        off += strlen(f[i]) + 1;
    }
    ag_message m = {"user", f[1], NULL, NULL, 0, NULL, NULL};
    ag_chat_params p = {.model = f[0], .messages = &m, .n_messages = 1};
    p.gen.options_json = *f[2] ? f[2] : NULL;
    p.tools_json = *f[3] ? f[3] : NULL;
    p.gen.format = *f[4] ? f[4] : NULL;
    p.gen.keep_alive = *f[5] ? f[5] : NULL;
    p.gen.think = *f[6] ? f[6] : NULL;
    ag__target t = {"127.0.0.1:11434", "/base", "agents-fuzz", NULL, 0};
    ag__body b;
    if (ag__encode_chat(NULL, &p, &b) == 0) {
        char *w;
        size_t n;
        if (ag__frame(NULL, &t, &b, &w, &n) == 0) {
            check_wire(w, n);
            free(w);
        }
        ag__body_free(NULL, &b);
    }
    /* OpenAI's dialect: the same chat with an image (content parts), and a
     * generate with an image and a system prompt (sent as a chat) */
    const char *img[1] = {f[5]};
    ag_message mi = {"user", f[1], NULL, img, 1, NULL, NULL};
    ag_chat_params pi = p;
    pi.messages = &mi;
    ag__target to = {"127.0.0.1:8000", "/base", "agents-fuzz", NULL, 1};
    memset(&b, 0, sizeof b);
    if (ag__encode_chat_oai(NULL, &pi, &b) == 0) {
        char *w;
        size_t n;
        if (ag__frame(NULL, &to, &b, &w, &n) == 0) {
            check_wire(w, n);
            free(w);
        }
    }
    ag__body_free(NULL, &b); /* (a refused request's body too, as the client does) */
    ag_generate_params gp = {.model = f[0], .prompt = f[1], .system = f[6], .images = img, .n_images = *f[5] ? 1 : 0};
    gp.gen = p.gen;
    memset(&b, 0, sizeof b);
    if (ag__encode_generate_oai(NULL, &gp, &b) == 0) {
        char *w;
        size_t n;
        if (ag__frame(NULL, &to, &b, &w, &n) == 0) {
            check_wire(w, n);
            free(w);
        }
    }
    ag__body_free(NULL, &b);
    const char *in[2] = {f[1], f[2]};
    ag_embed_params e = {.model = f[0], .inputs = in, .n_inputs = 2, .truncate = -1};
    if (ag__encode_embed(NULL, &e, &b) == 0) {
        char *w;
        size_t n;
        if (ag__frame(NULL, &t, &b, &w, &n) == 0) {
            check_wire(w, n);
            free(w);
        }
        ag__body_free(NULL, &b);
    }
    free(buf);
    return 0;
}
