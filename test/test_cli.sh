#!/usr/bin/env bash
# The agents CLI and the examples against `agents sim` processes on loopback.
# Usage: test_cli.sh AGENTS CHAT_STREAM EMBED_SYNC CUSTOM_AGENT TOOL_AGENT MULTI_AGENT CHAT_LOOP
#        CUSTOM_BACKEND (the examples)
set -u
AG=$1 EX_CHAT=$2 EX_EMBED=$3 EX_CUSTOM=$4 EX_TOOL=$5 EX_MULTI=$6 EX_LOOP=$7 EX_BACKEND=$8
pass=0 fail=0
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# expect CODE DESCRIPTION -- command...   (stdout > $tmp/out, stderr > $tmp/err)
expect() {
  local code=$1 what=$2; shift 3
  timeout 30 "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" = "$code" ]; then ok; else bad "$what: exit $got, wanted $code; stderr: $(head -c 300 "$tmp/err")"; fi
}
has() { if grep -q -- "$2" "$tmp/$1"; then ok; else bad "$3: '$2' not in $1: $(head -c 300 "$tmp/$1")"; fi; }

start_sim() { # start_sim NAME args... ; sets PORT_NAME
  local name=$1; shift
  "$AG" sim --port 0 "$@" >"$tmp/sim_$name" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q listening "$tmp/sim_$name" && break; sleep 0.05; done
  local port
  port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/sim_$name" | head -1)
  [ -n "$port" ] || { echo "sim $name did not start: $(cat "$tmp/sim_$name")" >&2; exit 1; }
  eval "PORT_$name=$port"
}

start_sim main --tokens 8
start_sim fault --tokens 8 --fault error-line --fault-after 2
H=127.0.0.1:$PORT_main

# help and usage
expect 0 "top help" -- "$AG" --help; has out "Exit codes" "top help"
for c in chat generate embed models ps show version pull delete copy ping sim demo run batch; do
  expect 0 "$c --help" -- "$AG" $c --help
done
expect 0 "chat help" -- "$AG" chat --help; has out "--host" "chat help"
expect 2 "unknown command" -- "$AG" frobnicate; has err "unknown command" "unknown command"
expect 2 "no model" -- env -u AGENTS_MODEL -u OLLAMA_MODEL "$AG" chat -H "$H" </dev/null; has err "no model" "no model"
expect 2 "bad port" -- "$AG" chat -H "x:99999" -m m hi; has err "bad host" "bad port"
expect 2 "bad OLLAMA_HOST" -- env OLLAMA_HOST="h:abc" "$AG" version; has err "OLLAMA_HOST" "bad env"
expect 2 "unknown option" -- "$AG" chat --bogus; has err "unknown option" "unknown option"
expect 2 "bad --option" -- "$AG" chat -H "$H" -m llama3.2 -o novalue hi

# chat: streamed, whole, from stdin, via OLLAMA_HOST: all the same text
expect 0 "chat" -- "$AG" chat -H "$H" -m llama3.2 "why is the sky blue?"; cp "$tmp/out" "$tmp/a"
[ -s "$tmp/a" ] && ok || bad "chat printed nothing"
expect 0 "chat --no-stream" -- "$AG" chat -H "$H" -m llama3.2 --no-stream "why is the sky blue?"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "stream and no-stream differ"
echo "why is the sky blue?" | timeout 30 "$AG" chat -H "$H" -m llama3.2 >"$tmp/out" 2>"$tmp/err"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "stdin prompt differs"
expect 0 "OLLAMA_HOST" -- env OLLAMA_HOST="http://$H" "$AG" chat -m llama3.2 "why is the sky blue?"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "OLLAMA_HOST differs"
expect 0 "AGENTS_MODEL" -- env AGENTS_MODEL=llama3.2 "$AG" chat -H "$H" "why is the sky blue?"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "AGENTS_MODEL differs"

# --json: 8 token objects + the final one, each a line; --option reaches the server
expect 0 "chat --json" -- "$AG" chat -H "$H" -m llama3.2 --json hi
[ "$(wc -l <"$tmp/out")" = 9 ] && ok || bad "--json lines: $(wc -l <"$tmp/out")"
has out '"done":true' "--json final"
expect 0 "num_predict" -- "$AG" chat -H "$H" -m llama3.2 --json -o num_predict=3 -o temperature=0 hi
[ "$(wc -l <"$tmp/out")" = 4 ] && ok || bad "num_predict=3 gave $(wc -l <"$tmp/out") lines"
expect 0 "verbose" -- "$AG" chat -H "$H" -m llama3.2 -v hi; has err "time to first token" "verbose"
has err "eval count:           8 token" "verbose eval count"
expect 0 "think" -- "$AG" chat -H "$H" -m qwen3:4b --think true hi; has out "Thinking..." "think"
expect 0 "tools" -- "$AG" chat -H "$H" -m llama3.2 --tools '[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]' "weather in Oslo"
has out '\[tool call\] get_weather({"city":"Oslo"})' "tool call"
expect 2 "bad tools json" -- "$AG" chat -H "$H" -m llama3.2 --tools '[{' hi
expect 0 "generate" -- "$AG" generate -H "$H" -m llama3.2 -s "sys" "once"; [ -s "$tmp/out" ] && ok || bad "generate empty"

# embeddings
expect 0 "embed" -- "$AG" embed -H "$H" -m nomic-embed-text "a cat" "a dog"
[ "$(grep -c '^\[' "$tmp/out")" = 2 ] && ok || bad "embed lines"
printf 'one\ntwo\nthree\n' | timeout 30 "$AG" embed -H "$H" -m nomic-embed-text >"$tmp/out" 2>"$tmp/err"
[ "$(grep -c '^\[' "$tmp/out")" = 3 ] && ok || bad "embed from stdin"
expect 0 "embed legacy" -- "$AG" embed -H "$H" -m nomic-embed-text --legacy "a cat"

# model management
expect 0 "models" -- "$AG" models -H "$H"; has out "llama3.2:latest" "models"
expect 0 "ps" -- "$AG" ps -H "$H"; has out "llama3.2:latest" "ps after use"
expect 0 "show" -- "$AG" show -H "$H" llama3.2; has out "tools" "show capabilities"
expect 0 "version" -- "$AG" version -H "$H"; has out "0.12.6-sim" "version"
expect 0 "pull" -- "$AG" pull -H "$H" tinyllama; has err "success" "pull progress"
expect 0 "copy" -- "$AG" copy -H "$H" tinyllama tiny2
expect 0 "delete" -- "$AG" delete -H "$H" tiny2
expect 1 "delete again" -- "$AG" delete -H "$H" tiny2; has err "ENOTFOUND" "delete again"
[ "$(wc -l <"$tmp/err")" = 1 ] && ok || bad "error is not one line"
expect 0 "ping" -- "$AG" ping -H "$H"
expect 0 "models --json" -- "$AG" models -H "$H" --json; has out '"models":\[' "models --json"

# failures: one line on stderr, exit 1
expect 1 "unknown model" -- "$AG" chat -H "$H" -m nope hi; has err 'model "nope" not found' "unknown model"
expect 1 "refused" -- "$AG" version -H 127.0.0.1:1; has err "ECONNREFUSED" "refused"
expect 1 "error line" -- "$AG" chat -H "127.0.0.1:$PORT_fault" -m llama3.2 hi
has err "ESERVER" "error line code"; has err "model runner crashed" "error line message"

# several nodes from one command
"$AG" sim --port 0 --nodes 3 --tokens 8 >"$tmp/multi" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ "$(grep -c listening "$tmp/multi")" = 3 ] && break; sleep 0.05; done
[ "$(grep -c listening "$tmp/multi")" = 3 ] && ok || bad "sim --nodes 3: $(cat "$tmp/multi")"

# a pool over those three nodes
NODES=$(sed -n 's/.*listening on \(127.0.0.1:[0-9]*\).*/\1/p' "$tmp/multi" | paste -sd, -)
expect 0 "ps --nodes" -- "$AG" ps -N "$NODES"; [ "$(grep -c ' up ' "$tmp/out")" = 3 ] && ok || bad "ps --nodes: $(cat "$tmp/out")"
expect 0 "models --nodes" -- "$AG" models -N "$NODES"; has out "llama3.2:latest *3" "merged models"
expect 0 "ps --nodes --json" -- "$AG" ps -N "$NODES" --json
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["nodes"]) == 3 and all(n["state"] == "up" for n in d["nodes"])' "$tmp/out" && ok || bad "ps -N --json: $(head -c 300 "$tmp/out")"
expect 0 "list --nodes --json" -- "$AG" list -N "$NODES" --json
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert {"name": "llama3.2:latest", "nodes": 3} in d["models"]' "$tmp/out" && ok || bad "list -N --json: $(head -c 300 "$tmp/out")"
expect 0 "chat --nodes" -- "$AG" chat -N "$NODES" -m llama3.2 -v "why is the sky blue?"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "chat through the pool differs"
has err "RETRIES" "per-node figures"
expect 0 "OLLAMA_HOSTS" -- env OLLAMA_HOSTS="$NODES" "$AG" chat -m llama3.2 "why is the sky blue?"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "OLLAMA_HOSTS pool differs"
tr ',' '\n' <<<"$NODES" >"$tmp/nodes.txt"
expect 0 "nodes file" -- "$AG" ps --nodes-file "$tmp/nodes.txt"; [ "$(grep -c ' up ' "$tmp/out")" = 3 ] && ok || bad "nodes file"
expect 1 "pool with a dead node" -- "$AG" ps -N "127.0.0.1:1"; has err "ENONODE" "dead pool"
expect 2 "bad node list" -- "$AG" chat -N "a:99999" -m m hi
expect 2 "bad policy" -- "$AG" chat -N "$NODES" --policy fastest -m m hi

# agents
expect 0 "run coding" -- "$AG" run -H "$H" -a coding -m llama3.2 "print 42"; has out '```python' "coding answer"
has err "1 code block extracted" "coding blocks"
mkdir -p "$tmp/docs"; echo "Bread dough rises because yeast makes carbon dioxide." >"$tmp/docs/bread.txt"
echo "The tides follow the moon." >"$tmp/docs/tides.txt"
expect 0 "run research" -- "$AG" run -H "$H" -a research --docs "$tmp/docs" -m llama3.2 "why does bread dough rise"
has out "Sources:" "research sources"; has out "\[1\] $tmp/docs/bread.txt" "research ranking"
expect 0 "run summarization" -- "$AG" run -H "$H" -a summarization -m llama3.2 "A long text to condense."
expect 2 "run unknown agent" -- "$AG" run -H "$H" -a poet -m llama3.2 hi
expect 0 "run research without docs" -- "$AG" run -H "$H" -a research -m llama3.2 hi; has out "sky" "research answer"
expect 0 "run embedding agent" -- "$AG" run -H "$H" -a embedding -m nomic-embed-text "a text"
[ "$(tr -cd , <"$tmp/out" | wc -c)" = 767 ] && ok || bad "embedding agent: 768 numbers: $(head -c 100 "$tmp/out")"
expect 0 "run --no-stream" -- "$AG" run -H "$H" -a chat -m llama3.2 --no-stream hi; has out "sky" "no-stream answer"
for i in 1 2 3 4 5; do echo "{\"id\": $i, \"prompt\": \"task $i\"}"; done >"$tmp/tasks.jsonl"
echo "not json" >>"$tmp/tasks.jsonl"
expect 0 "batch" -- "$AG" batch -H "$H" -m llama3.2 --in "$tmp/tasks.jsonl" --out "$tmp/results.jsonl" -c 2 --no-progress
has err "line 6: not a JSON object" "batch malformed line"
has err "5 ok, 0 failed" "batch summary"
[ "$(wc -l <"$tmp/results.jsonl")" = 5 ] && ok || bad "batch results"
expect 0 "batch again" -- "$AG" batch -H "$H" -m llama3.2 --in "$tmp/tasks.jsonl" --out "$tmp/results.jsonl" --no-progress
has err "5 skipped (done before)" "batch resume"
expect 1 "batch strict" -- "$AG" batch -H "$H" -m llama3.2 --in "$tmp/tasks.jsonl" --out "$tmp/r2.jsonl" --strict --no-progress
expect 2 "batch without files" -- "$AG" batch -H "$H" -m llama3.2

# the OpenAI-compatible dialect: the same answers
start_sim oai --tokens 8 --api openai
O=127.0.0.1:$PORT_oai
expect 0 "openai chat" -- "$AG" chat -H "openai+http://$O" -m llama3.2 "why is the sky blue?"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "openai chat differs from ollama's"
expect 0 "openai --api, whole" -- "$AG" chat --api openai -H "$O" -m llama3.2 --no-stream "why is the sky blue?"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "openai whole answer differs"
expect 0 "openai embed" -- "$AG" embed --api openai -H "$O" -m nomic-embed-text "a cat" "a dog"
[ "$(grep -c '^\[' "$tmp/out")" = 2 ] && ok || bad "openai embed lines"
expect 0 "openai models" -- "$AG" models -H "openai+http://$O"; has out "llama3.2:latest" "openai models"
expect 2 "openai show" -- "$AG" show --api openai -H "$O" llama3.2; has err "not part of the OpenAI" "openai show"
expect 0 "mixed pool" -- "$AG" chat -N "$H,openai+http://$O" -m llama3.2 "why is the sky blue?"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "mixed pool differs"
expect 0 "openai sim help" -- "$AG" sim --help; has out "--api openai" "sim --api"

# the original package's environment variables, and retry with backoff
expect 0 "OLLAMA_URL and OLLAMA_MODEL" -- env -u OLLAMA_HOST -u AGENTS_MODEL OLLAMA_URL="http://$H" OLLAMA_MODEL=llama3.2 "$AG" chat hi
has out "sky" "OLLAMA_URL answer"
expect 1 "retries on a refused port" -- "$AG" chat -H 127.0.0.1:1 -m llama3.2 --retries 2 --retry-delay 0.05 hi
has err "after 3 attempts" "retries counted"
expect 1 "no retries by default" -- "$AG" chat -H 127.0.0.1:1 -m llama3.2 hi
grep -q "attempts" "$tmp/err" && bad "attempts printed without retries" || ok

# the examples
expect 0 "example chat_stream" -- env OLLAMA_HOST="$H" "$EX_CHAT" llama3.2 "hello"; has out "\[8 tokens" "example chat"
expect 0 "example embed_sync" -- env OLLAMA_HOST="$H" "$EX_EMBED" nomic-embed-text "a cat" "a cat sat"; has out "cosine" "example embed"
expect 2 "example usage" -- "$EX_CHAT"
expect 0 "example custom_agent" -- env OLLAMA_HOST="$H" "$EX_CUSTOM" llama3.2 "tell me"
has out "-- the loud agent" "custom agent finish hook"
sed '/^final:/,$d' "$tmp/out" | LC_ALL=C grep -q '[a-z]' && bad "custom agent filter left lower case" || ok
expect 0 "example tool_agent" -- env OLLAMA_HOST="$H" "$EX_TOOL" llama3.2 "what is the weather in Oslo"
has out '"name":"get_weather","arguments":{"city":"Oslo"}' "tool agent tool log"
has out "Tool said:" "tool agent used the result"
# the original package's examples, in C
expect 0 "example multi_agent" -- env OLLAMA_HOST="$H" "$EX_MULTI" llama3.2 "quantum computing"
has out "== Stage 3: summary" "multi_agent reached the summary"
[ "$(grep -c '^\[[0-9]* tokens from 127.0.0.1:' "$tmp/out")" = 3 ] && ok || bad "multi_agent: 3 stages answered: $(head -c 300 "$tmp/out")"
printf 'hello\nand again\n/reset\nafter reset\n/quit\n' >"$tmp/turns"
expect 0 "example chat_loop" -- sh -c "OLLAMA_HOST=$H '$EX_LOOP' llama3.2 < '$tmp/turns'"
has out "\[turn 2, 8 tokens, 3 of 3 messages sent\]" "chat_loop sends the history"
has out "(history cleared)" "chat_loop /reset"
has out "\[turn 1, 8 tokens, 1 of 1 messages sent\]" "chat_loop after reset"
expect 0 "example custom_backend" -- "$EX_BACKEND" "the quick brown fox"
has out "agent said: the quick brown fox" "custom backend streamed the echo"
has out "\[4 words from echo" "custom backend result"
has out "embedding: 26 dimensions, 'o' counted 2 times" "custom backend embeddings"
# include/README.md's one-shot pattern (loopbreak in on_done, then free the client and the
# loop) and the blocking calls leave nothing behind (in a build without sanitizers)
if command -v valgrind >/dev/null && ! nm "$EX_CHAT" 2>/dev/null | grep -q __asan_init; then
  vg=(valgrind -q --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all --error-exitcode=9)
  expect 0 "example chat_stream under valgrind" -- env OLLAMA_HOST="$H" "${vg[@]}" "$EX_CHAT" llama3.2 "hello"
  expect 0 "example embed_sync under valgrind" -- env OLLAMA_HOST="$H" "${vg[@]}" "$EX_EMBED" nomic-embed-text "a" "b"
fi

# the gateway fits --max-clients to the open-file limit it can reach, and says so
( ulimit -Sn 128; ulimit -Hn 256; exec "$AG" gateway --listen 127.0.0.1:0 -N "$H" --max-clients 100000 ) \
  >"$tmp/gw_out" 2>"$tmp/gw_err" &
gwp=$!
for _ in $(seq 100); do grep -q "gateway listening" "$tmp/gw_out" && break; sleep 0.05; done
kill "$gwp" 2>/dev/null; wait "$gwp" 2>/dev/null
has gw_err "max-clients 100000 lowered to 96 (open file limit 256" "gateway fits --max-clients"

# a heterogeneous cluster in one sim: --slots 1,2 with a queue of 1 beyond the slots:
# three long requests at once take node 0 over its 1 + 1 places (one 503) and fit in
# node 1's 2 + 1
"$AG" sim --port 0 --nodes 2 --slots 1,2 --queue 1 --tokens 40 --itl 25 >"$tmp/het" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ "$(grep -c listening "$tmp/het")" = 2 ] && break; sleep 0.05; done
mapfile -t hp < <(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/het")
for n in 0 1; do
  cp=()
  for r in 1 2 3; do
    curl -s -m 20 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:${hp[$n]}/api/generate" \
      -d '{"model":"llama3.2","prompt":"x"}' >"$tmp/het_${n}_$r" &
    cp+=($!)
    sleep 0.05
  done
  wait "${cp[@]}"
done
busy0=$(cat "$tmp"/het_0_* | grep -c 503); busy1=$(cat "$tmp"/het_1_* | grep -c 503)
[ "$busy0" = 1 ] && [ "$busy1" = 0 ] && ok || bad "sim --slots 1,2: 503s $busy0 and $busy1, wanted 1 and 0"
expect 2 "sim --slots bad list" -- "$AG" sim --slots 1,x

# Ollama's command names and shapes
expect 0 "chat MODEL PROMPT" -- env -u AGENTS_MODEL -u OLLAMA_MODEL "$AG" chat -H "$H" llama3.2 "why is the sky blue?"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "positional model: another answer"
expect 0 "--model=, --host=" -- "$AG" chat --host="$H" --model=llama3.2 "why is the sky blue?"
cmp -s "$tmp/a" "$tmp/out" && ok || bad "--opt=value: another answer"
expect 0 "generate MODEL" -- env -u AGENTS_MODEL "$AG" generate -H "$H" llama3.2 once; [ -s "$tmp/out" ] && ok || bad "generate MODEL"
expect 0 "embed MODEL" -- env -u AGENTS_MODEL "$AG" embed -H "$H" nomic-embed-text "a cat"
[ "$(grep -c '^\[' "$tmp/out")" = 1 ] && ok || bad "embed MODEL TEXT: one vector"
expect 0 "run MODEL PROMPT" -- env -u AGENTS_MODEL "$AG" run -H "$H" llama3.2 "why is the sky blue?"; has out "[a-z]" "run MODEL PROMPT"
expect 0 "help chat" -- "$AG" help chat; has out "usage: agents chat \[MODEL\]" "help chat"
expect 0 "bench compare --help" -- "$AG" bench compare --help; has out "compare A.json B.json" "bench compare help"
expect 2 "an option of another command" -- "$AG" chat --listen 127.0.0.1:0; has err "'--listen' is not an option of 'chat'" "another command's option"
expect 2 "a flag with a value" -- "$AG" chat --json=1 hi; has err "takes no value" "flag with a value"
expect 0 "completion bash" -- "$AG" completion bash; has out "complete -o default -F _agents agents" "completion"
expect 0 "ls" -- "$AG" ls -H "$H"; has out "^NAME  *ID  *SIZE  *MODIFIED" "ls header"; has out "llama3.2:latest .* ago" "ls MODIFIED"
expect 0 "list --names" -- "$AG" list -H "$H" --names; grep -qx "llama3.2:latest" "$tmp/out" && ok || bad "list --names"
expect 0 "ps table" -- "$AG" ps -H "$H"; has out "PROCESSOR  *CONTEXT  *UNTIL" "ps columns"
has out "llama3.2:latest .* 100% GPU  *4096  *[0-9]* minutes from now" "ps row as Ollama's"
expect 0 "show layout" -- "$AG" show -H "$H" llama3.2; has out "^    context length      131072" "show context length"
has out "^    temperature         0.7" "show parameters aligned"
expect 0 "stop" -- "$AG" stop -H "$H" llama3.2
expect 0 "ps after stop" -- "$AG" ps -H "$H"; grep -q "llama3.2" "$tmp/out" && bad "stop: still loaded" || ok
expect 1 "stop again" -- "$AG" stop -H "$H" llama3.2; has err "couldn't find a running model 'llama3.2'" "stop of a model not running"
expect 0 "pull, not a terminal" -- "$AG" pull -H "$H" tinyllama; has err "^pulling 6a0746a1ec1a: 100%" "pull progress lines"
[ -s "$tmp/out" ] && bad "pull printed progress on stdout" || ok
expect 0 "push" -- "$AG" push -H "$H" tinyllama; has err "pushing manifest" "push progress"; has err "^success" "push success"
expect 1 "push of a missing model" -- "$AG" push -H "$H" nope; has err "model 'nope' not found" "push missing"
expect 0 "cp" -- "$AG" cp -H "$H" tinyllama c1; has out "^copied 'tinyllama' to 'c1'$" "cp message"
"$AG" cp -H "$H" tinyllama c2 >/dev/null
expect 0 "rm of two" -- "$AG" rm -H "$H" c1 c2; has out "^deleted 'c1'$" "rm first"; has out "^deleted 'c2'$" "rm second"
"$AG" cp -H "$H" tinyllama c3 >/dev/null
expect 1 "rm of one there and one not" -- "$AG" rm -H "$H" c3 nope; has out "^deleted 'c3'$" "rm goes on"
has err "model 'nope' not found" "rm names the missing one"
cat >"$tmp/Modelfile" <<'MF'
# a comment
FROM llama3.2
SYSTEM """You are
a pirate."""
PARAMETER temperature 0.5
PARAMETER stop "<eot>"
PARAMETER stop "<end>"
MESSAGE user hi
MESSAGE assistant arr
LICENSE MIT
MF
expect 0 "create -f" -- "$AG" create -H "$H" pirate -f "$tmp/Modelfile"; has err "^success" "create progress"
expect 0 "ls after create" -- "$AG" ls -H "$H" --names; grep -qx "pirate:latest" "$tmp/out" && ok || bad "create: no pirate"
head -c 50000 /dev/urandom >"$tmp/w.gguf"; printf 'FROM ./w.gguf\nPARAMETER num_ctx 8192\n' >"$tmp/M2"
sum=$(sha256sum "$tmp/w.gguf" | cut -c1-64)
expect 0 "create from a GGUF file" -- "$AG" create -H "$H" fromfile -f "$tmp/M2"; has err "copying file sha256:$sum 100%" "blob upload"
expect 0 "create again: the blob is there" -- "$AG" create -H "$H" fromfile2 -f "$tmp/M2"
grep -q "copying file" "$tmp/err" && bad "the blob was sent again" || ok
printf 'SYSTEM hi\n' >"$tmp/M3"
expect 2 "create without FROM" -- "$AG" create -H "$H" x -f "$tmp/M3"; has err "has no FROM" "no FROM"
printf 'FROM llama3.2\nFROB x\n' >"$tmp/M4"
expect 2 "create: an unknown instruction" -- "$AG" create -H "$H" x -f "$tmp/M4"; has err "M4:2: unknown instruction FROB" "instruction line"
expect 1 "create from a missing model" -- sh -c "printf 'FROM nope\n' > '$tmp/M5' && '$AG' create -H '$H' x -f '$tmp/M5'"
has err "model 'nope' not found" "create from a missing model"
# chat --image: the file reaches the node as base64 in the message's images
printf 'GIF89a-not-really' >"$tmp/pic.gif"
/usr/bin/python3 - "$tmp/img_port" "$tmp/img_body" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        open(sys.argv[2], "wb").write(body)
        out = b'{"model":"m","message":{"role":"assistant","content":"seen"},"done":true}\n'
        self.send_response(200); self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.handle_request()
PY
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/img_port" ] && break; sleep 0.05; done
expect 0 "chat --image" -- "$AG" chat -H "127.0.0.1:$(cat "$tmp/img_port")" m --image "$tmp/pic.gif" "what is this"
grep -q "\"images\":\[\"$(base64 -w0 "$tmp/pic.gif")\"\]" "$tmp/img_body" && ok || bad "--image not sent: $(head -c 300 "$tmp/img_body")"
expect 2 "chat --image of a missing file" -- "$AG" chat -H "$H" llama3.2 --image "$tmp/nope.png" hi
# credentials refused: EAUTH, and what to set
"$AG" gateway --listen 127.0.0.1:0 -N "$H" --client-token s3cret >"$tmp/gwa" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "gateway listening" "$tmp/gwa" && break; sleep 0.05; done
GA=$(sed -n 's/.*listening on \(.*\)$/\1/p' "$tmp/gwa")
expect 1 "401 is EAUTH" -- "$AG" chat -H "$GA" llama3.2 hi; has err "EAUTH" "EAUTH named"; has err "\-\-token" "what to set"
expect 0 "with the token" -- "$AG" chat -H "$GA" --token s3cret llama3.2 hi
expect 1 "list with a wrong token" -- "$AG" ls -H "$GA" --token nope; has err "EAUTH" "EAUTH for list"

# the demo
expect 0 "demo" -- "$AG" demo; has out "24/24 ok" "demo"
has out "200 ok" "demo batch"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
