/* agents/batch.h - push a file of tasks through an agent.
 *
 * Input: JSON Lines, one task a line:
 *   {"id": "q1", "prompt": "..."}                      or
 *   {"id": 7, "messages": [{"role": "user", "content": "..."}]}
 * with optional "system" (a string), "options" (an object of Ollama
 * options) and "session" (a string: tasks with the same session go to the
 * same node of a pool while it can take them, e.g. the turns of one
 * conversation; by default each task has a key of its own) per task. Blank lines are ignored; a malformed line is reported
 * with its number and skipped (or stops the run when strict).
 *
 * Output: JSON Lines appended to out_path as each task finishes, one write
 * per line: {"id", "response", "thinking"?, "eval_count", "ttft_ms", "e2e_ms",
 * "steps", "attempts", "node"} or {"id", "error", "code", "node"}. Ids already
 * in the output are skipped, so rerunning after a crash (even SIGKILL) does
 * only what is missing; a torn last line is cut off first. Each id is run
 * once even if the input repeats it. Ids whose result is an error count as
 * done too, unless retry_failed is set: their error lines are then removed
 * from the output (rewritten through OUT.retry-tmp, renamed over it) and the
 * ids run again.
 *
 * A line that is not a JSON object (malformed, or nested deeper than 64
 * levels) is reported and skipped like any malformed line.
 */
#ifndef AGENTS_BATCH_H
#define AGENTS_BATCH_H
#include "version.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "agent.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ag_batch_options {
    const char *in_path;  /* "-" = stdin */
    const char *out_path;
    unsigned concurrency; /* tasks in flight; 0 = 16 */
    int strict;           /* stop at the first malformed line */
    int progress;         /* 1 = a progress bar on stderr, 0 = none, -1 = when stderr is a terminal */
    FILE *log;            /* malformed-line reports; NULL = stderr */
    int retry_failed;     /* resume: run again the ids whose earlier result is an error */
} ag_batch_options;

typedef struct ag_batch_summary {
    size_t lines, tasks, skipped, duplicates, malformed, ok, failed;
    int stopped;          /* strict mode stopped at a malformed line */
    double wall_s, tasks_per_s, tokens_per_s;
    uint64_t tokens;      /* output tokens (eval_count) over the run */
    double p50_ms, p90_ms, p99_ms; /* end-to-end latency of the tasks run */
    size_t retried;       /* retry_failed: error lines taken out of the output, their ids run again */
} ag_batch_summary;

/* Runs to the end on the agent's client loop (blocking; never call it from
 * a callback). Returns 0 when the run completed (tasks may have failed: see
 * the summary), AG_EINVAL for unusable paths, or the error that stopped it. */
AG_API int ag_batch_run(ag_agent *a, const ag_batch_options *o, ag_batch_summary *out);

#ifdef __cplusplus
}
#endif
#endif
