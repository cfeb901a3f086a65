#!/usr/bin/env bash
# Load harness of tokengate: compares tokengate with nginx and HAProxy on loopback.
#
#   benches/load/run.sh [--quick] [--runs N] [--duration S] [--connections N] [--tokens N]
#                       [--rate N] [--skip-build] [--no-install] [--keep]
#
# Starts, all on 127.0.0.1 on free ports: a fixed upstream (nginx, 1 worker, small 200
# body), redis-server (revocation store of S4), then one proxy under test at a time: tokengate
# (release build, threads = 1), nginx as a plain reverse proxy (1 worker), HAProxy (nbthread 1)
# checking the same ES256 token with jwt_verify. wrk drives every scenario with the same
# settings (closed loop, -t1 -c32 by default); oha, when installed, measures latency at a
# fixed rate: the direct upstream, nginx as a proxy and tokengate (S2). nginx's row shows what
# any proxy on the other core adds on this machine (the cross-core wake-ups), next to
# tokengate's. Prints one markdown table (also written to benches/load/results-<timestamp>.md).
#
# CPU pinning (2 cores): the proxy under test alone on core 1 (PROXY_CPU); wrk/oha, the
# upstream nginx and redis on core 0 (LOAD_CPU). REDIS_CPU (default LOAD_CPU) moves
# redis-server: REDIS_CPU=1 puts it on the proxy's core, where its CPU counts against the
# gateway instead of against the load generator.
#
# Every process the harness starts is stopped on exit, error, Ctrl-C or SIGTERM (a script
# started with `&` from a non-interactive shell ignores SIGINT: stop it with SIGTERM).
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

# ---------------------------------------------------------------- settings
DURATION=10        # seconds per measured wrk run
WARMUP=2           # seconds of warm-up before each measurement
CONNECTIONS=32
WRK_THREADS=1
RUNS=1
TOKENS=""          # distinct ES256 tokens of the cold scenario; default below
RATE=2000          # req/s of the fixed-rate latency measurement (oha)
QUICK=0
BUILD=1
INSTALL=1
KEEP=0
PROXY_CPU="${PROXY_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
REDIS_CPU="${REDIS_CPU:-$LOAD_CPU}"
ISSUER="https://idp.bench.local"
AUDIENCE="bench-api"

usage() { sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; }

CMDLINE="benches/load/run.sh${*:+ $*}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --runs) RUNS="${2:?--runs N}"; shift ;;
        --duration) DURATION="${2:?--duration S}"; shift ;;
        --connections) CONNECTIONS="${2:?--connections N}"; shift ;;
        --tokens) TOKENS="${2:?--tokens N}"; shift ;;
        --rate) RATE="${2:?--rate N}"; shift ;;
        --skip-build) BUILD=0 ;;
        --no-install) INSTALL=0 ;;
        --keep) KEEP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ $QUICK == 1 ]]; then
    DURATION=3
    WARMUP=1
fi
# Enough for one warm-up plus measurement at 30 000 requests/s, above what one core verifies
# with P-256 (fastest machine so far: tokengate 16 000 req/s in S3, `openssl speed` 24 000/s).
# A run that sends more is flagged in the table's problems. At most 1 000 000 (about 0.5 GB).
if [[ -z "$TOKENS" ]]; then
    TOKENS=$(( (DURATION + WARMUP) * 30000 ))
    (( TOKENS <= 1000000 )) || TOKENS=1000000
fi
for n in "$RUNS" "$DURATION" "$CONNECTIONS" "$TOKENS" "$RATE"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: numbers must be positive integers" >&2; exit 2; }
done
(( RUNS <= 9 && DURATION <= 120 && TOKENS <= 1000000 )) \
    || { echo "run.sh: at most --runs 9, --duration 120 and --tokens 1000000" >&2; exit 2; }

LOADAVG_SCRIPT_START="$(cut -d' ' -f1-3 /proc/loadavg)"
LOG_TAG=load
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"

# ---------------------------------------------------------------- process bookkeeping
RUN_DIR=""
declare -A PID_OF=()       # name -> pid of every process we started and have not stopped


cleanup() {
    local rc=$?
    trap - EXIT INT TERM ERR
    local name
    for name in "${!PID_OF[@]}"; do stop_proc "$name"; done
    if [[ -n "$RUN_DIR" && -d "$RUN_DIR" ]]; then
        # kept for inspection with --keep or after a failure (not after Ctrl-C / SIGTERM)
        if [[ $KEEP == 1 || ( $rc != 0 && $rc != 130 && $rc != 143 ) ]]; then
            log "run directory kept: $RUN_DIR"
        else
            rm -rf "$RUN_DIR"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR


# ---------------------------------------------------------------- prerequisites
NOTES=()
if [[ $INSTALL == 1 ]]; then
    missing=()
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl)
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing Debian packages: ${missing[*]}"
        NOTES+=("installed with apt-get: ${missing[*]}")
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y "${missing[@]}" >&2 \
            || { apt-get update >&2 && apt-get install -y "${missing[@]}" >&2; } \
            || die "apt-get install ${missing[*]} failed"
    fi
fi
need_tools nginx haproxy wrk redis-server redis-cli openssl curl taskset ss timeout
OHA="$(command -v oha || true)"
[[ -z "$OHA" && -x "$HOME/.cargo/bin/oha" ]] && OHA="$HOME/.cargo/bin/oha"

build_release

RUN_DIR="$(mktemp -d /tmp/tokengate-load.XXXXXX)"
LOADAVG_START="$(cut -d' ' -f1-3 /proc/loadavg)"   # after the build, before measuring
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
log "run directory $RUN_DIR, load average at start $LOADAVG_START"

# ---------------------------------------------------------------- ports and configuration
UPSTREAM_PORT=$(free_port); NGINX_PROXY_PORT=$(free_port); REDIS_PORT=$(free_port)
HAPROXY_PASS_PORT=$(free_port); HAPROXY_ES256_PORT=$(free_port)
HAPROXY_ES256_CLAIMS_PORT=$(free_port); HAPROXY_RS256_PORT=$(free_port)
TG_PORT=$(free_port); TG_ADMIN_PORT=$(free_port)

render "$HERE/nginx-upstream.conf" "$RUN_DIR/nginx-upstream.conf"
render "$HERE/nginx-proxy.conf" "$RUN_DIR/nginx-proxy.conf"
render "$HERE/haproxy.cfg" "$RUN_DIR/haproxy.cfg"
render "$HERE/tokengate.toml.in" "$RUN_DIR/tokengate-cache.toml" 100000
render "$HERE/tokengate.toml.in" "$RUN_DIR/tokengate-nocache.toml" 0
render "$HERE/tokengate-exchange.toml.in" "$RUN_DIR/exchange-fragment.toml"
cat "$RUN_DIR/tokengate-cache.toml" "$RUN_DIR/exchange-fragment.toml" >"$RUN_DIR/tokengate-exchange.toml"

log "minting keys and $TOKENS distinct ES256 tokens"
timeout 300 "$MINT_BIN" --out "$RUN_DIR" --count "$TOKENS" --issuer "$ISSUER" --audience "$AUDIENCE" >&2
for alg in es256 rs256; do
    openssl pkey -in "$RUN_DIR/$alg.key.pem" -pubout -out "$RUN_DIR/$alg.pub.pem" 2>/dev/null \
        || die "openssl pkey -pubout failed for $alg"
done
ES_TOKEN="$(<"$RUN_DIR/es256.token")"
RS_TOKEN="$(<"$RUN_DIR/rs256.token")"
ES_BAD="$(<"$RUN_DIR/es256-bad.token")"
TOKENS_FILE="$RUN_DIR/es256-tokens.txt"

for cfg in tokengate-cache tokengate-nocache; do
    "$TG_BIN" check --config "$RUN_DIR/$cfg.toml" >&2 || die "tokengate check refused $cfg.toml"
done
# S5 needs token exchange ([signer], forward_token = "exchange"); a binary without it refuses
# the file, and S5 is skipped rather than failing the whole run.
EXCHANGE=1
if ! exchange_check="$("$TG_BIN" check --config "$RUN_DIR/tokengate-exchange.toml" 2>&1)"; then
    EXCHANGE=0
    NOTES+=("S5 (token exchange) skipped: tokengate check refused the exchange configuration: $(tr '\n' ' ' <<<"$exchange_check" | cut -c1-300)")
fi
haproxy -c -q -f "$RUN_DIR/haproxy.cfg" >&2 || die "haproxy -c refused the configuration"
nginx -t -q -e "$RUN_DIR/nginx-t.log" -c "$RUN_DIR/nginx-upstream.conf" >&2 || die "nginx -t (upstream)"
nginx -t -q -e "$RUN_DIR/nginx-t.log" -c "$RUN_DIR/nginx-proxy.conf" >&2 || die "nginx -t (proxy)"

# ---------------------------------------------------------------- measurement
declare -A RES=()          # "row|metric" -> space-separated values, one per run
declare -A NOTE=()         # row -> note
ROWS=()                    # rows in first-seen order: "scenario|system"
ERRORS=()                  # expectation failures (smoke checks, non-2xx where 2xx expected)

add_row() { local r="$1"; [[ -n "${RES[$r|seen]:-}" ]] || { RES[$r|seen]=1; ROWS+=("$r"); }; }


smoke() { # label url token expected-status
    local got; got="$(status_of "$2" "$3")"
    if [[ "$got" != "$4" ]]; then
        ERRORS+=("smoke check $1: expected $4, got $got")
        log "SMOKE FAILED $1: expected $4, got $got"
        return 1
    fi
    log "smoke ok: $1 -> $got"
}

wrk_run() { # seconds url token-mode(token:<jwt>|file:<path>|none) -> RESULT line on stdout
    local secs="$1" url="$2" mode="$3" out
    local -a env=(WRK_THREADS="$WRK_THREADS")
    case "$mode" in
        token:*) env+=(WRK_TOKEN="${mode#token:}") ;;
        file:*) env+=(WRK_TOKENS_FILE="${mode#file:}") ;;
    esac
    out="$(env "${env[@]}" timeout $((secs + 30)) taskset -c "$LOAD_CPU" \
        wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${secs}s" --timeout 5s \
        -s "$HERE/wrk.lua" "$url" 2>&1)" || { log "wrk failed: $out"; return 1; }
    grep '^RESULT ' <<<"$out" | tail -1
}

field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<" $1"; }

measure() { # scenario system url mode expect-non2xx(0|all) [note]
    local scen="$1" sys="$2" url="$3" mode="$4" expect="$5" row="$1|$2" line req dur non2xx
    add_row "$row"
    [[ -n "${6:-}" ]] && NOTE[$row]="$6"
    if [[ "$mode" == file:* ]]; then
        # The distinct-token run warms up with the single long-lived token, so no token of
        # the file is used (or cached) before the measurement.
        wrk_run "$WARMUP" "$url" "token:$ES_TOKEN" >/dev/null || true
    else
        wrk_run "$WARMUP" "$url" "$mode" >/dev/null || true
    fi
    [[ -z "$AFTER_WARMUP" ]] || "$AFTER_WARMUP"
    log "measure $scen / $sys (${DURATION}s)"
    line="$(wrk_run "$DURATION" "$url" "$mode")" || { ERRORS+=("$row: wrk failed"); return 0; }
    req="$(field "$line" requests)"; dur="$(field "$line" duration_us)"; non2xx="$(field "$line" non2xx)"
    local errs=$(( $(field "$line" connect) + $(field "$line" read) + $(field "$line" write) + $(field "$line" timeout) ))
    RES[$row|rps]+="$(awk -v r="$req" -v d="$dur" 'BEGIN{printf "%.0f", r/(d/1e6)}') "
    RES[$row|p50]+="$(awk -v v="$(field "$line" p50_us)" 'BEGIN{printf "%.3f", v/1000}') "
    RES[$row|p99]+="$(awk -v v="$(field "$line" p99_us)" 'BEGIN{printf "%.3f", v/1000}') "
    RES[$row|req]+="$req "
    RES[$row|non2xx]+="$non2xx "
    RES[$row|sockerr]+="$errs "
    if [[ "$expect" == 0 && "$non2xx" != 0 ]]; then
        ERRORS+=("$row: $non2xx non-2xx answers of $req where all should be 200")
    elif [[ "$expect" == all && "$non2xx" != "$req" ]]; then
        ERRORS+=("$row: only $non2xx of $req answers were refusals")
    fi
    [[ "$errs" == 0 ]] || ERRORS+=("$row: $errs socket errors (connect/read/write/timeout)")
}

oha_run() { # row url [token]: fixed-rate latency
    local row="$1" url="$2" token="${3:-}" json
    [[ -n "$OHA" ]] || return 0
    add_row "$row"
    local -a hdr=()
    [[ -n "$token" ]] && hdr=(-H "Authorization: Bearer $token")
    log "measure $row (oha, ${RATE} req/s, ${DURATION}s)"
    json="$(timeout $((DURATION + 30)) taskset -c "$LOAD_CPU" "$OHA" --no-tui --output-format json \
        -z "${DURATION}s" -q "$RATE" -c "$CONNECTIONS" --latency-correction "${hdr[@]}" "$url" 2>/dev/null)" \
        || { ERRORS+=("$row: oha failed"); return 0; }
    if [[ "$(jq -r '.latencyPercentiles.p50 // "none"' <<<"$json" 2>/dev/null)" == none ]]; then
        ERRORS+=("$row: oha measured nothing (no successful request)"); return 0
    fi
    RES[$row|rps]+="$(jq -r '.summary.requestsPerSec | floor' <<<"$json") "
    RES[$row|p50]+="$(jq -r '.latencyPercentiles.p50' <<<"$json" | awk '{ printf "%.3f", $1 * 1000 }') "
    RES[$row|p99]+="$(jq -r '.latencyPercentiles.p99' <<<"$json" | awk '{ printf "%.3f", $1 * 1000 }') "
    local total ok
    total="$(jq -r '[.statusCodeDistribution[]] | add // 0' <<<"$json")"
    ok="$(jq -r '.statusCodeDistribution["200"] // 0' <<<"$json")"
    RES[$row|req]+="$total "
    RES[$row|non2xx]+="$(( total - ok )) "
    # oha counts the requests cut by the end of -z as "aborted due to deadline": not errors.
    RES[$row|sockerr]+="$(jq -r '[.errorDistribution // {} | to_entries[] | select(.key != "aborted due to deadline") | .value] | add // 0' <<<"$json") "
    [[ "$total" == "$ok" ]] || ERRORS+=("$row: $((total - ok)) non-200 answers of $total")
}

metric() { # name-prefix: sum of the matching tokengate metric lines
    curl -s --max-time 2 "http://127.0.0.1:$TG_ADMIN_PORT/metrics" \
        | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%d", s }'
}

# Hooks run by measure between the warm-up and the measurement (AFTER_WARMUP=function).
AFTER_WARMUP=""
SNAPSHOT=0
snapshot_checks() { SNAPSHOT="$(metric 'tokengate_revocation_checks_total{result="valid"}')"; }
snapshot_hits() { SNAPSHOT="$(metric 'tokengate_token_cache_hits_total')"; }
exchange_cache() { # hit|miss: exchanged-token cache lookups so far
    curl -s --max-time 2 "http://127.0.0.1:$TG_ADMIN_PORT/metrics" | awk -v r="result=\"$1\"" \
        'index($0, "tokengate_exchange_cache_total{") == 1 && index($0, r) { s += $NF } END { printf "%d", s }'
}
snapshot_exchange_hits() { SNAPSHOT="$(exchange_cache hit)"; }
snapshot_exchange_misses() { SNAPSHOT="$(exchange_cache miss)"; }

TG_LOG_ERRORS=0; TG_LOG_CLOSED=0
stop_tokengate() { # stop it and count the ERROR lines of its log
    local name="${TG_CONFIG:-}"
    stop_proc tokengate
    [[ -n "$name" && -f "$RUN_DIR/tokengate.$name.log" ]] || return 0
    local log_file="$RUN_DIR/tokengate.$name.log" all closed
    all="$(grep -c ' ERROR ' <(sed 's/\x1b\[[0-9;]*m//g' "$log_file") || true)"
    closed="$(grep -c 'Downstream ConnectionClosed' "$log_file" || true)"
    TG_LOG_ERRORS=$(( TG_LOG_ERRORS + all )); TG_LOG_CLOSED=$(( TG_LOG_CLOSED + closed ))
    if (( all > closed )); then
        ERRORS+=("tokengate ($name) logged $((all - closed)) unexpected ERROR lines, e.g.: $(sed 's/\x1b\[[0-9;]*m//g' "$log_file" | grep ' ERROR ' | grep -v 'Downstream ConnectionClosed' | head -1 | cut -c1-300)")
    fi
    mv "$log_file" "$log_file.$(date +%s%N)"
}

start_tokengate() { # config-name
    TG_CONFIG="$1"
    start_proc tokengate "$PROXY_CPU" "$RUN_DIR/tokengate.$1.log" "$TG_BIN" run --config "$RUN_DIR/$1.toml"
    for _ in $(seq 100); do
        kill -0 "${PID_OF[tokengate]}" 2>/dev/null || die "tokengate exited at start (log: $RUN_DIR/tokengate.$1.log)"
        # ready = keys loaded (admin /readyz) and the proxy listener answering
        if [[ "$(status_of "http://127.0.0.1:$TG_ADMIN_PORT/readyz")" == 200 \
            && "$(status_of "http://127.0.0.1:$TG_PORT/pass")" != 000 ]]; then
            return 0
        fi
        sleep 0.1
    done
    die "tokengate not ready within 10 s (log: $RUN_DIR/tokengate.$1.log)"
}

UP="http://127.0.0.1:$UPSTREAM_PORT"
NP="http://127.0.0.1:$NGINX_PROXY_PORT"
HP="http://127.0.0.1:$HAPROXY_PASS_PORT"
HE="http://127.0.0.1:$HAPROXY_ES256_PORT"
HC="http://127.0.0.1:$HAPROXY_ES256_CLAIMS_PORT"
HR="http://127.0.0.1:$HAPROXY_RS256_PORT"
TG="http://127.0.0.1:$TG_PORT"

# Shared backends: upstream and redis stay up for the whole run, on the load core.
start_proc upstream "$LOAD_CPU" "$RUN_DIR/nginx-upstream.out" \
    nginx -e "$RUN_DIR/nginx-upstream.error.log" -c "$RUN_DIR/nginx-upstream.conf"
wait_http upstream "$UP/"
start_proc redis "$REDIS_CPU" "$RUN_DIR/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --save "" --appendonly no --dir "$RUN_DIR" --daemonize no --protected-mode yes
for _ in $(seq 100); do
    [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] && break
    kill -0 "${PID_OF[redis]}" 2>/dev/null || die "redis-server exited at start"
    sleep 0.1
done
[[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] || die "redis-server not ready"

S0="S0 direct upstream"; S1="S1 passthrough"; S2="S2 valid, same token (warm)"
S3="S3 valid, distinct tokens (cold)"; S3N="S3 valid, same token, no cache (cold)"
S3R="S3 RS256, no cache (cold)"; S4="S4 valid + Redis revocation"; S6="S6 bad signature flood"
S5="S5 valid + exchange, same token (warm)"; S5C="S5 valid + exchange, distinct tokens (cold)"
L0="L fixed ${RATE} req/s: direct upstream"; L2="L fixed ${RATE} req/s: tokengate S2"
LP="L fixed ${RATE} req/s: nginx proxy"

SMOKED=0
for run in $(seq "$RUNS"); do
    log "=== run $run of $RUNS"

    # --- direct upstream
    measure "$S0" "nginx upstream" "$UP/api" none 0
    oha_run "$L0|nginx upstream" "$UP/api"

    # --- nginx reverse proxy
    start_proc nginx-proxy "$PROXY_CPU" "$RUN_DIR/nginx-proxy.out" \
        nginx -e "$RUN_DIR/nginx-proxy.error.log" -c "$RUN_DIR/nginx-proxy.conf"
    wait_http nginx-proxy "$NP/"
    [[ $SMOKED == 1 ]] || smoke "nginx proxy" "$NP/api" "" 200 || true
    measure "$S1" "nginx proxy" "$NP/api" none 0
    oha_run "$LP|nginx proxy" "$NP/api"
    stop_proc nginx-proxy

    # --- HAProxy
    start_proc haproxy "$PROXY_CPU" "$RUN_DIR/haproxy.log" haproxy -db -f "$RUN_DIR/haproxy.cfg"
    wait_http haproxy "$HP/"
    HAPROXY_OK=1
    if [[ $SMOKED == 0 ]]; then
        smoke "haproxy pass" "$HP/api" "" 200 || true
        smoke "haproxy ES256 valid" "$HE/api" "$ES_TOKEN" 200 || HAPROXY_OK=0
        smoke "haproxy ES256 bad signature" "$HE/api" "$ES_BAD" 401 || HAPROXY_OK=0
        smoke "haproxy ES256 no token" "$HE/api" "" 401 || HAPROXY_OK=0
        smoke "haproxy ES256 RS256 token" "$HE/api" "$RS_TOKEN" 401 || HAPROXY_OK=0
        smoke "haproxy ES256+claims valid" "$HC/api" "$ES_TOKEN" 200 || HAPROXY_OK=0
        smoke "haproxy ES256+claims bad signature" "$HC/api" "$ES_BAD" 401 || HAPROXY_OK=0
        smoke "haproxy RS256 valid" "$HR/api" "$RS_TOKEN" 200 || HAPROXY_OK=0
        smoke "haproxy RS256 bad signature" "$HR/api" "$(<"$RUN_DIR/rs256-bad.token")" 401 || HAPROXY_OK=0
        [[ $HAPROXY_OK == 1 ]] || NOTES+=("HAProxy jwt_verify smoke checks failed: see errors; its rows are still measured")
    fi
    measure "$S1" "haproxy" "$HP/api" none 0
    measure "$S2" "haproxy ES256" "$HE/api" "token:$ES_TOKEN" 0 "no cache: verifies every request"
    measure "$S2" "haproxy ES256 + claims" "$HC/api" "token:$ES_TOKEN" 0 "alg, signature, iss, aud, exp"
    measure "$S3" "haproxy ES256" "$HE/api" "file:$TOKENS_FILE" 0
    measure "$S3R" "haproxy RS256" "$HR/api" "token:$RS_TOKEN" 0
    measure "$S6" "haproxy ES256" "$HE/api" "token:$ES_BAD" all "401 via deny_status"
    stop_proc haproxy

    # --- tokengate, verified-token cache on (default size)
    start_tokengate tokengate-cache
    if [[ $SMOKED == 0 ]]; then
        smoke "tokengate pass" "$TG/pass" "" 200 || true
        smoke "tokengate ES256 valid" "$TG/api" "$ES_TOKEN" 200 || true
        smoke "tokengate RS256 valid" "$TG/api" "$RS_TOKEN" 200 || true
        smoke "tokengate bad signature" "$TG/api" "$ES_BAD" 401 || true
        smoke "tokengate no token" "$TG/api" "" 401 || true
        smoke "tokengate revocation route" "$TG/rev" "$ES_TOKEN" 200 || true
        # Revocation is really consulted: revoke the first token of the list (never measured
        # on /rev) through Redis and expect a 401 for it.
        first="$(head -1 "$TOKENS_FILE")"
        payload="$(cut -d. -f2 <<<"$first" | tr '_-' '/+')"
        while (( ${#payload} % 4 )); do payload+="="; done
        jti="$(base64 -d <<<"$payload" 2>/dev/null | jq -r .jti)"
        exp="$(base64 -d <<<"$payload" 2>/dev/null | jq -r .exp)"
        smoke "tokengate /rev before revoke" "$TG/rev" "$first" 200 || true
        if "$TG_BIN" revoke --config "$RUN_DIR/tokengate-cache.toml" --jti "$jti" --exp "$exp" >&2; then
            smoke "tokengate /rev revoked token" "$TG/rev" "$first" 401 || true
        else
            ERRORS+=("tokengate revoke --jti failed")
        fi
    fi
    measure "$S1" "tokengate" "$TG/pass" none 0
    measure "$S2" "tokengate ES256" "$TG/api" "token:$ES_TOKEN" 0 "verified-token cache hit"
    oha_run "$L2|tokengate" "$TG/api" "$ES_TOKEN"
    AFTER_WARMUP=snapshot_checks
    measure "$S4" "tokengate ES256" "$TG/rev" "token:$ES_TOKEN" 0
    AFTER_WARMUP=""
    checks_after="$(metric 'tokengate_revocation_checks_total{result="valid"}')"
    NOTE["$S4|tokengate ES256"]="valid Redis checks during the measurement (last run): $((checks_after - SNAPSHOT))"
    measure "$S6" "tokengate ES256" "$TG/api" "token:$ES_BAD" all "401"
    stop_tokengate

    # fresh process: an empty cache, so no token of the file was seen before
    start_tokengate tokengate-cache
    AFTER_WARMUP=snapshot_hits
    measure "$S3" "tokengate ES256" "$TG/api" "file:$TOKENS_FILE" 0
    AFTER_WARMUP=""
    hits_after="$(metric 'tokengate_token_cache_hits_total')"
    NOTE["$S3|tokengate ES256"]="cache on, fresh process; cache hits during the measurement (last run): $((hits_after - SNAPSHOT))"
    (( hits_after - SNAPSHOT == 0 )) || ERRORS+=("$S3 tokengate: the run sent more than --tokens $TOKENS requests, so tokens repeated (cache hits); raise --tokens")
    stop_tokengate

    # --- tokengate with token exchange: same token (both caches hit), then distinct tokens on
    # a fresh process (a signature check, a mint and two cache inserts per request)
    if [[ $EXCHANGE == 1 ]]; then
        start_tokengate tokengate-exchange
        [[ $SMOKED == 1 ]] || smoke "tokengate exchange" "$TG/exch" "$ES_TOKEN" 200 || true
        AFTER_WARMUP=snapshot_exchange_hits
        measure "$S5" "tokengate ES256" "$TG/exch" "token:$ES_TOKEN" 0
        NOTE["$S5|tokengate ES256"]="local signer (ES256); exchanged-token cache hits during the measurement (last run): $(( $(exchange_cache hit) - SNAPSHOT ))"
        stop_tokengate
        start_tokengate tokengate-exchange
        AFTER_WARMUP=snapshot_exchange_misses
        measure "$S5C" "tokengate ES256" "$TG/exch" "file:$TOKENS_FILE" 0
        NOTE["$S5C|tokengate ES256"]="verify + mint per request; exchanged-token cache misses (= mints) during the measurement (last run): $(( $(exchange_cache miss) - SNAPSHOT ))"
        AFTER_WARMUP=""
        stop_tokengate
    fi

    # --- tokengate without the verified-token cache
    start_tokengate tokengate-nocache
    measure "$S3N" "tokengate ES256" "$TG/api" "token:$ES_TOKEN" 0 "[cache] max_tokens = 0"
    measure "$S3R" "tokengate RS256" "$TG/api" "token:$RS_TOKEN" 0 "[cache] max_tokens = 0"
    stop_tokengate
    SMOKED=1
done

# ---------------------------------------------------------------- report
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { median <<<"${RES[$1|$2]:-}"; }

ratio() { # label num-row den-row metric
    local a b
    a="$(med "$2" "$4")"; b="$(med "$3" "$4")"
    if [[ "$a" == - || "$b" == - || -z "${RES[$2|seen]:-}" || -z "${RES[$3|seen]:-}" ]]; then
        printf '| %s | n/a |\n' "$1"
    else
        awk -v l="$1" -v a="$a" -v b="$b" 'BEGIN { if (b == 0) printf "| %s | n/a |\n", l;
            else printf "| %s | %.2f (%s / %s) |\n", l, a / b, a, b }'
    fi
}
diff_ms() { # label row-a row-b metric: a - b in ms
    local a b
    [[ -n "${RES[$2|seen]:-}" && -n "${RES[$3|seen]:-}" ]] || { printf '| %s | n/a |\n' "$1"; return; }
    a="$(med "$2" "$4")"; b="$(med "$3" "$4")"
    awk -v l="$1" -v a="$a" -v b="$b" 'BEGIN { printf "| %s | %+.3f ms (%s − %s) |\n", l, a - b, a, b }'
}

RESULTS="$HERE/results-$STAMP.md"
{
    echo "# tokengate load harness — $STAMP"
    echo
    echo "- command: \`$CMDLINE\`; $RUNS run(s), medians reported"
    echo "- git: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && [[ -n "$(git status --porcelain 2>/dev/null)" ]] && echo ' (dirty work tree)')"
    echo "- machine: $(nproc) CPUs, $(uname -sr); load average (1/5/15 min) at start: $LOADAVG_SCRIPT_START, before measuring (after the build): $LOADAVG_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- generator: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s (closed loop; ${WARMUP}s warm-up before each), latency from wrk's histogram$([[ -n "$OHA" ]] && echo "; L rows: oha -q $RATE -c $CONNECTIONS -z ${DURATION}s --latency-correction")"
    echo "- pinning: proxy under test alone on CPU $PROXY_CPU (tokengate threads = 1, nginx 1 worker, HAProxy nbthread 1); wrk/oha and upstream nginx (1 worker) on CPU $LOAD_CPU, redis-server on CPU $REDIS_CPU"
    echo "- no access logs anywhere (tokengate access_log = false, nginx access_log off, HAProxy no log)"
    # (sed -n 1p rather than head: it reads everything, so no SIGPIPE under pipefail)
    echo "- versions: $("$TG_BIN" --version 2>&1 | sed -n 1p); $(nginx -v 2>&1 | sed 's/.*: //'); $(haproxy -v 2>&1 | sed -n '1s/^\(HAProxy version [^ ]*\).*/\1/p'); $({ wrk -v 2>&1 || true; } | sed -n '1s/^\(wrk [^ ]*\).*/\1/p'); redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')$([[ -n "$OHA" ]] && echo "; $("$OHA" --version 2>&1 | sed -n 1p)")"
    echo "- tokengate ERROR log lines: $TG_LOG_ERRORS, of which $TG_LOG_CLOSED are pingora's \"Downstream ConnectionClosed … Prematurely before response header is sent\" (wrk closing its connections with requests in flight at the end of each run)"
    [[ -n "$OHA" ]] || echo "- oha not installed (\`cargo install oha\`): the fixed-rate latency rows are skipped"
    for n in "${NOTES[@]}"; do echo "- $n"; done
    echo
    echo "| scenario | system | req/s | p50 ms | p99 ms | requests | non-2xx | notes |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    for row in "${ROWS[@]}"; do
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "${row%%|*}" "${row#*|}" \
            "$(med "$row" rps)" "$(med "$row" p50)" "$(med "$row" p99)" \
            "$(med "$row" req)" "$(med "$row" non2xx)" "${NOTE[$row]:-}"
    done
    echo
    echo "| ratio (req/s unless said) | value |"
    echo "| --- | --- |"
    ratio "S1 tokengate / nginx proxy" "$S1|tokengate" "$S1|nginx proxy" rps
    ratio "S1 tokengate / haproxy" "$S1|tokengate" "$S1|haproxy" rps
    ratio "S1 tokengate / direct upstream (S0)" "$S1|tokengate" "$S0|nginx upstream" rps
    ratio "S2 / S1 tokengate" "$S2|tokengate ES256" "$S1|tokengate" rps
    ratio "S2 tokengate / haproxy ES256" "$S2|tokengate ES256" "$S2|haproxy ES256" rps
    ratio "S2 tokengate / haproxy ES256 + claims" "$S2|tokengate ES256" "$S2|haproxy ES256 + claims" rps
    ratio "S3 tokengate / haproxy ES256 (distinct tokens)" "$S3|tokengate ES256" "$S3|haproxy ES256" rps
    ratio "S3 tokengate distinct / same token no cache" "$S3|tokengate ES256" "$S3N|tokengate ES256" rps
    ratio "S3 tokengate / S2 tokengate" "$S3|tokengate ES256" "$S2|tokengate ES256" rps
    ratio "S3 RS256 tokengate / haproxy" "$S3R|tokengate RS256" "$S3R|haproxy RS256" rps
    ratio "S4 / S2 tokengate" "$S4|tokengate ES256" "$S2|tokengate ES256" rps
    ratio "S5 warm / S2 tokengate" "$S5|tokengate ES256" "$S2|tokengate ES256" rps
    ratio "S5 cold / S3 tokengate (distinct tokens)" "$S5C|tokengate ES256" "$S3|tokengate ES256" rps
    ratio "S6 tokengate / haproxy (401/s)" "$S6|tokengate ES256" "$S6|haproxy ES256" rps
    diff_ms "S1 tokengate − nginx proxy, p99" "$S1|tokengate" "$S1|nginx proxy" p99
    diff_ms "S2 tokengate − S1 tokengate, p50" "$S2|tokengate ES256" "$S1|tokengate" p50
    if [[ -n "$OHA" ]]; then
        diff_ms "added p50 at $RATE req/s (tokengate S2 − direct)" "$L2|tokengate" "$L0|nginx upstream" p50
        diff_ms "added p99 at $RATE req/s (tokengate S2 − direct)" "$L2|tokengate" "$L0|nginx upstream" p99
        diff_ms "added p99 at $RATE req/s (nginx proxy − direct), for reference" "$LP|nginx proxy" "$L0|nginx upstream" p99
        diff_ms "p99 at $RATE req/s, tokengate S2 − nginx proxy" "$L2|tokengate" "$LP|nginx proxy" p99
    fi
    echo
    report_problems "All smoke checks passed; every 200-scenario answered only 2xx, every flood only refusals." "${ERRORS[@]}"
} >"$RESULTS"
cat "$RESULTS"
log "results written to $RESULTS"
