#!/bin/sh
# prefix_llhttp.sh NM OBJCOPY RANLIB LLHTTP_ARCHIVE ARCHIVE
# Renames llhttp's global symbols in ARCHIVE (definitions and our references
# alike) to ag__llhttp...: a program that links libagents.a and has its own
# llhttp keeps its own. The shared library hides them by visibility instead.
set -eu
nm=$1 objcopy=$2 ranlib=$3 llhttp=$4 archive=$5
map=$archive.llhttp-syms
"$nm" -g --defined-only "$llhttp" | awk 'NF == 3 && $3 ~ /^llhttp/ { print $3, "ag__" $3 }' | sort -u >"$map"
"$objcopy" --redefine-syms="$map" "$archive"
"$ranlib" "$archive"
rm -f "$map"
