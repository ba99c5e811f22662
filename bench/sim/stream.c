/* bench/sim/stream.c - writing one answer of the simulated node: its timing
 * (absolute schedule, no drift), its tokens, faults, the final object, the
 * prefix cache. */
#include "sim_internal.h"

/* ---- streams ---- */

void sim_stream_free(stream *st) {
    ag_sim *s = st->sim;
    free(st->rendered);
    free(st->structured);
    if (st->timer) event_free(st->timer);
    if (st->aprev) {
        *st->aprev = st->anext;
        if (st->anext) st->anext->aprev = st->aprev;
    }
    if (st->has_slot) s->st.active--;
    if (st->phase == SP_WAIT_SLOT) {
        stream **pp = &s->waiting_head;
        stream *prev = NULL;
        while (*pp && *pp != st) { prev = *pp; pp = &(*pp)->qnext; }
        if (*pp) {
            *pp = st->qnext;
            if (s->waiting_tail == st) s->waiting_tail = prev;
            s->st.queued--;
        }
    }
    free(st);
}

static void admit_waiting(ag_sim *s);

static void cache_put(ag_sim *s, stream *st);

static void stream_end(stream *st) {
    ag_sim *s = st->sim;
    if (st->evcon) evhttp_connection_set_closecb(st->evcon, NULL, NULL);
    s->st.streams_done++;
    if (st->sent >= st->ntokens) cache_put(s, st);
    sim_stream_free(st);
    admit_waiting(s);
}

void sim_on_client_close(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    stream *st = arg;
    ag_sim *s = st->sim;
    s->st.disconnects++;
    /* on a client's EOF evhttp detaches the unfinished request and leaves it
     * to us (libevent 2.1: evhttp_connection_incoming_fail) */
    if (evhttp_request_get_connection(st->req) == NULL) evhttp_request_free(st->req);
    sim_stream_free(st);
    admit_waiting(s);
}

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void schedule(stream *st, double ms) {
    struct timeval tv = {(long)(ms / 1000), (long)(fmod(ms, 1000) * 1000)};
    evtimer_add(st->timer, &tv);
}

void sim_json_escape(struct evbuffer *b, const char *s);

/* the OpenAI forms of the last chunk (streamed) or of the whole answer, as
 * Ollama's /v1 writes them */
static void write_final_oai(stream *st, struct evbuffer *b, const char *content_all, const char *thinking_all) {
    const char *reason = st->tool_call ? "tool_calls" : st->limited ? "length" : "stop";
    int completion = st->sent - st->first, prompt = st->rendered ? st->prompt_tokens - st->cached_tokens : (int)(st->prompt_chars / 4 + 1);
    const char *obj = st->kind == S_CHAT ? (st->do_stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    if (!st->do_stream) {
        evbuffer_add_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",",
                            st->oai_id, obj, st->created, st->model);
        if (st->kind == S_CHAT) {
            evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"%s\"",
                                content_all ? content_all : "");
            if (thinking_all && *thinking_all) evbuffer_add_printf(b, ",\"reasoning\":\"%s\"", thinking_all);
            if (st->tool_call) {
                evbuffer_add_printf(b, ",\"tool_calls\":[{\"id\":\"call_0\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"%s\",\"arguments\":\"", st->tool_name);
                sim_json_escape(b, st->tool_args);
                evbuffer_add(b, "\"}}]", 4);
            }
            evbuffer_add_printf(b, "},\"finish_reason\":\"%s\"}]", reason);
        } else {
            evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"text\":\"%s\",\"finish_reason\":\"%s\"}]",
                                content_all ? content_all : "", reason);
        }
        evbuffer_add_printf(b, ",\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}", prompt, completion, prompt + completion);
        return;
    }
    if (st->kind == S_CHAT)
        evbuffer_add_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"%s\"}]}\n\n",
                            st->oai_id, obj, st->created, st->model, reason);
    else
        evbuffer_add_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"%s\"}]}\n\n",
                            st->oai_id, obj, st->created, st->model, reason);
    if (st->usage) /* only when stream_options.include_usage asked for it */
        evbuffer_add_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
                            st->oai_id, obj, st->created, st->model, prompt, completion, prompt + completion);
    evbuffer_add(b, "data: [DONE]\n\n", 14);
}

static void write_final(stream *st, struct evbuffer *b, const char *content_all, const char *thinking_all) {
    if (st->anth) {
        sim_anth_final(st, b, content_all, thinking_all);
        return;
    }
    if (st->resp) {
        sim_resp_final(st, b, content_all, thinking_all);
        return;
    }
    if (st->oai) {
        write_final_oai(st, b, content_all, thinking_all);
        return;
    }
    char ts[64];
    sim_now_str(ts, sizeof ts);
    int64_t total = sim_since_ns(&st->t0);
    /* as Ollama reports them: the wait for a slot is in total_duration only;
     * prompt evaluation is the time before the first token (the prefill,
     * or the configured TTFT); eval the rest */
    int64_t ped = st->rendered ? st->prefill_ns : (int64_t)(st->sim->cfg.ttft_ms * 1e6);
    int64_t eval = total - st->load_ns - st->wait_ns - ped;
    if (eval < 1) eval = 1;
    const char *reason = st->load == 1 ? "load" : st->load == 2 ? "unload" : st->limited ? "length" : "stop";
    if (st->kind == S_CHAT) {
        evbuffer_add_printf(b, "{\"model\":\"%s\",\"created_at\":\"%s\",\"message\":{\"role\":\"assistant\",\"content\":\"", st->model, ts);
        if (content_all) evbuffer_add(b, content_all, strlen(content_all));
        if (thinking_all && *thinking_all) evbuffer_add_printf(b, "\",\"thinking\":\"%s", thinking_all);
        evbuffer_add_printf(b, "\"},\"done\":true,\"done_reason\":\"%s\"", reason);
    } else {
        evbuffer_add_printf(b, "{\"model\":\"%s\",\"created_at\":\"%s\",\"response\":\"", st->model, ts);
        if (content_all) evbuffer_add(b, content_all, strlen(content_all));
        if (thinking_all && *thinking_all) evbuffer_add_printf(b, "\",\"thinking\":\"%s", thinking_all);
        evbuffer_add_printf(b, "\",\"done\":true,\"done_reason\":\"%s\"", reason);
        if (!st->load) evbuffer_add_printf(b, ",\"context\":[1,2,3]");
    }
    int pe = st->rendered ? st->prompt_tokens - st->cached_tokens : (int)(st->prompt_chars / 4 + 1);
    evbuffer_add_printf(b, ",\"total_duration\":%lld,\"load_duration\":%lld,\"prompt_eval_count\":%d,"
                           "\"prompt_eval_duration\":%lld,\"eval_count\":%d,\"eval_duration\":%lld}\n",
                        (long long)total, (long long)st->load_ns, pe, (long long)ped, st->sent - st->first, (long long)eval);
}

/* one streamed line for token i */
/* one streamed line for token i, assembled with memcpy: the node must stay
 * far cheaper than the client it serves */
static size_t put(char *o, size_t n, size_t cap, const char *s) {
    size_t l = strlen(s);
    if (n + l > cap) l = cap - n;
    memcpy(o + n, s, l);
    return n + l;
}

#define PIECE 8 /* bytes of a structured answer a token */

/* out: the JSON-escaped bytes [i*PIECE, (i+1)*PIECE) of the structured text,
 * the cut moved back to a character's start */
const char *sim_structured_piece(const stream *st, int i, char *out, size_t n) {
    size_t a = (size_t)i * PIECE, b = a + PIECE;
    while (a > 0 && a < st->slen && ((unsigned char)st->structured[a] & 0xC0) == 0x80) a--;
    if (b > st->slen) b = st->slen;
    while (b < st->slen && ((unsigned char)st->structured[b] & 0xC0) == 0x80) b--;
    size_t o = 0;
    for (size_t k = a; k < b && o + 8 < n; k++) {
        unsigned char ch = (unsigned char)st->structured[k];
        if (ch == '"' || ch == '\\') out[o++] = '\\', out[o++] = (char)ch;
        else if (ch == '\n') out[o++] = '\\', out[o++] = 'n';
        else if (ch < 0x20) o += (size_t)snprintf(out + o, n - o, "\\u%04x", ch);
        else out[o++] = (char)ch;
    }
    out[o] = 0;
    return out;
}

static void write_token(stream *st, struct evbuffer *b, const char *ts, int i) {
    const char *txt;
    char tmp[640];
    if (st->structured && i >= st->think_tokens) {
        txt = sim_structured_piece(st, i - st->think_tokens, tmp, sizeof tmp);
    } else if (st->tool_result[0] && i == 0) {
        snprintf(tmp, sizeof tmp, "Tool said: %s. ", st->tool_result);
        txt = tmp; /* already JSON-safe: built from escaped input */
    } else if (st->json_format) {
        if (i == 0) txt = "{\\\"answer\\\": \\\"";
        else if (i == st->ntokens - 1) txt = "done\\\"}";
        else txt = "word ";
    } else if (st->code_answer) {
        static const char *code[] = {"Here", " is", " code:\\n", "```py", "thon\\n", "print(",
                                     "42)\\n", "```", "\\nDone."};
        txt = i < 9 ? code[i] : " ";
    } else if (sim_is_r1(st->model)) {
        txt = sim_r1_token(st->seed, i, st->ntokens)->json;
    } else {
        txt = sim_token_at(st->seed, i)->json;
    }
    if (st->anth) {
        sim_anth_token(st, b, txt, i);
        return;
    }
    if (st->resp) {
        sim_resp_token(st, b, txt, i);
        return;
    }
    char line[1536];
    size_t n = 0, cap = sizeof line;
    if (st->oai) { /* as Ollama's /v1 writes them: id, created, role in each delta */
        char head[160];
        snprintf(head, sizeof head, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"", st->oai_id,
                 st->kind == S_CHAT ? "chat.completion.chunk" : "text_completion", st->created);
        n = put(line, n, cap, head);
        n = put(line, n, cap, st->model);
        n = put(line, n, cap, "\",\"system_fingerprint\":\"fp_ollama\"");
        if (st->kind == S_CHAT)
            n = put(line, n, cap, i < st->think_tokens ? ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":\""
                                                       : ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"");
        else
            n = put(line, n, cap, ",\"choices\":[{\"index\":0,\"text\":\"");
        n = put(line, n, cap, txt);
        n = put(line, n, cap, st->kind == S_CHAT ? "\"},\"finish_reason\":null}]}\n\n" : "\",\"finish_reason\":null}]}\n\n");
        evbuffer_add(b, line, n);
        return;
    }
    n = put(line, n, cap, "{\"model\":\"");
    n = put(line, n, cap, st->model);
    n = put(line, n, cap, "\",\"created_at\":\"");
    n = put(line, n, cap, ts);
    if (st->kind == S_CHAT) { /* a thinking piece has an empty content, as Ollama's */
        n = put(line, n, cap, i < st->think_tokens ? "\",\"message\":{\"role\":\"assistant\",\"thinking\":\""
                                                   : "\",\"message\":{\"role\":\"assistant\",\"content\":\"");
        n = put(line, n, cap, txt);
        n = put(line, n, cap, i < st->think_tokens ? "\",\"content\":\"\"},\"done\":false}\n" : "\"},\"done\":false}\n");
    } else {
        n = put(line, n, cap, i < st->think_tokens ? "\",\"response\":\"\",\"thinking\":\"" : "\",\"response\":\"");
        n = put(line, n, cap, txt);
        n = put(line, n, cap, "\",\"done\":false}\n");
    }
    evbuffer_add(b, line, n);
}

static void write_tool_call(stream *st, struct evbuffer *b) {
    if (st->anth) {
        sim_anth_tool(st, b);
        return;
    }
    if (st->resp) {
        sim_resp_tool(st, b);
        return;
    }
    if (st->oai) { /* the arguments in two fragments, as servers stream them */
        size_t half = strlen(st->tool_args) / 2;
        char first[600];
        snprintf(first, sizeof first, "%.*s", (int)half, st->tool_args);
        evbuffer_add_printf(b, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"index\":0,\"id\":\"call_0\",\"type\":\"function\",\"function\":{\"name\":\"%s\",\"arguments\":\"",
                            st->oai_id, st->created, st->model, st->tool_name);
        sim_json_escape(b, first);
        evbuffer_add_printf(b, "\"}}]},\"finish_reason\":null}]}\n\ndata: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"",
                            st->oai_id, st->created, st->model);
        sim_json_escape(b, st->tool_args + half);
        evbuffer_add(b, "\"}}]},\"finish_reason\":null}]}\n\n", strlen("\"}}]},\"finish_reason\":null}]}\n\n"));
        return;
    }
    char ts[64];
    sim_now_str(ts, sizeof ts);
    evbuffer_add_printf(b, "{\"model\":\"%s\",\"created_at\":\"%s\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"%s\",\"arguments\":%s}}]},\"done\":false}\n",
                        st->model, ts, st->tool_name, st->tool_args);
}

static void deferred_reset(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct evhttp_connection *evcon = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t s = bufferevent_getfd(bev);
    struct linger lg = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    evhttp_connection_free(evcon);
}

static void after_drain_shutdown(struct evhttp_connection *evcon, void *arg) {
    (void)arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void strike(stream *st) {
    ag_sim *s = st->sim;
    s->st.faults++;
    struct evbuffer *b = evbuffer_new();
    switch (st->fault) {
    case F_RESET: {
        struct evhttp_connection *evcon = st->evcon;
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        st->evcon = NULL;
        sim_stream_free(st); /* the request dies with the connection */
        event_base_once(s->base, -1, EV_TIMEOUT, deferred_reset, evcon, &(struct timeval){0, 20000});
        admit_waiting(s);
        break;
    }
    case F_ERRLINE:
        if (st->oai) evbuffer_add_printf(b, "data: {\"error\":{\"message\":\"simulated failure: model runner crashed\",\"type\":\"server_error\"}}\n\n");
        else evbuffer_add_printf(b, "{\"error\":\"simulated failure: model runner crashed\"}\n");
        evhttp_send_reply_chunk(st->req, b);
        evhttp_send_reply_end(st->req);
        stream_end(st);
        break;
    case F_MALFORMED:
        if (st->oai) evbuffer_add_printf(b, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":nul}]}\n\n");
        else evbuffer_add_printf(b, "{\"model\":\"%s\",\"message\":{\"content\":\"x\"},\"done\":fal}\n", st->model);
        evhttp_send_reply_chunk(st->req, b);
        evhttp_send_reply_end(st->req);
        stream_end(st);
        break;
    case F_TRUNCATE: /* a well-formed HTTP end, but no final object */
        evhttp_send_reply_end(st->req);
        stream_end(st);
        break;
    case F_STALL:
        st->phase = SP_STALLED; /* keep the connection, send nothing more */
        break;
    case F_KEEPALIVE: /* bytes that keep a connection busy, never a token: a blank line, an SSE comment */
        st->phase = SP_KEEPALIVE;
        evbuffer_add_printf(b, "%s", st->oai ? ": keepalive\n\n" : "\n");
        evhttp_send_reply_chunk(st->req, b);
        schedule(st, 100);
        break;
    case F_CLOSE_BEFORE:
    case F_CLOSE_AFTER:
        if (st->fault == F_CLOSE_AFTER) write_final(st, b, NULL, NULL);
        else evbuffer_add(b, "\n", 1); /* evhttp skips empty chunks; a blank line is harmless */
        st->phase = SP_CLOSING; /* half-close once written; evhttp frees on the client's close */
        evhttp_send_reply_chunk_with_cb(st->req, b, after_drain_shutdown, NULL);
        break;
    default: break;
    }
    evbuffer_free(b);
}

/* the final object after what b holds, the end of the chunked reply, the stream freed */
static void finish_stream(stream *st, struct evbuffer *b) {
    write_final(st, b, NULL, NULL);
    evhttp_send_reply_chunk(st->req, b);
    evbuffer_free(b);
    evhttp_send_reply_end(st->req);
    stream_end(st);
}

static void stream_begin_output(stream *st) {
    evhttp_add_header(evhttp_request_get_output_headers(st->req), "Content-Type",
                      st->oai || st->anth || st->resp ? "text/event-stream" : "application/x-ndjson");
    evhttp_send_reply_start(st->req, 200, "OK");
}

static void stream_send_batch(stream *st);

static void on_drained(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    stream *st = arg;
    if (st->phase == SP_STREAM) stream_send_batch(st);
}

/* zero inter-token delay: write a batch, continue when the socket drains */
static void stream_send_batch(stream *st) {
    struct evbuffer *b = evbuffer_new();
    char ts[64];
    sim_now_str(ts, sizeof ts);
    int lim = st->sent + 256;
    int fault_at = st->fault ? st->sim->cfg.fault_after : -1;
    while (st->sent < st->ntokens && st->sent < lim) {
        if (st->sent == fault_at) break;
        write_token(st, b, ts, st->sent++);
    }
    if (st->sent == fault_at && (st->fault == F_RESET || st->fault == F_ERRLINE || st->fault == F_MALFORMED ||
                                  st->fault == F_STALL || st->fault == F_CLOSE_BEFORE || st->fault == F_TRUNCATE ||
                                  st->fault == F_KEEPALIVE)) {
        if (evbuffer_get_length(b)) evhttp_send_reply_chunk(st->req, b);
        evbuffer_free(b);
        if (st->fault == F_RESET) {
            /* let the tokens reach the client first */
            st->fault = F_RESET;
            st->phase = SP_DELAY;
            st->sent = st->ntokens + 1; /* marks: strike on the next tick */
            schedule(st, 5);
            return;
        }
        strike(st);
        return;
    }
    if (st->sent >= st->ntokens) {
        if (st->fault == F_CLOSE_AFTER || (st->fault && fault_at >= st->ntokens)) {
            if (evbuffer_get_length(b)) evhttp_send_reply_chunk(st->req, b);
            evbuffer_free(b);
            if (st->fault == F_CLOSE_AFTER) { strike(st); return; }
            strike(st);
            return;
        }
        finish_stream(st, b);
        return;
    }
    evhttp_send_reply_chunk_with_cb(st->req, b, on_drained, st);
    evbuffer_free(b);
}

/* the answer's tokens up to n (JSON-escaped): the thought and the text, each NUL-terminated */
void sim_answer_text(const stream *st, int n, struct evbuffer *content, struct evbuffer *thinking) {
    char piece[640];
    for (int i = 0; i < n; i++) {
        const char *t = sim_is_r1(st->model) ? sim_r1_token(st->seed, i, st->ntokens)->json : sim_token_at(st->seed, i)->json;
        if (st->structured && i >= st->think_tokens) t = sim_structured_piece(st, i - st->think_tokens, piece, sizeof piece);
        else if (st->tool_result[0] && i == 0) { /* as the streamed answer says it */
            snprintf(piece, sizeof piece, "Tool said: %s. ", st->tool_result);
            t = piece;
        }
        evbuffer_add(i < st->think_tokens ? thinking : content, t, strlen(t));
    }
    evbuffer_add(content, "", 1);
    evbuffer_add(thinking, "", 1);
}

static void send_whole(stream *st) {
    struct evbuffer *content = evbuffer_new(), *thinking = evbuffer_new();
    sim_answer_text(st, st->ntokens, content, thinking);
    st->sent = st->ntokens;
    struct evbuffer *b = evbuffer_new();
    if (st->tool_call && (st->oai || st->anth || st->resp)) {
        st->sent = 1;
        write_final(st, b, "", NULL);
    } else if (st->tool_call) {
        char ts[64];
        sim_now_str(ts, sizeof ts);
        int64_t total = sim_since_ns(&st->t0), eval = total - st->load_ns;
        if (eval < 1) eval = 1;
        evbuffer_add_printf(b, "{\"model\":\"%s\",\"created_at\":\"%s\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"%s\",\"arguments\":%s}}]},\"done\":true,\"done_reason\":\"stop\","
                               "\"total_duration\":%lld,\"load_duration\":%lld,\"prompt_eval_count\":%d,\"prompt_eval_duration\":%lld,\"eval_count\":1,\"eval_duration\":%lld}",
                            st->model, ts, st->tool_name, st->tool_args, (long long)total, (long long)st->load_ns,
                            (int)(st->prompt_chars / 4 + 1), (long long)(eval / 10), (long long)eval);
    } else {
        write_final(st, b, (const char *)evbuffer_pullup(content, -1), (const char *)evbuffer_pullup(thinking, -1));
    }
    evbuffer_free(content);
    evbuffer_free(thinking);
    sim_reply_json(st->req, b);
    evbuffer_free(b);
    stream_end(st);
}

void sim_stream_step(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    stream *st = arg;
    ag_sim *s = st->sim;
    if (st->phase == SP_KEEPALIVE) { /* the keepalive fault: another blank line or comment, every 100 ms */
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "%s", st->oai ? ": keepalive\n\n" : "\n");
        evhttp_send_reply_chunk(st->req, b);
        evbuffer_free(b);
        schedule(st, 100);
        return;
    }
    if (st->phase == SP_DELAY) {
        if (st->fault == F_RESET && st->sent == st->ntokens + 1) { strike(st); return; }
        if (st->fault == F_429) { /* rate limited; fault_after = Retry-After seconds (0: no header) */
            s->st.faults++;
            if (s->cfg.fault_after > 0) {
                char ra[24];
                snprintf(ra, sizeof ra, "%d", s->cfg.fault_after);
                evhttp_add_header(evhttp_request_get_output_headers(st->req), "Retry-After", ra);
            }
            sim_reply_error(st->req, 429, "Too Many Requests", "rate limit exceeded, slow down");
            stream_end(st);
            return;
        }
        if (st->fault == F_500 || st->fault == F_503) {
            s->st.faults++;
            if (st->fault == F_500) sim_reply_error(st->req, 500, "Internal Server Error", "llama runner process has terminated: exit status 2");
            else sim_reply_error(st->req, 503, "Service Unavailable", "server busy, please try again.  maximum pending requests exceeded");
            stream_end(st);
            return;
        }
        if (st->fault == F_SILENT) { s->st.faults++; st->phase = SP_STALLED; return; }
        if (!st->do_stream) { send_whole(st); return; }
        stream_begin_output(st);
        st->phase = SP_STREAM;
        if (st->tool_call) {
            struct evbuffer *b = evbuffer_new();
            write_tool_call(st, b);
            st->sent = 1;
            finish_stream(st, b);
            return;
        }
        if (st->ntokens == 0) { stream_send_batch(st); return; }
        if (s->cfg.itl_ms <= 0) { stream_send_batch(st); return; }
    }
    if (st->phase != SP_STREAM) return;
    /* timed tokens: one line per tick */
    int fault_at = st->fault ? s->cfg.fault_after : -1;
    if (st->sent == fault_at && st->fault != F_CLOSE_AFTER) { strike(st); return; }
    if (st->sent >= st->ntokens) {
        if (st->fault) { strike(st); return; }
        struct evbuffer *b = evbuffer_new();
        finish_stream(st, b);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    char ts[64];
    sim_now_str(ts, sizeof ts);
    write_token(st, b, ts, st->sent++);
    if (st->sent >= st->ntokens && !st->fault) {
        finish_stream(st, b);
        return;
    }
    evhttp_send_reply_chunk(st->req, b);
    evbuffer_free(b);
    /* the next token is due itl after this one was due, not after now */
    if (st->next_at == 0) st->next_at = mono_ms();
    st->next_at += s->cfg.itl_ms;
    double wait = st->next_at - mono_ms();
    schedule(st, wait > 0 ? wait : 0);
}

/* the longest cached prefix of st's prompt, in tokens (4 characters) */
static int cached_prefix(ag_sim *s, const char *r) {
    size_t best = 0;
    int at = -1;
    for (int i = 0; i < s->npc; i++) {
        const char *c = s->pc[i];
        size_t k = 0;
        while (c[k] && r[k] && c[k] == r[k]) k++;
        if (k > best) {
            best = k;
            at = i;
        }
    }
    if (at > 0) { /* most recently used first */
        char *hit = s->pc[at];
        memmove(s->pc + 1, s->pc, (size_t)at * sizeof *s->pc);
        s->pc[0] = hit;
    }
    return (int)(best / 4);
}

/* a finished conversation (prompt and answer) into the cache, LRU */
static void cache_put(ag_sim *s, stream *st) {
    if (!st->rendered) return;
    int cap = s->cfg.prefix_cache > 0 ? s->cfg.prefix_cache : 64;
    size_t rl = strlen(st->rendered);
    struct evbuffer *ans = evbuffer_new();
    if (st->kind == S_CHAT) evbuffer_add(ans, "assistant\n", 10); /* as the next turn renders it */
    for (int i = st->think_tokens; i < st->sent && i < st->ntokens; i++) {
        const char *t = sim_is_r1(st->model) ? sim_r1_token(st->seed, i, st->ntokens)->raw : sim_token_at(st->seed, i)->raw;
        evbuffer_add(ans, t, strlen(t));
    }
    size_t al = evbuffer_get_length(ans);
    char *e = malloc(rl + al + 1);
    if (!e) {
        evbuffer_free(ans);
        return;
    }
    memcpy(e, st->rendered, rl);
    evbuffer_remove(ans, e + rl, al);
    e[rl + al] = 0;
    evbuffer_free(ans);
    if (!s->pc) s->pc = calloc((size_t)cap, sizeof *s->pc);
    if (!s->pc) {
        free(e);
        return;
    }
    if (s->npc == cap) free(s->pc[--s->npc]);
    memmove(s->pc + 1, s->pc, (size_t)s->npc * sizeof *s->pc);
    s->pc[0] = e;
    s->npc++;
}

void sim_stream_start(stream *st) {
    ag_sim *s = st->sim;
    model *m = sim_find_model(s, st->model);
    double delay = s->cfg.ttft_ms;
    st->wait_ns = sim_since_ns(&st->t0);
    if (st->rendered) { /* prefill: what the cache does not hold */
        st->prompt_tokens = (int)(strlen(st->rendered) / 4) + 1;
        st->cached_tokens = cached_prefix(s, st->rendered);
        if (st->cached_tokens > st->prompt_tokens - 1) st->cached_tokens = st->prompt_tokens - 1;
        double ms = (st->prompt_tokens - st->cached_tokens) / s->cfg.prefill_rate * 1e3;
        st->prefill_ns = (int64_t)(ms * 1e6);
        delay += ms;
    }
    if (m) m->expires = time(NULL) + 300;
    if (m && !m->loaded) {
        delay += s->cfg.load_ms;
        st->load_ns = (int64_t)(s->cfg.load_ms * 1e6);
        m->loaded = 1;
    }
    if (st->load == 2 && m) m->loaded = 0;
    st->has_slot = 1;
    s->st.active++;
    st->phase = SP_DELAY;
    schedule(st, delay);
}

static void admit_waiting(ag_sim *s) {
    while (s->waiting_head && (s->cfg.slots <= 0 || (int)s->st.active < s->cfg.slots)) {
        stream *st = s->waiting_head;
        s->waiting_head = st->qnext;
        if (!s->waiting_head) s->waiting_tail = NULL;
        s->st.queued--;
        st->qnext = NULL;
        sim_stream_start(st);
    }
}

/* The "model" member as Ollama's decoder reads it: the key matched without
 * (ASCII) case, the last one winning */
static const char *model_of(yajl_val root) {
    const char *m = NULL;
    if (!root || !YAJL_IS_OBJECT(root)) return NULL;
    for (size_t i = 0; i < root->u.object.len; i++)
        if (strcasecmp(root->u.object.keys[i], "model") == 0)
            m = YAJL_IS_STRING(root->u.object.values[i]) ? root->u.object.values[i]->u.string : NULL;
    return m;
}

/* Parses a request body that names a model we serve. On failure answers the
 * Ollama-style error (400 bad JSON or no model, 404 unknown model) and
 * returns NULL; otherwise *root owns the tree. */
const char *sim_model_request(ag_sim *s, struct evhttp_request *req, yajl_val *root) {
    char *body = sim_body_of(req);
    char err[256];
    *root = body ? ag__json_tree(NULL, body, err, sizeof err) : NULL;
    free(body);
    const char *mname = model_of(*root);
    if (!mname || !*mname) {
        sim_reply_error(req, 400, "Bad Request", *root && YAJL_IS_OBJECT(*root) ? "model is required" : "invalid JSON body");
    } else if (!sim_find_model(s, mname)) {
        char msg[300];
        snprintf(msg, sizeof msg, "model \"%s\" not found, try pulling it first", mname);
        sim_reply_error(req, 404, "Not Found", msg);
        mname = NULL;
    }
    if (!mname && *root) {
        ag__json_tree_free(NULL, *root);
        *root = NULL;
    }
    return mname;
}
