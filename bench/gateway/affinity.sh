#!/usr/bin/env bash
# Cache-aware routing, measured: four simulated nodes with a prefix cache and
# prompt evaluation at PREFILL tokens/s per slot (4 slots each), closed loop
# at concurrency 16, fresh nodes for every run (cold caches).
#   conversations: CONVS conversations x TURNS turns re-sending their history,
#                  a shared system prompt of PREFIX tokens
#   tool loops:    the same, each turn adding a LOOP_TOKENS-token message (300)
#   single:        the same number of single requests, no shared prefix, no
#                  session (what affinity must not make worse)
# Policies: p2c+load (load alone, the old policy), p2c+cache with session keys
# (one per conversation), p2c+cache without keys (prefix affinity alone);
# then the same through `agents gateway` (keys as X-Session-Id headers, or
# nothing). Prints one line per run: throughput, TTFT p50/p99, later turns'
# TTFT p50, prompt-cache hit rate, busiest node's share against the mean.
#   bash bench/gateway/affinity.sh BUILD_DIR [CONVS] [TURNS] [PREFIX] [TOKENS] [PREFILL]
set -eu
B=${1:-build/release}
CONVS=${2:-200}
TURNS=${3:-8}
PREFIX=${4:-1500}
TOKENS=${5:-32}
PREFILL=${6:-2000}
N=$((CONVS * TURNS))
tmp=$(mktemp -d)
# the processes started, one pid a line (they are started inside $(...), a
# subshell, so an array would not see them)
stop_all() { if [ -s "$tmp/pids" ]; then kill $(cat "$tmp/pids") 2>/dev/null || true; fi; : >"$tmp/pids"; }
trap 'stop_all; rm -rf "$tmp"' EXIT
: >"$tmp/pids"
fresh_nodes() { # stops what runs, starts four nodes, prints their list
  stop_all
  sleep 0.2
  "$B/agents" sim --port 0 --nodes 4 --slots 4 --ttft 5 --itl 5 --tokens "$TOKENS" \
    --prefill-rate "$PREFILL" >"$tmp/sim" 2>&1 &
  echo $! >>"$tmp/pids"
  for _ in $(seq 100); do [ "$(grep -c listening "$tmp/sim" 2>/dev/null)" = 4 ] && break; sleep 0.05; done
  sed -n 's/listening on //p' "$tmp/sim" | paste -sd,
}
gateway() { # NODES POLICY: starts a gateway, prints its address
  "$B/agents" gateway -N "$1" --policy "$2" --listen 127.0.0.1:0 --max-clients-per-ip -1 >"$tmp/gw" 2>&1 &
  echo $! >>"$tmp/pids"
  for _ in $(seq 100); do grep -q "listening on" "$tmp/gw" && break; sleep 0.05; done
  sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/gw" | head -1
}
summary() { # NAME JSON
  python3 - "$1" "$2" <<'EOF'
import json, sys
name, path = sys.argv[1], sys.argv[2]
p = json.load(open(path))["points"][0]
reqs = [n["requests"] for n in p["nodes"]] or [0]
mean = sum(reqs) / max(1, len(p["nodes"]))
later = p["ttft_later_turns_ms"]["p50"] if p["ttft_later_turns_ms"]["n"] else float("nan")
hit = p["prompt_cache_hit"]
cache = f"{100 * hit:5.1f} %" if hit >= 0 else "    - " # (reported for workloads that re-send text only)
print(f"{name:<34} {p['requests_per_s']:8.2f} req/s {p['output_tokens_per_s']:9.1f} tok/s  "
      f"TTFT p50 {p['ttft_ms']['p50']:8.2f} p99 {p['ttft_ms']['p99']:8.2f}  later p50 {later:8.2f}  "
      f"cache {cache}  busiest {max(reqs) / mean if mean else 0:4.2f}x "
      f"({len(p['nodes'])} nodes, {p['failed']} failed)")
EOF
}
run() { # NAME POLICY ARGS...
  local name=$1 policy=$2; shift 2
  local nodes; nodes=$(fresh_nodes)
  "$B/agents" bench -N "$nodes" --policy "$policy" -m llama3.2 -c 16 -n "$N" --json "$tmp/r.json" "$@" >"$tmp/out" 2>&1 ||
    { echo "$name: failed: $(tail -3 "$tmp/out")"; return; }
  summary "$name" "$tmp/r.json"
}
run_gw() { # NAME POLICY ARGS...
  local name=$1 policy=$2; shift 2
  local nodes gw; nodes=$(fresh_nodes); gw=$(gateway "$nodes" "$policy")
  "$B/agents" bench -H "$gw" -m llama3.2 -c 16 -n "$N" --json "$tmp/r.json" "$@" >"$tmp/out" 2>&1 ||
    { echo "$name: failed: $(tail -3 "$tmp/out")"; return; }
  # the gateway sees the nodes; the client sees one address: per-node shares from /metrics
  summary "$name" "$tmp/r.json" | sed 's/busiest.*//'
  curl -s "http://$gw/metrics" | awk '/^agents_node_requests_total/ {n++; s+=$2; if ($2>m) m=$2} END {printf "%34s busiest node %.2fx the mean of %d\n", "", m/(s/n), n}'
}
CONV="--turns $TURNS --shared-prefix $PREFIX"
echo "# $CONVS conversations x $TURNS turns, shared prefix $PREFIX tokens, $TOKENS output tokens, prefill $PREFILL tok/s/slot"
run "conversations p2c+load" p2c+load $CONV
run "conversations p2c+cache, sessions" p2c+cache $CONV
run "conversations p2c+cache, no keys" p2c+cache $CONV --no-session
run "conversations p2c+session, sessions" p2c+session $CONV
run_gw "gateway p2c+load" p2c+load $CONV
run_gw "gateway p2c+cache, X-Session-Id" p2c+cache $CONV
run_gw "gateway p2c+cache, no header" p2c+cache $CONV --no-session
LOOP="--turns $TURNS --shared-prefix $PREFIX --turn-tokens ${LOOP_TOKENS:-300}"
echo "# tool loops: the same, each turn adding a ${LOOP_TOKENS:-300}-token message (a tool result)"
run "tool loops p2c+load" p2c+load $LOOP
run "tool loops p2c+cache, sessions" p2c+cache $LOOP
run "tool loops p2c+cache, no keys" p2c+cache $LOOP --no-session
echo "# $N single requests, no shared prefix, no session: short prompts, then ${LOOP_TOKENS:-300}-token ones"
run "single p2c+load" p2c+load
run "single p2c+cache" p2c+cache
run "single long p2c+load" p2c+load --turn-tokens "${LOOP_TOKENS:-300}"
run "single long p2c+cache" p2c+cache --turn-tokens "${LOOP_TOKENS:-300}"
