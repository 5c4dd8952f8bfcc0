# A throwaway PostgreSQL server for the test suite; sourced by scripts/test, it only defines two
# functions. start_test_postgres starts the server and exports SUPPORTBOT_TEST_POSTGRES_URL;
# stop_test_postgres stops it and deletes its files. The caller decides when: scripts/test calls
# start_test_postgres (unless SUPPORTBOT_TEST_POSTGRES_URL is already set) and sets
# `trap stop_test_postgres EXIT`.
# initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.

start_test_postgres() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
    echo "test: PostgreSQL server binaries not found (Debian package postgresql; scripts/setup installs it)" >&2
    return 1
  fi
  PG_TEST_DIR="$(mktemp -d /tmp/supportbot-pg.XXXXXX)"
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  local -a as_owner=()
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres "$PG_TEST_DIR"
    as_owner=(runuser -u postgres --)
  fi
  "${as_owner[@]}" "$bin/initdb" -D "$PG_TEST_DIR/data" -A trust -U postgres -E UTF8 >"$PG_TEST_DIR/initdb.log" 2>&1 \
    || { echo "test: initdb failed:" >&2; cat "$PG_TEST_DIR/initdb.log" >&2; return 1; }
  "${as_owner[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w \
    -o "-p $port -k $PG_TEST_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
    || { echo "test: PostgreSQL did not start:" >&2; cat "$PG_TEST_DIR/server.log" >&2; return 1; }
  PG_TEST_STOP=("${as_owner[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -m fast stop)
  export SUPPORTBOT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "test: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

stop_test_postgres() {
  if [[ -n "${PG_TEST_DIR:-}" ]]; then
    "${PG_TEST_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$PG_TEST_DIR"
  fi
}
