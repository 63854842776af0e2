#!/usr/bin/env bash
# bench/instructions.sh — CPU cost per proxied request, counted instead of
# timed: user-space instructions (valgrind's callgrind) and system calls
# (strace -c) of the proxy process, for gatehouse (plain and with the
# load benchmark's plugin chain), nginx, and optionally an older gatehouse
# binary. Counts do not move with other jobs on the machine, so small
# regressions show where wrk's req/s cannot resolve them. See
# bench/README.md ("Instructions per request").
set -euo pipefail

LOW="${LOW:-500}"                     # requests of the short run
HIGH="${HIGH:-2500}"                  # requests of the long run; per request = (long - short) / (HIGH - LOW)
SKIP_BUILD="${SKIP_BUILD:-0}"         # 1: use the binaries already in the target dir
NGINX="${NGINX:-1}"                   # 1: also count nginx (one process: master_process off)
SYSCALLS="${SYSCALLS:-1}"             # 1: also count system calls per request (strace)
# GATEHOUSE_BIN: gatehouse binary (default: <target dir>/release/gatehouse)
# BASELINE_BIN: an older gatehouse binary, counted too (baseline, baseline-plugins)
BASELINE_BIN="${BASELINE_BIN:-}"
REQ_PATH="${REQ_PATH:-/hello}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release"
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
RESULTS_DIR="$ROOT/bench/results"

log() { printf '[instructions] %s\n' "$*" >&2; }
die() { printf '[instructions] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$LOW" =~ ^[0-9]+$ && "$HIGH" =~ ^[0-9]+$ ]] && ((HIGH > LOW && LOW >= 1)) \
    || die "LOW and HIGH must be integers with HIGH > LOW >= 1 (got $LOW, $HIGH)"

export PATH="$PATH:/usr/sbin:/sbin"
missing=()
for t in valgrind strace nginx curl python3; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if ((${#missing[@]})); then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing ${missing[*]} with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        die "missing ${missing[*]}: install with 'sudo apt-get install -y ${missing[*]}'"
    fi
fi

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building: cargo build --release -p gatehouse -p gatehouse-bench-upstream"
    (cd "$ROOT" && cargo build --release -p gatehouse -p gatehouse-bench-upstream)
fi
UPSTREAM_BIN="$BIN_DIR/bench-upstream"
GATEHOUSE_BIN="${GATEHOUSE_BIN:-$BIN_DIR/gatehouse}"
[[ -x "$UPSTREAM_BIN" ]] || die "$UPSTREAM_BIN not found"
[[ -x "$GATEHOUSE_BIN" ]] || die "$GATEHOUSE_BIN not found"
[[ -z "$BASELINE_BIN" || -x "$BASELINE_BIN" ]] || die "BASELINE_BIN $BASELINE_BIN is not an executable"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-instr.XXXXXX")"
chmod 755 "$WORK"
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

wait_port() { # PORT PID
    local i
    for i in $(seq 1 300); do
        kill -0 "$2" 2>/dev/null || return 1
        curl -s -o /dev/null "http://127.0.0.1:$1$REQ_PATH" && return 0
        sleep 0.1
    done
    return 1
}

UP_PORT="$(free_port)"
"$UPSTREAM_BIN" --listen "127.0.0.1:$UP_PORT" --threads 1 >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT" "${PIDS[-1]}" || die "bench-upstream did not start"

gatehouse_config() { # FILE PORT MODE
    {
        printf 'server:\n  worker_threads: 1\nlisteners:\n  - address: "127.0.0.1:%s"\n' "$2"
        printf 'services:\n  - name: up\n    url: "http://127.0.0.1:%s"\n' "$UP_PORT"
        printf 'routes:\n  - name: all\n    service: up\n    paths: ["/*"]\n'
        if [[ "$3" == plugins ]]; then
            cat <<'EOF'
plugins:
  - name: request-id
  - name: cors
    config:
      origins: ["*"]
  - name: headers
    config:
      response:
        set:
          x-gateway: gatehouse
EOF
        fi
    } >"$1"
}

nginx_config() { # DIR PORT
    mkdir -p "$1"/{logs,tmp}
    cat >"$1/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $1/tmp/client;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
    keepalive_requests 1000000;
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$2;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

# count TOOL NAME KIND(gatehouse|nginx) BIN MODE N -> prints the tool's total
# for a process that served one readiness request plus N requests over one
# keep-alive connection (curl's URL globbing), then shut down gracefully.
count() {
    local tool="$1" name="$2" kind="$3" bin="$4" mode="$5" n="$6" port out pid cmd=()
    port="$(free_port)"
    out="$WORK/$name-$tool-$n.out"
    case "$kind" in
        gatehouse)
            gatehouse_config "$WORK/$name.yaml" "$port" "$mode"
            cmd=("$bin" run --config "$WORK/$name.yaml")
            ;;
        nginx)
            nginx_config "$WORK/$name-$n" "$port"
            cmd=(nginx -p "$WORK/$name-$n" -c "$WORK/$name-$n/nginx.conf")
            ;;
    esac
    case "$tool" in
        callgrind) valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" >"$WORK/$name.log" 2>&1 & ;;
        strace) strace -f -c -o "$out" "${cmd[@]}" >"$WORK/$name.log" 2>&1 & ;;
    esac
    pid=$!
    wait_port "$port" "$pid" || { cat "$WORK/$name.log" >&2; die "$name did not start under $tool"; }
    curl -s -o /dev/null "http://127.0.0.1:$port$REQ_PATH?[1-$n]" || die "$name: requests failed"
    # Graceful stop: gatehouse drains on SIGINT, nginx on SIGQUIT; both tools
    # write their counts when the process exits. valgrind runs the program
    # in its own process; strace runs it as its child.
    local target="$pid" sig=INT
    [[ "$tool" == strace ]] && target="$(pgrep -P "$pid" | head -n1)"
    [[ "$kind" == nginx ]] && sig=QUIT
    kill -"$sig" "$target"
    wait "$pid" 2>/dev/null || true
    case "$tool" in
        callgrind) awk '/^summary:|^totals:/ {print $2; exit}' "$out" ;;
        strace) awk '$NF == "total" {print $4; exit}' "$out" ;;
    esac
}

per_request() { # TOOL NAME KIND BIN MODE -> per-request count
    local lo hi
    lo="$(count "$1" "$2" "$3" "$4" "$5" "$LOW")"
    hi="$(count "$1" "$2" "$3" "$4" "$5" "$HIGH")"
    [[ "$lo" =~ ^[0-9]+$ && "$hi" =~ ^[0-9]+$ ]] || die "$2: no $1 count (got '$lo' / '$hi')"
    python3 -c "print(round(($hi - $lo) / ($HIGH - $LOW), 2))"
}

TARGETS=("gatehouse|gatehouse|$GATEHOUSE_BIN|plain" "gatehouse-plugins|gatehouse|$GATEHOUSE_BIN|plugins")
if [[ -n "$BASELINE_BIN" ]]; then
    TARGETS+=("baseline|gatehouse|$BASELINE_BIN|plain" "baseline-plugins|gatehouse|$BASELINE_BIN|plugins")
fi
[[ "$NGINX" == 1 ]] && TARGETS+=("nginx|nginx|nginx|plain")

declare -A IR SC
for t in "${TARGETS[@]}"; do
    IFS='|' read -r name kind bin mode <<<"$t"
    log "$name: callgrind, $LOW and $HIGH requests"
    IR[$name]="$(per_request callgrind "$name" "$kind" "$bin" "$mode")"
    if [[ "$SYSCALLS" == 1 ]]; then
        log "$name: strace, $LOW and $HIGH requests"
        SC[$name]="$(per_request strace "$name" "$kind" "$bin" "$mode")"
    else
        SC[$name]=""
    fi
done

mkdir -p "$RESULTS_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
REV="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null) || REV="$REV (dirty tree)"
JSON="$RESULTS_DIR/instructions-$STAMP.json"
for t in "${TARGETS[@]}"; do
    IFS='|' read -r name _ _ _ <<<"$t"
    printf '%s\t%s\t%s\n' "$name" "${IR[$name]}" "${SC[$name]}"
done >"$WORK/rows.tsv"
python3 - "$WORK/rows.tsv" "$JSON" "$STAMP" "$REV" "$LOW" "$HIGH" <<'EOF'
import json, sys
rows_path, path, stamp, rev, low, high = sys.argv[1:7]
rows = []
for line in open(rows_path):
    name, ir, sc = line.rstrip("\n").split("\t")
    rows.append({"target": name, "instructions_per_request": float(ir),
                 "syscalls_per_request": float(sc) if sc else None})
by = {r["target"]: r for r in rows}
print(f"\nGatehouse instructions per request  {stamp}  rev {rev}")
print(f"user-space instructions (callgrind) and system calls (strace -c) of the proxy process,")
print(f"per request = (count at {high} requests - count at {low}) / {int(high) - int(low)}; one keep-alive connection\n")
print(f"{'target':<20}{'instr/req':>12}{'syscalls/req':>14}{'vs nginx':>10}{'vs baseline':>13}")
print("-" * 69)
for r in rows:
    n = by.get("nginx")
    base = {"gatehouse": "baseline", "gatehouse-plugins": "baseline-plugins"}.get(r["target"])
    b = by.get(base) if base else None
    vs_n = f"{r['instructions_per_request'] / n['instructions_per_request']:.3f}" if n and r is not n else "-"
    vs_b = f"{r['instructions_per_request'] / b['instructions_per_request']:.3f}" if b else "-"
    sc = f"{r['syscalls_per_request']:.2f}" if r["syscalls_per_request"] is not None else "-"
    print(f"{r['target']:<20}{r['instructions_per_request']:>12,.0f}{sc:>14}{vs_n:>10}{vs_b:>13}")
print("(ratios: instructions per request of this target / the reference's; kernel work shows as system calls)")
json.dump({"meta": {"stamp": stamp, "rev": rev, "low": int(low), "high": int(high)}, "results": rows},
          open(path, "w"), indent=2)
print(f"\nraw results: {path}")
EOF
