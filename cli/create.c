/* cli/create.c - `agents create MODEL -f Modelfile`: the Modelfile read as
 * Ollama's client reads it (FROM a model, or a local GGUF file sent as a
 * blob unless the server has it; ADAPTER, TEMPLATE, SYSTEM, PARAMETER,
 * MESSAGE, LICENSE; triple-quoted values), then /api/create with its
 * progress. */
#include "cli/models.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

/* sha256:HEX of a file */
static int file_digest(const char *path, char out[72], size_t *size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    char buf[65536];
    ssize_t k;
    *size = 0;
    while ((k = read(fd, buf, sizeof buf)) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t)k);
        *size += (size_t)k;
    }
    unsigned char md[32];
    unsigned int ml = 0;
    EVP_DigestFinal_ex(ctx, md, &ml);
    EVP_MD_CTX_free(ctx);
    close(fd);
    if (k < 0) return -1;
    strcpy(out, "sha256:");
    for (int i = 0; i < 32; i++) snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* a local file: sent as a blob unless the server has it; its digest in out */
static int upload_blob(ag_client *c, const char *path, char out[72]) {
    size_t size;
    if (file_digest(path, out, &size)) {
        fprintf(stderr, "%s: create: cannot read %s: %s\n", prog, path, strerror(errno));
        return EXIT_USAGE;
    }
    char url[128];
    snprintf(url, sizeof url, "/api/blobs/%s", out);
    one x;
    forward(c, "HEAD", url, NULL, 0, NULL, NULL, &x);
    free(x.raw);
    if (x.status == 0) return 0; /* the server has it */
    if (x.status != AG_ENOTFOUND) {
        say_error(&x);
        return EXIT_REQ;
    }
    int fd = open(path, O_RDONLY);
    void *m = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    if (fd < 0 || m == MAP_FAILED) {
        if (fd >= 0) close(fd);
        fprintf(stderr, "%s: create: cannot read %s\n", prog, path);
        return EXIT_USAGE;
    }
    forward(c, "POST", url, m, size, NULL, NULL, &x);
    if (!x.status) fprintf(stderr, "copying file %s 100%%\n", out);
    if (m) munmap(m, size);
    close(fd);
    free(x.raw);
    if (x.status) {
        say_error(&x);
        return EXIT_REQ;
    }
    return 0;
}

/* the value after the instruction: """multi-line""", "quoted", or the rest */
static char *mf_value(char **pp) {
    char *p = *pp;
    while (*p == ' ' || *p == '\t') p++;
    char *v;
    if (!strncmp(p, "\"\"\"", 3)) {
        char *e = strstr(p + 3, "\"\"\"");
        if (!e) return NULL;
        v = strndup(p + 3, (size_t)(e - p - 3));
        p = e + 3;
        while (*p && *p != '\n') p++;
    } else {
        char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\r' || p[l - 1] == '\t')) l--;
        if (l >= 2 && p[0] == '"' && p[l - 1] == '"') v = strndup(p + 1, l - 2);
        else v = strndup(p, l);
        p += e ? (size_t)(e - p) : strlen(p);
    }
    *pp = p;
    return v;
}

int cmd_create(int argc, char **argv) {
    opts o;
    parse_common(argc, argv, 2, &o);
    const char *model = o.nargs ? o.args[0] : o.model;
    if (!model) die_usage("create needs a model name: create MODEL -f Modelfile%s", "");
    const char *path = o.file ? o.file : "Modelfile";
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: create: cannot read %s: %s\n", prog, path, strerror(errno));
        return EXIT_USAGE;
    }
    sbuf text = {0};
    char buf[8192];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
        if (text.len + k > (64u << 20)) die_usage("the Modelfile %s is over 64 MiB", path);
        sb_add(&text, buf, k);
    }
    fclose(f);
    if (!text.p) sb_add(&text, "", 0);
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    const char *dir = dirname(dirbuf);
    ag_client *c = make_client(&o);
    sbuf body = {0}, files = {0}, adapters = {0}, params = {0}, messages = {0}, license = {0};
    const char *pnames[64];
    sbuf pvals[64];
    int np = 0, rc = 0, line = 0;
    char *from = NULL, *tmpl = NULL, *system = NULL;
    memset(pvals, 0, sizeof pvals);
    for (char *p = text.p; *p && !rc;) {
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (*p == '\n') { p++; continue; }
        if (*p == '#') { p += strcspn(p, "\n"); continue; }
        line = 1; /* the instruction's line, for messages */
        for (const char *q = text.p; q < p; q++) line += *q == '\n';
        size_t wl = strcspn(p, " \t\n");
        char word[16];
        snprintf(word, sizeof word, "%.*s", (int)(wl < 15 ? wl : 15), p);
        for (char *w = word; *w; w++) *w = (char)((*w >= 'a' && *w <= 'z') ? *w - 32 : *w);
        p += wl;
        char *v = mf_value(&p);
        if (!v) {
            fprintf(stderr, "%s: create: %s:%d: a \"\"\" without its end\n", prog, path, line);
            rc = EXIT_USAGE;
            break;
        }
        if (!strcmp(word, "FROM") || !strcmp(word, "ADAPTER")) {
            char full[4096];
            struct stat st;
            if (v[0] == '/' ) snprintf(full, sizeof full, "%s", v);
            else if (!strncmp(v, "~/", 2) && getenv("HOME")) snprintf(full, sizeof full, "%s/%s", getenv("HOME"), v + 2);
            else snprintf(full, sizeof full, "%s/%s", dir, v);
            int local = stat(full, &st) == 0 && S_ISREG(st.st_mode);
            if (local) { /* a GGUF file: uploaded, named by its digest */
                char dg[72];
                if ((rc = upload_blob(c, full, dg)) != 0) { free(v); break; }
                sbuf *into = word[0] == 'F' ? &files : &adapters;
                sb_str(into, into->len ? "," : "{");
                char base[4096];
                snprintf(base, sizeof base, "%s", full);
                const char *bn = basename(base);
                sb_json(into, bn, strlen(bn));
                sb_str(into, ":");
                sb_json(into, dg, strlen(dg));
            } else if (word[0] == 'F') {
                free(from);
                from = strdup(v);
            } else {
                fprintf(stderr, "%s: create: %s:%d: ADAPTER %s: no such file\n", prog, path, line, v);
                rc = EXIT_USAGE;
            }
        } else if (!strcmp(word, "TEMPLATE")) {
            free(tmpl);
            tmpl = strdup(v);
        } else if (!strcmp(word, "SYSTEM")) {
            free(system);
            system = strdup(v);
        } else if (!strcmp(word, "LICENSE")) {
            sb_str(&license, license.len ? "," : "[");
            sb_json(&license, v, strlen(v));
        } else if (!strcmp(word, "PARAMETER")) {
            char *sp = v + strcspn(v, " \t");
            if (!*sp) {
                fprintf(stderr, "%s: create: %s:%d: PARAMETER wants a name and a value\n", prog, path, line);
                rc = EXIT_USAGE;
            } else {
                *sp++ = 0;
                while (*sp == ' ' || *sp == '\t') sp++;
                size_t vl = strlen(sp);
                if (vl >= 2 && sp[0] == '"' && sp[vl - 1] == '"') sp[vl - 1] = 0, sp++;
                int j = 0;
                while (j < np && strcmp(pnames[j], v)) j++;
                if (j == np && np < 64) pnames[np++] = strdup(v);
                if (j < 64) {
                    /* stop repeats into an array; numbers and booleans as JSON */
                    if (!strcmp(v, "stop")) {
                        sb_str(&pvals[j], pvals[j].len ? "," : "[");
                        sb_json(&pvals[j], sp, strlen(sp));
                    } else {
                        pvals[j].len = 0;
                        if (is_num(sp) || !strcmp(sp, "true") || !strcmp(sp, "false")) sb_str(&pvals[j], sp);
                        else sb_json(&pvals[j], sp, strlen(sp));
                    }
                }
            }
        } else if (!strcmp(word, "MESSAGE")) {
            char *sp = v + strcspn(v, " \t");
            char *content = *sp ? sp + 1 : sp;
            *sp = 0;
            while (*content == ' ' || *content == '\t') content++;
            if (strcmp(v, "system") && strcmp(v, "user") && strcmp(v, "assistant")) {
                fprintf(stderr, "%s: create: %s:%d: MESSAGE role is system, user or assistant, not '%s'\n", prog, path, line, v);
                rc = EXIT_USAGE;
            } else {
                sb_str(&messages, messages.len ? ",{\"role\":" : "[{\"role\":");
                sb_json(&messages, v, strlen(v));
                sb_str(&messages, ",\"content\":");
                sb_json(&messages, content, strlen(content));
                sb_str(&messages, "}");
            }
        } else {
            fprintf(stderr, "%s: create: %s:%d: unknown instruction %s (FROM, ADAPTER, TEMPLATE, SYSTEM, PARAMETER, MESSAGE, LICENSE)\n",
                    prog, path, line, word);
            rc = EXIT_USAGE;
        }
        free(v);
    }
    if (!rc && !from && !files.len) {
        fprintf(stderr, "%s: create: %s has no FROM\n", prog, path);
        rc = EXIT_USAGE;
    }
    if (!rc) {
        sb_str(&body, "{\"model\":");
        sb_json(&body, model, strlen(model));
        if (from) sb_str(&body, ",\"from\":"), sb_json(&body, from, strlen(from));
        if (files.len) sb_str(&body, ",\"files\":"), sb_add(&body, files.p, files.len), sb_str(&body, "}");
        if (adapters.len) sb_str(&body, ",\"adapters\":"), sb_add(&body, adapters.p, adapters.len), sb_str(&body, "}");
        if (tmpl) sb_str(&body, ",\"template\":"), sb_json(&body, tmpl, strlen(tmpl));
        if (system) sb_str(&body, ",\"system\":"), sb_json(&body, system, strlen(system));
        if (license.len) sb_str(&body, ",\"license\":"), sb_add(&body, license.p, license.len), sb_str(&body, "]");
        if (np) {
            sb_str(&body, ",\"parameters\":{");
            for (int j = 0; j < np; j++) {
                if (j) sb_str(&body, ",");
                sb_json(&body, pnames[j], strlen(pnames[j]));
                sb_str(&body, ":");
                sb_add(&body, pvals[j].p, pvals[j].len);
                if (!strcmp(pnames[j], "stop")) sb_str(&body, "]");
            }
            sb_str(&body, "}");
        }
        if (messages.len) sb_str(&body, ",\"messages\":"), sb_add(&body, messages.p, messages.len), sb_str(&body, "]");
        if (o.quantize) sb_str(&body, ",\"quantize\":"), sb_json(&body, o.quantize, strlen(o.quantize));
        sb_str(&body, ",\"stream\":true}");
        one x;
        progress *pg = o.json ? NULL : progress_new(isatty(2));
        int r = forward(c, "POST", "/api/create", body.p, body.len, NULL, pg, &x);
        progress_end(pg);
        if (o.json && x.raw) fwrite(x.raw, 1, x.len, stdout);
        if (r) {
            say_error(&x);
            rc = g_interrupted ? EXIT_INT : EXIT_REQ;
        }
        free(x.raw);
    }
    free(from), free(tmpl), free(system);
    for (int j = 0; j < np; j++) free((void *)pnames[j]), free(pvals[j].p);
    free(text.p), free(body.p), free(files.p), free(adapters.p), free(params.p), free(messages.p), free(license.p);
    ag_client_free(c);
    free_loop();
    return rc;
}
