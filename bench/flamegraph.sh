#!/usr/bin/env bash
# bench/flamegraph.sh — where gatehouse's CPU goes under load: perf samples
# (with DWARF call graphs) of the proxy process while wrk drives it with the
# load benchmark's setup, folded with inferno into an SVG flame graph.
# See bench/README.md ("Flame graphs").
set -euo pipefail

MODE="${MODE:-plain}"                 # plain | plugins (the load benchmark's plugin chain)
DURATION="${DURATION:-10}"            # seconds sampled
FREQ="${FREQ:-499}"                   # samples per second
CONNECTIONS="${CONNECTIONS:-64}"
SKIP_BUILD="${SKIP_BUILD:-0}"
OUT="${OUT:-}"                        # SVG path (default: bench/results/flamegraph-MODE-<stamp>.svg)
REQ_PATH="${REQ_PATH:-/hello}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release"
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac

log() { printf '[flamegraph] %s\n' "$*" >&2; }
die() { printf '[flamegraph] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$MODE" == plain || "$MODE" == plugins ]] || die "MODE must be plain or plugins"
for t in perf wrk curl python3; do
    command -v "$t" >/dev/null 2>&1 || die "missing $t (Debian: apt-get install linux-perf wrk curl python3)"
done
if ! command -v inferno-flamegraph >/dev/null 2>&1; then
    log "installing inferno (cargo install --locked inferno)"
    cargo install --locked inferno
fi
if [[ "$SKIP_BUILD" != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p gatehouse -p gatehouse-bench-upstream)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-flame.XXXXXX")"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

UP_PORT="$(free_port)"
GH_PORT="$(free_port)"
taskset -c 0 "$BIN_DIR/bench-upstream" --listen "127.0.0.1:$UP_PORT" --threads 1 >/dev/null 2>&1 &
PIDS+=($!)
{
    printf 'server:\n  worker_threads: 1\nlisteners:\n  - address: "127.0.0.1:%s"\n' "$GH_PORT"
    printf 'services:\n  - name: up\n    url: "http://127.0.0.1:%s"\n' "$UP_PORT"
    printf 'routes:\n  - name: all\n    service: up\n    paths: ["/*"]\n'
    if [[ "$MODE" == plugins ]]; then
        printf 'plugins:\n  - name: request-id\n  - name: cors\n    config:\n      origins: ["*"]\n'
        printf '  - name: headers\n    config:\n      response:\n        set:\n          x-gateway: gatehouse\n'
    fi
} >"$WORK/gatehouse.yaml"
taskset -c 1 "$BIN_DIR/gatehouse" run --config "$WORK/gatehouse.yaml" >"$WORK/gatehouse.log" 2>&1 &
GH_PID=$!
PIDS+=("$GH_PID")
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$GH_PORT$REQ_PATH" && break
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$GH_PORT$REQ_PATH" || die "gatehouse did not answer"

log "warming up, then sampling $DURATION s at $FREQ Hz"
taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$GH_PORT$REQ_PATH" >/dev/null
taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"$((DURATION + 2))s" "http://127.0.0.1:$GH_PORT$REQ_PATH" >"$WORK/wrk.txt" &
WRK=$!
sleep 1
perf record -F "$FREQ" --call-graph dwarf,16384 -p "$GH_PID" -o "$WORK/perf.data" -- sleep "$DURATION" \
    >/dev/null 2>"$WORK/perf.log" || { cat "$WORK/perf.log" >&2; die "perf record failed"; }
wait "$WRK"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
if [[ -z "$OUT" ]]; then
    mkdir -p "$ROOT/bench/results"
    OUT="$ROOT/bench/results/flamegraph-$MODE-$STAMP.svg"
fi
REV="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
perf script -i "$WORK/perf.data" 2>/dev/null \
    | inferno-collapse-perf --all 2>/dev/null \
    | inferno-flamegraph --title "gatehouse $MODE, rev $REV, $STAMP ($(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt") req/s under perf)" \
        --width 1600 --minwidth "${MINWIDTH:-1.5}" >"$OUT"
log "wrote $OUT"
