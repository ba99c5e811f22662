/* agents/text.h - text utilities the agents are built from, usable alone.
 *
 * Functions that return text or arrays allocate with libc malloc; free them
 * with the matching *_free function (or free() where stated). None of them
 * touches the network or keeps state between calls unless it is given a
 * state struct.
 */
#ifndef AGENTS_TEXT_H
#define AGENTS_TEXT_H
#include "version.h"
#include <stddef.h>
#include "request.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fenced code blocks ---- */
typedef struct ag_code_block {
    char *lang; /* "" when the fence names none */
    char *code; /* the body, without the fences; ends with the last line's newline */
} ag_code_block;

/* Finds every ``` (or ~~~) fenced block in text. An unterminated last block
 * runs to the end. Returns the number found (0 with *out NULL when none), or
 * -1 when out of memory. */
AG_API int ag_code_blocks(const char *text, size_t len, ag_code_block **out);
AG_API void ag_code_blocks_free(ag_code_block *blocks, int n);

/* ---- <think>...</think> splitting, across chunk boundaries ---- */
typedef struct ag_think_splitter {
    int in_think;     /* inside <think> now */
    char pending[16]; /* a possible tag cut by a chunk boundary */
    size_t npending;
} ag_think_splitter;

/* Feeds one piece of streamed text. emit is called for each run of answer
 * (kind AG_CHUNK_CONTENT) or thinking (AG_CHUNK_THINKING) text, tags removed,
 * in order; text is borrowed for the call. Returns what emit last returned
 * if nonzero (stop), else 0. */
typedef int (*ag_think_emit)(int kind, const char *text, size_t len, void *ud);
AG_API int ag_think_feed(ag_think_splitter *s, const char *text, size_t len, ag_think_emit emit, void *ud);
/* Flushes a held-back partial tag as text, at the end of the stream. */
AG_API int ag_think_flush(ag_think_splitter *s, ag_think_emit emit, void *ud);

/* ---- JSON in a model's answer ---- */
enum ag_json_mode {
    /* the whole text; else a ```json (or unlabelled) fenced block, which wins
     * over brackets in the prose around it; else an object in the text (an
     * array only when it holds that object or there is none), repairing what
     * models commonly get wrong: trailing commas, Python's True/False/None,
     * single-quoted strings */
    AG_JSON_LENIENT = 0,
    AG_JSON_NO_REPAIR = 1, /* the same search, no repairs */
    AG_JSON_STRICT = 2     /* the whole text (blanks aside) must be JSON, as the original's strict */
};
/* Finds JSON in text by mode and returns it as a malloc'd, NUL-terminated,
 * validated string. Returns 0, AG_EJSON (nothing valid found) or AG_ENOMEM.
 * The original's parse_json_response(text) is mode AG_JSON_LENIENT;
 * parse_json_response(text, strict=True) failing is AG_EJSON. */
AG_API int ag_json_extract(const char *text, size_t len, int mode, char **out);
/* The same, parsed: a tree of yajl's public struct yajl_val_s (read it with
 * <yajl/yajl_tree.h>: YAJL_IS_OBJECT, yajl_tree_get, ...). Free it with
 * ag_json_value_free, not yajl_tree_free. */
struct yajl_val_s;
AG_API int ag_json_extract_value(const char *text, size_t len, int mode, struct yajl_val_s **out);
AG_API void ag_json_value_free(struct yajl_val_s *v);

/* ---- conversations ---- */
/* "System: ...\nUser: ...\nAssistant: ...\n" (tool results as "Tool (name): ...").
 * malloc'd; NULL when out of memory. */
AG_API char *ag_history_format(const ag_message *msgs, size_t n);

/* A token estimate for budgeting (about 4 characters or 0.75 words a token,
 * whichever is larger), never 0 for non-empty text. */
AG_API size_t ag_token_estimate(const char *text);

/* Chooses which messages fit a token budget: every leading system message,
 * then the newest turns that fit. keep[i] is set to 1 for kept messages.
 * Returns the estimated tokens kept. */
AG_API size_t ag_truncate_messages(const ag_message *msgs, size_t n, size_t budget, unsigned char *keep);

/* ---- the original package's helpers, with its numbers ----
 * (Lengths count code points, as Python's len does.) */
/* estimate_tokens: code points / 4, rounded down (0 for ""); ag_token_estimate
 * above is this library's own, never 0 for text and aware of short words */
AG_API size_t ag_estimate_tokens(const char *text);
/* truncate_to_token_limit: text cut to token_limit * chars_per_token code
 * points (chars_per_token 0 = 4), "..." appended when cut; malloc'd, never
 * splitting a UTF-8 sequence. NULL when out of memory. */
AG_API char *ag_truncate_to_tokens(const char *text, size_t token_limit, size_t chars_per_token);
/* format_chat_history: "ROLE: content" a line, joined by "\n" (no newline at
 * the end), each content cut to max_length code points plus "..." when
 * longer (0 = no limit); a NULL role is "UNKNOWN". malloc'd. */
AG_API char *ag_format_chat_history(const ag_message *msgs, size_t n, size_t max_length);

/* ---- embeddings ---- */
/* The cosine similarity of two vectors of n floats (0 when either is all zeros). */
AG_API double ag_cosine(const float *a, const float *b, size_t n);

/* ---- retries ---- */
/* Exponential backoff with full jitter: a delay in [0, min(max, base * 2^attempt)),
 * seconds; *seed is advanced (any nonzero start). */
AG_API double ag_backoff(unsigned attempt, double base, double max, unsigned long long *seed);

#ifdef __cplusplus
}
#endif
#endif
