/* cli/repl.c - the interactive session of `agents run MODEL` (and of `chat`
 * on a terminal with no prompt), as Ollama's: a line editor of our own with
 * history, the conversation kept across turns, answers streamed, Ctrl-C
 * cancelling the answer (not the session), Ctrl-D leaving, """ for text of
 * several lines, and Ollama's slash commands.
 *
 * Everything runs on the command's event loop: the keyboard is one more
 * event, so a pool's probes and the answer's socket go on while one types. */
#include "cli/repl.h"

#include <yajl/yajl_tree.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static struct termios saved_tio;
static int raw_on;

static void raw_off(void) {
    if (raw_on) tcsetattr(0, TCSAFLUSH, &saved_tio);
    raw_on = 0;
}

static int raw_mode(void) {
    if (tcgetattr(0, &saved_tio) != 0) return -1;
    struct termios t = saved_tio;
    /* keys one at a time, no echo, Ctrl-C and Ctrl-D as bytes; output as
     * usual (OPOST: "\n" still moves to the line's start) */
    t.c_lflag &= (tcflag_t) ~(ICANON | ECHO | ISIG | IEXTEN);
    t.c_iflag &= (tcflag_t) ~(IXON | ICRNL | INLCR);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(0, TCSAFLUSH, &t) != 0) return -1;
    raw_on = 1;
    atexit(raw_off);
    return 0;
}

void out(const char *s) { fputs(s, stdout); }

/* ---- history, kept in ~/.agents/history as Ollama keeps ~/.ollama/history ---- */
static void hist_add(repl *r, const char *s) {
    if (!*s || (r->nhist && !strcmp(r->hist[r->nhist - 1], s))) return;
    if (r->nhist == HISTORY_MAX) {
        free(r->hist[0]);
        memmove(r->hist, r->hist + 1, (HISTORY_MAX - 1) * sizeof *r->hist);
        r->nhist--;
    }
    r->hist[r->nhist++] = strdup(s);
}

void hist_load(repl *r) {
    const char *home = getenv("HOME");
    if (!home || !*home) return;
    snprintf(r->hist_path, sizeof r->hist_path, "%s/.agents", home);
    if (access(r->hist_path, F_OK) != 0 && mkdir(r->hist_path, 0700) != 0) {
        r->hist_path[0] = 0;
        return;
    }
    strncat(r->hist_path, "/history", sizeof r->hist_path - strlen(r->hist_path) - 1);
    FILE *f = fopen(r->hist_path, "r");
    if (!f) return;
    char *l = NULL;
    size_t cap = 0;
    ssize_t k;
    while ((k = getline(&l, &cap, f)) > 0) {
        while (k && (l[k - 1] == '\n' || l[k - 1] == '\r')) l[--k] = 0;
        hist_add(r, l);
    }
    free(l);
    fclose(f);
}

static void hist_save(repl *r) {
    if (!r->hist_path[0]) return;
    FILE *f = fopen(r->hist_path, "w");
    if (!f) return;
    for (int i = 0; i < r->nhist; i++) fprintf(f, "%s\n", r->hist[i]);
    fclose(f);
}

/* ---- drawing the line ---- */
static size_t cols(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static void redraw(repl *r) {
    out("\r");
    out(r->multi ? "... " : ">>> ");
    if (!r->len && !r->multi) { /* a hint, dim, until the first key clears it */
        static const char hint[] = "Send a message (/? for help)";
        printf("\033[2m%s\033[0m\033[K\033[%zuD", hint, sizeof hint - 1);
    } else {
        fwrite(r->line, 1, r->len, stdout);
        out("\033[K");
        size_t back = cols(r->line + r->pos, r->len - r->pos);
        if (back) printf("\033[%zuD", back);
    }
    fflush(stdout);
}

static void set_line(repl *r, const char *s) {
    size_t l = strlen(s);
    if (l >= sizeof r->line) l = sizeof r->line - 1;
    memcpy(r->line, s, l);
    r->len = r->pos = l;
}

/* ---- the conversation ---- */
void add_msg(repl *r, const char *role, const char *content) {
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->msgs = realloc(r->msgs, r->cap * sizeof *r->msgs);
    }
    r->msgs[r->n].role = strdup(role);
    r->msgs[r->n].content = strdup(content);
    r->n++;
}

void clear_msgs(repl *r) {
    for (size_t i = 0; i < r->n; i++) free(r->msgs[i].role), free(r->msgs[i].content);
    r->n = 0;
}

void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch == '\n') fputs("\\n", f);
        else if (ch == '\t') fputs("\\t", f);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void answer_chunk(ag_request *q, const ag_chunk *ch, void *ud) {
    repl *r = ud;
    if (ch->kind == AG_CHUNK_CONTENT && ch->len) {
        if (r->alen + ch->len + 1 > r->acap) {
            size_t c = r->acap ? r->acap : 1024;
            while (c < r->alen + ch->len + 1) c *= 2;
            char *a = realloc(r->answer, c);
            if (!a) return;
            r->answer = a;
            r->acap = c;
        }
        memcpy(r->answer + r->alen, ch->text, ch->len);
        r->alen += ch->len;
        r->answer[r->alen] = 0;
    }
    print_chunk(q, ch, &r->rs);
}

void prompt_again(repl *r) {
    r->len = r->pos = 0;
    redraw(r);
}

static void answer_done(ag_request *q, const ag_result *res, void *ud) {
    (void)q;
    repl *r = ud;
    r->req = NULL;
    g_req = NULL;
    r->answering = 0;
    run_state *s = &r->rs;
    if (s->in_thinking) out("\033[0m\n");
    if (s->printed_any && s->last != '\n') out("\n");
    if (res->status == 0) {
        add_msg(r, "assistant", r->answer ? r->answer : "");
        if (r->verbose) {
            fflush(stdout);
            print_stats(res);
        }
    } else {
        /* the question goes too: the conversation stays question, answer, question... */
        if (r->n && !strcmp(r->msgs[r->n - 1].role, "user")) {
            free(r->msgs[r->n - 1].role), free(r->msgs[r->n - 1].content);
            r->n--;
        }
        if (res->status != AG_ECANCELED) {
            fprintf(stderr, "%s: %s: %s\n", prog, ag_err_name(res->status), res->error ? res->error : ag_strerror(res->status));
            auth_hint(res->status);
        }
    }
    out("\n");
    fflush(stdout);
    if (!r->quit) prompt_again(r);
}

static void ask(repl *r, const char *text) {
    add_msg(r, "user", text);
    ag_message *m = calloc(r->n + 1, sizeof *m);
    size_t k = 0;
    if (r->system && *r->system) m[k].role = "system", m[k].content = r->system, k++;
    for (size_t i = 0; i < r->n; i++, k++) {
        m[k].role = r->msgs[i].role;
        m[k].content = r->msgs[i].content;
    }
    if (r->n_images) { /* --image: with the first question */
        size_t first = r->system && *r->system ? 1 : 0;
        m[first].images = (const char *const *)r->images;
        m[first].n_images = r->n_images;
    }
    char opt[4200];
    snprintf(opt, sizeof opt, "{%s}", r->params);
    ag_chat_params p;
    memset(&p, 0, sizeof p);
    p.model = r->model;
    p.messages = m;
    p.n_messages = k;
    p.tools_json = r->o->tools;
    p.gen.options_json = r->params[0] ? opt : NULL;
    p.gen.keep_alive = r->o->keep_alive;
    p.gen.think = r->think[0] ? r->think : NULL;
    p.gen.format = r->format[0] ? r->format : NULL;
    ag_request_options ro;
    memset(&ro, 0, sizeof ro);
    if (r->o->retries > 0) {
        ro.retries = r->o->retries;
        ro.retry_delay = r->o->retry_delay;
        ro.retry_factor = r->o->retry_factor;
    }
    ro.session = r->session; /* a pool keeps the conversation where its cache is */
    ro.priority = AG_PRIORITY_INTERACTIVE;
    p.request = &ro;
    memset(&r->rs, 0, sizeof r->rs);
    r->rs.o = r->o;
    r->rs.tty = 1;
    r->alen = 0;
    if (r->answer) r->answer[0] = 0;
    ag_callbacks cb = {answer_chunk, answer_done, r};
    r->answering = 1;
    int rc = ag_chat(r->c, &p, &cb, &r->req);
    free(m);
    if (rc) {
        r->answering = 0;
        r->n--;
        free(r->msgs[r->n].role), free(r->msgs[r->n].content);
        fprintf(stderr, "%s: %s: %s\n", prog, ag_err_name(rc),
                rc == AG_EINVAL ? "invalid request (check /set parameter and format values)" : ag_strerror(rc));
        prompt_again(r);
        return;
    }
    g_req = r->req;
}

/* ---- slash commands ---- */
/* a whole message typed: a command or a question */
static void submit(repl *r, char *text) {
    if (text[0] == '/' && !r->multi) {
        char *sv = NULL, *cmd = strtok_r(text, " ", &sv);
        char *args = sv ? sv + strspn(sv, " ") : NULL;
        if (!strcmp(cmd, "/bye") || !strcmp(cmd, "/exit")) {
            r->quit = 1;
            return;
        }
        if (!strcmp(cmd, "/clear")) {
            clear_msgs(r);
            out("Cleared session context\n\n");
        } else if (!strcmp(cmd, "/set")) repl_set(r, args);
        else if (!strcmp(cmd, "/show")) repl_show(r, args);
        else if (!strcmp(cmd, "/save")) repl_save(r, args);
        else if (!strcmp(cmd, "/load")) repl_load(r, args);
        else if (!strcmp(cmd, "/?") || !strcmp(cmd, "/help")) repl_help(args);
        else printf("Unknown command '%s'. Type /? for help\n\n", cmd);
        prompt_again(r);
        return;
    }
    if (!*text) {
        prompt_again(r);
        return;
    }
    ask(r, text);
}

static void enter(repl *r) {
    r->line[r->len] = 0;
    out("\n");
    fflush(stdout);
    char *l = r->line;
    if (!r->multi && !strncmp(l, "\"\"\"", 3)) { /* """ begins text of several lines */
        size_t ll = strlen(l);
        if (ll >= 6 && !strcmp(l + ll - 3, "\"\"\"")) { /* """one line""" */
            hist_add(r, l);
            l[ll - 3] = 0;
            submit(r, l + 3);
            return;
        }
        hist_add(r, l);
        r->multi = strdup(l + 3);
        r->multi_len = strlen(r->multi);
        if (r->multi_len) {
            r->multi = realloc(r->multi, r->multi_len + 2);
            r->multi[r->multi_len++] = '\n';
            r->multi[r->multi_len] = 0;
        }
        prompt_again(r);
        return;
    }
    if (r->multi) {
        size_t ll = strlen(l);
        int end = ll >= 3 && !strcmp(l + ll - 3, "\"\"\"");
        if (end) l[ll - 3] = 0, ll -= 3;
        r->multi = realloc(r->multi, r->multi_len + ll + 2);
        memcpy(r->multi + r->multi_len, l, ll);
        r->multi_len += ll;
        if (!end) r->multi[r->multi_len++] = '\n';
        r->multi[r->multi_len] = 0;
        if (!end) {
            prompt_again(r);
            return;
        }
        char *text = r->multi;
        r->multi = NULL;
        submit(r, text);
        free(text);
        return;
    }
    hist_add(r, l);
    r->hpos = r->nhist;
    submit(r, l);
}

static void history_move(repl *r, int dir) {
    if (!r->nhist) return;
    if (r->hpos == r->nhist) {
        r->line[r->len] = 0;
        free(r->saved);
        r->saved = strdup(r->line);
    }
    int np = r->hpos + dir;
    if (np < 0 || np > r->nhist) return;
    r->hpos = np;
    set_line(r, np == r->nhist ? (r->saved ? r->saved : "") : r->hist[np]);
    redraw(r);
}

static void key(repl *r, unsigned char ch) {
    if (r->esc) { /* ESC [ A ... */
        if (r->esc == 1) {
            r->esc = (ch == '[' || ch == 'O') ? 2 : 0;
            r->esclen = 0;
            return;
        }
        if (r->esclen < sizeof r->escbuf - 1) r->escbuf[r->esclen++] = (char)ch;
        if ((ch >= '0' && ch <= '9') || ch == ';') return;
        r->escbuf[r->esclen] = 0;
        r->esc = 0;
        const char *e = r->escbuf;
        if (!strcmp(e, "A")) history_move(r, -1);
        else if (!strcmp(e, "B")) history_move(r, 1);
        else if (!strcmp(e, "C")) key(r, 6);
        else if (!strcmp(e, "D")) key(r, 2);
        else if (!strcmp(e, "H") || !strcmp(e, "1~") || !strcmp(e, "7~")) key(r, 1);
        else if (!strcmp(e, "F") || !strcmp(e, "4~") || !strcmp(e, "8~")) key(r, 5);
        else if (!strcmp(e, "3~") && r->pos < r->len) { /* Delete */
            size_t n = 1;
            while (r->pos + n < r->len && ((unsigned char)r->line[r->pos + n] & 0xC0) == 0x80) n++;
            memmove(r->line + r->pos, r->line + r->pos + n, r->len - r->pos - n);
            r->len -= n;
            redraw(r);
        }
        return;
    }
    switch (ch) {
    case 27: r->esc = 1; return;
    case '\r':
    case '\n': enter(r); return;
    case 3: /* Ctrl-C: the line goes; on an empty one, how to leave */
        if (!r->len && !r->multi) out("\nUse Ctrl + d or /bye to exit.\n");
        else out("^C\n");
        free(r->multi);
        r->multi = NULL;
        prompt_again(r);
        return;
    case 4: /* Ctrl-D: leave on an empty line, else delete under the cursor */
        if (!r->len && !r->multi) {
            out("\n");
            r->quit = 1;
            return;
        }
        if (r->pos < r->len) {
            size_t n = 1;
            while (r->pos + n < r->len && ((unsigned char)r->line[r->pos + n] & 0xC0) == 0x80) n++;
            memmove(r->line + r->pos, r->line + r->pos + n, r->len - r->pos - n);
            r->len -= n;
        }
        break;
    case 1: r->pos = 0; break;      /* Ctrl-A */
    case 5: r->pos = r->len; break; /* Ctrl-E */
    case 2:                         /* Ctrl-B, left */
        while (r->pos > 0) {
            r->pos--;
            if (((unsigned char)r->line[r->pos] & 0xC0) != 0x80) break;
        }
        break;
    case 6: /* Ctrl-F, right */
        if (r->pos < r->len) {
            r->pos++;
            while (r->pos < r->len && ((unsigned char)r->line[r->pos] & 0xC0) == 0x80) r->pos++;
        }
        break;
    case 11: r->len = r->pos; break; /* Ctrl-K */
    case 21:                          /* Ctrl-U */
        memmove(r->line, r->line + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
        break;
    case 23: { /* Ctrl-W */
        size_t p = r->pos;
        while (p > 0 && r->line[p - 1] == ' ') p--;
        while (p > 0 && r->line[p - 1] != ' ') p--;
        memmove(r->line + p, r->line + r->pos, r->len - r->pos);
        r->len -= r->pos - p;
        r->pos = p;
        break;
    }
    case 12: out("\033[H\033[2J"); break; /* Ctrl-L */
    case 16: history_move(r, -1); return; /* Ctrl-P */
    case 14: history_move(r, 1); return;  /* Ctrl-N */
    case 8:
    case 127: /* backspace: the character (all its bytes) before the cursor */
        if (r->pos > 0) {
            size_t p = r->pos;
            do p--;
            while (p > 0 && ((unsigned char)r->line[p] & 0xC0) == 0x80);
            memmove(r->line + p, r->line + r->pos, r->len - r->pos);
            r->len -= r->pos - p;
            r->pos = p;
        }
        break;
    default:
        if (ch < 0x20) return;
        if (r->len + 1 >= sizeof r->line) return; /* the cap: typing stops */
        memmove(r->line + r->pos + 1, r->line + r->pos, r->len - r->pos);
        r->line[r->pos++] = (char)ch;
        r->len++;
        if (r->pos == r->len && (ch & 0x80) == 0) { /* typed at the end: just echo it */
            if (r->len == 1 && !r->multi) redraw(r);
            else {
                fputc(ch, stdout);
                fflush(stdout);
            }
            return;
        }
        break;
    }
    redraw(r);
}

static void on_key(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    repl *r = arg;
    unsigned char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) { /* the terminal went away */
        if (r->req) ag_request_cancel(r->req);
        r->quit = 1;
        return;
    }
    for (ssize_t i = 0; i < n && !r->quit; i++) {
        if (r->answering) { /* while an answer is written, only Ctrl-C counts */
            if (buf[i] == 3 && r->req) {
                ag_request_cancel(r->req);
                out("\n");
            }
            continue;
        }
        key(r, buf[i]);
    }
}

static char *b64_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz < 0 || sz > (100L << 20)) {
        fclose(f);
        return NULL;
    }
    unsigned char *d = malloc((size_t)sz + 1);
    size_t got = d ? fread(d, 1, (size_t)sz, f) : 0;
    fclose(f);
    if (!d || got != (size_t)sz) {
        free(d);
        return NULL;
    }
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(((size_t)sz + 2) / 3 * 4 + 1), *q = o;
    for (size_t i = 0; o && i < (size_t)sz; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < (size_t)sz ? (unsigned)d[i + 1] << 8 : 0) |
                     (i + 2 < (size_t)sz ? d[i + 2] : 0);
        *q++ = t[v >> 18 & 63];
        *q++ = t[v >> 12 & 63];
        *q++ = i + 1 < (size_t)sz ? t[v >> 6 & 63] : '=';
        *q++ = i + 2 < (size_t)sz ? t[v & 63] : '=';
    }
    if (q) *q = 0;
    free(d);
    return o;
}

/* the images of --image, base64; exits with a usage error on a bad file */
char **load_images(opts *o) {
    if (!o->nimages) return NULL;
    char **v = calloc((size_t)o->nimages + 1, sizeof *v);
    for (int i = 0; i < o->nimages; i++)
        if (!(v[i] = b64_file(o->images[i]))) die_usage("--image %s: cannot read it (or over 100 MiB)", o->images[i]);
    return v;
}

int repl_run(opts *o, const char *model) {
    repl *r = calloc(1, sizeof *r);
    r->o = o;
    snprintf(r->model, sizeof r->model, "%s", model);
    if (o->system) r->system = strdup(o->system);
    const char *oj = options_json(o);
    if (oj && strlen(oj) >= 2) snprintf(r->params, sizeof r->params, "%.*s", (int)strlen(oj) - 2, oj + 1);
    if (o->think) snprintf(r->think, sizeof r->think, "%s", o->think);
    if (o->format && !strcmp(o->format, "json")) snprintf(r->format, sizeof r->format, "json");
    r->verbose = o->verbose;
    r->images = load_images(o);
    r->n_images = (size_t)o->nimages;
    snprintf(r->session, sizeof r->session, "repl-%ld-%ld", (long)getpid(), (long)time(NULL));
    hist_load(r);
    r->hpos = r->nhist;
    r->c = make_client(o);
    if (raw_mode() != 0) {
        fprintf(stderr, "%s: cannot set up the terminal: %s\n", prog, strerror(errno));
        return EXIT_REQ;
    }
    /* Ctrl-C arrives as a byte now; SIGINT from elsewhere still cancels */
    r->kbd = event_new(g_base, 0, EV_READ | EV_PERSIST, on_key, r);
    event_add(r->kbd, NULL);
    prompt_again(r);
    while (!r->quit && !g_interrupted) event_base_loop(g_base, EVLOOP_ONCE);
    if (r->req) {
        ag_request_cancel(r->req);
        while (r->answering) event_base_loop(g_base, EVLOOP_ONCE);
    }
    raw_off();
    hist_save(r);
    event_free(r->kbd);
    ag_client_free(r->c);
    free_loop();
    clear_msgs(r);
    free(r->msgs);
    for (int i = 0; i < r->nhist; i++) free(r->hist[i]);
    for (size_t i = 0; i < r->n_images; i++) free(r->images[i]);
    free(r->images);
    free(r->system), free(r->answer), free(r->multi), free(r->saved);
    free(r);
    return g_interrupted ? EXIT_INT : 0;
}
