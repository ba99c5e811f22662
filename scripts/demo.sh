#!/usr/bin/env bash
# From a fresh clone to a running demo: packages, build, simulated nodes, demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAG_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
AG=build/release/agents
log=$(mktemp)
$AG sim --nodes 3 --port 0 --ttft 80 --itl 20 --tokens 30 >"$log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do [ "$(grep -c listening "$log")" = 3 ] && break; sleep 0.05; done
cat "$log"
port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)
echo
echo "\$ agents chat -H 127.0.0.1:$port -m llama3.2 -v \"why is the sky blue?\""
$AG chat -H "127.0.0.1:$port" -m llama3.2 -v "why is the sky blue?"
echo
echo "\$ agents models -H 127.0.0.1:$port"
$AG models -H "127.0.0.1:$port"
echo
echo "\$ agents demo"
$AG demo
