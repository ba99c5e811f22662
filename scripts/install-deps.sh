#!/usr/bin/env bash
# Installs the Debian 12 packages that building and the demo need (with --test,
# also what the test suite needs).
# Does nothing when they are all present. Run as root (or with sudo available).
set -euo pipefail
pkgs=(cmake make gcc pkg-config libevent-dev libyajl-dev libssl-dev node-llhttp valgrind)
# --test: what only the test suite needs (headless Chromium renders the bench report
# and the gateway's dashboard; curl and Node.js with npm drive the gateway as clients;
# libuv for the example that embeds the engine in a libuv program; Python 3 for the
# Python package, numpy for the original package's embeddings example it runs, jsonschema
# to check the simulated node's structured output against its schemas;
# clang for the Release build CI makes with it besides gcc)
[ "${1:-}" = "--test" ] && pkgs+=(chromium curl nodejs npm libuv1-dev python3 python3-numpy python3-jsonschema openssl clang)
# --peers: the side-by-side benchmark's other clients (bench/peers/run.sh)
[ "${1:-}" = "--peers" ] && pkgs+=(python3-aiohttp libcurl4-openssl-dev nodejs npm time nginx curl)
missing=()
for p in "${pkgs[@]}"; do
  # a Node.js installed another way (NodeSource, nvm) brings its own npm, and
  # Debian's npm package would conflict with it: a working node + npm is enough
  if [ "$p" = nodejs ] || [ "$p" = npm ]; then command -v node >/dev/null && command -v npm >/dev/null && continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
