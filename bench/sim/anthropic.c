/* bench/sim/anthropic.c - the simulated node's Anthropic Messages dialect
 * (/v1/messages, as Ollama serves it since 0.14): a whole message with its
 * content blocks (thinking, text, tool_use), or the stream of events:
 * message_start, ping, content_block_start / _delta / _stop for each block
 * (thinking_delta, text_delta, input_json_delta), message_delta with the stop
 * reason and usage, message_stop. The tokens are the same as the other
 * dialects' (already JSON-escaped). */
#include "sim_internal.h"

#include <stdio.h>
#include <string.h>

static int input_tokens(const stream *st) { return (int)(st->prompt_chars / 4 + 1); }

static void event(struct evbuffer *b, const char *name) { evbuffer_add_printf(b, "event: %s\ndata: ", name); }

static void message_start(stream *st, struct evbuffer *b) {
    event(b, "message_start");
    evbuffer_add_printf(b, "{\"type\":\"message_start\",\"message\":{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\","
                           "\"model\":\"%s\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                           "\"usage\":{\"input_tokens\":%d,\"output_tokens\":1}}}\n\n",
                        st->oai_id, st->model, input_tokens(st));
    event(b, "ping");
    evbuffer_add_printf(b, "{\"type\":\"ping\"}\n\n");
}

static void block_start(struct evbuffer *b, int index, int thinking) {
    event(b, "content_block_start");
    evbuffer_add_printf(b, thinking ? "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n"
                                    : "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                        index);
}

static void block_stop(struct evbuffer *b, int index) {
    event(b, "content_block_stop");
    evbuffer_add_printf(b, "{\"type\":\"content_block_stop\",\"index\":%d}\n\n", index);
}

/* token i of the answer (txt JSON-escaped): the blocks it opens or closes, then its delta */
void sim_anth_token(stream *st, struct evbuffer *b, const char *txt, int i) {
    int thinking = i < st->think_tokens;
    if (i == st->first) {
        message_start(st, b);
        block_start(b, 0, thinking);
    } else if (i == st->think_tokens && st->think_tokens > st->first) { /* the thought ends: the text begins */
        block_stop(b, 0);
        block_start(b, 1, 0);
    }
    int index = !thinking && st->think_tokens > st->first ? 1 : 0;
    event(b, "content_block_delta");
    evbuffer_add_printf(b, thinking ? "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\""
                                    : "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"text_delta\",\"text\":\"",
                        index);
    evbuffer_add(b, txt, strlen(txt));
    evbuffer_add_printf(b, "\"}}\n\n");
}

static const char *stop_reason(const stream *st) {
    return st->tool_call ? "tool_use" : st->limited ? "max_tokens" : "end_turn";
}

/* a tool call, streamed: its input in two fragments */
void sim_anth_tool(stream *st, struct evbuffer *b) {
    message_start(st, b);
    event(b, "content_block_start");
    evbuffer_add_printf(b, "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\","
                           "\"id\":\"toolu_%s\",\"name\":\"%s\",\"input\":{}}}\n\n",
                        st->oai_id + 4, st->tool_name);
    size_t half = strlen(st->tool_args) / 2;
    char part[600];
    for (int k = 0; k < 2; k++) {
        snprintf(part, sizeof part, "%.*s", k ? (int)(strlen(st->tool_args) - half) : (int)half, st->tool_args + (k ? half : 0));
        event(b, "content_block_delta");
        evbuffer_add_printf(b, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"");
        sim_json_escape(b, part);
        evbuffer_add_printf(b, "\"}}\n\n");
    }
    block_stop(b, 0);
}

/* the end: of a stream (content NULL) its closing events; of a whole answer the message */
void sim_anth_final(stream *st, struct evbuffer *b, const char *content, const char *thinking) {
    int out = st->tool_call ? 1 : st->sent - st->first;
    if (!content) {
        if (!st->tool_call) {
            if (st->sent == st->first) message_start(st, b); /* an answer of no tokens */
            else block_stop(b, st->think_tokens > st->first && st->sent > st->think_tokens ? 1 : 0);
        }
        event(b, "message_delta");
        evbuffer_add_printf(b, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},"
                               "\"usage\":{\"input_tokens\":%d,\"output_tokens\":%d}}\n\n",
                            stop_reason(st), input_tokens(st), out);
        event(b, "message_stop");
        evbuffer_add_printf(b, "{\"type\":\"message_stop\"}\n\n");
        return;
    }
    evbuffer_add_printf(b, "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"%s\",\"content\":[", st->oai_id,
                        st->model);
    if (st->tool_call) {
        evbuffer_add_printf(b, "{\"type\":\"tool_use\",\"id\":\"toolu_%s\",\"name\":\"%s\",\"input\":%s}", st->oai_id + 4,
                            st->tool_name, st->tool_args);
    } else {
        if (thinking && *thinking) evbuffer_add_printf(b, "{\"type\":\"thinking\",\"thinking\":\"%s\",\"signature\":\"\"},", thinking);
        evbuffer_add_printf(b, "{\"type\":\"text\",\"text\":\"%s\"}", content);
    }
    evbuffer_add_printf(b, "],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":%d,\"output_tokens\":%d}}",
                        stop_reason(st), input_tokens(st), out);
}

/* POST /v1/messages/count_tokens: the prompt's tokens, as the node counts them */
void sim_anth_count_tokens(ag_sim *s, struct evhttp_request *req) {
    (void)s;
    char *body = sim_body_of(req);
    yajl_val root = body ? ag__json_tree(NULL, body, NULL, 0) : NULL;
    free(body);
    if (!root || !sim_get(root, "messages")) {
        sim_reply_error(req, 400, "Bad Request", "messages: field required");
        if (root) ag__json_tree_free(NULL, root);
        return;
    }
    size_t chars = 0;
    yajl_val sys = sim_get(root, "system"), msgs = sim_get(root, "messages");
    if (sys && YAJL_IS_STRING(sys)) chars += strlen(sys->u.string);
    for (size_t i = 0; msgs && YAJL_IS_ARRAY(msgs) && i < msgs->u.array.len; i++) {
        yajl_val c = sim_get(msgs->u.array.values[i], "content");
        if (c && YAJL_IS_STRING(c)) chars += strlen(c->u.string);
        for (size_t k = 0; c && YAJL_IS_ARRAY(c) && k < c->u.array.len; k++) {
            const char *t = ag__json_str(c->u.array.values[k], "text");
            if (t) chars += strlen(t);
        }
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"input_tokens\":%zu}", chars / 4 + 1);
    sim_reply_json(req, b);
    evbuffer_free(b);
    ag__json_tree_free(NULL, root);
}
