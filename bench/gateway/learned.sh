#!/usr/bin/env bash
# The scheduler that knows its nodes, measured from outside: three simulated
# Ollama nodes of 1, 2 and 4 parallel slots that queue the rest inside
# themselves and say nothing of it (the gateway is not told), `agents
# gateway` in front with DEFAULT flags, a keys file with a flood key
# (priority "batch", FLOOD concurrent streams) and an interactive key
# (priority "interactive", one request at a time, starting 3 s into the
# flood). Reports the interactive key's TTFT alone and beside the flood, the
# flood's throughput alone and beside it, the slots the gateway learned per
# node, and the same side-by-side run with the previous defaults
# (--learn-slots off --priority-reserve 0: 64 in flight per node).
#   bash bench/gateway/learned.sh BUILD_DIR [FLOOD_REQUESTS] [INTERACTIVE_REQUESTS] [FLOOD] [SLOTS]
set -eu
B=${1:-build/release}
NF=${2:-3000}
NI=${3:-200}
FLOOD=${4:-40}
SLOTS=${5:-1,2,4}
NN=$(echo "$SLOTS" | tr ',' '\n' | wc -l)
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/tenants_lib.sh"
# 20 tokens 5 ms apart; 1 ms before the first; prompts cost 1/20000 s a
# token not in the node's prefix cache
sims "$NN" --slots "$SLOTS" --ttft 1 --itl 5 --tokens 20 --prefill-rate 20000
slots() { # the slots the gateway holds per node, from its /metrics
  curl -s "http://$G/metrics" -H "Authorization: Bearer flood-secret-1" |
    sed -n 's/^agents_node_slots{node="\([^"]*\)",source="\([^"]*\)"} \([0-9]*\)/\1 \3 (\2)/p' | paste -sd';'
}
ui() { "$B/agents" bench -H "$G" --token ui-secret-123 -m llama3.2 -c 1 -n "$NI" --json "$tmp/ui.json" >/dev/null 2>&1; }
flood() { "$B/agents" bench -H "$G" --token flood-secret-1 -m llama3.2 -c "$FLOOD" -n "$NF" --json "$tmp/fl.json" >/dev/null 2>&1; }
echo "nodes of $SLOTS slots (not told), a flood of $FLOOD streams, default flags"
start_gw
flood; echo "flood alone                    $(fig "$tmp/fl.json")"
echo "  learned slots: $(slots)"
ui; echo "interactive alone              $(fig "$tmp/ui.json")"
NODES_LEARNED=$NODES
NODES=$NODES start_gw --learn-slots off --priority-reserve 0
flood; echo "flood alone, previous defaults $(fig "$tmp/fl.json")"
start_gw
flood & f=$!; sleep 3; ui; wait $f
echo "interactive beside the flood   $(fig "$tmp/ui.json")"
echo "flood beside the interactive   $(fig "$tmp/fl.json")"
echo "  learned slots: $(slots)"
STATED=$(paste -d' ' <(echo "$NODES" | tr ',' '\n') <(echo "$SLOTS" | tr ',' '\n' | sed 's/^/slots=/') | paste -sd,)
NODES=$STATED start_gw
flood & f=$!; sleep 3; ui; wait $f
echo "slots stated in the node list (the best the queue can do):"
echo "  interactive beside the flood $(fig "$tmp/ui.json")"
echo "  flood beside the interactive $(fig "$tmp/fl.json")"
NODES=$NODES_LEARNED start_gw --learn-slots off --priority-reserve 0
flood & f=$!; sleep 3; ui; wait $f
echo "previous defaults (--learn-slots off --priority-reserve 0):"
echo "  interactive beside the flood $(fig "$tmp/ui.json")"
echo "  flood beside the interactive $(fig "$tmp/fl.json")"
