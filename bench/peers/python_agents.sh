#!/usr/bin/env bash
# CPU per streamed token: this project's Python package (python/cagents, on the C
# engine) against the original Python package and a bare aiohttp loop, side by
# side in alternating rounds, against one simulated node in its own process, in
# both regimes: a token per write 2 ms apart (what real nodes do) and bursts.
#   bash bench/peers/python_agents.sh BUILD_DIR ORIGINAL_DIR [ROUNDS]
# ORIGINAL_DIR: a checkout of the original package (its agents/ directory); it is
# not part of this repository. Needs python3-aiohttp (scripts/install-deps.sh --peers).
set -euo pipefail
B=$(cd "$1" && pwd) ORIG=$2 ROUNDS=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3; [ -x "$py" ] || py=python3
export CAGENTS_LIB=$B/libagents.so
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
run_regime() { # NAME ITL TOKENS STREAMS CONC
  "$B/agents" sim --port 0 --tokens "$3" --itl "$2" >"$tmp/sim" 2>&1 &
  local sim=$!
  for _ in $(seq 100); do grep -q listening "$tmp/sim" && break; sleep 0.05; done
  local host
  host=127.0.0.1:$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/sim" | head -1)
  for r in $(seq "$ROUNDS"); do
    for c in cagents original aiohttp; do
      "$py" "$here/python_agents.py" "$c" "$host" "$4" "$5" "$ORIG" | sed "s/^/$1 /"
    done
  done >>"$tmp/all"
  kill $sim; wait $sim 2>/dev/null || true
}
run_regime trickle 2 200 64 32
run_regime burst 0 2000 64 16
echo "| client | a token per write, 2 ms apart: CPU per token | x cagents | burst: CPU per token | x cagents |"
echo "|---|---|---|---|---|"
"$py" - "$tmp/all" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    regime, js = line.split(" ", 1)
    d = json.loads(js)
    rows.setdefault((regime, d["client"]), []).append(d["cpu_s"] / max(d["tokens"], 1) * 1e6)
med = {k: statistics.median(v) for k, v in rows.items()}
for c in ("cagents", "original", "aiohttp"):
    t, b = med[("trickle", c)], med[("burst", c)]
    print(f"| {c} | {t:.1f} us | {t / med[('trickle', 'cagents')]:.2f}x | {b:.1f} us | {b / med[('burst', 'cagents')]:.2f}x |")
PY
echo "raw (regime, per run):"
cat "$tmp/all"
