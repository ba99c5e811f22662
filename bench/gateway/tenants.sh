#!/usr/bin/env bash
# Many teams on one gateway: a flood key (a batch job keeping 256 requests
# queued, priority "batch") and an interactive key (one request at a time,
# priority "interactive") through `agents gateway` in front of two simulated
# nodes (4 slots each; the gateway keeps at most 4 in flight per node, so the
# rest wait in its queue: --max-in-flight as the cap, learning off, and the
# reserve off unless asked, as these figures were first taken). Reports the
# interactive key's TTFT alone and beside the flood, the flood's throughput
# alone and beside the interactive key, and the same pair with
# --priority-reserve 1 (the last free place kept for the higher class), and
# with both clients on one shared token (one FIFO: the old way).
#   bash bench/gateway/tenants.sh BUILD_DIR [FLOOD_REQUESTS] [INTERACTIVE_REQUESTS] [NODES] [SLOTS] [ITL]
set -eu
B=${1:-build/release}
NF=${2:-3000}
NI=${3:-60}
NN=${4:-2}
SLOTS=${5:-4}
ITL=${6:-5}
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/tenants_lib.sh"
sims "$NN" --slots "$SLOTS" --ttft 20 --itl "$ITL" --tokens 16
start_gw --max-in-flight "$SLOTS" --learn-slots off --client-token shared-token-1 --priority-reserve 0
ui() { "$B/agents" bench -H "$G" --token "$1" -m llama3.2 -c 1 -n "$NI" --json "$tmp/ui.json" >/dev/null 2>&1; }
flood() { "$B/agents" bench -H "$G" --token "$1" -m llama3.2 -c 256 -n "$NF" --json "$tmp/fl.json" >/dev/null 2>&1; }
ui ui-secret-123; echo "interactive alone              $(fig "$tmp/ui.json")"
flood flood-secret-1; echo "flood alone                    $(fig "$tmp/fl.json")"
flood flood-secret-1 & f=$!; sleep 3; ui ui-secret-123; wait $f
echo "interactive beside the flood   $(fig "$tmp/ui.json")"
echo "flood beside the interactive   $(fig "$tmp/fl.json")"
start_gw --max-in-flight "$SLOTS" --learn-slots off --client-token shared-token-1 --priority-reserve 1
flood flood-secret-1 & f=$!; sleep 3; ui ui-secret-123; wait $f
echo "with --priority-reserve 1:"
echo "  interactive beside the flood $(fig "$tmp/ui.json")"
echo "  flood beside the interactive $(fig "$tmp/fl.json")"
start_gw --max-in-flight "$SLOTS" --learn-slots off --client-token shared-token-1 --priority-reserve 0
flood shared-token-1 & f=$!; sleep 3; ui shared-token-1; wait $f
echo "one shared token (one FIFO):"
echo "  interactive beside the flood $(fig "$tmp/ui.json")"
echo "  flood beside the interactive $(fig "$tmp/fl.json")"
