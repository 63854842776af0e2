#!/usr/bin/env bash
# bench/load.sh — load benchmark: bench-upstream direct vs gatehouse vs nginx
# (and gatehouse with plugins), measured with wrk. See bench/README.md.
set -euo pipefail

# ---------------------------------------------------------------- settings ---
DURATION="${DURATION:-10s}"          # wrk -d per measurement
ROUNDS="${ROUNDS:-3}"                # rounds; each round measures every target once
CONNECTIONS="${CONNECTIONS:-64}"     # wrk -c
THREADS="${THREADS:-1}"              # proxy workers: gatehouse worker_threads = nginx worker_processes
WRK_THREADS="${WRK_THREADS:-1}"      # wrk -t
UPSTREAM_THREADS="${UPSTREAM_THREADS:-1}"
PLUGINS="${PLUGINS:-1}"              # 1: also measure gatehouse with global plugins
NGINX_EQUIV="${NGINX_EQUIV:-1}"       # 1: also measure nginx doing gatehouse's default header work
RR4="${RR4:-1}"                      # 1: also measure four upstreams round-robin (gatehouse-rr4 vs nginx-rr4)
HTTPS="${HTTPS:-1}"                  # 1: also measure HTTPS termination (gatehouse-https vs nginx-https)
SKIP_GATEHOUSE="${SKIP_GATEHOUSE:-0}" # 1: measure only upstream + nginx (no gatehouse build/run)
SKIP_BUILD="${SKIP_BUILD:-0}"        # 1: use the binaries already in the target dir
# GATEHOUSE_BIN: gatehouse binary to run (default: <target dir>/release/gatehouse)
# BASELINE_BIN: an older gatehouse binary; when set, it is measured too
#   (targets baseline, baseline-plugins) and the report adds new/old ratios
BASELINE_BIN="${BASELINE_BIN:-}"
WARMUP="${WARMUP:-2s}"               # unrecorded wrk run per target before round 1 ("0" = none)
REQ_PATH="${REQ_PATH:-/hello}"       # request path used for every target
PIN="${PIN:-1}"                      # 0: no CPU pinning
PROXY_CPUS="${PROXY_CPUS:-1}"        # taskset -c list for the proxy under test
LOAD_CPUS="${LOAD_CPUS:-0}"          # taskset -c list for wrk + bench-upstream
STRICT="${STRICT:-0}"                # 1: exit 1 when a target is FAIL (errors always exit 1)
READY_TIMEOUT="${READY_TIMEOUT:-30}" # seconds to wait for a server to accept connections

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release"
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
RESULTS_DIR="$ROOT/bench/results"

log() { printf '[load] %s\n' "$*" >&2; }
die() { printf '[load] ERROR: %s\n' "$*" >&2; exit 1; }

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_uint "$ROUNDS" && ((ROUNDS >= 1)) || die "ROUNDS must be a positive integer (got '$ROUNDS')"
is_uint "$CONNECTIONS" && ((CONNECTIONS >= 1)) || die "CONNECTIONS must be a positive integer"
is_uint "$THREADS" && ((THREADS >= 1)) || die "THREADS must be a positive integer"
is_uint "$WRK_THREADS" && ((WRK_THREADS >= 1)) || die "WRK_THREADS must be a positive integer"
((WRK_THREADS <= CONNECTIONS)) || die "WRK_THREADS ($WRK_THREADS) must be <= CONNECTIONS ($CONNECTIONS)"

# ------------------------------------------------------------ dependencies ---
ensure_tools() {
    local missing=() pkgs=() t
    for t in nginx wrk; do
        command -v "$t" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$t" >/dev/null 2>&1 || {
            missing+=("$t"); pkgs+=("$t"); }
    done
    export PATH="$PATH:/usr/sbin:/sbin"   # Debian puts nginx in /usr/sbin
    if ((${#missing[@]})); then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "installing ${pkgs[*]} with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
        else
            die "missing ${missing[*]}: install with 'sudo apt-get install -y ${pkgs[*]}' (or run this script as root on Debian/Ubuntu and it installs them)"
        fi
    fi
    for t in nginx wrk curl python3 cargo; do
        command -v "$t" >/dev/null 2>&1 || die "'$t' not found in PATH"
    done
    if [[ "$PIN" == 1 ]]; then
        command -v taskset >/dev/null 2>&1 || die "'taskset' not found (util-linux); install it or set PIN=0"
        local ncpu; ncpu="$(nproc)"
        if ((ncpu < 2)) && [[ "$PROXY_CPUS" == 1 && "$LOAD_CPUS" == 0 ]]; then
            log "WARNING: only $ncpu CPU visible; cannot give the proxy its own core, running unpinned (PIN=0)"
            PIN=0
        fi
    fi
    if [[ "$PIN" == 1 ]]; then
        taskset -c "$PROXY_CPUS" true 2>/dev/null || die "cannot pin to PROXY_CPUS=$PROXY_CPUS (see nproc); set PROXY_CPUS/LOAD_CPUS or PIN=0"
        taskset -c "$LOAD_CPUS" true 2>/dev/null || die "cannot pin to LOAD_CPUS=$LOAD_CPUS (see nproc); set PROXY_CPUS/LOAD_CPUS or PIN=0"
        PROXY_PIN=(taskset -c "$PROXY_CPUS")
        LOAD_PIN=(taskset -c "$LOAD_CPUS")
    fi
}

# --------------------------------------------------------------- processes ---
PIDS=()      # everything we started, killed on exit
WRK_PID=""   # the wrk run in progress, if any
WORK=""      # temp dir for configs, logs and raw wrk output

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    [[ -n "$WRK_PID" ]] && PIDS+=("$WRK_PID")
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 30; i++)); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if ((rc != 0)) && [[ "${KEEP_WORK:-0}" != 1 ]]; then
            log "logs of this failed run: KEEP_WORK=1 keeps $WORK"
        fi
        [[ "${KEEP_WORK:-0}" == 1 ]] && log "kept work dir $WORK" || rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# Command prefixes that pin a process to a CPU list. Used as "${PROXY_PIN[@]}" cmd &
# (a plain command, not a function) so that $! is the server's own pid: taskset execs it.
PROXY_PIN=()
LOAD_PIN=()

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_ready NAME PID PORT LOGFILE: poll until PORT accepts TCP, fail if PID dies or deadline passes.
wait_ready() {
    local name="$1" pid="$2" port="$3" logf="$4" deadline=$((SECONDS + READY_TIMEOUT))
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logf" >&2 || true
            die "$name exited before accepting connections on 127.0.0.1:$port (log above)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$logf" >&2 || true
            die "$name did not accept connections on 127.0.0.1:$port within ${READY_TIMEOUT}s"
        fi
        sleep 0.05
    done
}

# check_response NAME URL [HEADER]: one GET must return 200 with the upstream body (and HEADER if given).
check_response() {
    local name="$1" url="$2" want_header="${3:-}" out status
    out="$(curl -sS -k -D - --max-time 5 "$url" 2>&1)" || die "$name: curl $url failed: $out"
    status="$(printf '%s' "$out" | head -n1 | tr -d '\r')"
    [[ "$status" == *" 200"* ]] || die "$name: GET $url returned '$status', expected 200:"$'\n'"$out"
    [[ "$out" == *"hello from upstream"* ]] || die "$name: GET $url did not return the upstream body:"$'\n'"$out"
    if [[ -n "$want_header" ]]; then
        printf '%s' "$out" | tr -d '\r' | grep -qi "^$want_header" \
            || die "$name: GET $url lacks response header '$want_header':"$'\n'"$out"
    fi
}

# vmhwm_kb PID...: sum of VmHWM (peak RSS) in kB over the given processes.
vmhwm_kb() {
    local total=0 pid v
    for pid in "$@"; do
        v="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# ------------------------------------------------------------------- main ---
ensure_tools

# Other jobs on the machine make the numbers noisy; record how busy it was before we started.
LOADAVG_START="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '')"
if [[ "$SKIP_BUILD" != 1 ]]; then
    pkgs=(-p gatehouse-bench-upstream)
    [[ "$SKIP_GATEHOUSE" == 1 ]] || pkgs=(-p gatehouse "${pkgs[@]}")
    log "building: cargo build --release ${pkgs[*]}"
    (cd "$ROOT" && cargo build --release "${pkgs[@]}")
fi
UPSTREAM_BIN="$BIN_DIR/bench-upstream"
GATEHOUSE_BIN="${GATEHOUSE_BIN:-$BIN_DIR/gatehouse}"
[[ -x "$UPSTREAM_BIN" ]] || die "$UPSTREAM_BIN not found (build failed or SKIP_BUILD=1 without a build)"
[[ "$SKIP_GATEHOUSE" == 1 || -x "$GATEHOUSE_BIN" ]] || die "$GATEHOUSE_BIN not found"
[[ -z "$BASELINE_BIN" || -x "$BASELINE_BIN" ]] || die "BASELINE_BIN $BASELINE_BIN is not an executable"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-load.XXXXXX")"
chmod 755 "$WORK"   # nginx workers may run as 'nobody' when we are root
mkdir -p "$WORK/raw"

# Targets in measurement order: name|url  (a, b, c, d)
TARGETS=()

# (a) upstream
UP_PORT="$(free_port)"
"${LOAD_PIN[@]}" "$UPSTREAM_BIN" --listen "127.0.0.1:$UP_PORT" --threads "$UPSTREAM_THREADS" \
    >"$WORK/upstream.log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
wait_ready bench-upstream "$UP_PID" "$UP_PORT" "$WORK/upstream.log"
check_response upstream "http://127.0.0.1:$UP_PORT$REQ_PATH"
TARGETS+=("upstream|http://127.0.0.1:$UP_PORT$REQ_PATH")
log "bench-upstream pid $UP_PID on 127.0.0.1:$UP_PORT"

write_gatehouse_config() { # FILE PORT MODE (plain | plugins | rr4 | https)
    local file="$1" port="$2" mode="$3" t
    {
        printf 'server:\n  worker_threads: %s\nlisteners:\n  - address: "127.0.0.1:%s"\n' "$THREADS" "$port"
        if [[ "$mode" == https ]]; then
            printf '    tls:\n      min_version: "1.3"\n      certificates:\n'
            printf '        - cert: "%s"\n          key: "%s"\n' "$WORK/tls/cert.pem" "$WORK/tls/key.pem"
        fi
        printf 'services:\n  - name: up\n    url: "http://127.0.0.1:%s"\n' "$UP_PORT"
        if [[ "$mode" == rr4 ]]; then
            printf '    load_balancing:\n      algorithm: round-robin\n    targets:\n'
            for t in "${RR_PORTS[@]}"; do printf '      - target: "127.0.0.1:%s"\n' "$t"; done
        fi
        printf 'routes:\n  - name: all\n    service: up\n    paths: ["/*"]\n'
    } >"$file"
    if [[ "$mode" == plugins ]]; then
        cat >>"$file" <<'EOF2'
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
EOF2
    fi
}

start_gatehouse() { # NAME MODE [BINARY] -> sets GH_PID GH_PORT
    local name="$1" mode="$2" bin="${3:-$GATEHOUSE_BIN}"
    GH_PORT="$(free_port)"
    write_gatehouse_config "$WORK/$name.yaml" "$GH_PORT" "$mode"
    "${PROXY_PIN[@]}" "$bin" run --config "$WORK/$name.yaml" >"$WORK/$name.log" 2>&1 &
    GH_PID=$!; PIDS+=("$GH_PID")
    wait_ready "$name" "$GH_PID" "$GH_PORT" "$WORK/$name.log"
    log "$name pid $GH_PID on 127.0.0.1:$GH_PORT (config $WORK/$name.yaml)"
}

# (b) gatehouse, plain
declare -A PROC_PIDS=([upstream]="$UP_PID")
if [[ "$SKIP_GATEHOUSE" != 1 ]]; then
    start_gatehouse gatehouse plain
    check_response gatehouse "http://127.0.0.1:$GH_PORT$REQ_PATH"
    PROC_PIDS[gatehouse]="$GH_PID"
    TARGETS+=("gatehouse|http://127.0.0.1:$GH_PORT$REQ_PATH")
fi

# (c) nginx, and (e) nginx doing the same per-request header work as
# gatehouse's defaults (X-Forwarded-*, Forwarded, Via both ways, a generated
# X-Request-Id sent upstream and echoed): plain nginx adds none of these.
start_nginx() { # NAME EXTRA_LOCATION_DIRECTIVES [UPSTREAM_PORTS] [TLS 0|1]
    local name="$1" extra="$2" ports="${3:-$UP_PORT}" tls="${4:-0}" servers="" listen scheme=http p
    NG_PORT="$(free_port)"
    for p in $ports; do servers+="        server 127.0.0.1:$p;"$'\n'; done
    listen="listen 127.0.0.1:$NG_PORT;"
    if [[ "$tls" == 1 ]]; then
        scheme=https
        # Same certificate, protocol and cipher suite as gatehouse-https.
        listen="listen 127.0.0.1:$NG_PORT ssl;
        ssl_certificate $WORK/tls/cert.pem;
        ssl_certificate_key $WORK/tls/key.pem;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites $TLS_SUITE;
        ssl_session_cache off;
        ssl_session_tickets off;"
    fi
    NG_DIR="$WORK/$name"
    mkdir -p "$NG_DIR"/{logs,tmp}
    cat >"$NG_DIR/nginx.conf" <<EOF
worker_processes $THREADS;
pid $NG_DIR/nginx.pid;
error_log $NG_DIR/logs/error.log warn;
worker_rlimit_nofile 16384;
events {
    worker_connections 8192;
}
http {
    access_log off;
    client_body_temp_path $NG_DIR/tmp/client;
    proxy_temp_path $NG_DIR/tmp/proxy;
    fastcgi_temp_path $NG_DIR/tmp/fastcgi;
    uwsgi_temp_path $NG_DIR/tmp/uwsgi;
    scgi_temp_path $NG_DIR/tmp/scgi;
    # Never close a benchmark connection after N requests (default 1000):
    # gatehouse/hyper has no such limit, so this keeps the comparison fair.
    keepalive_requests 1000000;
    upstream up {
$servers        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        $listen
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
$extra
        }
    }
}
EOF
    nginx -p "$NG_DIR" -e "$NG_DIR/logs/error.log" -c "$NG_DIR/nginx.conf" -t -q \
        || { cat "$NG_DIR/logs/error.log" >&2 || true; die "nginx config test failed"; }
    "${PROXY_PIN[@]}" nginx -p "$NG_DIR" -e "$NG_DIR/logs/error.log" -c "$NG_DIR/nginx.conf" -g 'daemon off;' \
        >"$WORK/$name.log" 2>&1 &
    NG_PID=$!; PIDS+=("$NG_PID")
    wait_ready "$name" "$NG_PID" "$NG_PORT" "$NG_DIR/logs/error.log"
    check_response "$name" "$scheme://127.0.0.1:$NG_PORT$REQ_PATH"
    mapfile -t NG_WORKERS < <(pgrep -P "$NG_PID" || true)
    ((${#NG_WORKERS[@]} >= 1)) || die "$name master $NG_PID has no worker processes"
    PIDS+=("${NG_WORKERS[@]}")   # killed too if the master does not take them down
    PROC_PIDS[$name]="$NG_PID ${NG_WORKERS[*]}"
    TARGETS+=("$name|$scheme://127.0.0.1:$NG_PORT$REQ_PATH")
    log "$name master $NG_PID, workers ${NG_WORKERS[*]} on 127.0.0.1:$NG_PORT"
}

start_nginx nginx ""

# (d) gatehouse with plugins
if [[ "$SKIP_GATEHOUSE" != 1 && "$PLUGINS" == 1 ]]; then
    start_gatehouse gatehouse-plugins plugins
    check_response gatehouse-plugins "http://127.0.0.1:$GH_PORT$REQ_PATH" "x-gateway: gatehouse"
    PROC_PIDS[gatehouse-plugins]="$GH_PID"
    TARGETS+=("gatehouse-plugins|http://127.0.0.1:$GH_PORT$REQ_PATH")
fi

# (d') the baseline binary, plain and with plugins, when BASELINE_BIN is set
if [[ -n "$BASELINE_BIN" && "$SKIP_GATEHOUSE" != 1 ]]; then
    for mode in plain plugins; do
        name=baseline; [[ "$mode" == plugins ]] && name=baseline-plugins
        start_gatehouse "$name" "$mode" "$BASELINE_BIN"
        check_response "$name" "http://127.0.0.1:$GH_PORT$REQ_PATH"
        PROC_PIDS[$name]="$GH_PID"
        TARGETS+=("$name|http://127.0.0.1:$GH_PORT$REQ_PATH")
    done
fi

if [[ "$NGINX_EQUIV" == 1 ]]; then
    start_nginx nginx-equiv '            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;host=\"$host\"";
            proxy_set_header Via "1.1 gatehouse";
            proxy_set_header X-Request-Id $request_id;
            add_header X-Request-Id $request_id always;
            add_header Via "1.1 nginx" always;'
fi

# (f) four upstreams, round-robin: gatehouse targets vs an nginx upstream block.
if [[ "$RR4" == 1 ]]; then
    RR_PORTS=("$UP_PORT")
    for _ in 1 2 3; do
        p="$(free_port)"
        "${LOAD_PIN[@]}" "$UPSTREAM_BIN" --listen "127.0.0.1:$p" --threads "$UPSTREAM_THREADS" \
            >"$WORK/upstream-$p.log" 2>&1 &
        PIDS+=("$!")
        wait_ready "bench-upstream:$p" "$!" "$p" "$WORK/upstream-$p.log"
        RR_PORTS+=("$p")
    done
    if [[ "$SKIP_GATEHOUSE" != 1 ]]; then
        start_gatehouse gatehouse-rr4 rr4
        check_response gatehouse-rr4 "http://127.0.0.1:$GH_PORT$REQ_PATH"
        PROC_PIDS[gatehouse-rr4]="$GH_PID"
        TARGETS+=("gatehouse-rr4|http://127.0.0.1:$GH_PORT$REQ_PATH")
    fi
    start_nginx nginx-rr4 "" "${RR_PORTS[*]}"
fi

# (g) HTTPS termination: one self-signed ECDSA P-256 certificate, TLS 1.3
# and the same cipher suite for both; plain HTTP to the upstream.
TLS_SUITE="${TLS_SUITE:-TLS_AES_256_GCM_SHA384}"
if [[ "$HTTPS" == 1 ]]; then
    command -v openssl >/dev/null 2>&1 || die "'openssl' not found (needed for HTTPS=1; or set HTTPS=0)"
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >/dev/null 2>&1 \
        || die "openssl could not create the benchmark certificate"
    tls_cipher() { # PORT -> the negotiated TLS 1.3 cipher suite
        openssl s_client -connect "127.0.0.1:$1" -tls1_3 -ciphersuites "$TLS_SUITE" </dev/null 2>/dev/null \
            | awk '/^New, / {print $NF; exit}'
    }
    if [[ "$SKIP_GATEHOUSE" != 1 ]]; then
        start_gatehouse gatehouse-https https
        check_response gatehouse-https "https://127.0.0.1:$GH_PORT$REQ_PATH"
        PROC_PIDS[gatehouse-https]="$GH_PID"
        TARGETS+=("gatehouse-https|https://127.0.0.1:$GH_PORT$REQ_PATH")
        [[ "$(tls_cipher "$GH_PORT")" == "$TLS_SUITE" ]] || die "gatehouse-https did not negotiate $TLS_SUITE"
    fi
    start_nginx nginx-https "" "$UP_PORT" 1
    [[ "$(tls_cipher "$NG_PORT")" == "$TLS_SUITE" ]] || die "nginx-https did not negotiate $TLS_SUITE"
    log "HTTPS: both negotiate TLS 1.3 with $TLS_SUITE"
fi

run_wrk() { # DURATION URL OUTFILE
    # In the background + `wait`, so a signal to this script runs the trap at once.
    "${LOAD_PIN[@]}" wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "$1" --latency "$2" >"$3" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { cat "$3" >&2; die "wrk failed against $2"; }
    WRK_PID=""
}

if [[ "$WARMUP" != 0 ]]; then
    for t in "${TARGETS[@]}"; do
        log "warm-up ${t%%|*} for $WARMUP"
        run_wrk "$WARMUP" "${t#*|}" "$WORK/raw/warmup-${t%%|*}.txt"
    done
fi

for ((round = 1; round <= ROUNDS; round++)); do
    for t in "${TARGETS[@]}"; do
        name="${t%%|*}"; url="${t#*|}"
        log "round $round/$ROUNDS: $name ($DURATION, $CONNECTIONS connections)"
        out="$WORK/raw/r$round-$name.txt"
        run_wrk "$DURATION" "$url" "$out"
        # shellcheck disable=SC2086  # PROC_PIDS holds a space-separated pid list
        vmhwm_kb ${PROC_PIDS[$name]} >"$WORK/raw/r$round-$name.rss_kb"
        for pid in ${PROC_PIDS[$name]}; do
            kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died during the measurement"
        done
    done
done

# ---------------------------------------------------------------- report ---
mkdir -p "$RESULTS_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
JSON="$RESULTS_DIR/load-$STAMP.json"
target_names=(); for t in "${TARGETS[@]}"; do target_names+=("${t%%|*}"); done
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
git_rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git_dirty="$(git -C "$ROOT" status --porcelain 2>/dev/null | head -c1 | wc -c)"

python3 "$ROOT/bench/load_report.py" \
    --raw "$WORK/raw" --json "$JSON" --rounds "$ROUNDS" --strict "$STRICT" \
    --targets "${target_names[*]}" \
    --meta "timestamp=$STAMP" "git_rev=$git_rev" "git_dirty=$git_dirty" \
    "duration=$DURATION" "rounds=$ROUNDS" "connections=$CONNECTIONS" "threads=$THREADS" \
    "wrk_threads=$WRK_THREADS" "upstream_threads=$UPSTREAM_THREADS" "warmup=$WARMUP" \
    "req_path=$REQ_PATH" "tls_suite=$TLS_SUITE" "pin=$PIN" "proxy_cpus=$PROXY_CPUS" "load_cpus=$LOAD_CPUS" \
    "nproc=$(nproc)" "loadavg_start=$LOADAVG_START" "cpu_model=$cpu_model" "kernel=$(uname -r)" \
    "nginx_version=$(nginx -v 2>&1 | sed 's/^nginx version: //')" \
    "wrk_version=$(wrk -v 2>&1 | head -n1 | awk '{print $2}')" \
    "rss_note=gatehouse: VmHWM of the gatehouse process; nginx: sum of VmHWM of master + workers (shared pages counted per process, so an upper bound); each process lives for the whole run, so the value is the peak over all rounds so far"
