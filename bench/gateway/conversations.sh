#!/usr/bin/env bash
# Conversations on nodes of unequal sizes, through `agents gateway` with
# default flags: three simulated Ollama nodes of 1, 2 and 4 slots (7 places,
# not told to the gateway) with a prefix cache and prompt evaluation at
# PREFILL tokens/s per slot; conversations of TURNS turns, each turn adding
# TURN_TOKENS tokens (a tool result, a pasted file), CONC of them at once:
# about 0.5x, 1x and 2x the places. Each run on fresh nodes (cold caches) and
# a fresh gateway. Per load: later turns' TTFT p50 with X-Session-Id, with no
# header (the prompt's prefix alone), and with load alone (--policy p2c+load,
# no affinity), the prompt-cache hit rate, and each node's requests against
# its share of the places.
# CONTEXT: each conversation opens with a context of its own of about that
# many tokens (a document it is about), then short or TURN_TOKENS turns.
# CACHE: conversations each node's prefix cache keeps (64), or "slots": one a
# slot, as Ollama keeps a conversation's cache in the slot that ran it.
# THINK: ms between an answer and the conversation's next turn (a user
# reading); the CONC places of the closed loop then serve more conversations.
#   bash bench/gateway/conversations.sh BUILD_DIR [CONVS_PER_SLOT_LOAD] [TURNS] [TURN_TOKENS] [PREFILL] [CONTEXT] [CACHE] [THINK]
set -eu
B=${1:-build/release}
PER=${2:-6}
TURNS=${3:-6}
TT=${4:-300}
PREFILL=${5:-2000}
CONTEXT=${6:-0}
CACHE=${7:-64}
THINK=${8:-0}
tmp=$(mktemp -d)
stop_all() { if [ -s "$tmp/pids" ]; then kill $(cat "$tmp/pids") 2>/dev/null || true; fi; : >"$tmp/pids"; }
trap 'stop_all; rm -rf "$tmp"' EXIT
: >"$tmp/pids"
fresh() { # POLICY: fresh nodes and gateway; prints the gateway's address
  stop_all
  sleep 0.2
  "$B/agents" sim --port 0 --nodes 3 --slots 1,2,4 --ttft 1 --itl 5 --tokens 20 --prefill-rate "$PREFILL" --prefix-cache "$CACHE" >"$tmp/sim" 2>&1 &
  echo $! >>"$tmp/pids"
  for _ in $(seq 100); do [ "$(grep -c listening "$tmp/sim" 2>/dev/null)" = 3 ] && break; sleep 0.05; done
  local nodes; nodes=$(sed -n 's/listening on //p' "$tmp/sim" | paste -sd,)
  "$B/agents" gateway -N "$nodes" --policy "$1" --listen 127.0.0.1:0 --max-clients-per-ip -1 >"$tmp/gw" 2>&1 &
  echo $! >>"$tmp/pids"
  for _ in $(seq 100); do grep -q "listening on" "$tmp/gw" && break; sleep 0.05; done
  sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/gw" | head -1
}
run() { # NAME POLICY CONC ARGS...
  local name=$1 policy=$2 conc=$3; shift 3
  local gw; gw=$(fresh "$policy")
  local n=$((conc * PER * TURNS))
  "$B/agents" bench -H "$gw" -m llama3.2 -c "$conc" -n "$n" --turns "$TURNS" --turn-tokens "$TT" --context-tokens "$CONTEXT" --think-ms "$THINK" \
    --json "$tmp/r.json" "$@" >"$tmp/out" 2>&1 || { echo "$name: failed: $(tail -3 "$tmp/out")"; return; }
  curl -s "http://$gw/metrics" >"$tmp/metrics"
  sed -n 's/listening on //p' "$tmp/sim" >"$tmp/order"
  python3 - "$name" "$tmp/r.json" "$tmp/metrics" "$tmp/order" <<'EOF'
import json, re, sys
name, path, mpath, opath = sys.argv[1:5]
p = json.load(open(path))["points"][0]
later = p["ttft_later_turns_ms"]["p50"] if p["ttft_later_turns_ms"]["n"] else float("nan")
hit = p["prompt_cache_hit"]
reqs, slots, fol = {}, {}, {}
for line in open(mpath):
    m = re.match(r'agents_pool_followups(_stayed)?_total (\d+)', line)
    if m: fol[bool(m.group(1))] = int(m.group(2))
    m = re.match(r'agents_node_requests_total\{node="([^"]+)"\} (\d+)', line)
    if m: reqs[m.group(1)] = int(m.group(2))
    m = re.match(r'agents_node_slots\{node="([^"]+)",source="[^"]+"\} (\d+)', line)
    if m: slots[m.group(1)] = int(m.group(2))
total = sum(reqs.values()) or 1
# each node's share of the requests against its share of the places (1, 2, 4 of 7),
# in the sim's order (its nodes of 1, 2 and 4 slots)
order = [l.strip() for l in open(opath) if l.strip()]
shares = " ".join(f"{reqs.get(k, 0) / total * 7 / [1, 2, 4][i]:.2f}" for i, k in enumerate(order))
stayed = f"{100 * fol.get(True, 0) / fol[False]:5.1f} %" if fol.get(False) else "    -  "
print(f"{name:<30} {p['requests_per_s']:7.2f} req/s  TTFT p50 {p['ttft_ms']['p50']:8.1f}  later turns p50 {later:8.1f} ms  "
      f"cache {100 * hit:5.1f} %  stayed {stayed}  share/places {shares}  learned {' '.join(str(slots.get(k, 0)) for k in order)}  ({p['failed']} failed)")
EOF
}
for conc in 4 7 14; do
  echo "# $conc conversations at once on 7 places, a context of $CONTEXT tokens, $TURNS turns of +$TT tokens, prefill $PREFILL tok/s, cache $CACHE, think $THINK ms"
  run "x$conc X-Session-Id" p2c+cache "$conc"
  run "x$conc no header (prefix)" p2c+cache "$conc" --no-session
  run "x$conc load alone" p2c+load "$conc" --no-session
done
