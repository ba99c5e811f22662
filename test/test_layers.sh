#!/usr/bin/env bash
# The layers, bottom up, and the only arrows allowed between them (every
# #include of a project header, and every CMake link of a project target):
#
#   include/        the public headers: anyone
#   core/base/      helpers: buffer, arena, JSON writing, UTF-8, clock, allocation
#   transport/      connections and HTTP framing (client conn.c, server server.c)
#   core/           the client contract, local client, pool, codecs
#   core/gateway/   the gateway, on the public API + core/client_ext.h + core/errclass.h
#   agents/         agents, retrieval, summaries, batch, on the public API + core/errclass.h
#   engine/         a client on its own thread for any thread or loop, running agent
#                   tasks too: the public API only, above the agents
#   bench/sim, bench/nodebench   what the program ships from bench/
#   cli/            the agents program
#
# A file may include its own layer and any layer below it, except where a
# layer is allowed only a named interface of a lower one (the gateway and the
# agents do not see core's internals). Nothing includes cli/; the library never
# includes bench/.
#
# Calls too: with the library's object directory as a second argument, each
# object's undefined symbols are looked up among the symbols the others
# define, and a call into a layer above (or sideways: the gateway and the
# agents are apart) is an edge against the layering, whatever the headers
# let it see. Exit 1 with every upward edge listed.
set -uo pipefail
src=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$src" || exit 2

layer_of() { # path -> layer name
  case $1 in
    include/*) echo include ;;
    core/base/*) echo base ;;
    transport/*) echo transport ;;
    core/gateway/*) echo gateway ;;
    core/*) echo core ;;
    agents/*) echo agents ;;
    engine/*) echo engine ;;
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
    agents/*) [ -f "include/$inc" ] && { echo "include/$inc"; return; }
              echo "ambiguous: $inc names include/agents/ (public) and agents/ (private); include a private header by its own folder" >&2
              echo "AMBIGUOUS"; return ;;
    sim.h) echo bench/sim/sim.h; return ;;
    nodebench.h) echo bench/nodebench/nodebench.h; return ;;
    spawn.h) echo test/spawn.h; return ;;
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
    if [ "$path" = AMBIGUOUS ]; then
      echo "ambiguous include in $f: $inc"
      bad=$((bad + 1))
      continue
    fi
    edges=$((edges + 1))
    to=$(layer_of "$path")
    if ! allowed "$from" "$to" "$path"; then
      echo "upward or sideways edge: $f ($from) includes $path ($to)"
      bad=$((bad + 1))
    fi
  done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/p' "$f")
done < <(find include core transport agents engine cli bench -name '*.[ch]' | sort)

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

# calls: the library's objects (CMakeFiles/agents_obj.dir) by their symbols
rank_of() { # a layer's height; the gateway and the agents share one and may not call each other
  case $1 in
    base) echo 0 ;; transport) echo 1 ;; core) echo 2 ;; gateway|agents) echo 3 ;; engine) echo 4 ;; *) echo 9 ;;
  esac
}
calls=0
objdir=${2:-}
if [ -n "$objdir" ]; then
  if [ ! -d "$objdir" ]; then echo "no object directory $objdir"; exit 2; fi
  declare -A def_layer=()
  # (objects of sources that are no longer there, left by an earlier build, are not read)
  objs=$( (cd "$objdir" && find . -name '*.o' | sed 's|^\./||' | sort) | while read -r o; do [ -f "${o%.o}" ] && echo "$o"; done)
  [ -n "$objs" ] || { echo "no objects under $objdir"; exit 2; }
  for o in $objs; do
    l=$(layer_of "${o%.o}")
    while read -r sym; do def_layer[$sym]=$l; done < <(nm --defined-only -g "$objdir/$o" | awk '$2 ~ /[TDBR]/ {print $3}')
  done
  for o in $objs; do
    from=$(layer_of "${o%.o}")
    while read -r sym; do
      to=${def_layer[$sym]:-}
      [ -z "$to" ] && continue
      calls=$((calls + 1))
      [ "$to" = "$from" ] && continue
      if [ "$(rank_of "$to")" -ge "$(rank_of "$from")" ]; then
        echo "upward or sideways call: $o ($from) uses $sym, defined in $to"
        bad=$((bad + 1))
      fi
    done < <(nm -u "$objdir/$o" | awk '{print $2}')
  done
fi

echo "$edges include edges and $calls calls read, $bad against the layering"
[ "$bad" = 0 ]
