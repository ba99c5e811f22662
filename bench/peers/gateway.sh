#!/usr/bin/env bash
# The gateway against a plain reverse proxy doing the same job, side by side in
# one run: Debian's nginx (proxy_buffering off, upstream keep-alive, one worker)
# and `agents gateway`, both in front of the same simulated node, and the node
# directly. Alternating rounds (direct, gateway, nginx, direct, ...); medians.
#   bash bench/peers/gateway.sh BUILD_DIR [rounds]
# Figures: the proxy process's CPU (user+sys, from /proc) per streamed token
# under load (4,000 chats of 256 tokens, 64 at once, through the raw reader
# client), and first-token latency at one request at a time (300 requests,
# keep-alive), added over the direct path. Needs nginx (scripts/install-deps.sh --peers).
# A fourth path, "observed", is a second gateway with the operator's view on: an access
# log line a request (to a file) and every request's spans exported as OTLP/HTTP JSON to
# a collector on loopback (a small Python sink answering 200).
set -eu
B=${1:-build/release}
ROUNDS=${2:-3}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx not found: bash scripts/install-deps.sh --peers" >&2; exit 2; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
wait_line() { for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

"$B/agents" sim --port 0 --tokens 256 >"$tmp/sim" 2>&1 & pids+=($!)
wait_line "$tmp/sim" listening
S=$(sed -n 's/listening on //p' "$tmp/sim")
"$B/agents" gateway --listen 127.0.0.1:0 -N "$S" --max-clients-per-ip -1 --max-in-flight 256 >"$tmp/gw" 2>&1 & gw=$!; pids+=($gw)
wait_line "$tmp/gw" "gateway listening"
G=$(sed -n 's/gateway listening on //p' "$tmp/gw")
python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("sink on", s.server_address[1], flush=True)
s.serve_forever()' >"$tmp/sink" 2>&1 & pids+=($!)
wait_line "$tmp/sink" "sink on"
SINK=$(sed -n 's/sink on //p' "$tmp/sink")
"$B/agents" gateway --listen 127.0.0.1:0 -N "$S" --max-clients-per-ip -1 --max-in-flight 256 --access-log "$tmp/access.log" \
  --otlp-endpoint "http://127.0.0.1:$SINK" >"$tmp/ogw" 2>&1 & ogw=$!; pids+=($ogw)
wait_line "$tmp/ogw" "gateway listening"
O=$(sed -n 's/gateway listening on //p' "$tmp/ogw")
# below Linux's ephemeral range (32768-60999), so that no outgoing connection holds it
NPORT=$(( (RANDOM % 10000) + 20000 ))
mkdir -p "$tmp/ngx"
cat >"$tmp/ngx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process on;
user root;
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $tmp/ngx/body; proxy_temp_path $tmp/ngx/proxy;
  fastcgi_temp_path $tmp/ngx/fcgi; uwsgi_temp_path $tmp/ngx/uwsgi; scgi_temp_path $tmp/ngx/scgi;
  upstream node { server $S; keepalive 256; }
  server {
    listen 127.0.0.1:$NPORT;
    location / {
      proxy_pass http://node;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 3600s;
    }
  }
}
CONF
"$NGINX" -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" >"$tmp/ngx/out" 2>&1 & ngx=$!; pids+=($ngx)
up=0
for _ in $(seq 100); do curl -s "http://127.0.0.1:$NPORT/" >/dev/null 2>&1 && { up=1; break; }; sleep 0.05; done
[ $up = 1 ] || { echo "nginx did not start on port $NPORT:" >&2; tail -3 "$tmp/ngx/error.log" >&2; exit 1; }
N=127.0.0.1:$NPORT

cpu_ticks() { # the process and its children (nginx's worker), utime+stime in clock ticks
  local t=0 p
  for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo $t
}
HZ=$(getconf CLK_TCK)
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for r in $(seq "$ROUNDS"); do
  for t in direct gateway observed nginx; do
    case $t in direct) H=$S; P=;; gateway) H=$G; P=$gw;; observed) H=$O; P=$ogw;; nginx) H=$N; P=$ngx;; esac
    c0=0; [ -n "$P" ] && c0=$(cpu_ticks "$P")
    out=$("$B/bench/peer_raw" "$H" chat 4000 64)
    c1=0; [ -n "$P" ] && c1=$(cpu_ticks "$P")
    count=$(sed -n 's/.*"count": *\([0-9]*\).*/\1/p' <<<"$out")
    tokens=$((count - 4000)) # the raw reader counts the final objects too
    lat=$("$B/bench/peer_raw" "$H" latency 300 1 | sed -n 's/.*"ttft_p50_ms": *\([-0-9.]*\).*/\1/p')
    echo "$t $tokens $(( c1 - c0 )) $lat" >>"$tmp/all"
  done
done

echo "# gateway vs nginx: $ROUNDS alternating rounds; medians"
echo "# nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), agents $("$B/agents" --version 2>/dev/null | head -1)"
printf "%-8s %10s %16s %14s %14s\n" path tokens "proxy_us/token" "ttft_p50_ms" "added_ttft_us"
base_lat=$(awk '$1=="direct" {print $4}' "$tmp/all" | median)
for t in direct gateway observed nginx; do
  tok=$(awk -v t=$t '$1==t {print $2}' "$tmp/all" | median)
  cpu=$(awk -v t=$t -v hz="$HZ" '$1==t && $2>0 {printf "%.3f\n", $3 / hz * 1e6 / $2}' "$tmp/all" | median)
  lat=$(awk -v t=$t '$1==t {print $4}' "$tmp/all" | median)
  add=$(awk -v a="$lat" -v b="$base_lat" 'BEGIN {printf "%+.1f", (a - b) * 1000}')
  [ $t = direct ] && cpu=-
  printf "%-8s %10s %16s %14s %14s\n" $t "$tok" "$cpu" "$lat" "$add"
done
echo "# observed: $(wc -l <"$tmp/access.log") access log lines; $(curl -s "http://$O/metrics" | grep -E '^agents_otlp_spans_(exported|dropped)_total' | tr '\n' ' ')"
echo "# every round: path tokens proxy_cpu_ticks ttft_p50_ms"
cat "$tmp/all"
