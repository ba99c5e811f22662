/* cli/progress.c - pull, push and create progress as Ollama shows it: a line
 * a step, and for a layer a bar with bytes, speed and time left, redrawn in
 * place on a terminal; on anything else, plain lines (a step, each quarter of
 * a layer, its end). Always on stderr: stdout stays for answers. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct progress {
    int tty, open; /* a line is drawn and not ended yet */
    char status[160];
    int64_t total, completed, start_completed;
    double t_start, t_draw;
    int quarter; /* plain lines: the last quarter printed */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

progress *progress_new(int tty) {
    progress *p = calloc(1, sizeof *p);
    if (p) p->tty = tty;
    return p;
}

static void bytes(char *out, size_t n, double b) {
    if (b >= 1e9) snprintf(out, n, "%.1f GB", b / 1e9);
    else if (b >= 1e6) snprintf(out, n, "%.0f MB", b / 1e6);
    else if (b >= 1e3) snprintf(out, n, "%.0f KB", b / 1e3);
    else snprintf(out, n, "%.0f B", b);
}

static void duration(char *out, size_t n, double s) {
    if (s >= 3600) snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60) snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(out, n, "%ds", (int)(s + 0.5));
}

static void draw(progress *p, int final) {
    double el = now_s() - p->t_start;
    double done = (double)(p->completed - p->start_completed);
    double rate = el > 0.2 ? done / el : 0;
    int pct = p->total > 0 ? (int)(100.0 * (double)p->completed / (double)p->total) : 0;
    if (pct > 100) pct = 100;
    char have[32], all[32], speed[40] = "", eta[40] = "";
    bytes(have, sizeof have, (double)p->completed);
    bytes(all, sizeof all, (double)p->total);
    if (rate > 0 && !final) {
        char r[32], t[32];
        bytes(r, sizeof r, rate);
        snprintf(speed, sizeof speed, "  %s/s", r);
        if (p->total > p->completed) {
            duration(t, sizeof t, (double)(p->total - p->completed) / rate);
            snprintf(eta, sizeof eta, "  %s", t);
        }
    }
    if (p->tty) {
        char bar[3 * 25 + 1];
        size_t bl = 0;
        int fill = pct / 4;
        for (int i = 0; i < 25; i++) {
            const char *c = i < fill ? "\xe2\x96\x88" : " "; /* U+2588 */
            size_t cl = strlen(c);
            memcpy(bar + bl, c, cl);
            bl += cl;
        }
        bar[bl] = 0;
        if (final) fprintf(stderr, "\r%s: %3d%% \xe2\x96\x95%s\xe2\x96\x8f %s\033[K\n", p->status, pct, bar, all);
        else fprintf(stderr, "\r%s: %3d%% \xe2\x96\x95%s\xe2\x96\x8f %s/%s%s%s\033[K", p->status, pct, bar, have, all,
                     speed, eta);
        fflush(stderr);
    } else {
        fprintf(stderr, "%s: %3d%% (%s of %s)%s%s\n", p->status, pct, have, all, speed, eta);
    }
}

/* the line being drawn ends (its layer done, or another step began) */
static void close_line(progress *p) {
    if (!p->open) return;
    if (p->total > 0) {
        if (p->tty) draw(p, 1);
        else if (p->quarter < 4) draw(p, 1);
    }
    p->open = 0;
}

void progress_step(progress *p, const char *status, size_t slen, const char *digest, int64_t total,
                   int64_t completed) {
    if (!p) return;
    (void)digest; /* Ollama's status names the layer already ("pulling 6a0746a1ec1a") */
    if (slen >= sizeof p->status) slen = sizeof p->status - 1;
    int same = p->open && strlen(p->status) == slen && !memcmp(p->status, status, slen);
    if (!same) {
        close_line(p);
        memcpy(p->status, status, slen);
        p->status[slen] = 0;
        for (char *c = p->status; *c; c++)
            if ((unsigned char)*c < ' ') *c = ' ';
        p->total = total;
        p->completed = p->start_completed = completed > 0 ? completed : 0;
        p->t_start = now_s();
        p->t_draw = 0;
        p->quarter = -1;
        if (total <= 0) { /* a step without bytes: one line */
            fprintf(stderr, "%s\n", p->status);
            return;
        }
        p->open = 1;
    }
    if (total > 0) p->total = total;
    if (completed >= 0) p->completed = completed;
    double t = now_s();
    int complete = p->total > 0 && p->completed >= p->total;
    if (p->tty) {
        if (complete) close_line(p);
        else if (t - p->t_draw >= 0.1) {
            p->t_draw = t;
            draw(p, 0);
        }
    } else {
        int q = p->total > 0 ? (int)(4 * p->completed / p->total) : 0;
        if (q > p->quarter) {
            p->quarter = q;
            draw(p, q >= 4);
        }
        if (complete) p->open = 0;
    }
}

void progress_end(progress *p) {
    if (!p) return;
    close_line(p);
    free(p);
}
