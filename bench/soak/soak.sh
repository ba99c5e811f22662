#!/usr/bin/env bash
# The long soak: a million requests through a pool of two simulated nodes,
# then 10,000 streams held open at once. Figures go to bench/RESULTS.md.
#   bash bench/soak/soak.sh BUILD_DIR
set -eu
B=${1:-build/release}
"$B/bench/soak" "$B/agents" 1000000 256
"$B/bench/soak" "$B/agents" --hold 10000
