#!/usr/bin/env bash
# A key's requests-per-minute limit over a minute of load: a client offering
# RATE requests/s for 61 s to a key limited to RPM through `agents gateway`
# (over_limit: refuse). Prints what was admitted in the minute against RPM.
#   bash bench/key_limits.sh BUILD_DIR [RPM] [RATE]
set -eu
B=${1:-build/release}
RPM=${2:-600}
RATE=${3:-20}
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
"$B/agents" sim --port 0 --ttft 2 --itl 1 --tokens 4 >"$tmp/sim" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$tmp/sim" && break; sleep 0.05; done
N=$(sed -n 's/listening on //p' "$tmp/sim" | head -1)
echo "{\"name\":\"k\",\"secret\":\"limited-secret\",\"rpm\":$RPM}" >"$tmp/keys"
"$B/agents" gateway -N "$N" --listen 127.0.0.1:0 --keys-file "$tmp/keys" >"$tmp/gw" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$tmp/gw" && break; sleep 0.05; done
G=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/gw" | head -1)
"$B/agents" bench -H "$G" --token limited-secret -m llama3.2 --rate "$RATE" --arrival constant --duration 61 \
  --csv "$tmp/r.csv" >/dev/null 2>&1 || true
python3 - "$tmp/r.csv" "$RPM" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
rpm = int(sys.argv[2])
ok = sorted(float(r["start_ms"]) for r in rows if r["status"] == "OK")
refused = sum(1 for r in rows if r["status"] != "OK")
# the most admitted in any 60 s window of the run
best = 0
j = 0
for i in range(len(ok)):
    while ok[i] - ok[j] >= 60000: j += 1
    best = max(best, i - j + 1)
print(f"offered {len(rows)}, admitted {len(ok)}, refused {refused}; most admitted in any 60 s: {best} "
      f"against a limit of {rpm} ({100 * (best - rpm) / rpm:+.2f} %)")
PY
