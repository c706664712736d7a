#!/bin/sh
# First start: initdb with the password from the environment (through a file, never argv), the database and user.
set -eu
: "${PGDATA:?}" "${POSTGRES_PASSWORD:?}"
USER_="${POSTGRES_USER:-postgres}"
DB="${POSTGRES_DB:-$USER_}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pw="$(mktemp)"; printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
    initdb -D "$PGDATA" -U "$USER_" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pw"
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /tmp" -w start >/dev/null
    [ "$DB" = postgres ] || createdb -h /tmp -U "$USER_" "$DB"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /tmp
