#!/usr/bin/env bash
# Control-plane benchmarks (issue 4): admin API writes per second on SQLite
# and PostgreSQL (against direct store writes in the same run), reload cost
# with 10,000 routes under traffic, and change propagation to a 3-node
# cluster on PostgreSQL. See bench/README.md.
#
#   bench/control.sh                 # everything
#   ONLY=reload bench/control.sh     # one of: writes, reload, propagation
#
# Environment: SKIP_BUILD=1, ROUNDS (3), DURATION (5s), CONCURRENCY (8),
# ROUTES (10000), RELOADS (20), RUNS (3: reload runs), NODES (3),
# CHANGES (100), PG (postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONCURRENCY="${CONCURRENCY:-8}"
ROUTES="${ROUTES:-10000}"
RELOADS="${RELOADS:-20}"
RUNS="${RUNS:-3}"
NODES="${NODES:-3}"
CHANGES="${CHANGES:-100}"
PG="${PG:-postgres://postgres@127.0.0.1:5432/postgres}"
ONLY="${ONLY:-}"

target="${CARGO_TARGET_DIR:-target}/release"
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p gatehouse -p gatehouse-bench-control
fi
bench="$target/bench-control"
gatehouse="$target/gatehouse"
tmp="$(mktemp -d)"
dbs=()
cleanup() {
    for db in "${dbs[@]}"; do
        psql "$PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# A fresh database; its URL in $pg_url. Not called in a subshell, so the
# cleanup trap sees every database it made.
new_pg() {
    local name="gh_bench_$RANDOM$RANDOM"
    psql "$PG" -qc "CREATE DATABASE $name" >/dev/null
    dbs+=("$name")
    pg_url="${PG%/*}/$name"
}

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -z "$ONLY" ] || [ "$ONLY" = writes ]; then
    echo "== admin API writes/s, SQLite"
    "$bench" admin-writes --gatehouse "$gatehouse" --store "sqlite://$tmp/writes.db" \
        --duration "$DURATION" --concurrency "$CONCURRENCY" --rounds "$ROUNDS"
    echo "== admin API writes/s, PostgreSQL"
    new_pg
    "$bench" admin-writes --gatehouse "$gatehouse" --store "$pg_url" \
        --duration "$DURATION" --concurrency "$CONCURRENCY" --rounds "$ROUNDS"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = reload ]; then
    for run in $(seq 1 "$RUNS"); do
        echo "== reload with $ROUTES routes, run $run"
        "$bench" reload --routes "$ROUTES" --reloads "$RELOADS"
    done
fi
if [ -z "$ONLY" ] || [ "$ONLY" = propagation ]; then
    echo "== propagation of $CHANGES changes to $NODES nodes"
    new_pg
    "$bench" propagation --gatehouse "$gatehouse" --store "$pg_url" \
        --nodes "$NODES" --changes "$CHANGES"
    echo "== propagation of $CHANGES changes to $NODES nodes, $ROUTES routes in the store"
    new_pg
    "$bench" propagation --gatehouse "$gatehouse" --store "$pg_url" \
        --nodes "$NODES" --changes "$CHANGES" --routes "$ROUTES"
fi
