#!/usr/bin/env bash
# The agents CLI on the peers' workload: `agents bench` with the same numbers.
#   agents_cli.sh AGENTS HOST MODE N CONCURRENCY
AG=$1 H=$2 MODE=$3 N=$4 C=$5
out=$(mktemp)
ep=chat; [ "$MODE" = embed ] && ep=embed
model=llama3.2; [ "$MODE" = embed ] && model=nomic-embed-text
"$AG" bench -H "$H" -m "$model" --endpoint "$ep" -c "$C" -n "$N" --prompts /dev/stdin --json "$out" >/dev/null 2>&1 <<<"peer benchmark"
count=$(sed -n 's/.*"output_tokens":\([0-9]*\).*/\1/p' "$out")
ttft=$(sed -n 's/.*"ttft_ms":{"n":[0-9]*,"mean":[-0-9.]*,"p50":\([-0-9.]*\).*/\1/p' "$out")
rm -f "$out"
echo "{\"count\": ${count:-0}, \"ttft_p50_ms\": ${ttft:--1}}"
