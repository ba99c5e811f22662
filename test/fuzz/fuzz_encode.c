/* Fuzz target: the request encoder with arbitrary strings. Whatever the
 * input, an accepted request must be valid JSON behind a valid HTTP head
 * whose lines never contain a bare CR or LF. */
#include <agents.h>
#include "core/internal.h"

/* RFC 3629, written here apart from the library's own check: the code point
 * each sequence encodes, in range for its length, no surrogates, at most
 * U+10FFFF */
static int strict_utf8(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n) return 0;
        unsigned long cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        static const unsigned long least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (len > 1 && cp < least[len]) return 0;
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
        i += len;
    }
    return 1;
}

static int valid_json(const char *s, size_t n) {
    if (!strict_utf8(s, n)) return 0;
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    /* strings are validated: every body must be well-formed UTF-8 too */
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

/* b (when encode returned 0) framed for t and checked; b freed either way */
static void framed(int encoded, const ag__target *t, ag__body *b) {
    char *w;
    size_t n;
    if (encoded == 0 && ag__frame(NULL, t, b, &w, &n) == 0) {
        check_wire(w, n);
        free(w);
    }
    ag__body_free(NULL, b);
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
    memset(&b, 0, sizeof b); /* (as the client does: a refused request's body is freed too) */
    framed(ag__encode_chat(NULL, &p, &b), &t, &b);
    /* OpenAI's dialect: the same chat with an image (content parts), and a
     * generate with an image and a system prompt (sent as a chat) */
    const char *img[1] = {f[5]};
    ag_message mi = {"user", f[1], NULL, img, 1, NULL, NULL};
    ag_chat_params pi = p;
    pi.messages = &mi;
    ag__target to = {"127.0.0.1:8000", "/base", "agents-fuzz", NULL, 1};
    memset(&b, 0, sizeof b);
    framed(ag__encode_chat_oai(NULL, &pi, &b), &to, &b);
    ag_generate_params gp = {.model = f[0], .prompt = f[1], .system = f[6], .images = img, .n_images = *f[5] ? 1 : 0};
    gp.gen = p.gen;
    memset(&b, 0, sizeof b);
    framed(ag__encode_generate_oai(NULL, &gp, &b), &to, &b);
    const char *in[2] = {f[1], f[2]};
    ag_embed_params e = {.model = f[0], .inputs = in, .n_inputs = 2, .truncate = -1};
    memset(&b, 0, sizeof b);
    framed(ag__encode_embed(NULL, &e, &b), &t, &b);
    free(buf);
    return 0;
}
