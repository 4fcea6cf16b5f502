#!/usr/bin/env bash
# Does recycling gthread workers (max_requests) cost requests behind nginx? Runs Gunicorn
# with a very low max_requests behind nginx on a unix socket, under wrk (which retries
# nothing), for each nginx upstream set-up, and prints the errors wrk and nginx saw.
# Needs nginx and wrk on this machine (Debian packages); uses 127.0.0.1:18777 only.
#   bench/leak_guard/run.sh [seconds per case]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-30}
work=$(mktemp -d /tmp/gantry-leak-guard.XXXXXX)
# nginx workers run as an unprivileged user and must reach the socket.
chmod 755 "$work"
trap 'nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true; [ -f "$work/gunicorn.pid" ] && kill "$(cat "$work/gunicorn.pid")" 2>/dev/null || true' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check gunicorn==26.1.0

run_case() {  # name, upstream servers, keepalive (yes|no), wrk args...
  local name=$1 servers=$2 keepalive=$3; shift 3
  local upstream_keepalive="" connection_header=""
  if [ "$keepalive" = yes ]; then
    upstream_keepalive="keepalive 16;"
    connection_header='proxy_http_version 1.1; proxy_set_header Connection "";'
  fi
  cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  upstream app { $servers $upstream_keepalive }
  server {
    listen 127.0.0.1:18777;
    location / { proxy_pass http://app; $connection_header proxy_next_upstream error timeout; }
  }
}
CONF
  : > "$work/error.log"
  rm -f "$work/app.sock"
  "$work/venv/bin/gunicorn" --chdir "$here" --bind "unix:$work/app.sock" --workers 3 --threads 4 \
    --worker-class gthread --max-requests 20 --max-requests-jitter 5 --log-level warning \
    --daemon --pid "$work/gunicorn.pid" app:app
  sleep 1.5
  nginx -p "$work" -c "$work/nginx.conf"
  sleep 0.5
  local report
  report=$(wrk -t2 -c32 -d"${seconds}s" "$@" http://127.0.0.1:18777/)
  nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null
  kill "$(cat "$work/gunicorn.pid")"
  sleep 1
  local total errors failed
  total=$(grep -oE '^ +[0-9]+ requests in' <<<"$report" | grep -oE '[0-9]+')
  errors=$(grep -oE 'Socket errors: .*' <<<"$report" || echo "Socket errors: none")
  failed=$(grep -oE 'Non-2xx or 3xx responses: [0-9]+' <<<"$report" | grep -oE '[0-9]+$' || echo 0)
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$total" "$failed" "$errors" \
    "$(grep -c 'prematurely closed' "$work/error.log" || true)"
}

sock="server unix:$work/app.sock max_fails=0;"
echo "| nginx upstream, client | requests | failed | wrk socket errors | upstream closed early |"
echo "| --- | --- | --- | --- | --- |"
run_case "keepalive, GET" "$sock" yes
run_case "keepalive, POST" "$sock" yes -s "$here/post.lua"
run_case "no keepalive, GET" "$sock" no
run_case "no keepalive, GET, Connection: close" "$sock" no -H "Connection: close"
run_case "no keepalive, POST" "$sock" no -s "$here/post.lua"
run_case "no keepalive, socket listed twice, POST" "$sock $sock" no -s "$here/post.lua"
