#!/usr/bin/env bash
# The layers, bottom up, and the only arrows allowed between them (every
# #include of a project header, and every CMake link of a project target):
#
#   include/        the public headers: anyone
#   core/base/      helpers: buffer, arena, JSON writing, UTF-8, clock, allocation
#   transport/      connections and HTTP framing (client conn.c, server server.c)
#   core/           the client contract, local client, pool, codecs
#   core/gateway/   the gateway, on the public API + core/client_ext.h + core/errclass.h
#   core/engine/    a client on its own thread for any thread or loop: public API only
#   agents/         agents, retrieval, summaries, batch, on the public API + core/errclass.h
#   bench/sim, bench/nodebench   what the program ships from bench/
#   cli/            the agents program
#
# A file may include its own layer and any layer below it, except where a
# layer is allowed only a named interface of a lower one (the gateway and the
# agents do not see core's internals). Nothing includes cli/; the library never
# includes bench/. Exit 1 with every upward edge listed.
set -uo pipefail
src=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$src" || exit 2

layer_of() { # path -> layer name
  case $1 in
    include/*) echo include ;;
    core/base/*) echo base ;;
    transport/*) echo transport ;;
    core/gateway/*) echo gateway ;;
    core/engine/*) echo engine ;;
    core/*) echo core ;;
    agents/*) echo agents ;;
    bench/sim/*) echo sim ;;
    bench/nodebench/*) echo nodebench ;;
    bench/*) echo benchtools ;;
    cli/*) echo cli ;;
    *) echo other ;;
  esac
}

# the header an include names, as a path from the top ("" when not ours)
resolve() { # including-file include-text
  local from=$1 inc=$2
  case $inc in
    agents.h) echo include/agents.h; return ;;
    agents/*) [ -f "include/$inc" ] && { echo "include/$inc"; return; } ;;
    sim.h) echo bench/sim/sim.h; return ;;
    nodebench.h) echo bench/nodebench/nodebench.h; return ;;
    spawn.h) echo bench/micro/spawn.h; return ;;
  esac
  [ -f "$inc" ] && { echo "$inc"; return; }
  [ -f "$(dirname "$from")/$inc" ] && { echo "$(dirname "$from")/$inc"; return; }
  echo ""
}

# allowed FROM TO-LAYER TO-PATH
allowed() {
  local from=$1 to=$2 path=$3
  [ "$to" = include ] && return 0
  case $from in
    base) [ "$to" = base ] ;;
    transport) [[ $to == base || $to == transport ]] ;;
    core) [[ $to == base || $to == transport || $to == core ]] ;;
    gateway) [[ $to == base || $to == gateway || $path == transport/server.h || $path == core/client_ext.h || $path == core/errclass.h ]] ;;
    engine) [[ $to == base || $to == engine ]] ;;
    agents) [[ $to == base || $to == agents || $path == core/errclass.h || $path == core/client_ext.h ]] ;;
    sim|nodebench) [[ $to == base || $to == "$from" ]] ;;
    benchtools) [ "$to" != cli ] ;; # micro-benchmarks measure internals too
    cli) [[ $to == cli || $to == sim || $to == nodebench ]] ;;
    include) [ "$to" = include ] ;;
    *) return 0 ;;
  esac
}

bad=0 edges=0
while IFS= read -r f; do
  from=$(layer_of "$f")
  while IFS= read -r inc; do
    path=$(resolve "$f" "$inc")
    [ -z "$path" ] && continue
    edges=$((edges + 1))
    to=$(layer_of "$path")
    if ! allowed "$from" "$to" "$path"; then
      echo "upward or sideways edge: $f ($from) includes $path ($to)"
      bad=$((bad + 1))
    fi
  done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/p' "$f")
done < <(find include core transport agents cli bench -name '*.[ch]' | sort)

# CMake: the library's sources and links never name bench/ or cli/ targets
lib=$(sed -n '/^set(AG_SOURCES/,/)/p' CMakeLists.txt)
if grep -qE 'bench/|cli/' <<<"$lib"; then echo "the library's sources include bench/ or cli/ files"; bad=$((bad + 1)); fi
for t in agents agents_obj agents_static; do
  if grep -E "target_link_libraries\($t " CMakeLists.txt | grep -qE 'agsim|agnodebench|agents_cli'; then
    echo "CMake: $t links a bench or cli target"; bad=$((bad + 1))
  fi
done
if grep -E 'target_link_libraries\((agsim|agnodebench) ' CMakeLists.txt | grep -q agents_cli; then
  echo "CMake: a bench target links the cli"; bad=$((bad + 1))
fi

echo "$edges include edges read, $bad against the layering"
[ "$bad" = 0 ]
