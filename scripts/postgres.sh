#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL cluster for the tests, from Debian's postgresql binaries.
# Usage: scripts/postgres.sh start|stop|url   (data under .hub/postgres, port $HUB_PG_PORT or 55432)
set -euo pipefail
cd "$(dirname "$0")/.."
port="${HUB_PG_PORT:-55432}"
dir="$PWD/.hub/postgres"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
url="postgresql+asyncpg://hub@127.0.0.1:${port}/postgres"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
  start)
    [ -n "$bin" ] || { echo "postgres: no PostgreSQL binaries (apt-get install postgresql)" >&2; exit 3; }
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bin/initdb" -D "$dir/data" -U hub --auth=trust -E UTF8 >/dev/null
    fi
    if as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      echo "$url"; exit 0
    fi
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    echo "$url"
    ;;
  stop)
    [ -n "$bin" ] && [ -f "$dir/data/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    ;;
  url) echo "$url" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
