/* agents/text.c - code fences, <think> splitting, JSON in answers,
 * conversation formatting and budgeting, backoff. */
#include "agents/text.h"
#include "agents/error.h"

#include <ctype.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_parse.h>

#include "core/base/json.h"

/* ---- fenced code blocks ---- */
static const char *line_end(const char *p, const char *end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl : end;
}

/* a fence line: up to 3 spaces, then 3+ backticks or tildes; returns the
 * fence length (0 when not a fence) and its character */
static size_t fence_of(const char *p, const char *e, char *ch) {
    int sp = 0;
    while (p < e && *p == ' ' && sp < 3) p++, sp++;
    if (p >= e || (*p != '`' && *p != '~')) return 0;
    char c = *p;
    size_t n = 0;
    while (p + n < e && p[n] == c) n++;
    if (n < 3) return 0;
    *ch = c;
    return n;
}

static char *dup_range(const char *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

int ag_code_blocks(const char *text, size_t len, ag_code_block **out) {
    *out = NULL;
    int n = 0, cap = 0;
    ag_code_block *v = NULL;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *le = line_end(p, end);
        char fc;
        size_t fl = fence_of(p, le, &fc);
        if (!fl) {
            p = le < end ? le + 1 : end;
            continue;
        }
        /* info string: the language is its first word */
        const char *info = p;
        while (info < le && (*info == ' ')) info++;
        info += fl;
        while (info < le && isspace((unsigned char)*info)) info++;
        const char *ie = info;
        while (ie < le && !isspace((unsigned char)*ie) && *ie != '`') ie++;
        const char *body = le < end ? le + 1 : end, *q = body, *body_end = end, *next = end;
        while (q < end) {
            const char *qe = line_end(q, end);
            char c2;
            size_t f2 = fence_of(q, qe, &c2);
            if (f2 >= fl && c2 == fc) {
                const char *rest = q;
                while (*rest == ' ') rest++;
                rest += f2;
                while (rest < qe && isspace((unsigned char)*rest)) rest++;
                if (rest == qe) {
                    body_end = q;
                    next = qe < end ? qe + 1 : end;
                    break;
                }
            }
            q = qe < end ? qe + 1 : end;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            ag_code_block *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) goto oom;
            v = nv;
        }
        v[n].lang = dup_range(info, (size_t)(ie - info));
        v[n].code = dup_range(body, (size_t)(body_end - body));
        if (!v[n].lang || !v[n].code) {
            free(v[n].lang);
            free(v[n].code);
            goto oom;
        }
        n++;
        p = next;
    }
    *out = v;
    return n;
oom:
    ag_code_blocks_free(v, n);
    return -1;
}

void ag_code_blocks_free(ag_code_block *b, int n) {
    for (int i = 0; i < n; i++) {
        free(b[i].lang);
        free(b[i].code);
    }
    free(b);
}

/* ---- <think> splitting ---- */
static int run(ag_think_splitter *s, const char *p, size_t n, ag_think_emit emit, void *ud) {
    if (!n) return 0;
    return emit(s->in_think ? AG_CHUNK_THINKING : AG_CHUNK_CONTENT, p, n, ud);
}

static int split(ag_think_splitter *s, const char *buf, size_t len, ag_think_emit emit, void *ud) {
    size_t i = 0, start = 0;
    int rc;
    while (i < len) {
        const char *lt = memchr(buf + i, '<', len - i);
        if (!lt) break;
        i = (size_t)(lt - buf);
        const char *tag = s->in_think ? "</think>" : "<think>";
        size_t tl = s->in_think ? 8 : 7, rem = len - i;
        if (rem >= tl && memcmp(buf + i, tag, tl) == 0) {
            if ((rc = run(s, buf + start, i - start, emit, ud))) return rc;
            s->in_think = !s->in_think;
            i += tl;
            start = i;
            continue;
        }
        if (rem < tl && memcmp(buf + i, tag, rem) == 0) { /* cut by the chunk boundary */
            if ((rc = run(s, buf + start, i - start, emit, ud))) return rc;
            memcpy(s->pending, buf + i, rem);
            s->npending = rem;
            return 0;
        }
        i++;
    }
    return run(s, buf + start, len - start, emit, ud);
}

int ag_think_feed(ag_think_splitter *s, const char *text, size_t len, ag_think_emit emit, void *ud) {
    if (!s->npending) return split(s, text, len, emit, ud);
    /* rare: a tag was cut; join the held bytes with this piece */
    char *tmp = malloc(s->npending + len);
    if (!tmp) return AG_ENOMEM;
    memcpy(tmp, s->pending, s->npending);
    memcpy(tmp + s->npending, text, len);
    size_t n = s->npending + len;
    s->npending = 0;
    int rc = split(s, tmp, n, emit, ud);
    free(tmp);
    return rc;
}

int ag_think_flush(ag_think_splitter *s, ag_think_emit emit, void *ud) {
    size_t n = s->npending;
    s->npending = 0;
    return run(s, s->pending, n, emit, ud);
}

/* ---- JSON in answers ---- */
static int valid_json(const char *s, size_t n) {
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    if (!h) return 0;
    int ok = yajl_parse(h, (const unsigned char *)s, n) == yajl_status_ok &&
             yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

/* the end of the balanced value starting at p[0] ('{' or '['), honouring
 * strings (double-quoted, and single-quoted when lenient); 0 when unbalanced */
static size_t balanced(const char *p, size_t n, int lenient) {
    int depth = 0;
    char q = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (q) {
            if (c == '\\') i++;
            else if (c == q) q = 0;
            continue;
        }
        if (c == '"' || (lenient && c == '\'')) q = c;
        else if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') {
            if (--depth == 0) return i + 1;
        }
    }
    return 0;
}

/* trailing commas, True/False/None, 'strings' -> valid JSON */
static char *repair(const char *p, size_t n, size_t *outn) {
    char *o = malloc(n * 2 + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '"') { /* copy a double-quoted string as is */
            o[k++] = c;
            for (i++; i < n; i++) {
                o[k++] = p[i];
                if (p[i] == '\\' && i + 1 < n) o[k++] = p[++i];
                else if (p[i] == '"') break;
            }
            continue;
        }
        if (c == '\'') { /* 'single' -> "double", escaping inner quotes */
            o[k++] = '"';
            for (i++; i < n && p[i] != '\''; i++) {
                if (p[i] == '\\' && i + 1 < n) {
                    if (p[i + 1] == '\'') { o[k++] = '\''; i++; continue; }
                    o[k++] = p[i++];
                    o[k++] = p[i];
                    continue;
                }
                if (p[i] == '"') o[k++] = '\\';
                o[k++] = p[i];
            }
            o[k++] = '"';
            continue;
        }
        if (c == ',') { /* drop a comma that only whitespace separates from } or ] */
            size_t j = i + 1;
            while (j < n && isspace((unsigned char)p[j])) j++;
            if (j < n && (p[j] == '}' || p[j] == ']')) continue;
        }
        int word = i == 0 || !isalnum((unsigned char)p[i - 1]);
        if (word && n - i >= 4 && memcmp(p + i, "True", 4) == 0 && (n - i == 4 || !isalnum((unsigned char)p[i + 4]))) {
            memcpy(o + k, "true", 4), k += 4, i += 3;
            continue;
        }
        if (word && n - i >= 5 && memcmp(p + i, "False", 5) == 0 && (n - i == 5 || !isalnum((unsigned char)p[i + 5]))) {
            memcpy(o + k, "false", 5), k += 5, i += 4;
            continue;
        }
        if (word && n - i >= 4 && memcmp(p + i, "None", 4) == 0 && (n - i == 4 || !isalnum((unsigned char)p[i + 4]))) {
            memcpy(o + k, "null", 4), k += 4, i += 3;
            continue;
        }
        o[k++] = c;
    }
    o[k] = 0;
    *outn = k;
    return o;
}

/* The first balanced value opening with c ('{' or '[') from text[from..]
 * that is valid JSON (or, with repairs allowed, valid once repaired): its
 * start in *at and the text in *out (malloc'd). 0, AG_EJSON or AG_ENOMEM. */
static int first_value(const char *text, size_t len, char c, int repairs, size_t *at, char **out) {
    for (size_t i = 0; i < len; i++) {
        if (text[i] != c) continue;
        size_t n = balanced(text + i, len - i, repairs);
        if (!n) continue;
        if (valid_json(text + i, n)) {
            *at = i;
            *out = dup_range(text + i, n);
            return *out ? 0 : AG_ENOMEM;
        }
        if (repairs) {
            size_t rn;
            char *r = repair(text + i, n, &rn);
            if (!r) return AG_ENOMEM;
            if (valid_json(r, rn)) {
                *at = i;
                *out = r;
                return 0;
            }
            free(r);
        }
    }
    return AG_EJSON;
}

/* a value inside text, prose around it: an object first (what answers
 * usually carry), unless an array that holds it starts before it */
static int embedded_value(const char *text, size_t len, int repairs, char **out) {
    size_t oat = 0, aat = 0;
    char *obj = NULL, *arr = NULL;
    int orc = first_value(text, len, '{', repairs, &oat, &obj);
    int arc = orc == AG_ENOMEM ? AG_EJSON : first_value(text, len, '[', repairs, &aat, &arr);
    if (orc == AG_ENOMEM || arc == AG_ENOMEM) {
        free(obj);
        free(arr);
        return AG_ENOMEM;
    }
    int take_arr = arr && (!obj || (aat < oat && aat + balanced(text + aat, len - aat, repairs) > oat));
    *out = take_arr ? arr : obj;
    free(take_arr ? obj : arr);
    return *out ? 0 : AG_EJSON;
}

int ag_json_extract(const char *text, size_t len, int mode, char **out) {
    *out = NULL;
    if (!text) return AG_EJSON;
    /* the whole text first */
    size_t b = 0, e = len;
    while (b < e && isspace((unsigned char)text[b])) b++;
    while (e > b && isspace((unsigned char)text[e - 1])) e--;
    if (e > b && valid_json(text + b, e - b)) {
        *out = dup_range(text + b, e - b);
        return *out ? 0 : AG_ENOMEM;
    }
    if (mode == AG_JSON_STRICT) return AG_EJSON;
    int repairs = mode != AG_JSON_NO_REPAIR;
    /* then a fenced block: it wins over brackets in the prose around it */
    ag_code_block *blocks = NULL;
    int nb = ag_code_blocks(text, len, &blocks);
    if (nb < 0) return AG_ENOMEM;
    int rc = AG_EJSON;
    for (int i = 0; i < nb && rc == AG_EJSON; i++) {
        const char *lang = blocks[i].lang;
        if (*lang && strcasecmp(lang, "json") && strcasecmp(lang, "jsonc") && strcasecmp(lang, "json5") &&
            strcasecmp(lang, "javascript") && strcasecmp(lang, "js"))
            continue;
        const char *c = blocks[i].code;
        size_t cb = 0, ce = strlen(c);
        while (cb < ce && isspace((unsigned char)c[cb])) cb++;
        while (ce > cb && isspace((unsigned char)c[ce - 1])) ce--;
        if (ce > cb && valid_json(c + cb, ce - cb)) {
            *out = dup_range(c + cb, ce - cb);
            rc = *out ? 0 : AG_ENOMEM;
        } else {
            rc = embedded_value(c + cb, ce - cb, repairs, out);
        }
    }
    ag_code_blocks_free(blocks, nb);
    if (rc != AG_EJSON) return rc;
    /* then a value anywhere in the text */
    return embedded_value(text, len, repairs, out);
}

int ag_json_extract_value(const char *text, size_t len, int mode, struct yajl_val_s **out) {
    *out = NULL;
    char *json = NULL;
    int rc = ag_json_extract(text, len, mode, &json);
    if (rc) return rc;
    char err[64];
    *out = ag__json_tree(NULL, json, err, sizeof err);
    free(json);
    return *out ? 0 : AG_ENOMEM; /* it parsed once already: only memory can fail */
}

void ag_json_value_free(struct yajl_val_s *v) {
    ag__json_tree_free(NULL, v);
}

/* ---- conversations ---- */
static const char *role_label(const char *role) {
    if (!role) return "User";
    if (!strcmp(role, "system")) return "System";
    if (!strcmp(role, "assistant")) return "Assistant";
    if (!strcmp(role, "tool")) return "Tool";
    return "User";
}

char *ag_history_format(const ag_message *msgs, size_t n) {
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += strlen(msgs[i].content ? msgs[i].content : "") + 32 +
               (msgs[i].tool_name ? strlen(msgs[i].tool_name) : 0);
    char *o = malloc(cap);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *label = role_label(msgs[i].role);
        const char *c = msgs[i].content ? msgs[i].content : "";
        if (!strcmp(label, "Tool") && msgs[i].tool_name)
            k += (size_t)snprintf(o + k, cap - k, "Tool (%s): %s\n", msgs[i].tool_name, c);
        else
            k += (size_t)snprintf(o + k, cap - k, "%s: %s\n", label, c);
    }
    o[k] = 0;
    return o;
}

size_t ag_token_estimate(const char *text) {
    if (!text || !*text) return 0;
    size_t chars = 0, words = 0;
    int in_word = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if ((*p & 0xC0) != 0x80) chars++; /* count code points, not bytes */
        if (isspace(*p)) in_word = 0;
        else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    size_t by_chars = (chars + 3) / 4, by_words = (words * 4 + 1) / 3;
    size_t t = by_chars > by_words ? by_chars : by_words;
    return t ? t : 1;
}

size_t ag_truncate_messages(const ag_message *msgs, size_t n, size_t budget, unsigned char *keep) {
    memset(keep, 0, n);
    size_t used = 0, i = 0;
    for (; i < n && msgs[i].role && !strcmp(msgs[i].role, "system"); i++) {
        keep[i] = 1;
        used += ag_token_estimate(msgs[i].content) + 4;
    }
    size_t first_turn = i;
    for (size_t j = n; j > first_turn; j--) {
        size_t t = ag_token_estimate(msgs[j - 1].content) + 4;
        if (used + t > budget && j != n) break; /* the newest message always stays */
        keep[j - 1] = 1;
        used += t;
    }
    return used;
}

/* ---- retries ---- */
double ag_backoff(unsigned attempt, double base, double max, unsigned long long *seed) {
    double cap = base * pow(2.0, attempt > 60 ? 60 : attempt);
    if (cap > max) cap = max;
    unsigned long long x = *seed ? *seed : 88172645463325252ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *seed = x;
    return cap * (double)(x >> 11) / (double)(1ull << 53);
}

double ag_cosine(const float *a, const float *b, size_t n) {
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        d += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return na > 0 && nb > 0 ? d / (sqrt(na) * sqrt(nb)) : 0;
}

/* ---- the original package's text helpers, with its numbers ---- */

/* code points in s (bytes that do not continue a UTF-8 sequence) */
static size_t code_points(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
    return n;
}

/* the byte offset of code point k of s (or its length) */
static size_t cp_offset(const char *s, size_t k) {
    size_t i = 0;
    for (; s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && k-- == 0) return i;
    return i;
}

size_t ag_estimate_tokens(const char *text) {
    return text ? code_points(text) / 4 : 0;
}

char *ag_truncate_to_tokens(const char *text, size_t token_limit, size_t chars_per_token) {
    if (!text) text = "";
    if (!chars_per_token) chars_per_token = 4;
    size_t max = token_limit * chars_per_token;
    if (code_points(text) <= max) return strdup(text);
    size_t cut = cp_offset(text, max);
    char *o = malloc(cut + 4);
    if (!o) return NULL;
    memcpy(o, text, cut);
    memcpy(o + cut, "...", 4);
    return o;
}

char *ag_format_chat_history(const ag_message *msgs, size_t n, size_t max_length) {
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += strlen(msgs[i].content ? msgs[i].content : "") + strlen(msgs[i].role ? msgs[i].role : "unknown") + 8;
    char *o = malloc(cap);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *role = msgs[i].role ? msgs[i].role : "unknown";
        const char *c = msgs[i].content ? msgs[i].content : "";
        if (i) o[k++] = '\n';
        for (const char *r = role; *r; r++) o[k++] = (char)toupper((unsigned char)*r);
        o[k++] = ':';
        o[k++] = ' ';
        size_t len = strlen(c);
        if (max_length && code_points(c) > max_length) {
            len = cp_offset(c, max_length);
            memcpy(o + k, c, len);
            k += len;
            memcpy(o + k, "...", 3);
            k += 3;
        } else {
            memcpy(o + k, c, len);
            k += len;
        }
    }
    o[k] = 0;
    return o;
}
