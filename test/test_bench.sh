#!/usr/bin/env bash
# `agents bench` against simulated nodes: accuracy of the reported medians,
# exact token counts, sweeps, open loop, embed, per-node figures, the files it
# writes, and the HTML page rendered in headless Chromium.
set -u
AG=$1
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
start_sim() { # name args...
  local name=$1; shift
  "$AG" sim --port 0 "$@" >"$tmp/sim_$name" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q listening "$tmp/sim_$name" && break; sleep 0.05; done
}
# json_num FILE POINT KEY SUB: a number from the JSON report (point index from 0)
json_num() {
  awk -v point="$2" -v key="$3" -v sub_="$4" 'BEGIN{RS="\\{\"mode\""} NR==point+2 {
      i = index($0, "\"" key "\":{"); s = substr($0, i);
      j = index(s, "\"" sub_ "\":"); s = substr(s, j + length(sub_) + 3);
      sub(/[,}].*/, "", s); print s; exit }' "$1"
}
within() { # within VALUE TARGET: |v - t| <= 2% of t + 1 ms
  awk -v v="$1" -v t="$2" 'BEGIN { d = v - t; if (d < 0) d = -d; exit !(d <= t * 0.02 + 1) }'
}

start_sim acc --ttft 50 --itl 10 --tokens 20
H=$(sed -n 's/listening on //p' "$tmp/sim_acc" | head -1)

# accuracy: configured TTFT 50 ms, ITL 10 ms
if "$AG" bench -H "$H" -m llama3.2 -c 1 -n 20 --warmup 2 --json "$tmp/a.json" --csv "$tmp/a.csv" >"$tmp/a.out" 2>&1; then ok; else bad "bench run: $(tail -3 "$tmp/a.out")"; fi
ttft=$(json_num "$tmp/a.json" 0 ttft_ms p50); itl=$(json_num "$tmp/a.json" 0 itl_ms p50); tpot=$(json_num "$tmp/a.json" 0 tpot_ms p50)
echo "median TTFT $ttft ms, ITL $itl ms, TPOT $tpot ms (configured 50 and 10)"
within "$ttft" 50 && ok || bad "TTFT p50 $ttft not within 2% + 1 ms of 50"
within "$itl" 10 && ok || bad "ITL p50 $itl not within 2% + 1 ms of 10"
within "$tpot" 10 && ok || bad "TPOT p50 $tpot not within 2% + 1 ms of 10"
grep -q '"output_tokens":400,' "$tmp/a.json" && ok || bad "token count is not exactly 20 x 20"
grep -q '"ok":20,"failed":0' "$tmp/a.json" && ok || bad "requests"
[ "$(wc -l <"$tmp/a.csv")" = 21 ] && ok || bad "csv rows: $(wc -l <"$tmp/a.csv")"
grep -q "own CPU" "$tmp/a.out" && ok || bad "overhead not printed"
grep -q "network and queue" "$tmp/a.out" && ok || bad "server timings not printed"

# a sweep, with SLOs and the page
start_sim fast --ttft 2 --itl 1 --tokens 16 --slots 4
F=$(sed -n 's/listening on //p' "$tmp/sim_fast" | head -1)
"$AG" bench -H "$F" -m llama3.2 -c 1,4,16 -n 60 --slo ttft=50ms,tpot=20ms --json "$tmp/s.json" --html "$tmp/s.html" >"$tmp/s.out" 2>&1 && ok || bad "sweep: $(tail -3 "$tmp/s.out")"
[ "$(grep -o '"mode":"closed"' "$tmp/s.json" | wc -l)" = 3 ] && ok || bad "sweep points"
grep -q "goodput" "$tmp/s.out" && ok || bad "goodput missing"
for chart in "TTFT, cumulative" "End-to-end latency" "Inter-token latency" "Throughput against load" "p99 TTFT against load"; do
  grep -q "$chart" "$tmp/s.html" && ok || bad "html lacks '$chart'"
done
grep -q "<script" "$tmp/s.html" && bad "html has a script" || ok
grep -qE 'src="http|href="http' "$tmp/s.html" && bad "html loads something from elsewhere" || ok

# open loop, generate and embed, two nodes
start_sim second --ttft 2 --itl 1 --tokens 16
S=$(sed -n 's/listening on //p' "$tmp/sim_second" | head -1)
"$AG" bench -N "$F,$S" -m llama3.2 --rate 40,80 -n 40 --endpoint generate --seed 7 --json "$tmp/o.json" --html "$tmp/o.html" >"$tmp/o.out" 2>&1 && ok || bad "open loop: $(tail -3 "$tmp/o.out")"
[ "$(grep -o '"mode":"open"' "$tmp/o.json" | wc -l)" = 2 ] && ok || bad "open loop points"
grep -q "Per node" "$tmp/o.html" && ok || bad "per-node panel"
[ "$(grep -c '^  node ' "$tmp/o.out")" -ge 2 ] && ok || bad "per-node rows"
"$AG" bench -H "$F" -m nomic-embed-text --endpoint embed -c 2 -n 10 >"$tmp/e.out" 2>&1 && ok || bad "embed bench"
"$AG" bench -H "$F" -m llama3.2 --rate 1 -c 2 >/dev/null 2>&1; [ $? = 2 ] && ok || bad "--rate with --concurrency accepted"
"$AG" bench -H "$F" -m llama3.2 --slo speed=1 >/dev/null 2>&1; [ $? = 2 ] && ok || bad "bad --slo accepted"

# the page renders: a screenshot in headless Chromium, compared with a blank page
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$CHROMIUM" ]; then
  shot() { timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
      --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
      --user-data-dir="$tmp/chrome-$2" --window-size=1280,1400 --screenshot="$tmp/$2.png" "$1" >/dev/null 2>&1; }
  echo '<html><body></body></html>' >"$tmp/blank.html"
  shot "file://$tmp/blank.html" blank; shot "file://$tmp/s.html" page
  b=$(stat -c %s "$tmp/blank.png" 2>/dev/null || echo 0); p=$(stat -c %s "$tmp/page.png" 2>/dev/null || echo 0)
  echo "screenshots: blank page $b bytes, report $p bytes"
  [ "$p" -gt 0 ] && [ "$p" -gt $((b * 5)) ] && ok || bad "the report's screenshot looks blank ($p vs $b bytes)"
else
  bad "chromium not found: scripts/install-deps.sh --test installs it"
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
