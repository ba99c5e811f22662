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
# within VALUE TARGET: not earlier than the node's configured delay (less 2 % + 1 ms: a
# measure that starts late or stops early shows here), and not grossly later (the node is
# another process: a loaded machine delays it, so this side is wide)
within() {
  awk -v v="$1" -v t="$2" 'BEGIN { exit !(v >= t - (t * 0.02 + 1) && v <= t * 1.5 + 5) }'
}

start_sim acc --ttft 50 --itl 10 --tokens 20
H=$(sed -n 's/listening on //p' "$tmp/sim_acc" | head -1)

# accuracy: configured TTFT 50 ms, ITL 10 ms
if "$AG" bench -H "$H" -m llama3.2 -c 1 -n 20 --warmup 2 --json "$tmp/a.json" --csv "$tmp/a.csv" >"$tmp/a.out" 2>&1; then ok; else bad "bench run: $(tail -3 "$tmp/a.out")"; fi
ttft=$(json_num "$tmp/a.json" 0 ttft_ms p50); itl=$(json_num "$tmp/a.json" 0 itl_ms p50); tpot=$(json_num "$tmp/a.json" 0 tpot_ms p50)
echo "median TTFT $ttft ms, ITL $itl ms, TPOT $tpot ms (configured 50 and 10)"
within "$ttft" 50 && ok || bad "TTFT p50 $ttft: under 50 less 2% + 1 ms, or over 1.5x + 5 ms"
within "$itl" 10 && ok || bad "ITL p50 $itl: under 10 less 2% + 1 ms, or over 1.5x + 5 ms"
within "$tpot" 10 && ok || bad "TPOT p50 $tpot: under 10 less 2% + 1 ms, or over 1.5x + 5 ms"
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
# the run's metadata: when, the tool's version, the command line (a token's value not
# written down), the machine's CPUs, the nodes and what each said of itself
"$AG" bench -N "$F,$S" llama3.2 -n 5 --token s3cret-value --json "$tmp/m.json" --html "$tmp/m.html" >"$tmp/m.out" 2>&1 && ok || bad "metadata run: $(tail -3 "$tmp/m.out")"
python3 - "$tmp/m.json" "$F" "$S" <<'PY' && ok || bad "report metadata: $(head -c 600 "$tmp/m.json")"
import json, os, sys
m = json.load(open(sys.argv[1]))["meta"]
assert m["started_at"].endswith("Z") and len(m["started_at"]) == 20, m
assert m["version"] and m["cpus"] == os.cpu_count(), m
assert " bench -N " in m["command"] and "--token '***'" in m["command"], m["command"]
names = [n["name"] for n in m["nodes"]]
assert names == sys.argv[2:4], names
assert all(n["version"] == "0.12.6-sim" and "llama3.2:latest" in n["models"] for n in m["nodes"]), m["nodes"]
PY
grep -q "s3cret-value" "$tmp/m.json" "$tmp/m.html" && bad "the token's value is in a report" || ok
grep -q 'class="meta"' "$tmp/m.html" && grep -q "0.12.6-sim" "$tmp/m.html" && ok || bad "html report metadata"
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
# 8 conversations x 4 later turns when every slot keeps to its conversation; the
# last ones may be cut short by the count when slots pick up each other's
[ "$later" -ge 28 ] && [ "$later" -le 32 ] && ok || bad "turns: $later later turns, want about 32 (8 conversations x 4)"
grep -q '"turns":5,"shared_prefix_tokens":400' "$tmp/t.json" && ok || bad "turns: config not in the JSON"
grep -q "prompt cache hit" "$tmp/t.html" && ok || bad "turns: no cache column in the page"
grep -q "TTFT t>1" "$tmp/t.out" && grep -q "prompt cache:" "$tmp/t.out" && ok || bad "turns: table lines"
# without keys and with the cache routing off: the hit rate falls
"$AG" bench -N "$P1,$P2" -m llama3.2 -c 4 -n 40 --turns 5 --policy rr+load --no-session --json "$tmp/t2.json" >"$tmp/t2.out" 2>&1 && ok || bad "turns rr: $(tail -3 "$tmp/t2.out")"
hit2=$(sed -n 's/.*"prompt_cache_hit":\([0-9.]*\),"server_ms".*/\1/p' "$tmp/t2.json")
awk -v h="$hit2" -v g="$hit" 'BEGIN { exit !(h < g) }' && ok || bad "turns: round robin hit $hit2 not below $hit"
"$AG" bench -H "$P1" -m llama3.2 --turns 3 --endpoint embed >/dev/null 2>&1; [ $? = 2 ] && ok || bad "--turns with embed accepted"
"$AG" bench -N "$P1,$P2" -m llama3.2 --policy p2c+nothing >/dev/null 2>&1; [ $? = 2 ] && ok || bad "bad --policy accepted"

# workloads with known answers (issue "agents bench ahead of ..."):
start_sim wl --ttft 2 --itl 0 --tokens 4 --slots 64
W=$(sed -n 's/listening on //p' "$tmp/sim_wl" | head -1)
# constant arrivals: exactly 1/rate apart on the schedule, the last at (N-1)/rate
"$AG" bench -H "$W" -m llama3.2 --rate 100 --arrival constant -n 50 --csv "$tmp/k.csv" --json "$tmp/k.json" >"$tmp/k.out" 2>&1 && ok || bad "constant: $(tail -3 "$tmp/k.out")"
awk -F, 'NR > 1 { s = $5 - $17; if (s > max) max = s; n++ } END { exit !(n == 50 && max > 489.9 && max < 490.1) }' "$tmp/k.csv" && ok || bad "constant: 50 scheduled 10 ms apart"
# (sent no earlier than scheduled; how late is the self-check's to say, and a loaded machine's)
awk -F, 'NR > 1 { s = $5; if (s > max) max = s } END { exit !(max >= 489.9 && max < 600) }' "$tmp/k.csv" && ok || bad "constant: the last one sent at $(awk -F, 'NR>1{print $5}' "$tmp/k.csv" | sort -n | tail -1) ms, not 490"
grep -q '"arrival":"constant"' "$tmp/k.json" && grep -q '"send_lag_ms":{' "$tmp/k.json" && grep -q '"self_check":{"cpu_share":' "$tmp/k.json" && ok || bad "constant: JSON lacks arrival or self-check"
grep -q "self-check: " "$tmp/k.out" && grep -q "send lag against the schedule" "$tmp/k.out" && ok || bad "self-check not printed"
# the machine's share beside the tool's (Linux /proc/stat): busy and stolen, each a fraction
python3 -c "import json,sys; c=json.load(open(sys.argv[1]))['points'][0]['self_check']; sys.exit(not (0 <= c['machine_busy'] <= 1 and 0 <= c['steal_share'] < 1))" "$tmp/k.json" && ok || bad "self-check: machine_busy / steal_share"
grep -q "the machine: [0-9]* % busy, [0-9.]* % stolen" "$tmp/k.out" && ok || bad "self-check: the machine's line"
# gamma arrivals of shape 0.25: the gaps' coefficient of variation is 1/sqrt(0.25) = 2, within 10 %
"$AG" bench -H "$W" -m llama3.2 --rate 2000 --burstiness 0.25 -n 4000 --max-tokens 1 --csv "$tmp/gm.csv" >"$tmp/gm.out" 2>&1 && ok || bad "gamma: $(tail -3 "$tmp/gm.out")"
cv=$(awk -F, 'NR > 1 { print $5 - $17 }' "$tmp/gm.csv" | sort -g | awk 'NR > 1 { g = $1 - p; s += g; q += g * g; n++ } { p = $1 } END { m = s / n; printf "%.3f", sqrt(q / n - m * m) / m }')
awk -v c="$cv" 'BEGIN { exit !(c > 1.8 && c < 2.2) }' && ok || bad "gamma: CV $cv, want 2 +- 10 %"
# a ramp: the first half of the requests take more than half the time
"$AG" bench -H "$W" -m llama3.2 --rate 200 --arrival constant --ramp-up 1 -n 100 --csv "$tmp/rp.csv" >/dev/null 2>&1 && ok || bad "ramp-up run"
awk -F, 'NR > 1 { print $5 - $17 }' "$tmp/rp.csv" | sort -g | awk 'NR == 50 { h = $1 } { l = $1 } END { exit !(h > 0.6 * l) }' && ok || bad "ramp-up: arrivals not slower at first"
# lengths: output from the distribution (the node stops at num_predict), input as the node counts it
"$AG" bench -H "$W" -m llama3.2 -c 4 -n 80 --output-len uniform:5,9 --input-len normal:200,20 --csv "$tmp/ln.csv" --json "$tmp/ln.json" >"$tmp/ln.out" 2>&1 && ok || bad "lengths: $(tail -3 "$tmp/ln.out")"
awk -F, 'NR > 1 { if ($10 < 5 || $10 > 9) bad++; s += $10; n++ } END { exit !(bad == 0 && s / n > 6.3 && s / n < 7.7) }' "$tmp/ln.csv" && ok || bad "lengths: output tokens not uniform in 5..9"
ratio=$(sed -n 's/.*"input_len_ratio":\([0-9.]*\),.*/\1/p' "$tmp/ln.json")
awk -v r="$ratio" 'BEGIN { exit !(r > 0.95 && r < 1.05) }' && ok || bad "lengths: the node counted $ratio tokens per token asked"
# a ShareGPT file: the human turns, the replies' lengths (23 and 9 tokens), a conversation without a human turn skipped
cat >"$tmp/sg.json" <<'JSON'
[{"id":"a","conversations":[{"from":"human","value":"What is a hash table?"},{"from":"gpt","value":"A hash table maps keys to values using a hash function, here is a longer answer to measure."}]},
 {"id":"b","conversations":[{"from":"gpt","value":"no human"}]},
 {"id":"c","conversations":[{"from":"human","value":"Explain TCP."},{"from":"gpt","value":"TCP is a reliable stream protocol."}]}]
JSON
"$AG" bench -H "$W" -m llama3.2 -c 1 -n 4 --dataset "$tmp/sg.json" --json "$tmp/sg.out.json" >/dev/null 2>&1 && ok || bad "dataset run"
grep -q '"output_tokens":64,' "$tmp/sg.out.json" && ok || bad "dataset: output tokens not 2 x (23 + 9)"
printf '{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}],"output_len":2}\n' >"$tmp/m.jsonl"
"$AG" bench -H "$W" -m llama3.2 -n 3 --dataset "$tmp/m.jsonl" --json "$tmp/m.json" >/dev/null 2>&1 && grep -q '"output_tokens":6,' "$tmp/m.json" && ok || bad "dataset: JSONL messages"
printf '{"prompt": 1}\n' >"$tmp/bad.jsonl"
"$AG" bench -H "$W" -m llama3.2 --dataset "$tmp/bad.jsonl" >/dev/null 2>&1; [ $? = 2 ] && ok || bad "a bad dataset accepted"
# a trace: on its schedule (0, 100, 500 ms from the first), each with its lengths
printf '{"timestamp": 1000, "input_len": 50, "output_len": 5}\n{"timestamp": 1100, "prompt": "hello", "output_len": 3}\n{"timestamp": 1500, "messages": [{"role":"user","content":"hi"}]}\n' >"$tmp/tr.jsonl"
"$AG" bench -H "$W" -m llama3.2 --trace "$tmp/tr.jsonl" --csv "$tmp/tr.csv" >"$tmp/tr.out" 2>&1 && ok || bad "trace: $(tail -3 "$tmp/tr.out")"
awk -F, 'NR > 1 { printf "%d:%d ", ($5 - $17 + 0.5), $10 }' "$tmp/tr.csv" | grep -qx '0:5 100:3 500:4 ' && ok || bad "trace: $(awk -F, 'NR > 1 { printf "%.1f:%d ", $5 - $17, $10 }' "$tmp/tr.csv")"
"$AG" bench -H "$W" -m llama3.2 --trace "$tmp/tr.jsonl" --rate 5 >/dev/null 2>&1; [ $? = 2 ] && ok || bad "--trace with --rate accepted"
# lines out of time order are replayed in it; twice as fast, and past its end from its start again
printf '{"timestamp": 1500, "messages": [{"role":"user","content":"hi"}]}\n{"timestamp": 1000, "input_len": 50, "output_len": 5}\n{"timestamp": 1100, "prompt": "hello", "output_len": 3}\n' >"$tmp/tu.jsonl"
"$AG" bench -H "$W" -m llama3.2 --trace "$tmp/tu.jsonl" --trace-speed 2 -n 6 --csv "$tmp/tu.csv" --json "$tmp/tu.json" >"$tmp/tu.out" 2>&1 && ok || bad "trace speed: $(tail -3 "$tmp/tu.out")"
awk -F, 'NR > 1 { printf "%d:%d ", ($5 - $17 + 0.5), $10 }' "$tmp/tu.csv" | grep -qx '0:5 50:3 250:4 375:5 425:3 625:4 ' && ok || bad "trace speed: $(awk -F, 'NR > 1 { printf "%.1f:%d ", $5 - $17, $10 }' "$tmp/tu.csv")"
grep -q '"trace_speed":2' "$tmp/tu.json" && grep -q "(2x as fast)" "$tmp/tu.out" && ok || bad "trace speed not reported"
"$AG" bench -H "$W" -m llama3.2 --trace-speed 2 >/dev/null 2>&1; [ $? = 2 ] && ok || bad "--trace-speed without --trace accepted"
# repeats and compare
"$AG" bench -H "$W" -m llama3.2 -c 2 -n 30 --repeat 3 --json "$tmp/ra.json" >"$tmp/ra.out" 2>&1 && ok || bad "repeat: $(tail -3 "$tmp/ra.out")"
grep -q '"runs":3,"repeats":\[{"point":0,"metrics":{"requests_per_s":{"mean":' "$tmp/ra.json" && ok || bad "repeat: JSON summary"
grep -q "== over 3 runs" "$tmp/ra.out" && ok || bad "repeat: table summary"
"$AG" bench -H "$W" -m llama3.2 -c 2 -n 30 --repeat 3 --max-tokens 1 --json "$tmp/rb.json" >/dev/null 2>&1
"$AG" bench compare "$tmp/ra.json" "$tmp/rb.json" >"$tmp/cmp.out" 2>&1 && ok || bad "compare failed"
grep -q "output tokens/s .*yes: B worse" "$tmp/cmp.out" && grep -q "beyond noise (Welch" "$tmp/cmp.out" && ok || bad "compare: $(cat "$tmp/cmp.out")"
grep -q "^  A: 20[0-9-]*T[0-9:]*Z, agents .* CPU(s): .* bench " "$tmp/cmp.out" && grep -q "^  B: " "$tmp/cmp.out" && grep -q "^     node " "$tmp/cmp.out" \
  && ok || bad "compare shows no metadata: $(head -8 "$tmp/cmp.out")"
"$AG" bench compare "$tmp/ra.json" "$tmp/nonexistent.json" >/dev/null 2>&1; [ $? = 2 ] && ok || bad "compare with a missing file"
# the SLO search finds the knee of a node with 4 slots: TTFT jumps when a fifth request queues
# (10 ms to a first token that did not wait, an objective of 35 ms: margin for a loaded
# machine under sanitizers; a wait is for a request of 74 ms)
start_sim knee --ttft 10 --itl 4 --tokens 16 --slots 4
K=$(sed -n 's/listening on //p' "$tmp/sim_knee" | head -1)
"$AG" bench -H "$K" -m llama3.2 -n 40 --slo-search ttft_p99=35ms --json "$tmp/slo.json" >"$tmp/slo.out" 2>&1 && ok || bad "slo search: $(tail -3 "$tmp/slo.out")"
grep -q '"slo_search":{"found":4}' "$tmp/slo.json" && ok || bad "slo search: $(grep 'SLO search' "$tmp/slo.out")"
"$AG" bench -H "$K" -m llama3.2 --slo-search speed=1 >/dev/null 2>&1; [ $? = 2 ] && ok || bad "bad --slo-search accepted"
# the servers' metrics during the run: the node's /api/ps and a gateway's /metrics
"$AG" gateway -N "$W" --listen 127.0.0.1:0 >"$tmp/gw_sc" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$tmp/gw_sc" && break; sleep 0.05; done
G=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/gw_sc" | head -1)
"$AG" bench -H "$G" -m llama3.2 -c 2 -n 40 --scrape-metrics "http://$G/metrics,http://$W/api/ps" --json "$tmp/sc.json" --html "$tmp/sc.html" >/dev/null 2>&1 && ok || bad "scrape run"
grep -q '"scraped":\[{"t_s":' "$tmp/sc.json" && grep -q '"agents_gateway_requests_total":' "$tmp/sc.json" && grep -q '"json":{"models":' "$tmp/sc.json" && ok || bad "scrape: samples missing"
# the page charts what moved: the gateway's request counter as a rate, labels escaped
grep -q "<h2>Server metrics during the run" "$tmp/sc.html" && grep -q ">agents_gateway_requests_total per s<" "$tmp/sc.html" && ok || bad "scrape: no chart in the page"
grep -q 'node=&quot;' "$tmp/sc.html" && ! grep -q 'bold">[^<]*node="' "$tmp/sc.html" && ok || bad "scrape: labels not escaped in the page"
"$AG" bench -H "$W" -m llama3.2 --input-len nonsense >/dev/null 2>&1; [ $? = 2 ] && ok || bad "bad --input-len accepted"
"$AG" bench -H "$W" -m llama3.2 --arrival sometimes >/dev/null 2>&1; [ $? = 2 ] && ok || bad "bad --arrival accepted"

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
