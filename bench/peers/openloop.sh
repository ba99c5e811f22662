#!/usr/bin/env bash
# The open-loop load generator at RATE requests/s against one simulated node:
# `agents bench --rate` against an asyncio + aiohttp client written the way
# `vllm bench serve` drives a server (openloop_aiohttp.py), alternating,
# ROUNDS rounds. Each prints how late it sent against its own schedule and
# its CPU per request and per token, and the share of the machine's CPU the
# hypervisor took meanwhile (steal, /proc/stat).
#   bash bench/peers/openloop.sh BUILD_DIR [RATE] [N] [ROUNDS]
set -eu
B=${1:-build/release}
RATE=${2:-2000}
N=${3:-20000}
ROUNDS=${4:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
"$B/agents" sim --port 0 --ttft 1 --itl 0 --tokens 8 >"$tmp/sim" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q listening "$tmp/sim" && break; sleep 0.05; done
H=$(sed -n 's/listening on //p' "$tmp/sim" | head -1)
for r in $(seq "$ROUNDS"); do
  "$B/agents" bench -H "$H" -m llama3.2 --rate "$RATE" -n "$N" --json "$tmp/a.json" >/dev/null 2>&1
  /usr/bin/python3 - "$tmp/a.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["points"][0]
tok = p["output_tokens"]
cpu_ns_tok = p["overhead_ns_per_token"]
print(f"agents bench  ok {p['ok']:6d}  lag p50 {p['send_lag_ms']['p50']:.3f} p99 {p['send_lag_ms']['p99']:.3f} max {p['send_lag_ms']['max']:.3f} ms"
      f"  CPU {cpu_ns_tok * tok / max(p['ok'], 1) / 1e3:7.1f} us/request {cpu_ns_tok / 1e3:6.2f} us/token  {100 * p['self_check']['cpu_share']:.1f} % of a core"
      f"  steal {100 * p['self_check']['steal_share']:.1f} %")
PY
  s0=$(awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9 }' /proc/stat)
  /usr/bin/python3 "$HERE/openloop_aiohttp.py" "$H" llama3.2 "$RATE" "$N" >"$tmp/b.json"
  s1=$(awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9 }' /proc/stat)
  /usr/bin/python3 - "$tmp/b.json" $s0 $s1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t0, st0, t1, st1 = map(float, sys.argv[2:6])
steal = (st1 - st0) / (t1 - t0) if t1 > t0 else 0
print(f"aiohttp       ok {d['ok']:6d}  lag p50 {d['lag_ms_p50']:.3f} p99 {d['lag_ms_p99']:.3f} max {d['lag_ms_max']:.3f} ms"
      f"  CPU {d['cpu_us_per_request']:7.1f} us/request {d['cpu_us_per_token']:6.2f} us/token  {100 * d['cpu_s'] / d['wall_s']:.1f} % of a core"
      f"  steal {100 * steal:.1f} %")
PY
done
