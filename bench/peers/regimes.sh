#!/usr/bin/env bash
# CPU per streamed token in both regimes, side by side in one run, against the
# kernel's floor (floor.c: epoll + recv, counting lines) and this library's C API:
#   trickle - the simulated node writes each token on its own, ITL ms apart (what
#             real model servers do: almost every read carries one token)
#   burst   - the node writes whole answers as fast as the socket takes them
# Clients: floor, raw (libevent bufferevents, counting lines), agents-c (the C
# API), agents-cli (`agents bench`), ollama-js (npm "ollama", pinned), aiohttp.
# Alternating rounds; medians of CPU (user+sys) per token.
#   bash bench/peers/regimes.sh BUILD_DIR [ROUNDS] [ITL_MS]
set -eu
B=${1:-build/release}
ROUNDS=${2:-3}
ITL=${3:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
# the pinned clients (test/js, the tests' own lock) installed beside a copy of the script
JS=${AGENTS_JS_DIR:-/tmp/agents-peers-js}
mkdir -p "$JS" && cp "$HERE/../../test/js/package.json" "$HERE/../../test/js/package-lock.json" "$HERE/ollama_js.mjs" "$JS/"
(cd "$JS" && [ -d node_modules/ollama ] || npm ci --no-audit --no-fund >/dev/null 2>&1) || true
tmp=$(mktemp -d)
: >"$tmp/pids" # (the nodes start inside $(...), a subshell: their pids go to a file)
trap 'kill $(cat "$tmp/pids") 2>/dev/null; rm -rf "$tmp"' EXIT
start_sim() { # NAME args...
  local name=$1; shift
  "$B/agents" sim --port 0 "$@" >"$tmp/sim_$name" 2>&1 &
  echo $! >>"$tmp/pids"
  for _ in $(seq 100); do grep -q listening "$tmp/sim_$name" && break; sleep 0.05; done
  sed -n 's/listening on //p' "$tmp/sim_$name"
}
TH=$(start_sim trickle --tokens 200 --itl "$ITL")
BH=$(start_sim burst --tokens 256)
declare -A CMD=(
  [floor]="$B/bench/peer_floor"
  [raw]="$B/bench/peer_raw"
  [agents-c]="$B/bench/peer_agents"
  [agents-cli]="$HERE/agents_cli.sh $B/agents"
  [ollama-js]="node $JS/ollama_js.mjs"
  [aiohttp]="$PY $HERE/aiohttp_client.py"
)
ORDER="floor raw agents-c agents-cli ollama-js aiohttp"
[ -d "$JS/node_modules/ollama" ] || ORDER=${ORDER/ ollama-js/}
$PY -c "import aiohttp" 2>/dev/null || ORDER=${ORDER/ aiohttp/}
for r in $(seq "$ROUNDS"); do
  for w in trickle burst; do
    H=$TH N=256 C=64
    [ $w = burst ] && H=$BH N=8000 C=64
    for c in $ORDER; do
      out=$( { /usr/bin/time -f "TIME %U %S" ${CMD[$c]} "$H" chat "$N" "$C"; } 2>&1 )
      cpu=$(awk '/^TIME/ {print $2 + $3}' <<<"$out")
      count=$(sed -n 's/.*"count": *\([0-9]*\).*/\1/p' <<<"$out")
      # floor and raw count every object, the final ones too
      case $c in floor|raw) count=$((count - N)) ;; esac
      echo "$w $c $cpu ${count:-0}" >>"$tmp/all"
    done
  done
done
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| client | trickle ($ITL ms apart): CPU per token | x floor | x agents-c | burst: CPU per token | x floor | x agents-c |"
echo "|---|---|---|---|---|---|---|"
for c in $ORDER; do
  line="| $c |"
  for w in trickle burst; do
    v=$(awk -v w=$w -v c="$c" '$1==w && $2==c && $4>0 {print $3/$4*1e9}' "$tmp/all" | median)
    f=$(awk -v w=$w '$1==w && $2=="floor" && $4>0 {print $3/$4*1e9}' "$tmp/all" | median)
    a=$(awk -v w=$w '$1==w && $2=="agents-c" && $4>0 {print $3/$4*1e9}' "$tmp/all" | median)
    line="$line $(awk -v v="$v" -v f="$f" -v a="$a" 'BEGIN {printf "%.0f ns | %.2fx | %.2fx |", v, v / f, v / a}')"
  done
  echo "$line"
done
echo
echo "raw data (regime client cpu_s tokens):"
cat "$tmp/all"
