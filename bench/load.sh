#!/usr/bin/env bash
# bench/load.sh — load benchmark: bench-upstream direct vs gatehouse vs nginx,
# one scenario per shape of traffic (keep-alive, plugins, a new connection per
# request, HTTPS, HTTP/2, 1 MiB bodies, idle connections), measured with wrk,
# h2load and bench/idle_conns.py. See bench/README.md.
set -euo pipefail

# ---------------------------------------------------------------- settings ---
DURATION="${DURATION:-10s}"          # wrk -d per measurement
ROUNDS="${ROUNDS:-3}"                # rounds; each round measures every target once
CONNECTIONS="${CONNECTIONS:-64}"     # wrk -c
THREADS="${THREADS:-1}"              # proxy workers: gatehouse worker_threads = nginx worker_processes
WRK_THREADS="${WRK_THREADS:-1}"      # wrk -t
UPSTREAM_THREADS="${UPSTREAM_THREADS:-1}"
PLUGINS="${PLUGINS:-1}"              # 1: also measure gatehouse with route plugins (request-id, cors, key-auth, headers)
NGINX_EQUIV="${NGINX_EQUIV:-1}"       # 1: also measure nginx doing gatehouse's default header work
RR4="${RR4:-1}"                      # 1: also measure four upstreams round-robin (gatehouse-rr4 vs nginx-rr4)
HTTPS="${HTTPS:-1}"                  # 1: also measure HTTPS termination (gatehouse-https vs nginx-https)
CLOSE="${CLOSE:-1}"                  # 1: also measure a new connection per request (gatehouse-close vs nginx-close)
H2="${H2:-1}"                        # 1: also measure HTTP/2 downstream with h2load (gatehouse-h2 vs nginx-h2)
H2_CONNECTIONS="${H2_CONNECTIONS:-10}" # h2load -c
H2_STREAMS="${H2_STREAMS:-100}"      # h2load -m (concurrent streams per connection)
BIG="${BIG:-1}"                      # 1: also measure 1 MiB responses (gatehouse-big vs nginx-big), bytes/s
IDLE="${IDLE:-1}"                    # 1: also measure memory per idle keep-alive connection
IDLE_CONNS="${IDLE_CONNS:-10000}"    # idle connections held open to each proxy
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
is_uint "$H2_CONNECTIONS" && ((H2_CONNECTIONS >= 1)) || die "H2_CONNECTIONS must be a positive integer"
is_uint "$H2_STREAMS" && ((H2_STREAMS >= 1)) || die "H2_STREAMS must be a positive integer"
is_uint "$IDLE_CONNS" && ((IDLE_CONNS >= 1)) || die "IDLE_CONNS must be a positive integer"

# seconds DURATION: wrk's 10s / 2m / 1h (or a bare number of seconds) as whole seconds, for h2load -D.
seconds() {
    [[ "$1" =~ ^([0-9]+)(s|m|h)?$ ]] || die "cannot read duration '$1' (use e.g. 10s, 2m)"
    case "${BASH_REMATCH[2]}" in
        m) echo $((BASH_REMATCH[1] * 60)) ;;
        h) echo $((BASH_REMATCH[1] * 3600)) ;;
        *) echo "${BASH_REMATCH[1]}" ;;
    esac
}
seconds "$DURATION" >/dev/null; [[ "$WARMUP" == 0 ]] || seconds "$WARMUP" >/dev/null

# ------------------------------------------------------------ dependencies ---
ensure_tools() {
    local missing=() pkgs=() t tools=(nginx:nginx wrk:wrk)
    [[ "$H2" == 1 ]] && tools+=(h2load:nghttp2-client)
    for t in "${tools[@]}"; do
        command -v "${t%%:*}" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "${t%%:*}" >/dev/null 2>&1 || {
            missing+=("${t%%:*}"); pkgs+=("${t#*:}"); }
    done
    export PATH="$PATH:/usr/sbin:/sbin"   # Debian puts nginx in /usr/sbin
    if ((${#missing[@]})); then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "installing ${pkgs[*]} with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
        else
            die "missing ${missing[*]}: install with 'sudo apt-get install -y ${pkgs[*]}' (or run this script as root on Debian/Ubuntu and it installs them; H2=0 skips h2load)"
        fi
    fi
    if [[ "$H2" == 1 ]]; then
        nginx -V 2>&1 | grep -q -- --with-http_v2_module || die "this nginx has no http_v2_module (needed for H2=1; or set H2=0)"
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
WRK_PID=""   # the wrk/h2load run in progress, if any
IDLE_PID=""  # the idle-connection client in progress, if any
WORK=""      # temp dir for configs, logs and raw wrk output

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    [[ -n "$WRK_PID" ]] && PIDS+=("$WRK_PID")
    [[ -n "$IDLE_PID" ]] && PIDS+=("$IDLE_PID")
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

# check_response NAME URL [HEADER [CURL_ARGS...]]: one GET must return 200 with the
# upstream body (and HEADER if given; "" for none). CURL_ARGS: e.g. -H 'x-api-key: ...'.
check_response() {
    local name="$1" url="$2" want_header="${3:-}" out status
    shift 2; (($#)) && shift
    out="$(curl -sS -k -D - --max-time 5 "$@" "$url" 2>&1)" || die "$name: curl $url failed: $out"
    # No pipes into head/grep -q: on a 1 MiB body they close early and the
    # writer's SIGPIPE would fail the script (pipefail).
    status="${out%%$'\n'*}"; status="${status%$'\r'}"
    [[ "$status" == *" 200"* ]] || die "$name: GET $url returned '$status', expected 200:"$'\n'"${out:0:2000}"
    [[ "$out" == *"hello from upstream"* ]] || die "$name: GET $url did not return the upstream body:"$'\n'"${out:0:2000}"
    if [[ -n "$want_header" ]]; then
        grep -qi "^$want_header" <<<"${out//$'\r'/}" \
            || die "$name: GET $url lacks response header '$want_header':"$'\n'"${out:0:2000}"
    fi
}

# status_kb FIELD PID...: sum of a /proc/PID/status field in kB (VmHWM: peak RSS, VmRSS: RSS now).
status_kb() {
    local field="$1" total=0 pid v
    shift
    for pid in "$@"; do
        v="$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
vmhwm_kb() { status_kb VmHWM "$@"; }

# passive_opens: the kernel's count of accepted TCP connections in this network
# namespace (TcpPassiveOpens); the difference over a measurement counts the
# connections the proxies and bench-upstream accepted meanwhile.
passive_opens() {
    awk '$1 == "Tcp:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == "PassiveOpens") c = i; n = 1 } else print $c }' /proc/net/snmp
}

# raise_nofile: IDLE=1 holds IDLE_CONNS sockets in the client and as many (plus
# upstream connections) in each proxy; every process we start inherits this
# shell's open-file limit. Try 65536, else the hard limit; fail when too low.
raise_nofile() {
    local need=$((IDLE_CONNS + 1024)) hard
    ulimit -n 65536 2>/dev/null || {
        hard="$(ulimit -Hn)"
        if [[ "$hard" == unlimited ]]; then ulimit -n 65536 2>/dev/null || true
        elif ((hard > $(ulimit -n))); then ulimit -n "$hard" 2>/dev/null || true; fi
    }
    NOFILE="$(ulimit -n)"
    [[ "$NOFILE" == unlimited ]] && NOFILE=1048576
    ((NOFILE >= need)) || die "IDLE=1 with IDLE_CONNS=$IDLE_CONNS needs an open-file limit of at least $need, but 'ulimit -n' is $NOFILE and the hard limit $(ulimit -Hn) cannot be exceeded: raise the hard limit (limits.conf, docker --ulimit nofile=65536:65536), lower IDLE_CONNS, or set IDLE=0"
    log "open-file limit (ulimit -n) for this run: $NOFILE"
}

# ------------------------------------------------------------------- main ---
ensure_tools
NOFILE="$(ulimit -n)"
[[ "$IDLE" == 1 ]] && raise_nofile

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

# Targets in measurement order: name|kind|url. The kind says how a target is measured:
#   wrk    wrk, keep-alive (CONNECTIONS connections)
#   key    the same, sending the consumer's API key (-H "x-api-key: ...")
#   close  wrk sending -H "Connection: close": the server closes after each
#          response and wrk opens a new TCP connection for the next request
#   h2     h2load: HTTP/2 with prior knowledge, H2_CONNECTIONS connections x H2_STREAMS streams
TARGETS=()
add_target() { TARGETS+=("$1|$2|$3"); }   # NAME KIND URL
declare -A PROC_PIDS=()                   # target -> the pids whose RSS is its RSS
# The plugins scenario's consumer key (a plaintext key-auth credential).
API_KEY="gatehouse-bench-consumer-key"

# (a) upstream
UP_PORT="$(free_port)"
"${LOAD_PIN[@]}" "$UPSTREAM_BIN" --listen "127.0.0.1:$UP_PORT" --threads "$UPSTREAM_THREADS" \
    >"$WORK/upstream.log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
wait_ready bench-upstream "$UP_PID" "$UP_PORT" "$WORK/upstream.log"
check_response upstream "http://127.0.0.1:$UP_PORT$REQ_PATH"
PROC_PIDS[upstream]="$UP_PID"
add_target upstream wrk "http://127.0.0.1:$UP_PORT$REQ_PATH"
log "bench-upstream pid $UP_PID on 127.0.0.1:$UP_PORT"

write_gatehouse_config() { # FILE PORT MODE (plain | plugins | rr4 | https | idle)
    local file="$1" port="$2" mode="$3" t
    {
        printf 'server:\n  worker_threads: %s\n' "$THREADS"
        if [[ "$mode" == idle ]]; then
            # IDLE_CONNS connections from one address: the default caps would
            # refuse most of them (max_connections is derived from the open-file
            # limit, at most 10000; max_connections_per_ip is a quarter of it),
            # and an idle keep-alive connection is closed after the shorter of
            # header_read_timeout (30s) and idle_timeout (60s).
            printf '  max_connections: %s\n  max_connections_per_ip: 0\n' "$((IDLE_CONNS + 1000))"
            printf '  header_read_timeout: 300s\n  idle_timeout: 300s\n'
        fi
        printf 'listeners:\n  - address: "127.0.0.1:%s"\n' "$port"
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
        # The four plugins on the route; key-auth identifies the consumer `bench`.
        cat >>"$file" <<EOF2
    plugins:
      - name: request-id
      - name: cors
        config:
          origins: ["*"]
      - name: key-auth
        config:
          key_names: ["x-api-key"]
      - name: headers
        config:
          response:
            set:
              x-gateway: gatehouse
consumers:
  - username: bench
    credentials:
      key_auth:
        - key: "$API_KEY"
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
    PROC_PIDS[$name]="$GH_PID"
    log "$name pid $GH_PID on 127.0.0.1:$GH_PORT (config $WORK/$name.yaml)"
}

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
    kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# stop_procs PID...: SIGTERM, up to 10 s to exit, then SIGKILL; forget them in PIDS.
stop_procs() {
    local pid i any keep=()
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 100; i++)); do
        any=0
        for pid in "$@"; do alive "$pid" && any=1; done
        ((any)) || break
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do [[ " $* " == *" $pid "* ]] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}

# (b) gatehouse, plain
if [[ "$SKIP_GATEHOUSE" != 1 ]]; then
    start_gatehouse gatehouse plain
    check_response gatehouse "http://127.0.0.1:$GH_PORT$REQ_PATH"
    add_target gatehouse wrk "http://127.0.0.1:$GH_PORT$REQ_PATH"
fi

# (c) nginx, and (e) nginx doing the same per-request header work as
# gatehouse's defaults (X-Forwarded-*, Forwarded, Via both ways, a generated
# X-Request-Id sent upstream and echoed): plain nginx adds none of these.
start_nginx() { # NAME EXTRA_LOCATION_DIRECTIVES [UPSTREAM_PORTS] [MODE] -> NG_PID NG_PORT NG_URL
    # MODE: plain; tls (HTTPS termination); h2 (HTTP/2 with prior knowledge:
    # in nginx 1.22 `listen ... http2` without ssl speaks h2c only); idle
    # (room for IDLE_CONNS connections, idle keep-alive connections kept 300 s).
    local name="$1" extra="$2" ports="${3:-$UP_PORT}" mode="${4:-plain}" servers="" listen scheme=http p
    local conns=8192 nofile=16384 http_extra="" curl_args=()
    NG_PORT="$(free_port)"
    for p in $ports; do servers+="        server 127.0.0.1:$p;"$'\n'; done
    listen="listen 127.0.0.1:$NG_PORT;"
    case "$mode" in
        tls)
            scheme=https
            # Same certificate, protocol and cipher suite as gatehouse-https.
            listen="listen 127.0.0.1:$NG_PORT ssl;
        ssl_certificate $WORK/tls/cert.pem;
        ssl_certificate_key $WORK/tls/key.pem;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites $TLS_SUITE;
        ssl_session_cache off;
        ssl_session_tickets off;" ;;
        h2)
            listen="listen 127.0.0.1:$NG_PORT http2;"
            curl_args=(--http2-prior-knowledge) ;;
        idle)
            # worker_connections counts client and upstream connections.
            conns=$((IDLE_CONNS + 1024)); nofile="$NOFILE"
            http_extra="keepalive_timeout 300s;" ;;
        plain) ;;
        *) die "start_nginx: unknown mode $mode" ;;
    esac
    NG_DIR="$WORK/$name"
    mkdir -p "$NG_DIR"/{logs,tmp}
    cat >"$NG_DIR/nginx.conf" <<EOF
worker_processes $THREADS;
pid $NG_DIR/nginx.pid;
error_log $NG_DIR/logs/error.log warn;
worker_rlimit_nofile $nofile;
events {
    worker_connections $conns;
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
    $http_extra
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
    NG_URL="$scheme://127.0.0.1:$NG_PORT$REQ_PATH"
    check_response "$name" "$NG_URL" "" "${curl_args[@]}"
    mapfile -t NG_WORKERS < <(pgrep -P "$NG_PID" || true)
    ((${#NG_WORKERS[@]} >= 1)) || die "$name master $NG_PID has no worker processes"
    PIDS+=("${NG_WORKERS[@]}")   # killed too if the master does not take them down
    PROC_PIDS[$name]="$NG_PID ${NG_WORKERS[*]}"
    log "$name master $NG_PID, workers ${NG_WORKERS[*]} on 127.0.0.1:$NG_PORT"
}

start_nginx nginx ""
add_target nginx wrk "$NG_URL"

# (d) gatehouse with the four plugins on the route; wrk sends the consumer's key.
if [[ "$SKIP_GATEHOUSE" != 1 && "$PLUGINS" == 1 ]]; then
    start_gatehouse gatehouse-plugins plugins
    url="http://127.0.0.1:$GH_PORT$REQ_PATH"
    check_response gatehouse-plugins "$url" "x-gateway: gatehouse" -H "x-api-key: $API_KEY"
    # key-auth really runs: the same request without the key is refused.
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)"
    [[ "$code" == 401 ]] || die "gatehouse-plugins: GET $url without the API key returned $code, expected 401"
    add_target gatehouse-plugins key "$url"
fi

# (d') the baseline binary, plain and with plugins, when BASELINE_BIN is set
if [[ -n "$BASELINE_BIN" && "$SKIP_GATEHOUSE" != 1 ]]; then
    start_gatehouse baseline plain "$BASELINE_BIN"
    check_response baseline "http://127.0.0.1:$GH_PORT$REQ_PATH"
    add_target baseline wrk "http://127.0.0.1:$GH_PORT$REQ_PATH"
    if [[ "$PLUGINS" == 1 ]]; then
        start_gatehouse baseline-plugins plugins "$BASELINE_BIN"
        check_response baseline-plugins "http://127.0.0.1:$GH_PORT$REQ_PATH" "x-gateway: gatehouse" -H "x-api-key: $API_KEY"
        add_target baseline-plugins key "http://127.0.0.1:$GH_PORT$REQ_PATH"
    fi
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
    add_target nginx-equiv wrk "$NG_URL"
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
        add_target gatehouse-rr4 wrk "http://127.0.0.1:$GH_PORT$REQ_PATH"
    fi
    start_nginx nginx-rr4 "" "${RR_PORTS[*]}"
    add_target nginx-rr4 wrk "$NG_URL"
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
        add_target gatehouse-https wrk "https://127.0.0.1:$GH_PORT$REQ_PATH"
        [[ "$(tls_cipher "$GH_PORT")" == "$TLS_SUITE" ]] || die "gatehouse-https did not negotiate $TLS_SUITE"
    fi
    start_nginx nginx-https "" "$UP_PORT" tls
    add_target nginx-https wrk "$NG_URL"
    [[ "$(tls_cipher "$NG_PORT")" == "$TLS_SUITE" ]] || die "nginx-https did not negotiate $TLS_SUITE"
    log "HTTPS: both negotiate TLS 1.3 with $TLS_SUITE"
fi

# (h) a new TCP connection per request: the plain configs, wrk sending
# "Connection: close". Each measurement also counts the connections the
# kernel accepted (passive_opens), so the report shows wrk really reconnected.
if [[ "$CLOSE" == 1 ]]; then
    if [[ "$SKIP_GATEHOUSE" != 1 ]]; then
        start_gatehouse gatehouse-close plain
        check_response gatehouse-close "http://127.0.0.1:$GH_PORT$REQ_PATH" "" -H "Connection: close"
        add_target gatehouse-close close "http://127.0.0.1:$GH_PORT$REQ_PATH"
    fi
    start_nginx nginx-close ""
    add_target nginx-close close "$NG_URL"
fi

# check_h2 NAME URL: the server answers with HTTP/2 over cleartext (prior knowledge).
check_h2() {
    local v
    check_response "$1" "$2" "" --http2-prior-knowledge
    v="$(curl -sS --http2-prior-knowledge -o /dev/null -w '%{http_version}' --max-time 5 "$2" 2>&1)" || true
    [[ "$v" == 2 ]] || die "$1: $2 did not answer over HTTP/2 with prior knowledge (curl: '$v')"
}

# (i) HTTP/2 downstream, h2c with prior knowledge: gatehouse's plain listener
# (HTTP/1.1 and h2c on one port, `http2: true` by default) vs an nginx
# `listen ... http2` server. HTTP/1.1 to the upstream from both.
if [[ "$H2" == 1 ]]; then
    if [[ "$SKIP_GATEHOUSE" != 1 ]]; then
        start_gatehouse gatehouse-h2 plain
        check_h2 gatehouse-h2 "http://127.0.0.1:$GH_PORT$REQ_PATH"
        add_target gatehouse-h2 h2 "http://127.0.0.1:$GH_PORT$REQ_PATH"
    fi
    start_nginx nginx-h2 "" "$UP_PORT" h2
    check_h2 nginx-h2 "$NG_URL"
    add_target nginx-h2 h2 "$NG_URL"
fi

# check_big NAME URL: GET /big returns the whole 1 MiB body.
BIG_PATH=/big
BIG_BYTES=1048576
check_big() {
    local got
    check_response "$1" "$2"
    got="$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' --max-time 10 "$2" 2>&1)" || true
    [[ "$got" == "200 $BIG_BYTES" ]] || die "$1: GET $2 gave '$got', expected '200 $BIG_BYTES' (status, bytes)"
}

# (j) 1 MiB responses (bench-upstream's /big), compared in bytes/s.
if [[ "$BIG" == 1 ]]; then
    check_big upstream "http://127.0.0.1:$UP_PORT$BIG_PATH"
    if [[ "$SKIP_GATEHOUSE" != 1 ]]; then
        start_gatehouse gatehouse-big plain
        check_big gatehouse-big "http://127.0.0.1:$GH_PORT$BIG_PATH"
        add_target gatehouse-big wrk "http://127.0.0.1:$GH_PORT$BIG_PATH"
    fi
    start_nginx nginx-big ""
    NG_URL="http://127.0.0.1:$NG_PORT$BIG_PATH"
    check_big nginx-big "$NG_URL"
    add_target nginx-big wrk "$NG_URL"
fi

# measure NAME KIND URL DURATION OUTFILE: one load run (wrk or h2load).
measure() {
    local kind="$2" url="$3" dur="$4" out="$5" args=()
    case "$kind" in
        key) args=(-H "x-api-key: $API_KEY") ;;
        close) args=(-H "Connection: close") ;;
    esac
    # In the background + `wait`, so a signal to this script runs the trap at once.
    if [[ "$kind" == h2 ]]; then
        "${LOAD_PIN[@]}" h2load -t 1 -c "$H2_CONNECTIONS" -m "$H2_STREAMS" -D "$(seconds "$dur")" "$url" \
            >"$out" 2>&1 &
    else
        "${LOAD_PIN[@]}" wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "$dur" --latency "${args[@]}" "$url" \
            >"$out" 2>&1 &
    fi
    WRK_PID=$!
    wait "$WRK_PID" || { cat "$out" >&2; die "$1: load run against $url failed"; }
    WRK_PID=""
}

# measure_idle NAME ROUND: a fresh proxy (NAME gatehouse-idle or nginx-idle),
# its RSS, IDLE_CONNS idle keep-alive connections that each did one request,
# its RSS again; then the client and the proxy stop. Writes r<ROUND>-NAME.idle.
measure_idle() {
    local name="$1" out="$WORK/raw/r$2-$1" port pids before after opened still rc=0 deadline pid o e s
    if [[ "$name" == gatehouse-idle ]]; then
        start_gatehouse "$name" idle; port="$GH_PORT"
    else
        start_nginx "$name" "" "$UP_PORT" idle; port="$NG_PORT"
    fi
    pids="${PROC_PIDS[$name]}"
    check_response "$name" "http://127.0.0.1:$port$REQ_PATH"
    sleep 0.5
    # shellcheck disable=SC2086  # pids is a space-separated pid list
    before="$(status_kb VmRSS $pids)"
    rm -f "$out.release"
    "${LOAD_PIN[@]}" python3 "$ROOT/bench/idle_conns.py" --port "$port" --path "$REQ_PATH" \
        -n "$IDLE_CONNS" --release "$out.release" >"$out.client" 2>"$out.client.err" &
    IDLE_PID=$!
    deadline=$((SECONDS + 120 + IDLE_CONNS / 100))
    until grep -q '^open ' "$out.client"; do
        alive "$IDLE_PID" || { cat "$out.client.err" >&2; die "$name: the idle client exited before reporting its connections"; }
        ((SECONDS < deadline)) || die "$name: opening $IDLE_CONNS connections did not finish in time"
        sleep 0.2
    done
    sleep 1   # let the proxy finish with the last connections
    # shellcheck disable=SC2086
    after="$(status_kb VmRSS $pids)"
    for pid in $pids; do alive "$pid" || die "$name (pid $pid) died holding idle connections"; done
    touch "$out.release"
    wait "$IDLE_PID" || rc=$?
    IDLE_PID=""
    opened="$(awk '/^open / {print $2, $4, $6}' "$out.client")"
    still="$(awk '/^still_open / {print $2}' "$out.client")"
    # shellcheck disable=SC2086
    stop_procs $pids
    read -r o e s <<<"$opened"
    printf 'conns=%s\nopened=%s\nerrors=%s\nopen_seconds=%s\nstill_open=%s\nrss_before_kb=%s\nrss_after_kb=%s\nclient_rc=%s\n' \
        "$IDLE_CONNS" "$o" "$e" "$s" "${still:-0}" "$before" "$after" "$rc" >"$out.idle"
    if ((rc != 0)); then
        log "$name: the idle client reported failures ($(tr '\n' ' ' <"$out.client")); $(head -c 600 "$out.client.err")"
    fi
    log "$name: $o/$IDLE_CONNS connections open (${s}s), RSS $before kB -> $after kB, $((${still:-0})) still open at the end"
}
IDLE_TARGETS=()
if [[ "$IDLE" == 1 ]]; then
    [[ "$SKIP_GATEHOUSE" == 1 ]] || IDLE_TARGETS+=(gatehouse-idle)
    IDLE_TARGETS+=(nginx-idle)
fi

if [[ "$WARMUP" != 0 ]]; then
    for t in "${TARGETS[@]}"; do
        name="${t%%|*}"; rest="${t#*|}"
        log "warm-up $name for $WARMUP"
        measure "$name" "${rest%%|*}" "${rest#*|}" "$WARMUP" "$WORK/raw/warmup-$name.txt"
    done
fi

for ((round = 1; round <= ROUNDS; round++)); do
    for t in "${TARGETS[@]}"; do
        name="${t%%|*}"; rest="${t#*|}"; kind="${rest%%|*}"; url="${rest#*|}"
        log "round $round/$ROUNDS: $name ($kind, $DURATION)"
        out="$WORK/raw/r$round-$name.txt"
        accepted="$(passive_opens)"
        measure "$name" "$kind" "$url" "$DURATION" "$out"
        echo $(($(passive_opens) - accepted)) >"$WORK/raw/r$round-$name.accepted"
        # shellcheck disable=SC2086  # PROC_PIDS holds a space-separated pid list
        vmhwm_kb ${PROC_PIDS[$name]} >"$WORK/raw/r$round-$name.rss_kb"
        for pid in ${PROC_PIDS[$name]}; do
            alive "$pid" || die "$name (pid $pid) died during the measurement"
        done
    done
    for name in "${IDLE_TARGETS[@]}"; do
        log "round $round/$ROUNDS: $name ($IDLE_CONNS idle keep-alive connections)"
        measure_idle "$name" "$round"
    done
done
BIG_TEMP_FILES=""
if [[ "$BIG" == 1 ]]; then
    BIG_TEMP_FILES="$(grep -c 'buffered to a temporary file' "$WORK/nginx-big/logs/error.log" || true)"
fi

# ---------------------------------------------------------------- report ---
mkdir -p "$RESULTS_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
JSON="$RESULTS_DIR/load-$STAMP.json"
target_names=(); target_kinds=()
for t in "${TARGETS[@]}"; do
    rest="${t#*|}"; target_names+=("${t%%|*}"); target_kinds+=("${t%%|*}=${rest%%|*}")
done
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
git_rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git_dirty="$(git -C "$ROOT" status --porcelain 2>/dev/null | head -c1 | wc -c)"

python3 "$ROOT/bench/load_report.py" \
    --raw "$WORK/raw" --json "$JSON" --rounds "$ROUNDS" --strict "$STRICT" \
    --targets "${target_names[*]}" --kinds "${target_kinds[*]}" --idle "${IDLE_TARGETS[*]}" \
    --meta "timestamp=$STAMP" "git_rev=$git_rev" "git_dirty=$git_dirty" \
    "duration=$DURATION" "rounds=$ROUNDS" "connections=$CONNECTIONS" "threads=$THREADS" \
    "wrk_threads=$WRK_THREADS" "upstream_threads=$UPSTREAM_THREADS" "warmup=$WARMUP" \
    "req_path=$REQ_PATH" "big_path=$BIG_PATH" "big_bytes=$BIG_BYTES" "tls_suite=$TLS_SUITE" \
    "h2_connections=$H2_CONNECTIONS" "h2_streams=$H2_STREAMS" "idle_conns=$IDLE_CONNS" "nofile=$NOFILE" \
    "nginx_big_temp_file_warnings=$BIG_TEMP_FILES" "pin=$PIN" "proxy_cpus=$PROXY_CPUS" "load_cpus=$LOAD_CPUS" \
    "nproc=$(nproc)" "loadavg_start=$LOADAVG_START" "cpu_model=$cpu_model" "kernel=$(uname -r)" \
    "nginx_version=$(nginx -v 2>&1 | sed 's/^nginx version: //')" \
    "wrk_version=$(wrk -v 2>&1 | head -n1 | awk '{print $2}')" \
    "h2load_version=$( ( [[ "$H2" == 1 ]] && h2load --version 2>&1 | head -n1 ) || true)" \
    "rss_note=gatehouse: VmHWM of the gatehouse process; nginx: sum of VmHWM of master + workers (shared pages counted per process, so an upper bound); each process lives for the whole run, so the value is the peak over all rounds so far"
