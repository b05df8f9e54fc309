#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on localhost for the distributed-tuning test.
# Installs the distribution's package if needed. Prints the URL to use; prints nothing if it cannot start.
set -u
# a free port (a server left by an earlier run may hold the usual one)
PORT=${REPBENCH_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
find_bin() {
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return; }; done
}
BIN=$(find_bin)
if [ -z "$BIN" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2 || true
  BIN=$(find_bin)
fi
[ -n "$BIN" ] || { echo "postgres: no server binaries found" >&2; exit 0; }
DATA=$(mktemp -d /tmp/repbench-pg.XXXXXX)
RUNAS=""
if [ "$(id -u)" = "0" ]; then
  id postgres >/dev/null 2>&1 || useradd -r postgres >/dev/null 2>&1 || true
  chown -R postgres "$DATA"; RUNAS="runuser -u postgres --"
fi
$RUNAS "$BIN/initdb" -D "$DATA" -U repbench --auth=trust >/dev/null 2>&1 || { echo "postgres: initdb failed" >&2; exit 0; }
$RUNAS "$BIN/pg_ctl" -D "$DATA" -o "-p $PORT -k /tmp -c listen_addresses=localhost" -l "$DATA/log" -w start >/dev/null 2>&1 \
  || { echo "postgres: start failed" >&2; cat "$DATA/log" >&2; exit 0; }
"$BIN/createdb" -h localhost -p "$PORT" -U repbench repbench_test >/dev/null 2>&1 || true
echo "postgresql://repbench@localhost:$PORT/repbench_test"
