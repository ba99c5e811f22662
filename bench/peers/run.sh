#!/usr/bin/env bash
# Peers side by side, in one run: this library (C API and CLI), the official
# JavaScript client (npm "ollama", pinned), a Python aiohttp client, a libcurl
# multi + yajl C baseline, and a raw reader, against one simulated node.
# Alternating rounds (A B C D E, A B C D E, ...), medians of each client's
# CPU (user+sys) per token or per embedding, and TTFT at one request at a time.
#   bash bench/peers/run.sh BUILD_DIR [rounds]
set -eu
B=${1:-build/release}
ROUNDS=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3 # Debian's, which has python3-aiohttp
# the pinned clients (test/js, the tests' own lock) installed beside a copy of the script
JS=${AGENTS_JS_DIR:-/tmp/agents-peers-js}
mkdir -p "$JS" && cp "$HERE/../../test/js/package.json" "$HERE/../../test/js/package-lock.json" "$HERE/ollama_js.mjs" "$JS/"
(cd "$JS" && [ -d node_modules/ollama ] || npm ci --no-audit --no-fund >/dev/null 2>&1) || true
tmp=$(mktemp -d)
"$B/agents" sim --port 0 --tokens 256 >"$tmp/sim" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q listening "$tmp/sim" && break; sleep 0.05; done
H=$(sed -n 's/listening on //p' "$tmp/sim")

declare -A CMD=(
  [agents-c]="$B/bench/peer_agents"
  [agents-cli]="$HERE/agents_cli.sh $B/agents"
  [ollama-js]="node $JS/ollama_js.mjs"
  [aiohttp]="$PY $HERE/aiohttp_client.py"
  [curl-yajl]="$B/bench/peer_curl_yajl"
  [raw]="$B/bench/peer_raw"
)
ORDER="agents-c agents-cli ollama-js aiohttp curl-yajl raw"

measure() { # measure NAME MODE N CONC -> "cpu_seconds count ttft_ms maxrss_kb"
  local out
  out=$( { /usr/bin/time -f "TIME %U %S %M" ${CMD[$1]} "$H" "$2" "$3" "$4"; } 2>&1 )
  local cpu rss count ttft
  cpu=$(awk '/^TIME/ {print $2 + $3}' <<<"$out"); rss=$(awk '/^TIME/ {print $4}' <<<"$out")
  count=$(sed -n 's/.*"count": *\([0-9]*\).*/\1/p' <<<"$out"); ttft=$(sed -n 's/.*"ttft_p50_ms": *\([-0-9.]*\).*/\1/p' <<<"$out")
  echo "$cpu ${count:-0} ${ttft:-nan} $rss"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_workload() { # name mode n conc unit
  local w=$1 mode=$2 n=$3 conc=$4
  for r in $(seq "$ROUNDS"); do
    for c in $ORDER; do
      read -r cpu count ttft rss < <(measure "$c" "$mode" "$n" "$conc")
      # the raw reader counts every object, the final ones too, and no embeddings
      [ "$c" = raw ] && [ "$mode" != embed ] && count=$((count - n))
      [ "$c" = raw ] && [ "$mode" = embed ] && count=$n
      echo "$w $c $cpu $count $ttft $rss" >>"$tmp/all"
    done
  done
}

run_workload stream chat 4000 64
run_workload embed embed 2000 16
run_workload latency latency 200 1

# (b) scale: HOLD slow streams open at once (2 s each), one round: peak RSS per stream
HOLD=${HOLD:-10000}
"$B/agents" sim --port 0 --tokens 40 --itl 50 >"$tmp/slow" 2>&1 &
slow=$!
for _ in $(seq 100); do grep -q listening "$tmp/slow" && break; sleep 0.05; done
SH=$(sed -n 's/listening on //p' "$tmp/slow")
for c in $ORDER; do
  out=$( { /usr/bin/time -f "TIME %U %S %M" ${CMD[$c]} "$SH" chat "$HOLD" "$HOLD"; } 2>&1 )
  rss=$(awk '/^TIME/ {print $4}' <<<"$out")
  count=$(sed -n 's/.*"count": *\([0-9]*\).*/\1/p' <<<"$out")
  echo "scale $c 0 ${count:-0} nan ${rss:-0}" >>"$tmp/all"
done
kill $slow 2>/dev/null

echo "| client | CPU per streamed token | x this library | CPU per embedding | x this library | TTFT p50, one at a time | added over raw | peak RSS (64 streams) | RSS per stream ($HOLD at once) |"
echo "|---|---|---|---|---|---|---|---|---|"
base_tok=$(awk '$1=="stream" && $2=="agents-c" {print $3/$4*1e9}' "$tmp/all" | median)
base_emb=$(awk '$1=="embed" && $2=="agents-c" {print $3/$4*1e6}' "$tmp/all" | median)
raw_ttft=$(awk '$1=="latency" && $2=="raw" {print $5}' "$tmp/all" | median)
for c in $ORDER; do
  tok=$(awk -v c="$c" '$1=="stream" && $2==c {print $3/$4*1e9}' "$tmp/all" | median)
  emb=$(awk -v c="$c" '$1=="embed" && $2==c {print $3/$4*1e6}' "$tmp/all" | median)
  ttft=$(awk -v c="$c" '$1=="latency" && $2==c {print $5}' "$tmp/all" | median)
  rss=$(awk -v c="$c" '$1=="stream" && $2==c {print $6}' "$tmp/all" | median)
  hold=$(awk -v c="$c" '$1=="scale" && $2==c {print $6}' "$tmp/all")
  awk -v c="$c" -v tok="$tok" -v bt="$base_tok" -v emb="$emb" -v be="$base_emb" -v t="$ttft" -v rt="$raw_ttft" -v rss="$rss" -v hold="$hold" -v n="$HOLD" 'BEGIN {
    printf "| %s | %.0f ns | %.2f | %.1f us | %.2f | %.3f ms | %+.3f ms | %d KB | %.1f KiB |\n", c, tok, tok / bt, emb, emb / be, t, t - rt, rss, (hold - rss) / (n - 64) }'
done
echo
echo "raw data (workload client cpu_s count ttft_ms maxrss_kb):"
cat "$tmp/all"
