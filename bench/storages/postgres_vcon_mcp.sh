#!/usr/bin/env bash
# The write benchmark of the postgres and vcon_mcp storages (bench/README.md): starts a
# PostgreSQL of its own on a free port (Debian's server binaries, package `postgresql`; as
# root it runs as the `postgres` user), runs the example storage_postgres_vcon_mcp in release
# mode against it, and stops it. The server keeps PostgreSQL's default durability (fsync and
# synchronous_commit on): what a production server does.
#
#   bench/storages/postgres_vcon_mcp.sh                  # 10 s per case, concurrency 1, 8, 32
#   BENCH_SECONDS=5 bench/storages/postgres_vcon_mcp.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "PostgreSQL's server binaries are missing: apt-get install postgresql" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ]; then as_postgres() { runuser -u postgres -- "$@"; }; else as_postgres() { "$@"; }; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
[ "$(id -u)" -ne 0 ] || chown postgres "$dir"
stop() {
  (cd / && as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop) >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
(cd / && as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8) >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log"; exit 1; }
(cd / && as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start) >/dev/null
psql -h 127.0.0.1 -p "$port" -U postgres -qc 'CREATE DATABASE bench' postgres
"$bin/postgres" --version
cargo build --release --quiet --example storage_postgres_vcon_mcp
target/release/examples/storage_postgres_vcon_mcp \
  --postgres "postgresql://postgres@127.0.0.1:$port/bench" --seconds "${BENCH_SECONDS:-10}"
