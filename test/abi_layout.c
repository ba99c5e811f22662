/* Prints the layout of the public structs the Python package (python/cagents)
 * mirrors with ctypes, as JSON: {"struct": {"size": N, "field": offset, ...}}.
 * python/tests/test_cagents.py compares it with its own definitions, so that
 * the two never drift apart. */
#include <agents.h>
#include <stddef.h>
#include <stdio.h>

static int first;
#define BEGIN(T)                                                                                   \
    do {                                                                                           \
        printf("%s\"%s\": {\"size\": %zu", first++ ? ", " : "", #T, sizeof(T));                      \
    } while (0)
#define F(T, f) printf(", \"%s\": %zu", #f, offsetof(T, f))
#define END() printf("}")

int main(void) {
    printf("{");
    BEGIN(ag_message); F(ag_message, role); F(ag_message, content); F(ag_message, thinking);
    F(ag_message, images); F(ag_message, n_images); F(ag_message, tool_calls_json); F(ag_message, tool_name); END();
    BEGIN(ag_request_options); F(ag_request_options, deadline); F(ag_request_options, first_token_deadline);
    F(ag_request_options, first_byte_timeout); F(ag_request_options, idle_timeout); F(ag_request_options, headers);
    F(ag_request_options, retry_budget); F(ag_request_options, node); F(ag_request_options, read_end);
    F(ag_request_options, retries); F(ag_request_options, retry_delay); F(ag_request_options, retry_factor);
    F(ag_request_options, session); F(ag_request_options, priority); F(ag_request_options, tenant); END();
    BEGIN(ag_gen_options); F(ag_gen_options, format); F(ag_gen_options, options_json); F(ag_gen_options, keep_alive);
    F(ag_gen_options, think); F(ag_gen_options, no_stream); END();
    BEGIN(ag_chat_params); F(ag_chat_params, model); F(ag_chat_params, messages); F(ag_chat_params, n_messages);
    F(ag_chat_params, tools_json); F(ag_chat_params, gen); F(ag_chat_params, request); END();
    BEGIN(ag_embed_params); F(ag_embed_params, model); F(ag_embed_params, inputs); F(ag_embed_params, n_inputs);
    F(ag_embed_params, truncate); F(ag_embed_params, dimensions); F(ag_embed_params, options_json);
    F(ag_embed_params, keep_alive); F(ag_embed_params, legacy); F(ag_embed_params, request); END();
    BEGIN(ag_client_options); F(ag_client_options, host); F(ag_client_options, connect_timeout);
    F(ag_client_options, idle_timeout); F(ag_client_options, max_connections); F(ag_client_options, max_idle);
    F(ag_client_options, max_queue); F(ag_client_options, max_body); F(ag_client_options, max_token);
    F(ag_client_options, alloc); F(ag_client_options, dns); F(ag_client_options, user_agent);
    F(ag_client_options, tls_ca_file); F(ag_client_options, tls_insecure); F(ag_client_options, bearer_token);
    F(ag_client_options, basic_user); F(ag_client_options, basic_password); F(ag_client_options, api);
    F(ag_client_options, first_byte_timeout); END();
    BEGIN(ag_pool_options); F(ag_pool_options, client); F(ag_pool_options, nodes); F(ag_pool_options, nodes_file);
    F(ag_pool_options, policy); F(ag_pool_options, node_max_in_flight); F(ag_pool_options, max_queue);
    F(ag_pool_options, probe_interval); F(ag_pool_options, probe_timeout); F(ag_pool_options, eject_after);
    F(ag_pool_options, readmit_min); F(ag_pool_options, readmit_max); F(ag_pool_options, retry_budget);
    F(ag_pool_options, resume); F(ag_pool_options, seed); F(ag_pool_options, affinity_slack);
    F(ag_pool_options, prefix_entries); F(ag_pool_options, affinity_ramp);
    F(ag_pool_options, resolve_interval); F(ag_pool_options, priority_reserve); END();
    BEGIN(ag_engine_options); F(ag_engine_options, client); F(ag_engine_options, pool);
    F(ag_engine_options, max_pending); F(ag_engine_options, no_coalesce); F(ag_engine_options, notify_delay); END();
    BEGIN(ag_chunk); F(ag_chunk, kind); F(ag_chunk, text); F(ag_chunk, len); F(ag_chunk, name); F(ag_chunk, name_len);
    F(ag_chunk, arguments_json); F(ag_chunk, arguments_len); F(ag_chunk, index); F(ag_chunk, digest);
    F(ag_chunk, total); F(ag_chunk, completed); END();
    BEGIN(ag_result); F(ag_result, status); F(ag_result, error); F(ag_result, http_status); F(ag_result, model);
    F(ag_result, created_at); F(ag_result, done_reason); F(ag_result, server); F(ag_result, timing);
    F(ag_result, context); F(ag_result, n_context); F(ag_result, embeddings); F(ag_result, n_embeddings);
    F(ag_result, dim); F(ag_result, models); F(ag_result, n_models); F(ag_result, show); F(ag_result, version);
    F(ag_result, node); F(ag_result, attempts); F(ag_result, tries); F(ag_result, n_tries); END();
    BEGIN(ag_event); F(ag_event, kind); F(ag_event, id); F(ag_event, ud); F(ag_event, chunk); F(ag_event, result);
    F(ag_event, agent_result); F(ag_event, status); END();
    BEGIN(ag_node_health); F(ag_node_health, up); F(ag_node_health, version); F(ag_node_health, rtt_ms);
    F(ag_node_health, status); F(ag_node_health, error); END();
    BEGIN(ag_sync_out); F(ag_sync_out, result); F(ag_sync_out, text); F(ag_sync_out, text_len);
    F(ag_sync_out, thinking); F(ag_sync_out, thinking_len); END();
    printf("}\n");
    return 0;
}
