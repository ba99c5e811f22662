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

# conversations against nodes with a prefix cache: every turn after the first
# evaluates only what is new (the session keeps it on its node); the hit rate,
# the later turns' TTFT and per-node cache figures are reported; -n counts turns
start_sim pc1 --ttft 1 --itl 1 --tokens 8 --prefill-rate 100000
start_sim pc2 --ttft 1 --itl 1 --tokens 8 --prefill-rate 100000
P1=$(sed -n 's/listening on //p' "$tmp/sim_pc1" | head -1); P2=$(sed -n 's/listening on //p' "$tmp/sim_pc2" | head -1)
"$AG" bench -N "$P1,$P2" -m llama3.2 -c 4 -n 40 --turns 5 --shared-prefix 400 --json "$tmp/t.json" --html "$tmp/t.html" >"$tmp/t.out" 2>&1 && ok || bad "turns: $(tail -3 "$tmp/t.out")"
grep -q '"ok":40,"failed":0' "$tmp/t.json" && ok || bad "turns: 40 requests"
hit=$(sed -n 's/.*"prompt_cache_hit":\([0-9.]*\),"server_ms".*/\1/p' "$tmp/t.json")
awk -v h="$hit" 'BEGIN { exit !(h > 0.8) }' && ok || bad "turns: prompt cache hit $hit, not above 0.8"
later=$(json_num "$tmp/t.json" 0 ttft_later_turns_ms n)
[ "$later" = 32 ] && ok || bad "turns: $later later turns, want 32 (8 conversations x 4)"
grep -q '"turns":5,"shared_prefix_tokens":400' "$tmp/t.json" && ok || bad "turns: config not in the JSON"
grep -q "prompt cache hit" "$tmp/t.html" && ok || bad "turns: no cache column in the page"
grep -q "TTFT t>1" "$tmp/t.out" && grep -q "prompt cache:" "$tmp/t.out" && ok || bad "turns: table lines"
# without keys and with the cache routing off: the hit rate falls
"$AG" bench -N "$P1,$P2" -m llama3.2 -c 4 -n 40 --turns 5 --policy rr+load --no-session --json "$tmp/t2.json" >"$tmp/t2.out" 2>&1 && ok || bad "turns rr: $(tail -3 "$tmp/t2.out")"
hit2=$(sed -n 's/.*"prompt_cache_hit":\([0-9.]*\),"server_ms".*/\1/p' "$tmp/t2.json")
awk -v h="$hit2" -v g="$hit" 'BEGIN { exit !(h < g) }' && ok || bad "turns: round robin hit $hit2 not below $hit"
"$AG" bench -H "$P1" -m llama3.2 --turns 3 --endpoint embed >/dev/null 2>&1; [ $? = 2 ] && ok || bad "--turns with embed accepted"
"$AG" bench -N "$P1,$P2" -m llama3.2 --policy p2c+nothing >/dev/null 2>&1; [ $? = 2 ] && ok || bad "bad --policy accepted"

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
