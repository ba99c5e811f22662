#!/usr/bin/env bash
# `agents gateway` with real clients in front of simulated nodes: curl and the
# official JavaScript client (npm "ollama", pinned by test/js/package-lock.json)
# get the same results through the gateway as from one node directly; the
# dashboard renders in headless Chromium and shows every node.
#   test_gateway.sh AGENTS_BIN SOURCE_DIR WORK_DIR
set -u
AG=$1 SRC=$2 WORK=$3
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
wait_line() { for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

"$AG" sim --port 0 --nodes 3 >"$tmp/sim" 2>&1 & pids+=($!)
wait_line "$tmp/sim" listening || { bad "sim did not start"; exit 1; }
mapfile -t NODES < <(sed -n 's/listening on //p' "$tmp/sim")
[ "${#NODES[@]}" = 3 ] || { bad "three nodes expected"; exit 1; }
D=${NODES[0]}
"$AG" gateway --listen 127.0.0.1:0 -N "$(IFS=,; echo "${NODES[*]}")" >"$tmp/gw" 2>&1 & gw=$!; pids+=($gw)
wait_line "$tmp/gw" "gateway listening" || { bad "gateway did not start: $(cat "$tmp/gw")"; exit 1; }
G=$(sed -n 's/gateway listening on //p' "$tmp/gw")
for _ in $(seq 100); do [ "$(curl -s "http://$G/dashboard.json" | grep -o '"state":"up"' | wc -l)" = 3 ] && break; sleep 0.05; done

# ---- curl: the same bytes as the node sends (timestamps and durations aside)
norm() { sed -E 's/"created_at":"[^"]*"//g; s/_duration":[0-9]+/_duration":0/g'; }
same() { # same NAME PATH BODY
  local a b
  a=$(curl -sS --max-time 10 "http://$G$2" ${3:+-d "$3"} | norm)
  b=$(curl -sS --max-time 10 "http://$D$2" ${3:+-d "$3"} | norm)
  if [ -n "$a" ] && [ "$a" = "$b" ]; then ok; else bad "$1: through the gateway differs from the node"; diff <(echo "$b") <(echo "$a") | head -5; fi
}
same "streamed chat" /api/chat '{"model":"llama3.2","messages":[{"role":"user","content":"why is the sky blue?"}],"options":{"num_predict":20}}'
same "chat, whole" /api/chat '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}'
same "streamed generate" /api/generate '{"model":"qwen3:4b","prompt":"tell me","options":{"num_predict":12}}'
same "embed" /api/embed '{"model":"nomic-embed-text","input":["one","two"]}'
same "legacy embeddings" /api/embeddings '{"model":"nomic-embed-text","prompt":"one"}'
same "tags (merged)" /api/tags
same "show" /api/show '{"model":"llama3.2"}'
same "openai chat stream" /v1/chat/completions '{"model":"llama3.2","stream":true,"max_tokens":6,"messages":[{"role":"user","content":"hi"}]}'
same "openai embeddings" /v1/embeddings '{"model":"nomic-embed-text","input":"x"}'
[ "$(curl -s "http://$G/")" = "Ollama is running" ] && ok || bad "GET /"
curl -sI "http://$G/" | head -1 | grep -q " 200" && ok || bad "HEAD /"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$G/api/chat" -d '{"model":"nope","messages":[]}')
[ "$code" = 404 ] && grep -q '"error":"model \\"nope\\" not found' "$tmp/err" && ok || bad "missing model: $code $(cat "$tmp/err")"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$G/api/chat" -d '{"model":')
[ "$code" = 400 ] && grep -q '"error":"invalid JSON' "$tmp/err" && ok || bad "bad JSON: $code"
# model management without X-Agents-Node: pull where the pool sends it, delete and copy
# on every node (one answer), as an Ollama client expects of one server
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$G/api/pull" -d '{"model":"x"}')
[ "$code" = 200 ] && grep -q '"status":"success"' "$tmp/err" && ok || bad "pull without a node: $code $(head -c 200 "$tmp/err")"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' -X DELETE "http://$G/api/delete" -d '{"model":"x"}')
[ "$code" = 200 ] && ok || bad "delete without a node: $code $(cat "$tmp/err")"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' -X DELETE "http://$G/api/delete" -d '{"model":"x"}')
[ "$code" = 404 ] && grep -q '^{"error":"model .x. not found"}$' "$tmp/err" && ok || bad "delete of a model no node has: $code $(cat "$tmp/err")"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$G/api/copy" -d '{"source":"llama3.2","destination":"llama3.2-copy"}')
[ "$code" = 200 ] && ok || bad "copy without a node: $code $(cat "$tmp/err")"
n_copies=0
for n in "${NODES[@]}"; do curl -s "http://$n/api/tags" | grep -q '"llama3.2-copy:latest"' && n_copies=$((n_copies + 1)); done
[ "$n_copies" = 3 ] && ok || bad "copy on every node that has the source: $n_copies of 3"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' -X DELETE "http://$G/api/delete" -d '{"model":"llama3.2-copy"}')
n_copies=0
for n in "${NODES[@]}"; do curl -s "http://$n/api/tags" | grep -q '"llama3.2-copy:latest"' && n_copies=$((n_copies + 1)); done
[ "$code" = 200 ] && [ "$n_copies" = 0 ] && ok || bad "delete everywhere: $code, $n_copies copies left"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$G/api/pull" -H "X-Agents-Node: nowhere:1" -d '{"model":"x"}')
[ "$code" = 400 ] && grep -q 'no node named' "$tmp/err" && ok || bad "pull pinned to an unknown node: $code"
curl -s "http://$G/metrics" | grep -q "^agents_node_up{node=\"${NODES[1]}\"} 1" && ok || bad "metrics"

# ---- the node (the simulated Ollama) allows local browser origins as Ollama does
code=$(curl -s -D "$tmp/h" -o /dev/null -w '%{http_code}' -X OPTIONS -H "Origin: http://localhost:5173" \
  -H "Access-Control-Request-Method: POST" "http://$D/api/chat")
[ "$code" = 204 ] && grep -qi '^access-control-allow-origin: http://localhost:5173' "$tmp/h" && ok || bad "the sim's CORS preflight: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Origin: https://evil.example" "http://$D/api/tags")
[ "$code" = 403 ] && ok || bad "the sim took a foreign origin: $code"

# ---- wire details as Ollama sends them: whole answers with their length and a Date;
# errors on /v1 in OpenAI's shape; CORS by Ollama's rules
curl -s -D "$tmp/h" -o /dev/null "http://$G/api/chat" -d '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}'
grep -qi '^content-length: [0-9]' "$tmp/h" && ! grep -qi '^transfer-encoding' "$tmp/h" && ok || bad "whole answer without Content-Length: $(cat "$tmp/h")"
grep -qi '^date: [A-Z][a-z][a-z], [0-9][0-9] [A-Z][a-z][a-z] 20[0-9][0-9] ' "$tmp/h" && ok || bad "no Date header: $(cat "$tmp/h")"
curl -s -D "$tmp/h" -o /dev/null "http://$G/api/chat" -d '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":3}}'
grep -qi '^transfer-encoding: chunked' "$tmp/h" && ok || bad "a stream not chunked: $(cat "$tmp/h")"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$G/v1/chat/completions" -d '{"model":"nope","messages":[{"role":"user","content":"x"}]}')
[ "$code" = 404 ] && grep -q '^{"error":{"message":"model \\"nope\\" not found, try pulling it first","type":"not_found_error","param":null,"code":null}}$' "$tmp/err" && ok || bad "/v1 error shape: $code $(cat "$tmp/err")"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$G/v1/nothing")
[ "$code" = 404 ] && grep -q '"type":"not_found_error"' "$tmp/err" && ok || bad "/v1 unknown path: $code $(cat "$tmp/err")"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$G/api/nothing")
[ "$code" = 404 ] && grep -q '^{"error":"404 page not found"}$' "$tmp/err" && ok || bad "/api unknown path stays Ollama-shaped: $code"
curl -s -D "$tmp/h" -o /dev/null -H "Origin: http://localhost:5173" "http://$G/api/tags"
grep -qi '^access-control-allow-origin: http://localhost:5173' "$tmp/h" && grep -qi '^vary: origin' "$tmp/h" && ok || bad "CORS for a localhost origin: $(cat "$tmp/h")"
code=$(curl -s -D "$tmp/h" -o /dev/null -w '%{http_code}' -X OPTIONS -H "Origin: http://127.0.0.1:3000" \
  -H "Access-Control-Request-Method: POST" -H "Access-Control-Request-Headers: content-type" "http://$G/api/chat")
[ "$code" = 204 ] && grep -qi '^access-control-allow-methods: .*POST' "$tmp/h" && grep -qi '^access-control-allow-headers: .*Content-Type' "$tmp/h" \
  && ok || bad "CORS preflight: $code $(cat "$tmp/h")"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Origin: https://evil.example" "http://$G/api/tags")
[ "$code" = 403 ] && ok || bad "a foreign origin: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS "http://$G/api/chat")
[ "$code" = 405 ] && ok || bad "OPTIONS without an origin: $code"
"$AG" gateway --listen 127.0.0.1:0 -N "$D" --origins "https://*.example.com, https://app.test" >"$tmp/gw2" 2>&1 & gw2=$!; pids+=($gw2)
wait_line "$tmp/gw2" "gateway listening" || bad "gateway with --origins did not start"
G2=$(sed -n 's/gateway listening on //p' "$tmp/gw2")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Origin: https://ui.example.com" "http://$G2/api/version")
[ "$code" = 200 ] && ok || bad "--origins wildcard: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Origin: https://app.test" "http://$G2/api/version")
[ "$code" = 200 ] && ok || bad "--origins exact: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Origin: https://example.com.evil" "http://$G2/api/version")
[ "$code" = 403 ] && ok || bad "--origins is not a prefix match: $code"
kill $gw2 2>/dev/null

# ---- the official JavaScript client: the same results as from the node
JS="$WORK/gateway-js"
mkdir -p "$JS"
cp "$SRC/test/js/package.json" "$SRC/test/js/package-lock.json" "$SRC/test/gateway/client.mjs" \
  "$SRC/test/gateway/openai_client.mjs" "$SRC/test/gateway/anthropic_client.mjs" "$SRC/test/gateway/responses_client.mjs" "$JS/"
if [ ! -d "$JS/node_modules/ollama" ] || [ ! -d "$JS/node_modules/openai" ] || [ ! -d "$JS/node_modules/@anthropic-ai/sdk" ]; then
  (cd "$JS" && npm ci --no-audit --no-fund >"$tmp/npm" 2>&1) || { bad "npm ci (npm registry) failed: $(tail -3 "$tmp/npm")"; }
fi
if [ -d "$JS/node_modules/ollama" ]; then
  (cd "$JS" && timeout 60 node client.mjs "$D" >"$tmp/js_direct.json" 2>"$tmp/js_direct.err") || bad "JS client against the node: $(tail -3 "$tmp/js_direct.err")"
  (cd "$JS" && timeout 60 node client.mjs "$G" >"$tmp/js_gw.json" 2>"$tmp/js_gw.err") || bad "JS client through the gateway: $(tail -3 "$tmp/js_gw.err")"
  grep -q undefined "$tmp/js_gw.json" && bad "the JS client read undefined: $(grep -m2 undefined "$tmp/js_gw.json")" || ok
  [ "$(sed -n 's/.*"whole_thinking": "\(.*\)".*/\1/p' "$tmp/js_gw.json")" = "$(sed -n 's/.*"thinking": "\(.*\)",$/\1/p' "$tmp/js_gw.json" | head -1)" ] \
    && grep -q '"whole_thinking": ".' "$tmp/js_gw.json" && ok || bad "a whole answer's thinking: $(grep thinking "$tmp/js_gw.json")"
  if [ -s "$tmp/js_gw.json" ] && cmp -s "$tmp/js_direct.json" "$tmp/js_gw.json"; then ok
    echo "JS client (npm ollama $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$JS/node_modules/ollama/package.json" | head -1)): $(wc -c <"$tmp/js_gw.json") bytes of results, identical through the gateway"
  else bad "JS client results differ"; diff "$tmp/js_direct.json" "$tmp/js_gw.json" | head; fi
  grep -q '"parts": 25' "$tmp/js_gw.json" && grep -q '"status": 404' "$tmp/js_gw.json" && ok || bad "JS client: unexpected content"
fi

# ---- the official OpenAI client (npm "openai", pinned): the same results through the
# gateway as from a node's own /v1 (streams read chunk by chunk and by the SDK's stream
# helper, tools, base64 embeddings, models, the error shape)
if [ -d "$JS/node_modules/openai" ]; then
  (cd "$JS" && timeout 60 node openai_client.mjs "$D" >"$tmp/oai_direct.json" 2>"$tmp/oai_direct.err") || bad "OpenAI client against the node: $(tail -3 "$tmp/oai_direct.err")"
  (cd "$JS" && timeout 60 node openai_client.mjs "$G" >"$tmp/oai_gw.json" 2>"$tmp/oai_gw.err") || bad "OpenAI client through the gateway: $(tail -3 "$tmp/oai_gw.err")"
  if [ -s "$tmp/oai_gw.json" ] && cmp -s "$tmp/oai_direct.json" "$tmp/oai_gw.json" && grep -q '"dim": 768' "$tmp/oai_gw.json" \
     && grep -q '"name": "get_weather"' "$tmp/oai_gw.json" && grep -q '"type": "not_found_error"' "$tmp/oai_gw.json"; then ok
    echo "OpenAI client (npm openai $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$JS/node_modules/openai/package.json" | head -1)): identical through the gateway"
  else bad "OpenAI client results differ or fall short"; diff "$tmp/oai_direct.json" "$tmp/oai_gw.json" | head; fi
fi

# ---- the official Anthropic client (npm "@anthropic-ai/sdk", pinned): /v1/messages as
# Claude Code uses it (whole, streamed, a tool round trip, thinking, countTokens, the error
# shape), the same through the gateway as from a node
if [ -d "$JS/node_modules/@anthropic-ai/sdk" ]; then
  (cd "$JS" && timeout 60 node anthropic_client.mjs "$D" >"$tmp/an_direct.json" 2>"$tmp/an_direct.err") || bad "Anthropic client against the node: $(tail -3 "$tmp/an_direct.err")"
  (cd "$JS" && timeout 60 node anthropic_client.mjs "$G" >"$tmp/an_gw.json" 2>"$tmp/an_gw.err") || bad "Anthropic client through the gateway: $(tail -3 "$tmp/an_gw.err")"
  if [ -s "$tmp/an_gw.json" ] && cmp -s "$tmp/an_direct.json" "$tmp/an_gw.json" && grep -q '"same": true' "$tmp/an_gw.json" \
     && grep -q '"city": "Oslo"' "$tmp/an_gw.json" && grep -q '"answer": "Tool said: sunny, 21 C' "$tmp/an_gw.json" \
     && grep -q '"thinking",' "$tmp/an_gw.json" && grep -q '"type": "not_found_error"' "$tmp/an_gw.json"; then ok
    echo "Anthropic client (npm @anthropic-ai/sdk $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$JS/node_modules/@anthropic-ai/sdk/package.json" | head -1)): identical through the gateway"
  else bad "Anthropic client results differ or fall short: $(head -c 300 "$tmp/an_gw.err")"; diff "$tmp/an_direct.json" "$tmp/an_gw.json" | head; fi
fi

# ---- the OpenAI client's Responses API (/v1/responses, as Codex CLI uses it): whole,
# streamed events, a function call round trip, a JSON schema, max_output_tokens
if [ -d "$JS/node_modules/openai" ]; then
  (cd "$JS" && timeout 60 node responses_client.mjs "$D" >"$tmp/rs_direct.json" 2>"$tmp/rs_direct.err") || bad "Responses client against the node: $(tail -3 "$tmp/rs_direct.err")"
  (cd "$JS" && timeout 60 node responses_client.mjs "$G" >"$tmp/rs_gw.json" 2>"$tmp/rs_gw.err") || bad "Responses client through the gateway: $(tail -3 "$tmp/rs_gw.err")"
  if [ -s "$tmp/rs_gw.json" ] && cmp -s "$tmp/rs_direct.json" "$tmp/rs_gw.json" && grep -q '"same": true' "$tmp/rs_gw.json" \
     && grep -q '"last": "response.completed"' "$tmp/rs_gw.json" && grep -q '"answer": "Tool said: sunny, 21 C' "$tmp/rs_gw.json" \
     && grep -q '"temp_ok": true' "$tmp/rs_gw.json" && grep -q '"reason": "max_output_tokens"' "$tmp/rs_gw.json"; then ok
    echo "OpenAI client, Responses API: identical through the gateway"
  else bad "Responses client results differ or fall short: $(head -c 300 "$tmp/rs_gw.err")"; diff "$tmp/rs_direct.json" "$tmp/rs_gw.json" | head; fi
fi

# ---- the dashboard renders in headless Chromium and shows every node
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$CHROMIUM" ]; then
  chrome() { timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --disable-quic \
      --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
      --user-data-dir="$tmp/chrome-$1" --window-size=1280,900 --virtual-time-budget=4000 "${@:2}" 2>/dev/null; }
  chrome dom --dump-dom "http://$G/dashboard" >"$tmp/dom.html"
  n=0; for x in "${NODES[@]}"; do grep -q "<td>$x" "$tmp/dom.html" && n=$((n + 1)); done
  [ "$n" = 3 ] && ok || bad "the rendered dashboard shows $n of 3 nodes"
  grep -q 'class="st up"' "$tmp/dom.html" && ok || bad "no node shown up"
  echo '<html><body></body></html>' >"$tmp/blank.html"
  chrome blank --screenshot="$tmp/blank.png" "file://$tmp/blank.html" >/dev/null
  chrome shot --screenshot="$tmp/dash.png" "http://$G/dashboard" >/dev/null
  b=$(stat -c %s "$tmp/blank.png" 2>/dev/null || echo 0); p=$(stat -c %s "$tmp/dash.png" 2>/dev/null || echo 0)
  echo "dashboard screenshot: $p bytes (blank page: $b)"
  [ "$p" -gt $((b * 3)) ] && ok || bad "the dashboard screenshot looks blank ($p vs $b bytes)"
  [ -n "${GATEWAY_SHOT:-}" ] && cp "$tmp/dash.png" "$GATEWAY_SHOT"
  # the numbers it renders, after traffic: six whole answers of 32 tokens are 192
  # tokens (not 6 chunks); sub-millisecond times keep their decimals; the charts
  # show the past on opening; the page fits 1,280 px without scrolling
  "$AG" sim --port 0 --tokens 32 >"$tmp/dsim" 2>&1 & pids+=($!)
  wait_line "$tmp/dsim" listening || bad "dashboard sim did not start"
  DN=$(sed -n 's/listening on //p' "$tmp/dsim")
  "$AG" gateway --listen 127.0.0.1:0 -N "$DN" >"$tmp/dgw" 2>/dev/null & dgw=$!; pids+=($dgw)
  wait_line "$tmp/dgw" "gateway listening" || bad "dashboard gateway did not start"
  DG=$(sed -n 's/gateway listening on //p' "$tmp/dgw")
  for _ in $(seq 100); do curl -s "http://$DG/dashboard.json" | grep -q '"state":"up"' && break; sleep 0.05; done
  for i in 1 2 3 4 5 6; do
    curl -s -o /dev/null "http://$DG/api/chat" -d '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi '$i'"}]}'
  done
  sleep 2.2 # two of the history's one-second samples
  chrome dash2 --dump-dom "http://$DG/dashboard" >"$tmp/dom2.html"
  grep -q '<td class="tokens">192</td>' "$tmp/dom2.html" && ok || bad "dashboard tokens for whole answers: $(grep -o '<td class="tokens">[0-9]*' "$tmp/dom2.html")"
  grep -Eq '<td class="e2e">[0-9]+\.[0-9]+ / [0-9]+\.[0-9]+</td>' "$tmp/dom2.html" && ok || bad "E2E without decimals: $(grep -o '<td class="e2e">[^<]*' "$tmp/dom2.html")"
  grep -q 'data-overflow="0"' "$tmp/dom2.html" && ok || bad "the dashboard is wider than 1,280 px: $(grep -o 'data-overflow="[^"]*"' "$tmp/dom2.html")"
  grep -Eq 'id="h_tps">tokens per second \(all nodes\), last [0-9]+ s' "$tmp/dom2.html" && ok || bad "the chart starts empty: $(grep -o 'id="h_tps">[^<]*' "$tmp/dom2.html")"
  curl -s "http://$DG/dashboard.json" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
h = d["history"]["tokens_per_s"]
assert len(h) >= 2 and sum(h) == 192, h
n = d["nodes"][0]
assert n["tokens"] == 192 and "throughput_tps" in n and n["reason"] == "", n' && ok || bad "dashboard.json history and tokens"
  kill "$dgw" 2>/dev/null
else
  bad "chromium not found: scripts/install-deps.sh --test installs it"
fi

# ---- model management to a named node (after the comparisons: it adds a model there)
curl -s "http://$G/api/pull" -H "X-Agents-Node: ${NODES[2]}" -d '{"model":"x"}' | tail -1 | grep -q '"status":"success"' && ok || bad "pull to a named node"
curl -s "http://$G/api/tags" | grep -q '"name":"x:latest"' && ok || bad "the pulled model is not in the merged tags"

# ---- usage errors, and a clean stop on SIGTERM
"$AG" gateway >/dev/null 2>&1; [ $? = 2 ] && ok || bad "no nodes accepted"
# ---- --pull-all: a pull goes to every node, one answer
"$AG" gateway --listen 127.0.0.1:0 -N "$(IFS=,; echo "${NODES[*]}")" --pull-all >"$tmp/pgw" 2>&1 & pgw=$!; pids+=($pgw)
wait_line "$tmp/pgw" "gateway listening" || bad "gateway --pull-all did not start"
PG=$(sed -n 's/gateway listening on //p' "$tmp/pgw")
for _ in $(seq 100); do [ "$(curl -s "http://$PG/dashboard.json" | grep -o '"state":"up"' | wc -l)" = 3 ] && break; sleep 0.05; done
curl -s "http://$PG/api/pull" -d '{"model":"everywhere"}' >"$tmp/pull.out"
tail -1 "$tmp/pull.out" | grep -qx '{"status":"success"}' && ok || bad "pull to every node: $(tail -2 "$tmp/pull.out")"
# one merged progress stream: each status once, a layer's bytes summed over the three nodes
[ "$(grep -c '^{"status":"pulling manifest"}$' "$tmp/pull.out")" = 1 ] && ok || bad "pull: the manifest status not once"
grep -qx '{"status":"pulling 6a0746a1ec1a","digest":"sha256:6a0746a1ec1a","total":6058179567,"completed":6058179567}' "$tmp/pull.out" && ok || bad "pull: no merged layer line: $(grep digest "$tmp/pull.out" | tail -1)"
curl -s "http://$PG/api/pull" -d '{"model":"everywhere","stream":false}' | grep -qx '{"status":"success"}' && ok || bad "pull to every node, not streamed"
n_pulled=0
for n in "${NODES[@]}"; do curl -s "http://$n/api/tags" | grep -q '"everywhere:latest"' && n_pulled=$((n_pulled + 1)); done
[ "$n_pulled" = 3 ] && ok || bad "--pull-all reached $n_pulled of 3 nodes"
kill $pgw 2>/dev/null

# ---- Ollama's API from a cluster of OpenAI-compatible nodes: translated
"$AG" sim --port 0 --nodes 2 --api openai >"$tmp/osim" 2>&1 & pids+=($!)
wait_line "$tmp/osim" listening || bad "OpenAI sim did not start"
ON=$(sed -n 's/listening on /openai+http:\/\//p' "$tmp/osim" | paste -sd,)
"$AG" gateway --listen 127.0.0.1:0 -N "$ON" >"$tmp/ogw" 2>&1 & ogw=$!; pids+=($ogw)
wait_line "$tmp/ogw" "gateway listening" || bad "gateway over OpenAI nodes did not start"
OG=$(sed -n 's/gateway listening on //p' "$tmp/ogw")
for _ in $(seq 100); do [ "$(curl -s "http://$OG/dashboard.json" | grep -o '"state":"up"' | wc -l)" = 2 ] && break; sleep 0.05; done
curl -s "http://$OG/api/tags" | grep -q '"name":"llama3.2:latest"' && ok || bad "tags from OpenAI nodes: $(curl -s "http://$OG/api/tags" | head -c 200)"
curl -s "http://$OG/api/chat" -d '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":5}}' >"$tmp/oc"
[ "$(grep -c '"done":false' "$tmp/oc")" = 5 ] && tail -1 "$tmp/oc" | grep -q '"done":true,"done_reason":"length".*"eval_count":5' && ok \
  || bad "a translated stream: $(head -c 400 "$tmp/oc")"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$OG/api/chat" -d '{"model":"nope","messages":[{"role":"user","content":"x"}]}')
[ "$code" = 404 ] && ok || bad "a missing model through translation: $code $(cat "$tmp/err")"
# thinking asked in Ollama's dialect, answered as thinking (reasoning_effort there, reasoning back)
curl -s "http://$OG/api/chat" -d '{"model":"qwen3:4b","think":true,"stream":false,"options":{"num_predict":8},"messages":[{"role":"user","content":"hi"}]}' >"$tmp/ot"
/usr/bin/python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["message"]; assert m["thinking"] and m["content"] and m["thinking"] not in m["content"], m' "$tmp/ot" \
  && ok || bad "think through translation: $(cat "$tmp/ot")"
curl -s "http://$OG/api/embed" -d '{"model":"nomic-embed-text","input":"x","dimensions":64}' >"$tmp/oe"
/usr/bin/python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["embeddings"][0]) == 64' "$tmp/oe" && ok || bad "dimensions through translation: $(head -c 200 "$tmp/oe")"
code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$OG/api/show" -d '{"model":"nope"}')
[ "$code" = 404 ] && grep -q "model 'nope' not found" "$tmp/err" && ok || bad "show of a model no node has: $code $(cat "$tmp/err")"
# Anthropic's Messages API translated for OpenAI-compatible nodes: the official client's work
if [ -d "$JS/node_modules/@anthropic-ai/sdk" ]; then
  (cd "$JS" && timeout 60 node anthropic_client.mjs "$OG" >"$tmp/an_oai.json" 2>"$tmp/an_oai.err") || bad "Anthropic client over OpenAI nodes: $(tail -3 "$tmp/an_oai.err")"
  /usr/bin/python3 - "$tmp/an_oai.json" <<'PY' && ok || bad "Anthropic client over OpenAI nodes: $(head -c 600 "$tmp/an_oai.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["whole"]["text"] and d["stream"]["same"] and d["whole"]["usage"]["output_tokens"] > 0, d
assert d["tool"]["stop"] == "tool_use" and d["tool"]["input"] == {"city": "Oslo"}, d["tool"]
assert d["tool"]["answer"].startswith("Tool said: sunny, 21 C"), d["tool"]
assert d["thinking"]["thought"] and d["thinking"]["blocks"] == ["thinking", "text"], d["thinking"]
assert d["count"] > 0 and d["missing"] == {"status": 404, "type": "not_found_error"}, d
PY
fi
# the OpenAI client's chat through a gateway of OpenAI-compatible nodes: the same as from one
if [ -d "$JS/node_modules/openai" ]; then
  O1=$(sed -n 's/listening on //p' "$tmp/osim" | head -1)
  (cd "$JS" && timeout 60 node openai_client.mjs "$O1" >"$tmp/oc_direct.json" 2>/dev/null)
  (cd "$JS" && timeout 60 node openai_client.mjs "$OG" >"$tmp/oc_gw.json" 2>"$tmp/oc_gw.err") || bad "OpenAI client over OpenAI nodes: $(tail -3 "$tmp/oc_gw.err")"
  [ -s "$tmp/oc_gw.json" ] && cmp -s "$tmp/oc_direct.json" "$tmp/oc_gw.json" && ok || bad "OpenAI client through a gateway of OpenAI nodes differs: $(diff "$tmp/oc_direct.json" "$tmp/oc_gw.json" | head -5)"
fi
# the Responses API translated for OpenAI-compatible nodes (their chat completions)
if [ -d "$JS/node_modules/openai" ]; then
  (cd "$JS" && timeout 60 node responses_client.mjs "$OG" >"$tmp/rs_oai.json" 2>"$tmp/rs_oai.err") || bad "Responses client over OpenAI nodes: $(tail -3 "$tmp/rs_oai.err")"
  /usr/bin/python3 - "$tmp/rs_oai.json" <<'PY' && ok || bad "Responses client over OpenAI nodes: $(head -c 600 "$tmp/rs_oai.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["whole"]["text"] and d["whole"]["status"] == "completed" and d["stream"]["same"], d
assert d["completed_text"] == d["whole"]["text"] and d["stream"]["last"] == "response.completed", d
assert d["tool"]["arguments"] == {"city": "Oslo"} and d["tool"]["answer"].startswith("Tool said: sunny, 21 C"), d["tool"]
assert d["structured"] == {"keys": ["city", "temp"], "temp_ok": True}, d["structured"]
assert d["limited"] == {"status": "incomplete", "reason": "max_output_tokens", "tokens": 3}, d["limited"]
assert d["missing"] == {"status": 404}, d
PY
fi
for a in pull copy; do
  code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://$OG/api/$a" -d '{"model":"x","source":"x","destination":"y"}')
  [ "$code" = 501 ] && grep -q "is Ollama's API" "$tmp/err" && ok || bad "$a on OpenAI nodes: $code $(cat "$tmp/err")"
done
if [ -d "$JS/node_modules/ollama" ]; then
  (cd "$JS" && timeout 60 node client.mjs "$OG" >"$tmp/js_oai.json" 2>"$tmp/js_oai.err"); rc=$?
  if [ $rc = 0 ] && grep -q '"eval_count": 24' "$tmp/js_oai.json" && grep -q '"dim": 768' "$tmp/js_oai.json" \
     && grep -q '"status": 404' "$tmp/js_oai.json" && grep -q '"name": "nomic-embed-text:latest"' "$tmp/js_oai.json"; then ok
  else bad "the JS client against OpenAI nodes through the gateway: exit $rc $(tail -3 "$tmp/js_oai.err") $(head -c 300 "$tmp/js_oai.json")"; fi
fi
kill $ogw 2>/dev/null

# ---- https and client keys: curl and the official clients over TLS, with a key
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/tk.pem" -out "$tmp/tc.pem" -days 1 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" >/dev/null 2>&1 || bad "openssl could not make a certificate"
printf '%s\n' '{"name":"js","secret":"js-secret-1234"}' '{"name":"tiny","secret":"tiny-secret-1234","rpm":1}' >"$tmp/keys"
"$AG" gateway -N "$D" --listen 127.0.0.1:0 --tls-cert "$tmp/tc.pem" --tls-key "$tmp/tk.pem" --keys-file "$tmp/keys" \
  --access-log "$tmp/tls_access.log" >"$tmp/tgw" 2>&1 &
tgw=$!
for _ in $(seq 100); do grep -q "listening on" "$tmp/tgw" && break; sleep 0.05; done
T=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/tgw" | head -1)
TC=(curl -s --max-time 10 --cacert "$tmp/tc.pem")
body='{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}'
[ "$("${TC[@]}" -o /dev/null -w '%{http_code}' "https://$T/api/chat" -d "$body")" = 401 ] && ok || bad "https: no key, not 401"
[ "$("${TC[@]}" -o "$tmp/t1" -w '%{http_code}' -H 'Authorization: Bearer js-secret-1234' "https://$T/api/chat" -d "$body")" = 200 ] \
  && grep -q '"done":true' "$tmp/t1" && ok || bad "https: a chat with a key: $(cat "$tmp/t1")"
"${TC[@]}" -o /dev/null -H 'Authorization: Bearer tiny-secret-1234' "https://$T/api/chat" -d "$body"
code=$("${TC[@]}" -D "$tmp/th" -o "$tmp/t2" -w '%{http_code}' -H 'Authorization: Bearer tiny-secret-1234' "https://$T/api/chat" -d "$body")
[ "$code" = 429 ] && grep -qi '^retry-after: [0-9]' "$tmp/th" && grep -q '"error":"rate limit exceeded' "$tmp/t2" && ok || bad "https: over the limit: $code $(cat "$tmp/t2")"
curl -s --max-time 5 -o /dev/null "http://$T/" && bad "plain HTTP answered on the https port" || ok
# the access log names the key and why it was refused
/usr/bin/python3 - "$tmp/tls_access.log" <<'PY' && ok || bad "access log of the keys: $(cat "$tmp/tls_access.log")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
refused = [l for l in lines if l["status"] == 429]
assert refused and refused[0]["key"] == "tiny" and "rate limit" in refused[0]["error"], refused
assert any(l["status"] == 401 and l["key"] == "" for l in lines), lines
assert any(l["status"] == 200 and l["key"] == "js" and l["tokens_out"] > 0 for l in lines), lines
PY
if [ -d "$JS/node_modules/ollama" ]; then
  # the node as the runs above left it (they made models), then the same through TLS
  (cd "$JS" && timeout 60 node client.mjs "$D" >"$tmp/js_direct2.json" 2>/dev/null)
  (cd "$JS" && NODE_EXTRA_CA_CERTS="$tmp/tc.pem" AG_TOKEN=js-secret-1234 timeout 60 node client.mjs "https://$T" >"$tmp/js_tls.json" 2>"$tmp/js_tls.err") \
    || bad "JS client over https: $(tail -3 "$tmp/js_tls.err")"
  cmp -s "$tmp/js_direct2.json" "$tmp/js_tls.json" && ok || bad "JS client over https with a key differs from the node: $(diff "$tmp/js_direct2.json" "$tmp/js_tls.json" | head -5)"
fi
if [ -d "$JS/node_modules/openai" ]; then
  (cd "$JS" && timeout 60 node openai_client.mjs "$D" >"$tmp/oai_direct2.json" 2>/dev/null)
  (cd "$JS" && NODE_EXTRA_CA_CERTS="$tmp/tc.pem" AG_TOKEN=js-secret-1234 timeout 60 node openai_client.mjs "https://$T" >"$tmp/oai_tls.json" 2>"$tmp/oai_tls.err") \
    || bad "OpenAI client over https: $(tail -3 "$tmp/oai_tls.err")"
  cmp -s "$tmp/oai_direct2.json" "$tmp/oai_tls.json" && ok || bad "OpenAI client over https with a key differs from the node: $(diff "$tmp/oai_direct2.json" "$tmp/oai_tls.json" | head -5)"
fi
if [ -d "$JS/node_modules/openai" ]; then # the Responses API over TLS with a key
  (cd "$JS" && timeout 60 node responses_client.mjs "$D" >"$tmp/rs_direct2.json" 2>/dev/null)
  (cd "$JS" && NODE_EXTRA_CA_CERTS="$tmp/tc.pem" AG_TOKEN=js-secret-1234 timeout 60 node responses_client.mjs "https://$T" >"$tmp/rs_tls.json" 2>"$tmp/rs_tls.err") \
    || bad "Responses client over https: $(tail -3 "$tmp/rs_tls.err")"
  cmp -s "$tmp/rs_direct2.json" "$tmp/rs_tls.json" && ok || bad "Responses client over https with a key differs from the node: $(diff "$tmp/rs_direct2.json" "$tmp/rs_tls.json" | head -5)"
fi
if [ -d "$JS/node_modules/@anthropic-ai/sdk" ]; then # x-api-key as the key, over TLS
  (cd "$JS" && timeout 60 node anthropic_client.mjs "$D" >"$tmp/an_direct2.json" 2>/dev/null)
  (cd "$JS" && NODE_EXTRA_CA_CERTS="$tmp/tc.pem" AG_TOKEN=js-secret-1234 timeout 60 node anthropic_client.mjs "https://$T" >"$tmp/an_tls.json" 2>"$tmp/an_tls.err") \
    || bad "Anthropic client over https: $(tail -3 "$tmp/an_tls.err")"
  cmp -s "$tmp/an_direct2.json" "$tmp/an_tls.json" && ok || bad "Anthropic client over https with a key differs from the node: $(diff "$tmp/an_direct2.json" "$tmp/an_tls.json" | head -5)"
fi
kill $tgw 2>/dev/null

# ---- the operator's view from the command line: the event log (a node down with its
# reason, and back), the access log (reopened on SIGHUP, as logrotate wants)
"$AG" sim --port 0 >"$tmp/esim" 2>&1 & esim=$!; pids+=($esim)
wait_line "$tmp/esim" listening || bad "event sim did not start"
EN=$(sed -n 's/listening on //p' "$tmp/esim")
"$AG" gateway --listen 127.0.0.1:0 -N "$EN" --log-format json --access-log "$tmp/access.log" >"$tmp/egw" 2>"$tmp/egw.err" & egw=$!; pids+=($egw)
wait_line "$tmp/egw" "gateway listening" || bad "gateway with logs did not start: $(cat "$tmp/egw.err")"
EG=$(sed -n 's/gateway listening on //p' "$tmp/egw")
wait_line "$tmp/egw.err" '"event":"node_up"' || bad "no node_up event: $(cat "$tmp/egw.err")"
chat='{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}'
curl -s -o /dev/null -H 'X-Request-Id: from-the-client' "http://$EG/api/chat" -d "$chat"
kill "$esim"; wait "$esim" 2>/dev/null
curl -s -o /dev/null "http://$EG/api/chat" -d "$chat"
wait_line "$tmp/egw.err" '"event":"node_down"' || bad "no node_down event: $(cat "$tmp/egw.err")"
"$AG" sim --port "${EN##*:}" >"$tmp/esim2" 2>&1 & pids+=($!)
for _ in $(seq 300); do grep -q '"event":"node_readmitted"' "$tmp/egw.err" && break; sleep 0.05; done
mv "$tmp/access.log" "$tmp/access.log.1"; kill -HUP "$egw"; sleep 0.3
curl -s -o /dev/null "http://$EG/api/tags"
/usr/bin/python3 - "$tmp/egw.err" "$tmp/access.log.1" "$tmp/access.log" "$EN" <<'PY' && ok || bad "event or access log: $(cat "$tmp/egw.err")"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for e in events:
    assert e["time"].endswith("Z") and e["level"] in ("debug", "info", "warn", "error"), e
    by.setdefault(e["event"], []).append(e)
assert by["listening"][0]["access_log"].endswith("access.log"), by
down = by["node_down"][0]
assert down["node"] == sys.argv[4] and down["reason"].startswith("ECONNREFUSED"), down
assert by["node_readmitted"][0]["node"] == sys.argv[4], by
first = [json.loads(l) for l in open(sys.argv[2])]
assert first[0]["request_id"] == "from-the-client" and first[0]["status"] == 200, first[0]
assert first[0]["attempts"][0]["outcome"] == "ok" and first[0]["tokens_out"] > 0, first[0]
assert first[1]["status"] == 502 and first[1]["error_code"] == "ECONNREFUSED", first[1]
after = [json.loads(l) for l in open(sys.argv[3])]
assert len(after) == 1 and after[0]["path"] == "/api/tags", after
PY
kill "$egw" 2>/dev/null
# logfmt by default, and a bad --log-level refused
"$AG" gateway --listen 127.0.0.1:0 -N "$D" >"$tmp/lgw" 2>"$tmp/lgw.err" & lgw=$!; pids+=($lgw)
wait_line "$tmp/lgw.err" "event=listening" && grep -q '^time=[0-9T:.-]*Z level=info event=listening address=127.0.0.1:' "$tmp/lgw.err" && ok || bad "logfmt: $(cat "$tmp/lgw.err")"
kill "$lgw" 2>/dev/null
"$AG" gateway -N "$D" --log-level loud >/dev/null 2>&1; [ $? = 2 ] && ok || bad "bad --log-level accepted"

"$AG" gateway -N "$D" --listen nonsense >/dev/null 2>&1; [ $? = 2 ] && ok || bad "bad --listen accepted"
kill -TERM "$gw"; for _ in $(seq 100); do kill -0 "$gw" 2>/dev/null || break; sleep 0.05; done
kill -0 "$gw" 2>/dev/null && bad "gateway did not stop on SIGTERM" || ok
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
