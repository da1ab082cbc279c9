#!/usr/bin/env bash
# Run the whole Quietcast test suite on a fresh machine.
#
# Installs what is missing (the virtualenv; redis-server, PostgreSQL, Chromium, Firefox ESR, PulseAudio, coturn
# and nginx from Debian's packages when running as root), starts a throwaway redis-server and PostgreSQL cluster on free
# loopback ports, then runs:
#   1. ruff and mypy over the code,
#   2. the full pytest suite (SQLite, in-memory and Redis channel layers, real aiortc peers, real Chromium and
#      Firefox; the Firefox tests start their own PulseAudio server, as headless Firefox plays audio only through one;
#      the TURN tests start their own coturn, the multi-process tests their own nginx in front of two servers),
#   3. the API suite once more against PostgreSQL.
# Anything it cannot set up is said plainly and fails the run: a skipped integration test proves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
fail_setup() { printf '\nCould not set up: %s\n' "$*" >&2; exit 2; }

scripts/bootstrap.sh

# --- system packages -------------------------------------------------------------------------------------
missing_packages=()
command -v redis-server >/dev/null || missing_packages+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing_packages+=(postgresql)
[ -x /usr/bin/chromium ] || missing_packages+=(chromium)
[ -x /usr/bin/firefox-esr ] || missing_packages+=(firefox-esr)
command -v pulseaudio >/dev/null || missing_packages+=(pulseaudio)
command -v turnserver >/dev/null || missing_packages+=(coturn)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing_packages+=(nginx)
if [ ${#missing_packages[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "Installing ${missing_packages[*]} from Debian's packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq "${missing_packages[@]}" >/dev/null \
            || fail_setup "apt-get install ${missing_packages[*]}"
    else
        fail_setup "${missing_packages[*]} (not installed, and installing needs root and apt-get)"
    fi
fi

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
workdir=$(mktemp -d /tmp/quietcast-test.XXXXXX)
chmod 755 "$workdir"
cleanup() {
    [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
    if [ -n "${pg_ctl:-}" ]; then $as_pg_user "$pg_ctl" -D "$workdir/pg" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$workdir"
}
trap cleanup EXIT

# --- redis-server ------------------------------------------------------------------------------------------
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --logfile "$workdir/redis.log" &
redis_pid=$!
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$redis_port" ping >/dev/null 2>&1 || fail_setup "redis-server on port $redis_port ($(tail -3 "$workdir/redis.log"))"
export REDIS_TEST_URL="redis://127.0.0.1:$redis_port/0"

# --- PostgreSQL (a throwaway cluster; initdb refuses to run as root) --------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_ctl="$pg_bin/pg_ctl"
as_pg_user=""
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    as_pg_user="runuser -u postgres --"
    mkdir -p "$workdir/pg" && chown postgres "$workdir/pg"
fi
pg_port=$(free_port)
$as_pg_user "$pg_bin/initdb" -D "$workdir/pg" -A trust -U postgres --no-sync >"$workdir/initdb.log" 2>&1 \
    || fail_setup "PostgreSQL initdb ($(tail -3 "$workdir/initdb.log"))"
$as_pg_user "$pg_ctl" -D "$workdir/pg" -w -l "$workdir/pg/server.log" \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $workdir/pg -c fsync=off" start >/dev/null \
    || fail_setup "PostgreSQL server ($(tail -3 "$workdir/pg/server.log"))"
postgres_url="postgres://postgres@127.0.0.1:$pg_port/quietcast"
# Tests that run several server processes on one shared database create their own databases in this cluster.
export POSTGRES_TEST_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"

export CHROMIUM_PATH=/usr/bin/chromium
export FIREFOX_PATH=/usr/bin/firefox-esr
export QUIETCAST_VAR_DIR="$workdir/var"

say "ruff"
.venv/bin/ruff check .

say "mypy"
.venv/bin/python -m mypy

say "pytest: the whole suite (SQLite; in-memory and Redis channel layers; real peers, Chromium and Firefox)"
.venv/bin/python -m pytest -p no:cacheprovider "$@"

say "pytest: the API suite against PostgreSQL"
DATABASE_URL="$postgres_url" .venv/bin/python -m pytest -p no:cacheprovider -m api "$@"
