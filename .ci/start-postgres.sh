#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1:${LGS_PG_PORT:-54329} (trust auth).
set -euo pipefail
PORT="${LGS_PG_PORT:-54329}"
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
DATA="${LGS_PG_DATA:-/tmp/lgs-pg-$PORT}"
if pg_isready -h 127.0.0.1 -p "$PORT" >/dev/null 2>&1; then
  echo "postgres already up on 127.0.0.1:$PORT"; exit 0
fi
rm -rf "$DATA"; mkdir -p "$DATA"; chown postgres:postgres "$DATA"
su postgres -c "$PGBIN/initdb -D $DATA/data -A trust -U postgres >/dev/null"
su postgres -c "$PGBIN/pg_ctl -D $DATA/data -l $DATA/log -w -o '-c listen_addresses=127.0.0.1 -p $PORT -k $DATA' start >/dev/null"
pg_isready -h 127.0.0.1 -p "$PORT"
