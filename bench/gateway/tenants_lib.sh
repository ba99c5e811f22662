# Shared by tenants.sh and learned.sh (sourced; B and tmp set, pids an array):
# simulated nodes, the two keys (a batch flood, an interactive user), a
# gateway started again with other options, and a run's figures.
# sims N ARGS...: N simulated nodes with ARGS; sets NODES (their list)
sims() {
  local nn=$1; shift
  "$B/agents" sim --port 0 --nodes "$nn" "$@" >"$tmp/sim" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ "$(grep -c listening "$tmp/sim" 2>/dev/null)" = "$nn" ] && break; sleep 0.05; done
  NODES=$(sed -n 's/listening on //p' "$tmp/sim" | paste -sd,)
  cat >"$tmp/keys" <<'KEYS'
{"name": "flood", "secret": "flood-secret-1", "priority": "batch"}
{"name": "ui", "secret": "ui-secret-123", "priority": "interactive"}
KEYS
}
gw=
# start_gw ARGS...: a gateway in front of $NODES with the keys (the previous one stopped); sets G
start_gw() {
  [ -n "$gw" ] && kill "$gw" 2>/dev/null && wait "$gw" 2>/dev/null
  "$B/agents" gateway -N "$NODES" --listen 127.0.0.1:0 --max-clients-per-ip -1 --keys-file "$tmp/keys" "$@" >"$tmp/gw" 2>&1 &
  gw=$!
  pids+=($gw)
  for _ in $(seq 100); do grep -q "listening on" "$tmp/gw" && break; sleep 0.05; done
  G=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/gw" | head -1)
}
fig() { # JSON: req/s and TTFT p50/p99
  python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['points'][0]; print(f\"{p['requests_per_s']:8.2f} req/s  TTFT p50 {p['ttft_ms']['p50']:8.1f} ms  p99 {p['ttft_ms']['p99']:8.1f} ms  ({p['ok']} ok, {p['failed']} failed)\")" "$1"
}
