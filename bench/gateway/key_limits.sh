#!/usr/bin/env bash
# A key's limit over a minute of load: a client offering RATE requests/s for
# 61 s through `agents gateway` to a key limited to LIMIT requests (rpm) or
# tokens (tpm, prompt + output as the node reports them) a minute, with
# over_limit: refuse. Prints the most the key got in any 60 s against LIMIT.
#   bash bench/gateway/key_limits.sh BUILD_DIR [rpm|tpm] [LIMIT] [RATE] [CONCURRENCY]
# Tokens are counted in the window of the second a request ends (when the
# node says how many it used); requests in the window of their start.
set -eu
B=${1:-build/release}
KIND=${2:-rpm}
LIMIT=${3:-600}
RATE=${4:-20}
case "$KIND" in rpm | tpm) ;; *) echo "rpm or tpm" >&2; exit 2 ;; esac
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
# requests that take 0.2-0.4 s, so several are in flight when the limit fills
"$B/agents" sim --port 0 --ttft 100 --itl 10 --tokens 16 >"$tmp/sim" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$tmp/sim" && break; sleep 0.05; done
N=$(sed -n 's/listening on //p' "$tmp/sim" | head -1)
echo "{\"name\":\"k\",\"secret\":\"limited-secret\",\"$KIND\":$LIMIT}" >"$tmp/keys"
"$B/agents" gateway -N "$N" --listen 127.0.0.1:0 --max-clients-per-ip -1 --keys-file "$tmp/keys" >"$tmp/gw" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$tmp/gw" && break; sleep 0.05; done
G=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/gw" | head -1)
"$B/agents" bench -H "$G" --token limited-secret -m llama3.2 --rate "$RATE" --arrival constant --duration 61 \
  --output-len uniform:8,24 --csv "$tmp/r.csv" >/dev/null 2>&1 || true
python3 - "$tmp/r.csv" "$KIND" "$LIMIT" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
kind, limit = sys.argv[2], int(sys.argv[3])
ok = [r for r in rows if r["status"] == "OK"]
refused = len(rows) - len(ok)
if kind == "rpm":
    ev = sorted((float(r["start_ms"]), 1) for r in ok)
else:
    ev = sorted((float(r["end_ms"]), int(r["prompt_eval_count"]) + int(r["tokens"])) for r in ok)
# the most in any 60 s window of the run
best = cur = 0
j = 0
for i in range(len(ev)):
    cur += ev[i][1]
    while ev[i][0] - ev[j][0] >= 60000:
        cur -= ev[j][1]
        j += 1
    best = max(best, cur)
unit = "requests" if kind == "rpm" else "tokens"
total = sum(e[1] for e in ev)
print(f"offered {len(rows)} requests, admitted {len(ok)} ({total} {unit}), refused {refused}; "
      f"most {unit} in any 60 s: {best} against a limit of {limit} ({100 * (best - limit) / limit:+.2f} %)")
PY
