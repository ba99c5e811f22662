/* cli/repl_cmds.c - the session's slash commands, as Ollama's REPL has them:
 * /? and /help, /set (parameters, system, think, format, verbose, history),
 * /show, /save (the conversation as JSON) and /load (a model, or a saved
 * conversation). */
#include "cli/repl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

void repl_help(const char *what) {
    if (what && !strcmp(what, "shortcuts")) {
        out("Available keyboard shortcuts:\n"
            "  Ctrl + a            Move to the beginning of the line (Home)\n"
            "  Ctrl + e            Move to the end of the line (End)\n"
            "  Ctrl + b / f        Move back / forward a character (Left / Right)\n"
            "  Up / Down           Browse the history\n"
            "  Ctrl + k            Delete the sentence after the cursor\n"
            "  Ctrl + u            Delete the sentence before the cursor\n"
            "  Ctrl + w            Delete the word before the cursor\n"
            "  Ctrl + l            Clear the screen\n"
            "  Ctrl + c            Stop the answer being written (or clear the line)\n"
            "  Ctrl + d            Exit (on an empty line)\n\n");
        return;
    }
    if (what && !strcmp(what, "set")) {
        out("Available /set commands:\n"
            "  /set parameter NAME VALUE   Set a model option (/set parameter for the list)\n"
            "  /set system TEXT            Set the system message\n"
            "  /set think [low|medium|high]  Enable thinking\n"
            "  /set nothink                Disable thinking\n"
            "  /set format json            Answer in JSON\n"
            "  /set noformat               Answer in any form\n"
            "  /set verbose                Show timings after each answer\n"
            "  /set quiet                  Do not show timings\n"
            "  /set history | nohistory    Keep (or stop keeping) the input history\n\n");
        return;
    }
    out("Available commands:\n"
        "  /set            Set session variables\n"
        "  /show           Show model information\n"
        "  /load MODEL     Load a session or model\n"
        "  /save FILE      Save the conversation to a file (JSON)\n"
        "  /clear          Clear the session context\n"
        "  /bye            Exit\n"
        "  /?, /help       Help for a command\n"
        "  /? shortcuts    Help for keyboard shortcuts\n\n"
        "Use \"\"\" to begin a multi-line message.\n\n");
}

static const char *param_names =
    "  /set parameter seed <int>             Random number seed\n"
    "  /set parameter num_predict <int>      Max number of tokens to predict\n"
    "  /set parameter top_k <int>            Pick from top k num of tokens\n"
    "  /set parameter top_p <float>          Pick token based on sum of probabilities\n"
    "  /set parameter min_p <float>          Pick token based on top token probability * min_p\n"
    "  /set parameter num_ctx <int>          Set the context size\n"
    "  /set parameter temperature <float>    Set creativity level\n"
    "  /set parameter repeat_penalty <float> How strongly to penalize repetitions\n"
    "  /set parameter repeat_last_n <int>    Set how far back to look for repetitions\n"
    "  /set parameter num_gpu <int>          The number of layers to send to the GPU\n"
    "  /set parameter stop <string> <string> ...   Set the stop parameters\n\n";

static int is_number(const char *s) {
    if (!*s) return 0;
    char *e;
    strtod(s, &e);
    return *e == 0;
}

/* one "name": value into r->params, replacing an earlier one */
static int set_param(repl *r, const char *name, char *values) {
    char val[2048];
    size_t vl = 0;
    if (!strcmp(name, "stop")) {
        val[vl++] = '[';
        int first = 1;
        for (char *sv = NULL, *t = strtok_r(values, " ", &sv); t; t = strtok_r(NULL, " ", &sv)) {
            if (vl + strlen(t) * 2 + 8 >= sizeof val) return -1;
            if (!first) val[vl++] = ',';
            first = 0;
            val[vl++] = '"';
            for (; *t; t++) {
                if (*t == '"' || *t == '\\') val[vl++] = '\\';
                val[vl++] = *t;
            }
            val[vl++] = '"';
        }
        val[vl++] = ']';
        val[vl] = 0;
    } else if (is_number(values) || !strcmp(values, "true") || !strcmp(values, "false")) {
        snprintf(val, sizeof val, "%s", values);
    } else {
        return -1;
    }
    /* drop the earlier value */
    char key[80];
    snprintf(key, sizeof key, "\"%s\":", name);
    char *at = strstr(r->params, key);
    if (at && (at == r->params || at[-1] == ',')) {
        char *e = at + strlen(key);
        int depth = 0, inq = 0;
        for (; *e; e++) {
            if (inq) {
                if (*e == '\\' && e[1]) e++;
                else if (*e == '"') inq = 0;
            } else if (*e == '"') inq = 1;
            else if (*e == '[') depth++;
            else if (*e == ']') depth--;
            else if (*e == ',' && depth == 0) break;
        }
        if (*e == ',') e++;
        else if (at > r->params) at--; /* the comma before */
        memmove(at, e, strlen(e) + 1);
    }
    size_t pl = strlen(r->params);
    int n = snprintf(r->params + pl, sizeof r->params - pl, "%s\"%s\":%s", pl ? "," : "", name, val);
    if (n < 0 || (size_t)n >= sizeof r->params - pl) {
        r->params[pl] = 0;
        return -1;
    }
    return 0;
}

void repl_set(repl *r, char *args) {
    char *sv = NULL, *what = strtok_r(args, " ", &sv);
    char *rest = sv ? sv + strspn(sv, " ") : NULL;
    if (!what) {
        repl_help("set");
        return;
    }
    if (!strcmp(what, "parameter")) {
        char *name = rest ? strtok_r(rest, " ", &sv) : NULL;
        char *vals = name && sv ? sv + strspn(sv, " ") : NULL;
        if (!name || !vals || !*vals) {
            out("Usage:\n  /set parameter <name> <value>\n\nParameters:\n");
            out(param_names);
            return;
        }
        for (const char *c = name; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || *c == '_' || (*c >= '0' && *c <= '9'))) {
                printf("Unknown parameter '%s'\n\n", name);
                return;
            }
        if (set_param(r, name, vals)) printf("Couldn't set parameter: '%s' wants a number (or, for stop, words)\n\n", name);
        else printf("Set parameter '%s' to '%s'\n\n", name, vals);
    } else if (!strcmp(what, "system")) {
        if (!rest || !*rest) {
            out("Usage:\n  /set system <message>\n\n");
            return;
        }
        size_t l = strlen(rest);
        if (l >= 2 && rest[0] == '"' && rest[l - 1] == '"') rest[l - 1] = 0, rest++;
        free(r->system);
        r->system = strdup(rest);
        out("Set system message.\n\n");
    } else if (!strcmp(what, "think")) {
        const char *lvl = rest && *rest ? rest : "true";
        if (strcmp(lvl, "true") && strcmp(lvl, "low") && strcmp(lvl, "medium") && strcmp(lvl, "high")) {
            printf("Invalid think level '%s': low, medium or high\n\n", lvl);
            return;
        }
        snprintf(r->think, sizeof r->think, "%s", lvl);
        if (!strcmp(lvl, "true")) out("Set 'think' mode.\n\n");
        else printf("Set 'think' mode to '%s'.\n\n", lvl);
    } else if (!strcmp(what, "nothink")) {
        snprintf(r->think, sizeof r->think, "false");
        out("Set 'nothink' mode.\n\n");
    } else if (!strcmp(what, "format")) {
        if (!rest || strcmp(rest, "json")) {
            printf("Invalid or missing format. For 'json' mode use '/set format json'\n\n");
            return;
        }
        snprintf(r->format, sizeof r->format, "json");
        out("Set format to 'json' mode.\n\n");
    } else if (!strcmp(what, "noformat")) {
        r->format[0] = 0;
        out("Disabled format.\n\n");
    } else if (!strcmp(what, "verbose")) {
        r->verbose = 1;
        out("Set 'verbose' mode.\n\n");
    } else if (!strcmp(what, "quiet")) {
        r->verbose = 0;
        out("Set 'quiet' mode.\n\n");
    } else if (!strcmp(what, "history")) {
        if (!r->hist_path[0]) hist_load(r);
        out("Set 'history' mode.\n\n");
    } else if (!strcmp(what, "nohistory")) {
        r->hist_path[0] = 0;
        out("Set 'nohistory' mode.\n\n");
    } else {
        printf("Unknown command '/set %s'. Type /? for help\n\n", what);
    }
}

/* /show info: the model's card, read from the server as `agents show` does */
static void show_info(repl *r) {
    ag_model_params mp;
    memset(&mp, 0, sizeof mp);
    mp.model = r->model;
    ag_sync_out so;
    memset(&so, 0, sizeof so);
    int rc = ag_admin_sync(r->c, AG_OP_SHOW, &mp, NULL, NULL, &so);
    if (rc || !so.result || !so.result->show) {
        printf("Couldn't get the model's details: %s\n\n", so.result && so.result->error ? so.result->error : ag_strerror(rc));
        ag_sync_out_free(&so);
        return;
    }
    const ag_show_info *s = so.result->show;
    out("  Model\n");
    if (s->family) printf("    %-20s%s\n", "architecture", s->family);
    if (s->parameter_size) printf("    %-20s%s\n", "parameters", s->parameter_size);
    if (s->quantization_level) printf("    %-20s%s\n", "quantization", s->quantization_level);
    if (s->n_capabilities) {
        out("\n  Capabilities\n");
        for (size_t i = 0; i < s->n_capabilities; i++) printf("    %s\n", s->capabilities[i]);
    }
    out("\n");
    ag_sync_out_free(&so);
}

void repl_show(repl *r, char *args) {
    char *what = args ? strtok(args, " ") : NULL;
    if (!what) {
        out("Available /show commands:\n"
            "  /show info         Show details for this model\n"
            "  /show parameters   Show parameters for this session\n"
            "  /show system       Show the system message\n\n");
    } else if (!strcmp(what, "info")) show_info(r);
    else if (!strcmp(what, "system")) printf("%s\n\n", r->system && *r->system ? r->system : "No system message was specified for this model.");
    else if (!strcmp(what, "parameters")) {
        if (!r->params[0] && !r->think[0] && !r->format[0]) out("No parameters were set for this session.\n\n");
        else {
            out("User defined parameters:\n");
            if (r->params[0]) printf("  {%s}\n", r->params);
            if (r->think[0]) printf("  think %s\n", r->think);
            if (r->format[0]) printf("  format %s\n", r->format);
            out("\n");
        }
    } else printf("Unknown command '/show %s'. Type /? for help\n\n", what);
}

void repl_save(repl *r, const char *path) {
    if (!path || !*path) {
        out("Usage:\n  /save <file>   the conversation as JSON (model, system, options, messages)\n\n");
        return;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        printf("Couldn't write %s: %s\n\n", path, strerror(errno));
        return;
    }
    fputs("{\"model\":", f);
    json_str(f, r->model);
    if (r->system) fputs(",\"system\":", f), json_str(f, r->system);
    if (r->params[0]) fprintf(f, ",\"options\":{%s}", r->params);
    fputs(",\"messages\":[", f);
    for (size_t i = 0; i < r->n; i++) {
        fputs(i ? ",{\"role\":" : "{\"role\":", f);
        json_str(f, r->msgs[i].role);
        fputs(",\"content\":", f);
        json_str(f, r->msgs[i].content);
        fputc('}', f);
    }
    fputs("]}\n", f);
    int bad = ferror(f);
    bad |= fclose(f);
    if (bad) printf("Couldn't write %s\n\n", path);
    else printf("Saved the conversation to %s (%zu messages)\n\n", path, r->n);
}

/* /load FILE.json (a /save) or /load MODEL */
void repl_load(repl *r, const char *what) {
    if (!what || !*what) {
        out("Usage:\n  /load <model>   or   /load <file saved with /save>\n\n");
        return;
    }
    char *js = NULL;
    FILE *f = strstr(what, ".json") ? fopen(what, "r") : NULL;
    if (f) {
        size_t cap = 1 << 16, len = 0, k;
        js = malloc(cap);
        while (js && (k = fread(js + len, 1, cap - len - 1, f)) > 0) {
            len += k;
            if (len + 1 >= cap) {
                if (cap >= (64u << 20)) break;
                js = realloc(js, cap *= 2);
            }
        }
        fclose(f);
        if (js) js[len] = 0;
        yajl_val v = NULL;
        if (!js || ag_json_extract_value(js, len, 1, &v) != 0 || !v) {
            printf("Couldn't read %s as a saved conversation\n\n", what);
            free(js);
            return;
        }
        const char *mp[] = {"model", NULL}, *sp[] = {"system", NULL}, *msp[] = {"messages", NULL};
        yajl_val m = yajl_tree_get(v, mp, yajl_t_string), s = yajl_tree_get(v, sp, yajl_t_string),
                 ms = yajl_tree_get(v, msp, yajl_t_array);
        clear_msgs(r);
        if (m && m->u.string) snprintf(r->model, sizeof r->model, "%s", m->u.string);
        free(r->system);
        r->system = s && s->u.string ? strdup(s->u.string) : NULL;
        for (size_t i = 0; ms && i < ms->u.array.len; i++) {
            const char *rp[] = {"role", NULL}, *cp[] = {"content", NULL};
            yajl_val ro = yajl_tree_get(ms->u.array.values[i], rp, yajl_t_string);
            yajl_val co = yajl_tree_get(ms->u.array.values[i], cp, yajl_t_string);
            if (ro && co && ro->u.string && co->u.string) add_msg(r, ro->u.string, co->u.string);
        }
        ag_json_value_free(v);
        free(js);
        printf("Loaded %s: model '%s', %zu messages\n\n", what, r->model, r->n);
        return;
    }
    snprintf(r->model, sizeof r->model, "%s", what);
    clear_msgs(r);
    printf("Loading model '%s'\n", r->model);
    /* as Ollama: an empty chat loads it, and says at once when it is not there */
    ag_chat_params p;
    memset(&p, 0, sizeof p);
    p.model = r->model;
    ag_message none;
    memset(&none, 0, sizeof none);
    p.messages = &none;
    p.n_messages = 0;
    ag_sync_out so;
    memset(&so, 0, sizeof so);
    int rc = ag_chat_sync(r->c, &p, NULL, NULL, &so);
    if (rc) printf("Couldn't load model '%s': %s\n", r->model, so.result && so.result->error ? so.result->error : ag_strerror(rc));
    out("\n");
    ag_sync_out_free(&so);
}
