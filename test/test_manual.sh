#!/usr/bin/env bash
# The manual page and the bash and zsh completions are made from the parser's
# own table (cli/options.c): every command and option the parser knows is in
# each, the page renders cleanly, and the bash completion completes commands,
# options, fixed values and the node's model names.
# Usage: test_manual.sh AGENTS
set -u
AG=$1
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
tmp=$(mktemp -d)
sim=
cleanup() { [ -n "$sim" ] && kill "$sim" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$AG" __options >"$tmp/known" || bad "__options"
"$AG" __man >"$tmp/agents.1" || bad "__man"
"$AG" completion bash >"$tmp/agents.bash" || bad "completion bash"
"$AG" completion zsh >"$tmp/_agents" || bad "completion zsh"
"$AG" completion fish >/dev/null 2>&1; [ $? = 2 ] && ok || bad "completion fish is not a usage error"
[ "$(grep -c '^option ' "$tmp/known")" -gt 100 ] && ok || bad "the parser knows too few options: $(wc -l <"$tmp/known")"

# every command and every option, in all three
while read -r kind name short; do
  if [ "$kind" = command ]; then
    grep -q "^\.B agents $name" "$tmp/agents.1" && ok || bad "man: no command $name"
    grep -qw -- "$name" "$tmp/agents.bash" && ok || bad "bash: no command $name"
    grep -q -- "'$name:" "$tmp/_agents" && ok || bad "zsh: no command $name"
  else
    roff=${name//-/\\-}
    grep -qF -- "\\fB$roff\\fR" "$tmp/agents.1" && ok || bad "man: no option $name"
    grep -qw -- "$name" "$tmp/agents.bash" && ok || bad "bash: no option $name"
    grep -qw -- "$name" "$tmp/_agents" && ok || bad "zsh: no option $name"
    if [ -n "$short" ]; then
      grep -qF -- "\\fB\\${short}\\fR" "$tmp/agents.1" && ok || bad "man: no short option $short ($name)"
    fi
  fi
done <"$tmp/known"

# the page renders without a warning; the scripts parse
if command -v groff >/dev/null; then
  groff -man -ww -z "$tmp/agents.1" 2>"$tmp/groff.err"
  [ ! -s "$tmp/groff.err" ] && ok || bad "groff warns: $(head -5 "$tmp/groff.err")"
  groff -man -Tutf8 "$tmp/agents.1" 2>/dev/null | grep -q "interactive" && ok || bad "the page does not render"
fi
bash -n "$tmp/agents.bash" && ok || bad "bash completion does not parse"
if command -v zsh >/dev/null; then zsh -n "$tmp/_agents" && ok || bad "zsh completion does not parse"; fi

# the bash completion at work: COMP_WORDS as bash sets them
complete_words() { # complete_words WORD... ; prints COMPREPLY, one a line
  PATH="$(dirname "$AG"):$PATH" OLLAMA_HOST="${H:-127.0.0.1:1}" bash -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    _agents; printf "%s\n" "${COMPREPLY[@]}"' _ "$tmp/agents.bash" "$@"
}
complete_words agents ch | grep -qx chat && ok || bad "bash: 'agents ch' does not complete chat"
complete_words agents l | grep -qx ls && ok || bad "bash: 'agents l' does not complete ls"
complete_words agents chat --mo | grep -qx -- --model && ok || bad "bash: 'chat --mo' does not complete --model"
complete_words agents chat --think "" | grep -qx high && ok || bad "bash: '--think' values"
complete_words agents sim --pr | grep -qx -- --prefill-rate && ok || bad "bash: sim's own options"
complete_words agents chat --pre | grep -q -- --prefill-rate && bad "bash: chat offered sim's --prefill-rate" || ok
# model names from the node's /api/tags
"$(dirname "$AG")/$(basename "$AG")" sim --port 0 >"$tmp/sim" 2>&1 &
sim=$!
for _ in $(seq 100); do grep -q listening "$tmp/sim" 2>/dev/null && break; sleep 0.05; done
H=$(sed -n 's/.*listening on \(.*\)$/\1/p' "$tmp/sim" | head -1)
[ -n "$H" ] && ok || bad "the sim did not start"
complete_words agents run "" | grep -qx "llama3.2:latest" && ok || bad "bash: 'agents run' does not complete model names: $(complete_words agents run '')"
complete_words agents chat -m q | grep -qx "qwen3:4b" && ok || bad "bash: '-m q' does not complete qwen3:4b"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
