/* bench/sim/responses.c - the simulated node's OpenAI Responses dialect
 * (/v1/responses, as Ollama serves it since 0.13): a whole response with its
 * output items (reasoning, a message of output_text, or a function call), or
 * the stream of events: response.created, response.in_progress, then per
 * item response.output_item.added, response.content_part.added,
 * response.output_text.delta ... .done, response.content_part.done,
 * response.output_item.done (a function call's arguments as
 * response.function_call_arguments.delta / .done; reasoning as
 * response.reasoning_summary_text.delta / .done), and response.completed.
 * The tokens are the other dialects' (already JSON-escaped). */
#include "sim_internal.h"

#include <stdio.h>
#include <string.h>

static int in_tokens(const stream *st) { return (int)(st->prompt_chars / 4 + 1); }

/* the event's name, and the start of its data with the type and sequence number */
static void ev(stream *st, struct evbuffer *b, const char *name) {
    evbuffer_add_printf(b, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%d", name, name, st->seq++);
}

static int reasoning(const stream *st) { return st->think_tokens > st->first; }

/* the response object (status, output so far, usage) */
static void response_obj(stream *st, struct evbuffer *b, const char *status, const char *text, const char *thought) {
    evbuffer_add_printf(b, "{\"id\":\"resp_%s\",\"object\":\"response\",\"created_at\":%ld,\"status\":\"%s\",\"model\":\"%s\","
                           "\"output\":[",
                        st->oai_id + 4, st->created, status, st->model);
    if (text) { /* done: the items */
        if (st->tool_call) {
            evbuffer_add_printf(b, "{\"type\":\"function_call\",\"id\":\"fc_%s\",\"call_id\":\"call_%s\",\"name\":\"%s\",\"arguments\":\"",
                                st->oai_id + 4, st->oai_id + 4, st->tool_name);
            sim_json_escape(b, st->tool_args);
            evbuffer_add_printf(b, "\",\"status\":\"completed\"}");
        } else {
            if (thought && *thought)
                evbuffer_add_printf(b, "{\"type\":\"reasoning\",\"id\":\"rs_%s\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"%s\"}]},",
                                    st->oai_id + 4, thought);
            evbuffer_add_printf(b, "{\"type\":\"message\",\"id\":\"msg_%s\",\"status\":\"completed\",\"role\":\"assistant\","
                                   "\"content\":[{\"type\":\"output_text\",\"text\":\"%s\",\"annotations\":[]}]}",
                                st->oai_id + 4, text);
        }
    }
    int out = st->tool_call ? 1 : st->sent - st->first;
    evbuffer_add_printf(b, "],\"usage\":{\"input_tokens\":%d,\"output_tokens\":%d,\"total_tokens\":%d}", in_tokens(st), out,
                        in_tokens(st) + out);
    if (text && st->limited && !st->tool_call)
        evbuffer_add_printf(b, ",\"incomplete_details\":{\"reason\":\"max_output_tokens\"}");
    else evbuffer_add_printf(b, ",\"incomplete_details\":null");
    evbuffer_add_printf(b, "}");
}

static void begin(stream *st, struct evbuffer *b) {
    ev(st, b, "response.created");
    evbuffer_add_printf(b, ",\"response\":");
    response_obj(st, b, "in_progress", NULL, NULL);
    evbuffer_add_printf(b, "}\n\n");
    ev(st, b, "response.in_progress");
    evbuffer_add_printf(b, ",\"response\":");
    response_obj(st, b, "in_progress", NULL, NULL);
    evbuffer_add_printf(b, "}\n\n");
}

static void message_added(stream *st, struct evbuffer *b, int index) {
    ev(st, b, "response.output_item.added");
    evbuffer_add_printf(b, ",\"output_index\":%d,\"item\":{\"type\":\"message\",\"id\":\"msg_%s\",\"status\":\"in_progress\","
                           "\"role\":\"assistant\",\"content\":[]}}\n\n",
                        index, st->oai_id + 4);
    ev(st, b, "response.content_part.added");
    evbuffer_add_printf(b, ",\"item_id\":\"msg_%s\",\"output_index\":%d,\"content_index\":0,"
                           "\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n",
                        st->oai_id + 4, index);
}

/* the reasoning item's end, with its whole text */
static void reasoning_done(stream *st, struct evbuffer *b) {
    struct evbuffer *c = evbuffer_new(), *t = evbuffer_new();
    sim_answer_text(st, st->think_tokens, c, t);
    const char *th = (const char *)evbuffer_pullup(t, -1);
    ev(st, b, "response.reasoning_summary_text.done");
    evbuffer_add_printf(b, ",\"item_id\":\"rs_%s\",\"output_index\":0,\"summary_index\":0,\"text\":\"%s\"}\n\n", st->oai_id + 4, th);
    ev(st, b, "response.output_item.done");
    evbuffer_add_printf(b, ",\"output_index\":0,\"item\":{\"type\":\"reasoning\",\"id\":\"rs_%s\",\"summary\":[{\"type\":\"summary_text\","
                           "\"text\":\"%s\"}]}}\n\n",
                        st->oai_id + 4, th);
    evbuffer_free(c);
    evbuffer_free(t);
}

void sim_resp_token(stream *st, struct evbuffer *b, const char *txt, int i) {
    int thinking = i < st->think_tokens;
    if (i == st->first) {
        begin(st, b);
        if (thinking) {
            ev(st, b, "response.output_item.added");
            evbuffer_add_printf(b, ",\"output_index\":0,\"item\":{\"type\":\"reasoning\",\"id\":\"rs_%s\",\"summary\":[]}}\n\n",
                                st->oai_id + 4);
        } else {
            message_added(st, b, 0);
        }
    } else if (i == st->think_tokens && reasoning(st)) { /* the reasoning ends, the message begins */
        reasoning_done(st, b);
        message_added(st, b, 1);
    }
    if (thinking) {
        ev(st, b, "response.reasoning_summary_text.delta");
        evbuffer_add_printf(b, ",\"item_id\":\"rs_%s\",\"output_index\":0,\"summary_index\":0,\"delta\":\"%s\"}\n\n", st->oai_id + 4,
                            txt);
        return;
    }
    ev(st, b, "response.output_text.delta");
    evbuffer_add_printf(b, ",\"item_id\":\"msg_%s\",\"output_index\":%d,\"content_index\":0,\"delta\":\"%s\"}\n\n", st->oai_id + 4,
                        reasoning(st) ? 1 : 0, txt);
}

void sim_resp_tool(stream *st, struct evbuffer *b) {
    begin(st, b);
    ev(st, b, "response.output_item.added");
    evbuffer_add_printf(b, ",\"output_index\":0,\"item\":{\"type\":\"function_call\",\"id\":\"fc_%s\",\"call_id\":\"call_%s\","
                           "\"name\":\"%s\",\"arguments\":\"\",\"status\":\"in_progress\"}}\n\n",
                        st->oai_id + 4, st->oai_id + 4, st->tool_name);
    size_t half = strlen(st->tool_args) / 2;
    char part[600];
    for (int k = 0; k < 2; k++) {
        snprintf(part, sizeof part, "%.*s", k ? (int)(strlen(st->tool_args) - half) : (int)half, st->tool_args + (k ? half : 0));
        ev(st, b, "response.function_call_arguments.delta");
        evbuffer_add_printf(b, ",\"item_id\":\"fc_%s\",\"output_index\":0,\"delta\":\"", st->oai_id + 4);
        sim_json_escape(b, part);
        evbuffer_add_printf(b, "\"}\n\n");
    }
    ev(st, b, "response.function_call_arguments.done");
    evbuffer_add_printf(b, ",\"item_id\":\"fc_%s\",\"output_index\":0,\"arguments\":\"", st->oai_id + 4);
    sim_json_escape(b, st->tool_args);
    evbuffer_add_printf(b, "\"}\n\n");
    ev(st, b, "response.output_item.done");
    evbuffer_add_printf(b, ",\"output_index\":0,\"item\":{\"type\":\"function_call\",\"id\":\"fc_%s\",\"call_id\":\"call_%s\","
                           "\"name\":\"%s\",\"arguments\":\"",
                        st->oai_id + 4, st->oai_id + 4, st->tool_name);
    sim_json_escape(b, st->tool_args);
    evbuffer_add_printf(b, "\",\"status\":\"completed\"}}\n\n");
}

/* the end: of a stream (content NULL) its closing events; of a whole answer the response */
void sim_resp_final(stream *st, struct evbuffer *b, const char *content, const char *thinking) {
    const char *status = st->limited && !st->tool_call ? "incomplete" : "completed";
    if (content) {
        response_obj(st, b, status, content, thinking);
        return;
    }
    struct evbuffer *c = evbuffer_new(), *t = evbuffer_new();
    sim_answer_text(st, st->sent, c, t);
    const char *text = (const char *)evbuffer_pullup(c, -1), *thought = (const char *)evbuffer_pullup(t, -1);
    if (!st->tool_call) {
        if (st->sent == st->first) { /* no tokens: the message, empty */
            begin(st, b);
            message_added(st, b, 0);
        } else if (st->sent <= st->think_tokens && reasoning(st)) { /* only thought: the reasoning ends, an empty message */
            reasoning_done(st, b);
            message_added(st, b, 1);
        }
        int index = reasoning(st) ? 1 : 0;
        ev(st, b, "response.output_text.done");
        evbuffer_add_printf(b, ",\"item_id\":\"msg_%s\",\"output_index\":%d,\"content_index\":0,\"text\":\"%s\"}\n\n", st->oai_id + 4,
                            index, text);
        ev(st, b, "response.content_part.done");
        evbuffer_add_printf(b, ",\"item_id\":\"msg_%s\",\"output_index\":%d,\"content_index\":0,"
                               "\"part\":{\"type\":\"output_text\",\"text\":\"%s\",\"annotations\":[]}}\n\n",
                            st->oai_id + 4, index, text);
        ev(st, b, "response.output_item.done");
        evbuffer_add_printf(b, ",\"output_index\":%d,\"item\":{\"type\":\"message\",\"id\":\"msg_%s\",\"status\":\"completed\","
                               "\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"%s\",\"annotations\":[]}]}}\n\n",
                            index, st->oai_id + 4, text);
    }
    ev(st, b, strcmp(status, "completed") ? "response.incomplete" : "response.completed");
    evbuffer_add_printf(b, ",\"response\":");
    response_obj(st, b, status, text, thought);
    evbuffer_add_printf(b, "}\n\n");
    evbuffer_free(c);
    evbuffer_free(t);
}
