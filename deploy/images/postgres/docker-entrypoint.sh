#!/bin/sh
# On an empty PGDATA: initdb with POSTGRES_USER and POSTGRES_PASSWORD, create POSTGRES_DB, run the init scripts on
# a socket-only server (so a TCP pg_isready passes only once they are done); then the server on every address.
set -eu
if [ "${1:-}" != "postgres" ]; then
    exec "$@"
fi
shift
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
    pg_ctl --wait --silent -o "-c listen_addresses=''" start
    if [ "$db" != "postgres" ]; then
        psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres -c "CREATE DATABASE \"$db\""
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --username "$user" --dbname "$db" -f "$f" ;;
            *.sh) echo "running $f"; . "$f" ;;
        esac
    done
    pg_ctl --wait --silent -m fast stop
fi

exec postgres -c listen_addresses='*' "$@"
