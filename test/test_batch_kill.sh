#!/usr/bin/env bash
# `agents batch` killed with SIGKILL halfway, then run again with the same
# output: every id exactly once, all answered.
set -u
AG=$1
tmp=$(mktemp -d)
sim=
trap '[ -n "$sim" ] && kill $sim 2>/dev/null; rm -rf "$tmp"' EXIT
"$AG" sim --port 0 --tokens 10 --itl 2 >"$tmp/sim" 2>&1 &
sim=$!
for _ in $(seq 100); do grep -q listening "$tmp/sim" && break; sleep 0.05; done
H=$(sed -n 's/listening on //p' "$tmp/sim")
seq 1 10000 | awk '{printf "{\"id\": %d, \"prompt\": \"task %d\"}\n", $1, $1}' >"$tmp/in.jsonl"
"$AG" batch -H "$H" -m llama3.2 --in "$tmp/in.jsonl" --out "$tmp/out.jsonl" -c 256 --no-progress 2>"$tmp/err1" &
pid=$!
for _ in $(seq 200); do [ -s "$tmp/out.jsonl" ] && [ "$(wc -l <"$tmp/out.jsonl")" -gt 2000 ] && break; sleep 0.02; done
kill -9 $pid
wait $pid 2>/dev/null
first=$(wc -l <"$tmp/out.jsonl")
echo "killed after $first results"
if [ "$first" -ge 10000 ] || [ "$first" -lt 1 ]; then echo "FAIL: the kill did not land halfway ($first)"; exit 1; fi
"$AG" batch -H "$H" -m llama3.2 --in "$tmp/in.jsonl" --out "$tmp/out.jsonl" -c 256 --no-progress 2>"$tmp/err2" || { cat "$tmp/err2"; exit 1; }
cat "$tmp/err2"
total=$(wc -l <"$tmp/out.jsonl")
unique=$(sed -n 's/^{"id":\([0-9]*\),.*/\1/p' "$tmp/out.jsonl" | sort -u | wc -l)
answered=$(grep -c '"response":' "$tmp/out.jsonl")
dups=$(sed -n 's/^{"id":\([0-9]*\),.*/\1/p' "$tmp/out.jsonl" | sort | uniq -d | wc -l)
echo "lines $total, unique ids $unique, answered $answered, duplicated ids $dups"
[ "$total" = 10000 ] && [ "$unique" = 10000 ] && [ "$answered" = 10000 ] && [ "$dups" = 0 ] || { echo FAIL; exit 1; }
grep -q "skipped (done before)" "$tmp/err2" || { echo "FAIL: no resume summary"; exit 1; }
echo "1 passed, 0 failed"
