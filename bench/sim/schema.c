/* bench/sim/schema.c - structured output as a model server gives it: for
 * format "json" (Ollama) or response_format json_object (OpenAI), a JSON
 * object; for a JSON schema (Ollama's format object, OpenAI's json_schema),
 * an instance that validates against it: types (and type lists), required
 * and optional properties, enum, const, arrays within minItems/maxItems,
 * nested objects, $ref into $defs/definitions, anyOf/oneOf/allOf, string
 * lengths and formats, number ranges. Deterministic: the same schema and
 * prompt give the same instance. */
#include "sim_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"

typedef struct gen {
    ag__buf out;
    yajl_val root; /* for $ref */
    uint64_t seed;
    int words, depth;
} gen;

static void add(gen *g, const char *s) { ag__buf_str(NULL, &g->out, s); }

static yajl_val field(yajl_val o, const char *k) {
    if (!o || !YAJL_IS_OBJECT(o)) return NULL;
    for (size_t i = 0; i < o->u.object.len; i++)
        if (!strcmp(o->u.object.keys[i], k)) return o->u.object.values[i];
    return NULL;
}

/* a value exactly as the schema wrote it (const, enum members) */
static void literal(gen *g, yajl_val v) {
    char n[64];
    if (!v || YAJL_IS_NULL(v)) add(g, "null");
    else if (YAJL_IS_TRUE(v)) add(g, "true");
    else if (YAJL_IS_FALSE(v)) add(g, "false");
    else if (YAJL_IS_STRING(v)) ag__buf_json(NULL, &g->out, v->u.string, strlen(v->u.string));
    else if (YAJL_IS_INTEGER(v)) snprintf(n, sizeof n, "%lld", (long long)YAJL_GET_INTEGER(v)), add(g, n);
    else if (YAJL_IS_NUMBER(v)) snprintf(n, sizeof n, "%.17g", YAJL_GET_DOUBLE(v)), add(g, n);
    else if (YAJL_IS_ARRAY(v)) {
        add(g, "[");
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i) add(g, ",");
            literal(g, v->u.array.values[i]);
        }
        add(g, "]");
    } else if (YAJL_IS_OBJECT(v)) {
        add(g, "{");
        for (size_t i = 0; i < v->u.object.len; i++) {
            if (i) add(g, ",");
            ag__buf_json(NULL, &g->out, v->u.object.keys[i], strlen(v->u.object.keys[i]));
            add(g, ":");
            literal(g, v->u.object.values[i]);
        }
        add(g, "}");
    }
}

/* "#/$defs/Name" or "#/definitions/Name" (one level, as generators write them) */
static yajl_val deref(gen *g, yajl_val s) {
    for (int hops = 0; hops < 8; hops++) {
        yajl_val r = field(s, "$ref");
        if (!r || !YAJL_IS_STRING(r)) return s;
        const char *p = r->u.string;
        yajl_val defs = NULL;
        if (!strncmp(p, "#/$defs/", 8)) defs = field(g->root, "$defs"), p += 8;
        else if (!strncmp(p, "#/definitions/", 14)) defs = field(g->root, "definitions"), p += 14;
        else if (!strcmp(p, "#")) return g->root;
        else return NULL;
        s = field(defs, p);
        if (!s) return NULL;
    }
    return NULL;
}

static double num(yajl_val v, double dflt) {
    return v && YAJL_IS_NUMBER(v) ? YAJL_GET_DOUBLE(v) : dflt;
}

static void words(gen *g, int n, size_t min_len, size_t max_len) {
    ag__buf w = {0};
    for (int i = 0; i < n || w.len < min_len; i++) {
        const char *t = sim_token_at(g->seed, g->words++)->raw;
        size_t l = strlen(t);
        while (l && (t[l - 1] == ' ' || t[l - 1] == '\n' || t[l - 1] == '\t')) l--;
        if (!l) continue;
        if (w.len) ag__buf_add(NULL, &w, " ", 1);
        ag__buf_add(NULL, &w, t, l);
        if (i > 64) break;
    }
    while (w.len < min_len) ag__buf_add(NULL, &w, "x", 1);
    size_t l = w.len;
    if (max_len && l > max_len) { /* cut at a character's start */
        l = max_len;
        while (l && ((unsigned char)w.p[l] & 0xC0) == 0x80) l--;
    }
    ag__buf_json(NULL, &g->out, w.p ? w.p : "", l);
    ag__buf_free(NULL, &w);
}

static void value(gen *g, yajl_val s);

static void string_of(gen *g, yajl_val s) {
    yajl_val f = field(s, "format");
    const char *fm = f && YAJL_IS_STRING(f) ? f->u.string : "";
    if (!strcmp(fm, "date-time")) add(g, "\"2026-01-02T03:04:05Z\"");
    else if (!strcmp(fm, "date")) add(g, "\"2026-01-02\"");
    else if (!strcmp(fm, "time")) add(g, "\"03:04:05Z\"");
    else if (!strcmp(fm, "email")) add(g, "\"someone@example.com\"");
    else if (!strcmp(fm, "uri") || !strcmp(fm, "url")) add(g, "\"https://example.com/\"");
    else if (!strcmp(fm, "uuid")) add(g, "\"123e4567-e89b-42d3-a456-426614174000\"");
    else {
        double mn = num(field(s, "minLength"), 0), mx = num(field(s, "maxLength"), 0);
        words(g, 3, mn > 0 ? (size_t)mn : 0, mx > 0 ? (size_t)mx : 0);
    }
}

static void number_of(gen *g, yajl_val s, int integer) {
    double lo = num(field(s, "minimum"), NAN), hi = num(field(s, "maximum"), NAN);
    double xlo = num(field(s, "exclusiveMinimum"), NAN), xhi = num(field(s, "exclusiveMaximum"), NAN);
    double v = (double)(g->seed % 90) + 1; /* something from the prompt, within the range */
    if (!isnan(lo) && v < lo) v = lo;
    if (!isnan(xlo) && v <= xlo) v = integer ? floor(xlo) + 1 : xlo + 0.5;
    if (!isnan(hi) && v > hi) v = hi;
    if (!isnan(xhi) && v >= xhi) v = integer ? ceil(xhi) - 1 : xhi - 0.5;
    if (integer) v = !isnan(hi) && ceil(v) > hi ? floor(v) : ceil(v);
    char n[64];
    if (integer) snprintf(n, sizeof n, "%lld", (long long)v);
    else snprintf(n, sizeof n, "%.4g", v);
    add(g, n);
}

static int in_list(yajl_val arr, const char *k) {
    for (size_t i = 0; arr && YAJL_IS_ARRAY(arr) && i < arr->u.array.len; i++)
        if (YAJL_IS_STRING(arr->u.array.values[i]) && !strcmp(arr->u.array.values[i]->u.string, k)) return 1;
    return 0;
}

static void object_of(gen *g, yajl_val s) {
    yajl_val props = field(s, "properties"), req = field(s, "required");
    add(g, "{");
    int first = 1;
    /* every property the schema names (required ones and the others: both valid) */
    for (size_t i = 0; props && YAJL_IS_OBJECT(props) && i < props->u.object.len; i++) {
        if (!first) add(g, ",");
        first = 0;
        ag__buf_json(NULL, &g->out, props->u.object.keys[i], strlen(props->u.object.keys[i]));
        add(g, ":");
        value(g, props->u.object.values[i]);
    }
    /* required names it gives no schema for: a string each */
    for (size_t i = 0; req && YAJL_IS_ARRAY(req) && i < req->u.array.len; i++) {
        yajl_val k = req->u.array.values[i];
        if (!YAJL_IS_STRING(k) || (props && field(props, k->u.string))) continue;
        if (!first) add(g, ",");
        first = 0;
        ag__buf_json(NULL, &g->out, k->u.string, strlen(k->u.string));
        add(g, ":");
        words(g, 2, 0, 0);
    }
    (void)in_list;
    add(g, "}");
}

static void array_of(gen *g, yajl_val s) {
    double mn = num(field(s, "minItems"), 1), mx = num(field(s, "maxItems"), 3);
    int n = (int)(mn > 2 ? mn : 2);
    if (n > mx) n = (int)mx;
    if (n < 0) n = 0;
    if (n > 64) n = 64;
    yajl_val items = field(s, "items"), prefix = field(s, "prefixItems");
    add(g, "[");
    for (int i = 0; i < n; i++) {
        if (i) add(g, ",");
        if (prefix && YAJL_IS_ARRAY(prefix) && (size_t)i < prefix->u.array.len) value(g, prefix->u.array.values[i]);
        else if (items && YAJL_IS_OBJECT(items)) value(g, items);
        else words(g, 1, 0, 0);
    }
    add(g, "]");
}

static void value(gen *g, yajl_val s) {
    if (g->depth > 24) { /* a schema that recurses without end: cut with null */
        add(g, "null");
        return;
    }
    g->depth++;
    s = deref(g, s);
    yajl_val v;
    if (!s || YAJL_IS_TRUE(s) || !YAJL_IS_OBJECT(s)) words(g, 2, 0, 0); /* true or {}: anything */
    else if ((v = field(s, "const"))) literal(g, v);
    else if ((v = field(s, "enum")) && YAJL_IS_ARRAY(v) && v->u.array.len)
        literal(g, v->u.array.values[g->seed % v->u.array.len]);
    else if (((v = field(s, "anyOf")) || (v = field(s, "oneOf"))) && YAJL_IS_ARRAY(v) && v->u.array.len) {
        /* the first alternative that is not null */
        size_t k = 0;
        for (size_t i = 0; i < v->u.array.len; i++) {
            yajl_val t = field(deref(g, v->u.array.values[i]), "type");
            if (!(t && YAJL_IS_STRING(t) && !strcmp(t->u.string, "null"))) {
                k = i;
                break;
            }
        }
        value(g, v->u.array.values[k]);
    } else if ((v = field(s, "allOf")) && YAJL_IS_ARRAY(v) && v->u.array.len == 1) value(g, v->u.array.values[0]);
    else {
        yajl_val t = field(s, "type");
        const char *type = NULL;
        if (t && YAJL_IS_STRING(t)) type = t->u.string;
        else if (t && YAJL_IS_ARRAY(t)) /* ["string", "null"]: the first that is not null */
            for (size_t i = 0; i < t->u.array.len && !type; i++)
                if (YAJL_IS_STRING(t->u.array.values[i]) && strcmp(t->u.array.values[i]->u.string, "null"))
                    type = t->u.array.values[i]->u.string;
        if (!type) type = field(s, "properties") ? "object" : field(s, "items") ? "array" : "string";
        if (!strcmp(type, "object")) object_of(g, s);
        else if (!strcmp(type, "array")) array_of(g, s);
        else if (!strcmp(type, "integer")) number_of(g, s, 1);
        else if (!strcmp(type, "number")) number_of(g, s, 0);
        else if (!strcmp(type, "boolean")) add(g, g->seed & 1 ? "true" : "false");
        else if (!strcmp(type, "null")) add(g, "null");
        else string_of(g, s);
    }
    g->depth--;
}

char *sim_structured(yajl_val schema, uint64_t seed) {
    gen g;
    memset(&g, 0, sizeof g);
    g.root = schema;
    g.seed = seed;
    if (!schema || !YAJL_IS_OBJECT(schema)) { /* "json", json_object: an object of the model's words */
        add(&g, "{\"answer\":");
        words(&g, 6, 0, 0);
        add(&g, "}");
    } else {
        value(&g, schema);
    }
    if (!g.out.p) return NULL;
    return g.out.p; /* (libc: ag__buf with a NULL allocator) */
}
