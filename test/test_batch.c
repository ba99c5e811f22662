/* The batch runner: 10,000 tasks at concurrency 256, malformed lines,
 * strict mode, resuming from a partial output (with a torn last line),
 * duplicate ids, per-task options. (The SIGKILL run is test_batch_kill.sh.) */
#include "support.h"
#include <yajl/yajl_tree.h>

static char *tmpname(const char *tag) {
    static char buf[4][128];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 128, "/tmp/ag_batch_%s_%d", tag, (int)getpid());
    return p;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

/* counts output lines per id (ids 1..max), and lines with a response */
static int check_output(const char *path, int max, int *ok_lines) {
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    int *count = calloc((size_t)max + 1, sizeof *count);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0, bad = 0;
    *ok_lines = 0;
    while (getline(&line, &cap, f) > 0) {
        int id;
        lines++;
        char yerr[64];
        yajl_val v = yajl_tree_parse(line, yerr, sizeof yerr); /* every line one whole JSON object */
        int whole = v && YAJL_IS_OBJECT(v);
        yajl_tree_free(v);
        if (!whole || sscanf(line, "{\"id\":%d,", &id) != 1 || id < 1 || id > max) {
            bad++;
            continue;
        }
        count[id]++;
        if (strstr(line, "\"response\":")) (*ok_lines)++;
    }
    free(line);
    fclose(f);
    int once = 0;
    for (int i = 1; i <= max; i++) once += count[i] == 1;
    free(count);
    return bad ? -1 : once;
}

static void ten_thousand(void) {
    struct event_base *base = ag_sim_base_new();
    ag_sim_config cfg = {.tokens = 4};
    ag_sim *s1 = ag_sim_new(base, "127.0.0.1", 0, &cfg), *s2 = ag_sim_new(base, "127.0.0.1", 0, &cfg);
    char nodes[64];
    snprintf(nodes, sizeof nodes, "127.0.0.1:%d,127.0.0.1:%d", ag_sim_port(s1), ag_sim_port(s2));
    ag_pool_options po = {.nodes = nodes, .node_max_in_flight = 256};
    ag_client *c = ag_pool_new(base, &po, NULL);
    ag_agent *a = ag_agent_chat(c, "llama3.2");
    const char *in = tmpname("in"), *out = tmpname("out");
    FILE *f = fopen(in, "w");
    for (int i = 1; i <= 10000; i++) fprintf(f, "{\"id\": %d, \"prompt\": \"task %d\"}\n", i, i);
    fclose(f);
    unlink(out);
    ag_batch_options bo = {.in_path = in, .out_path = out, .concurrency = 256, .progress = 0};
    ag_batch_summary sum;
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    CHECK_INT(sum.tasks, 10000);
    CHECK_INT(sum.ok, 10000);
    CHECK_INT(sum.failed, 0);
    CHECK_INT(sum.tokens, 40000);
    CHECK(sum.p50_ms > 0 && sum.p99_ms >= sum.p50_ms);
    int ok;
    CHECK_INT(check_output(out, 10000, &ok), 10000);
    CHECK_INT(ok, 10000);
    ag_node_info info[2];
    ag_pool_nodes(c, info, 2);
    /* spread over both (not under valgrind: its slowness reads as lateness) */
    const char *nt = getenv("AG_NO_TIMING_CHECKS");
    if (!nt || !*nt || *nt == '0') CHECK(info[0].requests > 1000 && info[1].requests > 1000);
    for (int i = 0; i < 2; i++)
        if (info[i].requests <= 1000)
            fprintf(stderr, "node %d: %llu requests, %u slots (%s), %llu of %llu samples waited\n", i,
                    (unsigned long long)info[i].requests, info[i].slots, info[i].slots_source,
                    (unsigned long long)info[i].learn_waits, (unsigned long long)info[i].learn_samples);
    fprintf(stderr, "10,000 tasks in %.2f s (%.0f tasks/s)\n", sum.wall_s, sum.tasks_per_s);
    unlink(in);
    unlink(out);
    ag_agent_free(a);
    ag_client_free(c);
    ag_sim_free(s1);
    ag_sim_free(s2);
    event_base_free(base);
}

/* "session" on a line: the tasks of one conversation go to one node of a
 * pool; a bad session is a malformed line */
static void session_lines(void) {
    struct event_base *base = ag_sim_base_new();
    ag_sim_config cfg = {.tokens = 3};
    ag_sim *s[3];
    char nodes[96] = "";
    for (int i = 0; i < 3; i++) {
        s[i] = ag_sim_new(base, "127.0.0.1", 0, &cfg);
        REQUIRE(s[i]);
        snprintf(nodes + strlen(nodes), sizeof nodes - strlen(nodes), "%s127.0.0.1:%d", i ? "," : "", ag_sim_port(s[i]));
    }
    ag_pool_options po = {.nodes = nodes, .probe_interval = -1};
    ag_client *c = ag_pool_new(base, &po, NULL);
    ag_agent *a = ag_agent_chat(c, "llama3.2");
    const char *in = tmpname("in"), *out = tmpname("out"), *logp = tmpname("log");
    FILE *f = fopen(in, "w");
    REQUIRE(f);
    for (int i = 1; i <= 12; i++) fprintf(f, "{\"id\": %d, \"prompt\": \"turn %d\", \"session\": \"conversation-9\"}\n", i, i);
    fprintf(f, "{\"id\": 13, \"prompt\": \"x\", \"session\": 7}\n");
    fclose(f);
    unlink(out);
    FILE *lg = fopen(logp, "w");
    ag_batch_options bo = {.in_path = in, .out_path = out, .concurrency = 1, .progress = 0, .log = lg};
    ag_batch_summary sum;
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    fclose(lg);
    CHECK_INT(sum.ok, 12);
    CHECK_INT(sum.malformed, 1);
    ag_node_info info[3];
    ag_pool_nodes(c, info, 3);
    int holders = 0;
    for (int i = 0; i < 3; i++) holders += info[i].requests > 0;
    CHECK_INT(holders, 1);
    CHECK_INT((int)(info[0].affinity_hits + info[1].affinity_hits + info[2].affinity_hits), 12);
    unlink(in);
    unlink(out);
    unlink(logp);
    ag_agent_free(a);
    ag_client_free(c);
    for (int i = 0; i < 3; i++) ag_sim_free(s[i]);
    event_base_free(base);
}

static void malformed_lines(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_agent *a = ag_agent_chat(e.c, "llama3.2");
    const char *in = tmpname("in"), *out = tmpname("out"), *logp = tmpname("log");
    write_file(in, "{\"id\": 1, \"prompt\": \"a\"}\n"
                   "garbage\n"
                   "\n"
                   "{\"id\": 3}\n"
                   "{\"prompt\": \"no id\"}\n"
                   "{\"id\": 5, \"messages\": [{\"role\": \"user\"}]}\n"
                   "{\"id\": 6, \"messages\": [{\"role\": \"user\", \"content\": \"b\"}], \"options\": {\"num_predict\": 2}}\n"
                   "{\"id\": 7, \"prompt\": \"c\", \"options\": [1]}\n"
                   "{\"id\": 1, \"prompt\": \"again\"}\n"
                   "[1, 2]\n"
                   "{\"id\": \"eight\", \"prompt\": \"d\", \"system\": \"Be terse.\"}");
    unlink(out);
    FILE *log = fopen(logp, "w+");
    ag_batch_options bo = {.in_path = in, .out_path = out, .concurrency = 4, .log = log};
    ag_batch_summary sum;
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    CHECK_INT(sum.lines, 11);
    CHECK_INT(sum.tasks, 3);
    CHECK_INT(sum.ok, 3);
    CHECK_INT(sum.malformed, 6);
    CHECK_INT(sum.duplicates, 1);
    fflush(log);
    rewind(log);
    char text[4096] = "";
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = 0;
    CHECK(strstr(text, "line 2: not a JSON object") != NULL);
    CHECK(strstr(text, "line 4: no \"prompt\"") != NULL);
    CHECK(strstr(text, "line 5: no \"id\"") != NULL);
    CHECK(strstr(text, "line 6: a message without") != NULL);
    CHECK(strstr(text, "line 8: \"options\" is not an object") != NULL);
    CHECK(strstr(text, "line 10: not a JSON object") != NULL);
    fclose(log);
    /* the last task's system prompt and the sixth's options reached the server */
    char *res = t_read_file(out, NULL);
    CHECK(strstr(res, "{\"id\":\"eight\",\"response\":") != NULL);
    CHECK(strstr(res, "{\"id\":6,\"response\":") != NULL);
    CHECK(strstr(res, "\"eval_count\":2,") != NULL); /* num_predict 2 */
    free(res);
    /* strict: stops at line 2 */
    unlink(out);
    bo.strict = 1;
    bo.log = fopen("/dev/null", "w");
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    CHECK_INT(sum.stopped, 1);
    CHECK_INT(sum.tasks, 1);
    CHECK_INT(sum.malformed, 1);
    fclose(bo.log);
    /* unusable paths */
    bo.in_path = "/nonexistent/in";
    CHECK_INT(ag_batch_run(a, &bo, &sum), AG_EINVAL);
    unlink(in);
    unlink(out);
    unlink(logp);
    ag_agent_free(a);
    env_close(&e);
}

static void resume_partial(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_agent *a = ag_agent_chat(e.c, "llama3.2");
    const char *in = tmpname("in"), *out = tmpname("out");
    FILE *f = fopen(in, "w");
    for (int i = 1; i <= 1000; i++) fprintf(f, "{\"id\": %d, \"prompt\": \"task %d\"}\n", i, i);
    fclose(f);
    /* an earlier run finished ids 1..400, and was killed writing 401 */
    f = fopen(out, "w");
    for (int i = 1; i <= 400; i++) fprintf(f, "{\"id\":%d,\"response\":\"earlier\"}\n", i);
    fprintf(f, "{\"id\":401,\"respo");
    fclose(f);
    ag_batch_options bo = {.in_path = in, .out_path = out, .concurrency = 32};
    ag_batch_summary sum;
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    CHECK_INT(sum.skipped, 400);
    CHECK_INT(sum.tasks, 600);
    CHECK_INT(sum.ok, 600);
    int ok;
    CHECK_INT(check_output(out, 1000, &ok), 1000); /* every id exactly once, the torn line gone */
    CHECK_INT(ok, 1000);
    unlink(in);
    unlink(out);
    ag_agent_free(a);
    env_close(&e);
}

static void failures_recorded(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_sim_set_fault(e.sim, "http500", 0, 2);
    ag_agent *a = ag_agent_chat(e.c, "llama3.2");
    const char *in = tmpname("in"), *out = tmpname("out");
    write_file(in, "{\"id\":1,\"prompt\":\"a\"}\n{\"id\":2,\"prompt\":\"b\"}\n");
    unlink(out);
    ag_batch_options bo = {.in_path = in, .out_path = out, .concurrency = 1};
    ag_batch_summary sum;
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    CHECK_INT(sum.ok, 1);
    CHECK_INT(sum.failed, 1);
    char *res = t_read_file(out, NULL);
    CHECK(strstr(res, "{\"id\":2,\"error\":\"HTTP 500: llama runner process has terminated: exit status 2\",\"code\":\"EHTTP\"") != NULL);
    free(res);
    unlink(in);
    unlink(out);
    ag_agent_free(a);
    env_close(&e);
}

/* a line nested a million deep is one more malformed line (it once crashed
 * the runner, and a resume met it again), in the input and in the output */
static void deep_line(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_agent *a = ag_agent_chat(e.c, "llama3.2");
    const char *in = tmpname("in"), *out = tmpname("out"), *logp = tmpname("log");
    enum { DEEP = 1000000 };
    char *deep = malloc(2 * DEEP + 2);
    REQUIRE(deep);
    memset(deep, '[', DEEP);
    memset(deep + DEEP, ']', DEEP);
    deep[2 * DEEP] = '\n';
    deep[2 * DEEP + 1] = 0;
    FILE *f = fopen(in, "w");
    fputs("{\"id\": 1, \"prompt\": \"a\"}\n", f);
    fputs(deep, f);
    fputs("{\"id\": 2, \"prompt\": {\"x\":", f); /* an object nested deep in a task */
    for (int i = 0; i < DEEP; i++) fputc('{', f);
    fputs("\n{\"id\": 3, \"prompt\": \"c\"}\n", f);
    fclose(f);
    f = fopen(out, "w"); /* an earlier output holding such a line too */
    fputs(deep, f);
    fclose(f);
    FILE *log = fopen(logp, "w+");
    ag_batch_options bo = {.in_path = in, .out_path = out, .concurrency = 2, .log = log};
    ag_batch_summary sum;
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    CHECK_INT(sum.ok, 2);
    CHECK_INT(sum.malformed, 2);
    fflush(log);
    rewind(log);
    char text[2048] = "";
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = 0;
    CHECK(strstr(text, "line 2: not a JSON object: nested deeper than 64 levels") != NULL);
    CHECK(strstr(text, "line 3: not a JSON object: nested deeper than 64 levels") != NULL);
    fclose(log);
    /* resumed: the same lines are met again, reported again, nothing rerun */
    bo.log = fopen("/dev/null", "w");
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    CHECK_INT(sum.skipped, 2);
    CHECK_INT(sum.malformed, 2);
    CHECK_INT(sum.tasks, 0);
    fclose(bo.log);
    free(deep);
    unlink(in);
    unlink(out);
    unlink(logp);
    ag_agent_free(a);
    env_close(&e);
}

/* a resumed run can retry what failed: the error lines leave the output,
 * their ids run again, the successes stay as they were */
static void retry_failed(void) {
    env e;
    env_open(&e, NULL, NULL);
    ag_sim_set_fault(e.sim, "http500", 0, 2);
    ag_agent *a = ag_agent_chat(e.c, "llama3.2");
    const char *in = tmpname("in"), *out = tmpname("out");
    write_file(in, "{\"id\":1,\"prompt\":\"a\"}\n{\"id\":2,\"prompt\":\"b\"}\n{\"id\":3,\"prompt\":\"c\"}\n"
                   "{\"id\":4,\"prompt\":\"d\"}\n");
    unlink(out);
    ag_batch_options bo = {.in_path = in, .out_path = out, .concurrency = 1};
    ag_batch_summary sum;
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    CHECK_INT(sum.ok, 2);
    CHECK_INT(sum.failed, 2);
    /* a plain resume: failed ids count as done */
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    CHECK_INT(sum.skipped, 4);
    CHECK_INT(sum.tasks, 0);
    /* --retry-failed, the node healthy again */
    ag_sim_set_fault(e.sim, NULL, 0, 0);
    bo.retry_failed = 1;
    CHECK_INT(ag_batch_run(a, &bo, &sum), 0);
    CHECK_INT(sum.retried, 2);
    CHECK_INT(sum.skipped, 2);
    CHECK_INT(sum.tasks, 2);
    CHECK_INT(sum.ok, 2);
    int ok;
    CHECK_INT(check_output(out, 4, &ok), 4); /* each id once */
    CHECK_INT(ok, 4);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.retry-tmp", out);
    CHECK(access(tmp, F_OK) != 0);
    unlink(in);
    unlink(out);
    ag_agent_free(a);
    env_close(&e);
}

T_MAIN(T(ten_thousand), T(session_lines), T(malformed_lines), T(resume_partial), T(failures_recorded), T(deep_line),
       T(retry_failed))
