#!/usr/bin/env bash
# The engine's examples against `agents sim` on loopback: the plain epoll
# server (many clients at once, a client that hangs up mid-answer, a stop by
# SIGTERM), the libuv program and the thread pool. In a build without the
# sanitizers the epoll server also runs under valgrind when it is installed.
# Usage: test_engine_examples.sh AGENTS EPOLL_SERVER LIBUV_CHAT THREAD_POOL
set -u
AG=$1 EX_EPOLL=$2 EX_UV=$3 EX_POOL=$4
pass=0 fail=0
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

port_of() { # FILE: waits for "listening on 127.0.0.1:P" and prints P
  for _ in $(seq 200); do grep -q listening "$1" 2>/dev/null && break; sleep 0.05; done
  sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$1" | head -1
}

"$AG" sim --port 0 --tokens 8 --itl 2 >"$tmp/sim" 2>&1 &
pids+=($!)
"$AG" sim --port 0 --tokens 400 --itl 10 >"$tmp/slow" 2>&1 &
pids+=($!)
FAST=127.0.0.1:$(port_of "$tmp/sim")
SLOW=127.0.0.1:$(port_of "$tmp/slow")
want=$(timeout 20 "$AG" chat -H "$FAST" -m llama3.2 "a question")
check '[ -n "$want" ]' "agents chat gave the reference answer"

# ---- the epoll server ----
vg=()
if command -v valgrind >/dev/null && ! ldd "$EX_EPOLL" | grep -q libasan && ! nm "$EX_EPOLL" 2>/dev/null | grep -q __asan_init; then
  vg=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9)
fi
OLLAMA_HOST=$FAST "${vg[@]}" "$EX_EPOLL" llama3.2 0 >"$tmp/srv" 2>"$tmp/srv_err" &
srv=$!
pids+=($srv)
P=$(port_of "$tmp/srv")
check '[ -n "$P" ]' "the epoll server did not start: $(cat "$tmp/srv_err")"
ask() { # ask PROMPT OUTFILE: one client, the whole answer to OUTFILE
  exec 3<>"/dev/tcp/127.0.0.1/$P" || return 1
  printf '%s\n' "$1" >&3
  timeout 30 cat <&3 >"$2"
  exec 3<&-
}
for i in $(seq 20); do ask "a question" "$tmp/a$i" & done
wait_clients() { for _ in $(seq 600); do [ "$(jobs -rp | grep -vc -E "^($srv|${pids[0]}|${pids[1]})$")" = 0 ] && return; sleep 0.05; done; }
wait_clients
n=0
for i in $(seq 20); do
  if grep -q '^\[8 tokens\]$' "$tmp/a$i" && [ "$(head -c ${#want} "$tmp/a$i")" = "$want" ]; then n=$((n + 1)); fi
done
check '[ "$n" = 20 ]' "epoll server: $n of 20 clients got the whole answer (want: $want; one got: $(head -c 200 "$tmp/a1"))"

# a client that hangs up mid-answer (the slow node), then one more client
OLLAMA_HOST=$SLOW "$EX_EPOLL" llama3.2 0 >"$tmp/srv2" 2>&1 &
srv2=$!
pids+=($srv2)
P2=$(port_of "$tmp/srv2")
exec 4<>"/dev/tcp/127.0.0.1/$P2"
printf 'long one\n' >&4
head -c 20 <&4 >/dev/null
exec 4<&-
sleep 0.3
check 'kill -0 $srv2 2>/dev/null' "epoll server died after a client hung up: $(cat "$tmp/srv2")"
P_SAVE=$P; P=$P2
ask "again" "$tmp/b" 
P=$P_SAVE
check 'grep -q "^\[400 tokens\]$" "$tmp/b"' "epoll server after a hang-up: $(tail -c 200 "$tmp/b")"
kill -TERM $srv2; wait $srv2; rc=$?
check '[ $rc = 0 ]' "epoll server (slow node) stopped by SIGTERM: exit $rc"

# stop the first one with requests still running
exec 5<>"/dev/tcp/127.0.0.1/$P"
printf 'pending\n' >&5
kill -TERM $srv; wait $srv; rc=$?
exec 5<&-
check '[ $rc = 0 ]' "epoll server stopped by SIGTERM: exit $rc ${vg:+(valgrind)}: $(tail -c 600 "$tmp/srv_err")"

# ---- the libuv program ----
OLLAMA_HOST=$FAST timeout 30 "$EX_UV" llama3.2 "one" "two" "three" >"$tmp/uv" 2>"$tmp/uv_err"; rc=$?
check '[ $rc = 0 ]' "libuv_chat: exit $rc: $(cat "$tmp/uv_err")"
check '[ "$(grep -c "^\[ok, 8 tokens\]$" "$tmp/uv")" = 3 ]' "libuv_chat: 3 answers: $(cat "$tmp/uv")"
ticks=$(sed -n 's/.*timer ticked \([0-9]*\) times.*/\1/p' "$tmp/uv_err")
check '[ "${ticks:-0}" -gt 0 ]' "libuv_chat: the timer ran while answers came: $(cat "$tmp/uv_err")"
OLLAMA_HOST=127.0.0.1:1 timeout 30 "$EX_UV" llama3.2 "nobody home" >"$tmp/uv" 2>&1; rc=$?
check '[ $rc = 1 ] && grep -q "connection refused" "$tmp/uv"' "libuv_chat with no node: exit $rc: $(cat "$tmp/uv")"

# ---- the thread pool ----
for i in $(seq 40); do echo "question $i"; done >"$tmp/prompts"
OLLAMA_HOST=$FAST timeout 60 "$EX_POOL" llama3.2 8 <"$tmp/prompts" >"$tmp/pool" 2>"$tmp/pool_err"; rc=$?
check '[ $rc = 0 ]' "thread_pool: exit $rc: $(cat "$tmp/pool_err")"
check '[ "$(awk -F"\t" "\$2==\"ok\" && \$3==8 && \$1==NR" "$tmp/pool" | wc -l)" = 40 ]' "thread_pool: 40 answers in order: $(head -3 "$tmp/pool")"
check 'grep -q "40 prompts, 0 failed, 8 threads" "$tmp/pool_err"' "thread_pool summary: $(cat "$tmp/pool_err")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
