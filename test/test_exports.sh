#!/usr/bin/env bash
# The shared library exports exactly the functions the public headers declare
# (AG_API): nothing internal (ag__*, agents/ helpers, llhttp) leaks into a host
# program's namespace, and nothing declared is missing.
set -euo pipefail
so=$1 inc=$2
declared=$(cat "$inc"/agents/*.h | tr '\n' ' ' | grep -oE 'AG_API [^(;]*\(' |
           sed -E 's/\($//; s/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)$/\1/' | grep '^ag_' | sort -u)
exported=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort -u)
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
n=$(echo "$declared" | wc -l)
if [ -n "$extra" ] || [ -n "$missing" ]; then
  [ -n "$extra" ] && { echo "exported but declared in no public header:"; echo "$extra" | sed 's/^/  /'; }
  [ -n "$missing" ] && { echo "declared but not exported:"; echo "$missing" | sed 's/^/  /'; }
  exit 1
fi
undecorated=$(grep -hE '^[a-z][^(]*\b(ag_[a-z0-9_]+)\(' "$inc"/agents/*.h | grep -vE '^(AG_API|typedef|extern)' || true)
if [ -n "$undecorated" ]; then echo "public declarations without AG_API:"; echo "$undecorated"; exit 1; fi
echo "libagents.so exports exactly the $n functions the headers declare"
