#!/usr/bin/env bash
# API benchmark (issue 2): list and create throughput and latency with 10,000 agents, on SQLite and
# on PostgreSQL, start-up time to ready on an empty SQLite data dir, and the release binary size.
#
#   bench/api.sh              # both backends
#   BACKENDS=sqlite bench/api.sh
#
# Needs wrk (apt-get install wrk), python3, and PostgreSQL at 127.0.0.1:5432 (user postgres).
# Server and load generator share the machine, so the numbers are a floor for a dedicated host.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/monti-target}"
BACKENDS="${BACKENDS:-sqlite postgres}"
DURATION="${DURATION:-15s}"
PG_ADMIN="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"

command -v wrk >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || {
  echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --locked -q
BIN="$CARGO_TARGET_DIR/release/monti"
echo "== binary"
echo "release binary (stripped): $(stat -c %s "$BIN") bytes ($(( $(stat -c %s "$BIN") / 1024 / 1024 )) MiB)"
echo "cores: $(nproc); $(uname -sr)"

echo "== start-up"
python3 bench/tools.py startup "$BIN" 10

run_backend() {
  local backend=$1 data port base token pid url=""
  data=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  base="http://127.0.0.1:$port"
  if [ "$backend" = postgres ]; then
    local db="monti_bench_$$"
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
    url="postgres://postgres@127.0.0.1:5432/$db"
  fi
  # Per-token rate limits would cap a single-token load test; they are a policy, not capacity.
  export MONTI_DATA_DIR="$data" MONTI_LOG_LEVEL=warn MONTI_AUTH__API_RATE_PER_SECOND=0
  if [ -n "$url" ]; then export MONTI_DATABASE_URL="$url"; else unset MONTI_DATABASE_URL; fi
  "$BIN" admin tenant create --slug bench --name Bench >/dev/null
  token=$("$BIN" admin token create --tenant bench --role tenant_admin 2>/dev/null)
  "$BIN" serve --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  pid=$!
  until curl -fs "$base/readyz" >/dev/null; do sleep 0.05; done

  echo "== $backend: create agents (POST /api/v1/agents, 16 connections, $DURATION)"
  MONTI_BENCH_TOKEN="$token" wrk -t2 -c16 -d"$DURATION" --latency -s bench/create_agent.lua "$base" \
    | grep -E "Requests/sec|Latency  |  50%|  99%|Non-2xx|requests in"
  local n
  n=$(python3 bench/tools.py seed "$base" "$token" 10000)
  echo "agents in tenant: $n"

  echo "== $backend: list 100 agents (GET /api/v1/agents?limit=100, 32 connections, $DURATION)"
  wrk -t2 -c32 -d"$DURATION" --latency -H "Authorization: Bearer $token" "$base/api/v1/agents?limit=100" \
    | grep -E "Requests/sec|Latency  |  50%|  99%|Non-2xx|requests in|Transfer/sec"
  echo "== $backend: list 100 agents of one page deep in the set (sorted by name, with a cursor)"
  local cursor
  cursor=$(curl -fs -H "Authorization: Bearer $token" "$base/api/v1/agents?limit=500&sort=name" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')
  wrk -t2 -c32 -d"$DURATION" --latency -H "Authorization: Bearer $token" "$base/api/v1/agents?limit=100&sort=name&cursor=$cursor" \
    | grep -E "Requests/sec|  99%|Non-2xx"
  kill "$pid"; wait "$pid" || true

  # The same list with the page cache off: every request runs the query and serializes.
  MONTI_HTTP__LIST_CACHE_BYTES=0 "$BIN" serve --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  pid=$!
  until curl -fs "$base/readyz" >/dev/null; do sleep 0.05; done
  echo "== $backend: list 100 agents with the page cache off (every request queries the database)"
  wrk -t2 -c32 -d"$DURATION" --latency -H "Authorization: Bearer $token" "$base/api/v1/agents?limit=100" \
    | grep -E "Requests/sec|  50%|  99%|Non-2xx"
  kill "$pid"; wait "$pid" || true
  if [ "$backend" = postgres ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS monti_bench_$$ WITH (FORCE)" >/dev/null; fi
  rm -rf "$data"
}

for backend in $BACKENDS; do run_backend "$backend"; done
