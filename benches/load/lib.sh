# shellcheck shell=bash
# Shared by benches/load/run.sh, soak.sh, pair.sh and targets.sh (sourced, not run): logging, the
# release build, pinned background processes, free loopback ports and the results' last lines.
#
# Before sourcing, set LOG_TAG (the log prefix) and ROOT (the repository); the caller sets up
# PID_OF (declare -A), and RUN_DIR with its own cleanup trap or through temporary_run_dir.

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$LOG_TAG" -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_tools() { # tool...: die naming the first one missing
    export PATH="$PATH:/usr/sbin:/sbin"
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool not found (run benches/load/run.sh without --no-install, or install it)"
    done
}

# The release gateway and the token minter (built unless BUILD=0).
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
TG_BIN="${TG_BIN:-$TARGET_DIR/release/tokengate}"   # TG_BIN=… overrides (an older build, for an A/B)
MINT_BIN="$TARGET_DIR/release/examples/mint"
build_release() {
    if [[ $BUILD == 1 ]]; then
        log "cargo build --release -p tokengate (and the mint example)"
        local out="/tmp/tokengate-$LOG_TAG-build.$$.log"
        ( cd "$ROOT" && cargo build --release -p tokengate && \
            cargo build --release -p tokengate-benches --example mint ) >"$out" 2>&1 \
            || { tail -30 "$out" >&2; die "build failed"; }
        rm -f "$out"
    fi
    [[ -x "$TG_BIN" && -x "$MINT_BIN" ]] || die "missing $TG_BIN or $MINT_BIN (drop --skip-build)"
}

temporary_run_dir() { # name: RUN_DIR in /tmp, removed on exit with every process in PID_OF
    RUN_DIR="$(mktemp -d "/tmp/tokengate-$1.XXXXXX")"
    trap cleanup_run_dir EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
cleanup_run_dir() {
    local rc=$? name
    trap - EXIT INT TERM
    for name in "${!PID_OF[@]}"; do stop_proc "$name"; done
    rm -rf "$RUN_DIR"
    exit "$rc"
}

start_proc() { # name cpu logfile cmd...: start pinned, in the background
    local name="$1" cpu="$2" logfile="$3"; shift 3
    taskset -c "$cpu" "$@" >"$logfile" 2>&1 &
    # shellcheck disable=SC2004  # PID_OF is associative (declare -A in each script)
    PID_OF[$name]=$!
}

stop_proc() { # name: SIGTERM, then SIGKILL after 5 s
    local name="$1" pid="${PID_OF[$1]:-}"
    [[ -n "$pid" ]] || return 0
    unset "PID_OF[$name]"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) did not stop on SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

# Ports are taken below the kernel's ephemeral range, so no outgoing connection (wrk, the
# proxies' upstream connections, other work on the machine) can hold one when it is bound.
declare -A TAKEN=()
read -r EPHEMERAL_LOW _ </proc/sys/net/ipv4/ip_local_port_range
PORT_HIGH=$(( EPHEMERAL_LOW > 12000 ? EPHEMERAL_LOW - 1 : 65535 ))
PORT_LOW=$(( EPHEMERAL_LOW > 12000 ? 10000 : 61000 ))
free_port() { # a loopback TCP port nobody listens on (bounded tries)
    local p
    for _ in $(seq 200); do
        p=$(( PORT_LOW + (RANDOM * 32768 + RANDOM) % (PORT_HIGH - PORT_LOW + 1) ))
        [[ -n "${TAKEN[$p]:-}" ]] && continue
        if [[ -z "$(ss -Htln "sport = :$p")" ]]; then TAKEN[$p]=1; echo "$p"; return 0; fi
    done
    die "no free port found"
}

render() { # template output [MAX_TOKENS]: fills the @PLACEHOLDERS@ of benches/load's templates
    # @NAME@ takes $NAME when that variable is set (@RUN@ takes $RUN_DIR, @MAX_TOKENS@ the third
    # argument, default 100000). A placeholder whose variable is unset stays, and is refused
    # below, so each script sets only what its templates use.
    local args=(-e "s#@RUN@#$RUN_DIR#g" -e "s#@MAX_TOKENS@#${3:-100000}#g") name
    for name in UPSTREAM_PORT NGINX_PROXY_PORT REDIS_PORT HAPROXY_PASS_PORT HAPROXY_ES256_PORT \
        HAPROXY_ES256_CLAIMS_PORT HAPROXY_RS256_PORT TG_PORT TG_ADMIN_PORT ISSUER AUDIENCE; do
        if [[ -n "${!name:-}" ]]; then args+=(-e "s#@$name@#${!name}#g"); fi
    done
    sed "${args[@]}" "$1" >"$2"
    if grep -q '@[A-Z_]*@' "$2"; then die "unrendered placeholder in $2"; fi
}

wait_http() { # name url: up to 10 s for any HTTP answer; fails if the process died
    local name="$1" url="$2" pid="${PID_OF[$1]}"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (log in $RUN_DIR)"
        if curl -s -o /dev/null --max-time 1 "$url"; then return 0; fi
        sleep 0.1
    done
    die "$name did not answer on $url within 10 s"
}

status_of() { # url [token]: HTTP status of one GET
    if [[ -n "${2:-}" ]]; then
        curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $2" "$1" || true
    else
        curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true
    fi
}

report_problems() { # all-clear-message [problem...]: the message when no problem was recorded, else the list
    local ok="$1"; shift
    if [[ $# -eq 0 ]]; then echo "$ok"; return; fi
    echo "Problems:"
    printf -- '- %s\n' "$@"
}
