/* A plain C baseline, the way a C programmer would write it without this
 * library: libcurl's multi interface for concurrency, a write callback that
 * splits the body into lines, and yajl_tree_parse on each NDJSON line.
 *   curl_yajl HOST MODE N CONCURRENCY     MODE: chat | embed | latency */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

typedef struct xfer {
    char *line;
    size_t len, cap;
    double t0, ttft;
    int embed;
} xfer;

static long count;
static double ttft[100000];
static int nttft;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_line(xfer *x) {
    x->line[x->len] = 0;
    char err[128];
    yajl_val v = yajl_tree_parse(x->line, err, sizeof err);
    if (!v) return;
    if (x->embed) {
        const char *p[] = {"embeddings", NULL};
        yajl_val e = yajl_tree_get(v, p, yajl_t_array);
        if (e) count += (long)e->u.array.len;
    } else {
        const char *p[] = {"message", "content", NULL};
        yajl_val c = yajl_tree_get(v, p, yajl_t_string);
        if (c && *YAJL_GET_STRING(c)) {
            if (x->ttft < 0) x->ttft = now_ms() - x->t0;
            count++;
        }
    }
    yajl_tree_free(v);
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
    xfer *x = ud;
    size_t n = sz * nm;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && !x->embed) {
            if (x->len) on_line(x);
            x->len = 0;
            continue;
        }
        if (x->len + 2 > x->cap) {
            x->cap = x->cap ? x->cap * 2 : 4096;
            x->line = realloc(x->line, x->cap);
        }
        x->line[x->len++] = p[i];
    }
    return n;
}

static char url_chat[256], url_embed[256];
static struct curl_slist *hdrs;

static CURL *make(xfer *x, int i, int embed) {
    static char body[128];
    CURL *e = curl_easy_init();
    memset(x, 0, sizeof *x);
    x->embed = embed;
    x->ttft = -1;
    x->t0 = now_ms();
    curl_easy_setopt(e, CURLOPT_URL, x->embed ? url_embed : url_chat);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    if (x->embed) snprintf(body, sizeof body, "{\"model\":\"nomic-embed-text\",\"input\":\"embedding text %d\"}", i % 7);
    else snprintf(body, sizeof body, "{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"peer benchmark\"}]}");
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    return e;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 5) return 2;
    int embed = !strcmp(argv[2], "embed"), n = atoi(argv[3]), conc = atoi(argv[4]), started = 0, done = 0;
    snprintf(url_chat, sizeof url_chat, "http://%s/api/chat", argv[1]);
    snprintf(url_embed, sizeof url_embed, "http://%s/api/embed", argv[1]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);
    xfer *xs = calloc((size_t)conc, sizeof *xs);
    int *free_slots = malloc(sizeof(int) * (size_t)conc), nfree = conc;
    for (int i = 0; i < conc; i++) free_slots[i] = i;
    while (done < n) {
        while (nfree && started < n) {
            xfer *x = &xs[free_slots[--nfree]];
            curl_multi_add_handle(m, make(x, started++, embed));
        }
        int running;
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 100, NULL);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            xfer *x;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            if (x->len) on_line(x); /* a whole JSON answer, or a last line without newline */
            if (!x->embed && x->ttft >= 0 && nttft < 100000) ttft[nttft++] = x->ttft;
            free(x->line);
            x->line = NULL;
            curl_multi_remove_handle(m, msg->easy_handle);
            curl_easy_cleanup(msg->easy_handle);
            free_slots[nfree++] = (int)(x - xs);
            done++;
        }
    }
    qsort(ttft, (size_t)nttft, sizeof *ttft, cmp);
    printf("{\"count\": %ld, \"ttft_p50_ms\": %.4f}\n", count, nttft ? ttft[nttft / 2] : -1);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    curl_global_cleanup();
    free(xs);
    free(free_slots);
    return 0;
}
