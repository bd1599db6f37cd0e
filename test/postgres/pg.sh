#!/usr/bin/env bash
# A throwaway PostgreSQL (Debian 12's postgresql-15) for the dynamic-secrets tests.
#
#   pg.sh install        install postgresql-15 with apt-get when missing (root only), print bindir
#   pg.sh start DIR      start a server with its data in DIR (created; must not exist or be empty)
#                        on 127.0.0.1 at a random free port, as a non-root user; prints the port
#   pg.sh stop DIR       stop it (fast shutdown) and remove DIR
#
# The server listens on loopback only, with password (scram) authentication for TCP and a
# superuser "cs_admin" whose password is in DIR/admin-password (mode 0600). An initdb'd
# template is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/postgres-15 so each
# start costs a copy, not an initdb. PostgreSQL refuses to run as root: as root the server runs
# as the "postgres" account the Debian package creates (or "nobody" without it).
set -euo pipefail

log() { printf 'pg.sh: %s\n' "$*" >&2; }

bindir=/usr/lib/postgresql/15/bin

install() {
  # pg8000 (pure Python, PyPI) is the driver the supervise tests' database child uses.
  if ! python3 -c 'import pg8000' 2>/dev/null; then
    log "pip install pg8000"
    python3 -m pip install -q pg8000 >&2
  fi
  if [[ -x $bindir/initdb && -x $bindir/pg_ctl && -x /usr/bin/psql ]]; then
    return
  fi
  if [[ $(id -u) != 0 ]]; then
    log "postgresql-15 is missing; run as root or: apt-get install postgresql-15 postgresql-client-15"
    exit 1
  fi
  log "apt-get install postgresql-15"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the package from starting the system-wide cluster service.
  apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 >/dev/null
}

run_as() {
  # Runs "$@" as the server's user.
  if [[ $(id -u) == 0 ]]; then
    local user=postgres
    id -u postgres >/dev/null 2>&1 || user=nobody
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

server_user() {
  if [[ $(id -u) == 0 ]]; then
    id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody
  else
    id -un
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

template() {
  # Prints the path of a cached initdb'd cluster (built once, under a lock).
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/crunch-secrets/postgres-15
  local user
  user=$(server_user)
  local tpl=$cache/template-$user
  mkdir -p "$cache"
  chmod 0755 "$cache"
  (
    flock 9
    if [[ ! -f $tpl/PG_VERSION ]]; then
      # initdb runs where the server's user can reach (root's home is private), then the
      # result moves into the cache.
      local tmp
      tmp=$(mktemp -d /tmp/cs-pg-initdb.XXXXXX)
      chmod 0755 "$tmp"
      if [[ $(id -u) == 0 ]]; then chown "$user" "$tmp"; fi
      run_as "$bindir/initdb" -D "$tmp/data" -U cs_bootstrap --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
      rm -rf "$tpl.new"
      cp -a "$tmp/data" "$tpl.new"
      mv "$tpl.new" "$tpl"
      rm -rf "$tmp"
    fi
  ) 9>"$cache/.lock"
  echo "$tpl"
}

start() {
  local dir=$1
  install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ -z $(ls -A "$dir") ]] || { log "$dir is not empty"; exit 1; }
  local user tpl port pw
  user=$(server_user)
  tpl=$(template)
  chmod 0755 "$dir"
  cp -a "$tpl" "$dir/data"
  if [[ $(id -u) == 0 ]]; then chown -R "$user" "$dir/data" "$dir"; fi
  port=$(free_port)
  pw=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  (umask 077 && printf '%s' "$pw" >"$dir/admin-password")
  cat >"$dir/data/pg_hba.conf" <<HBA
local all cs_bootstrap trust
host  all all 127.0.0.1/32 scram-sha-256
HBA
  run_as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c log_min_messages=warning" \
    start >/dev/null
  echo "$port" >"$dir/port"
  # The admin role the database secrets engine logs in as; its password travels on stdin.
  printf "CREATE ROLE cs_admin WITH LOGIN SUPERUSER PASSWORD '%s';\n" "$pw" |
    run_as psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U cs_bootstrap -d postgres >/dev/null
  echo "$port"
}

stop() {
  local dir=$1
  if [[ -f $dir/data/postmaster.pid ]]; then
    run_as "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null || true
  fi
  rm -rf "$dir"
}

case ${1:-} in
  install) install; echo "$bindir" ;;
  start) start "${2:?usage: pg.sh start DIR}" ;;
  stop) stop "${2:?usage: pg.sh stop DIR}" ;;
  *) log "usage: pg.sh install | start DIR | stop DIR"; exit 64 ;;
esac
