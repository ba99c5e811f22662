#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds the examples as a
# separate project with find_package(agents) and with pkg-config, and runs
# them against a simulated node.
set -eu
SRC=$1 BUILD=$2 AG=$3
tmp=$(mktemp -d)
sim=
trap '[ -n "$sim" ] && kill $sim 2>/dev/null; rm -rf "$tmp"' EXIT
cmake --install "$BUILD" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/agents.h"
# the manual page and the completions, made from the parser's table
test -f "$tmp/prefix/share/man/man1/agents.1"
grep -q -- 'learn\\-slots' "$tmp/prefix/share/man/man1/agents.1"
test -f "$tmp/prefix/share/bash-completion/completions/agents"
test -f "$tmp/prefix/share/zsh/site-functions/_agents"
test -f "$tmp/prefix/lib/pkgconfig/agents.pc" || test -f "$tmp"/prefix/lib/*/pkgconfig/agents.pc
cmake -S "$SRC/examples" -B "$tmp/ex" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/ex" >/dev/null
pcdir=$(dirname "$(find "$tmp/prefix" -name agents.pc | head -1)")
libdir=$(dirname "$pcdir")
PKG_CONFIG_PATH=$pcdir cc -std=c11 -Wall -Werror -o "$tmp/pc_chat" "$SRC/examples/chat_stream.c" \
  $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs agents)
"$AG" sim --port 0 --tokens 5 >"$tmp/sim" 2>&1 &
sim=$!
for _ in $(seq 100); do grep -q listening "$tmp/sim" && break; sleep 0.05; done
port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/sim" | head -1)
OLLAMA_HOST=127.0.0.1:$port LD_LIBRARY_PATH=$libdir "$tmp/ex/chat_stream" llama3.2 hi | grep -q "\[5 tokens"
OLLAMA_HOST=127.0.0.1:$port LD_LIBRARY_PATH=$libdir "$tmp/ex/embed_sync" nomic-embed-text a b | grep -q cosine
OLLAMA_HOST=127.0.0.1:$port LD_LIBRARY_PATH=$libdir "$tmp/pc_chat" llama3.2 hi | grep -q "\[5 tokens"
OLLAMA_HOST=127.0.0.1:$port LD_LIBRARY_PATH=$libdir "$tmp/ex/tool_agent" llama3.2 "weather in Oslo" | grep -q get_weather
# a consumer with its own PkgConfig::LIBEVENT (libevent_pthreads) and its own llhttp,
# linking the static library: its variables and target stay, both parsers work
cmake -S "$SRC/test/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
"$tmp/consumer/consumer" "127.0.0.1:$port" | grep -q "own llhttp: 5 body bytes; agents: status 0"
# the pkg-config file: OpenSSL and yajl only for static links
pc=$(PKG_CONFIG_PATH=$pcdir pkg-config --libs agents)
case "$pc" in *ssl*|*yajl*) echo "pkg-config --libs agents names private dependencies: $pc"; exit 1;; esac
PKG_CONFIG_PATH=$pcdir pkg-config --static --libs agents | grep -q -- -lyajl
# the Python package, installed beside the library, finds it on its own
site=$(find "$tmp/prefix" -type d -name cagents -path '*dist-packages*' | head -1)
test -n "$site" && test -f "$site/_libpath.py"
py=/usr/bin/python3; [ -x "$py" ] || py=python3
env -u CAGENTS_LIB PYTHONPATH="$(dirname "$site")" "$py" -c "
import cagents, cagents._native as N
assert N.lib._name.startswith('$tmp/prefix'), N.lib._name
print(cagents.ChatAgent(cagents.LocalOllamaClient('llama3.2', 'http://127.0.0.1:$port')).get_full_response([{'role': 'user', 'content': 'hi'}]))
" | grep -q .
echo "install + find_package + pkg-config + a hostile consumer + the Python package: ok"
