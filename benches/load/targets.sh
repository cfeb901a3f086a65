#!/usr/bin/env bash
# Paired measurement of the throughput targets of the load harness, for a noisy machine.
#
#   benches/load/targets.sh [--rounds N] [--duration S] [--connections N] [--tokens N]
#                           [--skip-build]
#
# run.sh measures one proxy after the other, so the ratios in its table come from runs up to
# a minute apart; a shared 2-core VM drifts by ±20 % over that time. This script starts every
# system at once (all pinned to CPU 1, only the one under load busy) and measures them in
# rounds: each round runs one short wrk run against each point below, in forward order on odd
# rounds and in reverse order on even ones, and every ratio is taken inside one round.
# Reported per ratio: the median and quartiles over the rounds, and the target.
#
# Points: nginx as a reverse proxy; a bare Pingora proxy (benches/examples/bare_proxy.rs, the
# framework with no hooks); tokengate /pass (no auth), /api (ES256, verified-token cache hit)
# and /rev (/api + Redis revocation check); HAProxy jwt_verify ES256 with one token; and,
# for S3, HAProxy and tokengate with a distinct token on every request (tokengate's tokens
# are never reused during the run: each run starts where the previous one stopped, and the
# script checks that the cache saw no hit; once 100 000 are cached, every insert evicts).
# A second tokengate with the verified-token cache disabled (max_tokens = 0) takes the same
# distinct tokens: the reference row "cache on / cache off" is what caching every new token
# costs a cold request.
# Same upstream (nginx, 1 worker), wrk -t1 and redis-server on CPU 0, as in run.sh.
#
# Bounded: at most 30 rounds of at most 5 s per point (9 points; 10 rounds of 1 s take about
# 2.5 minutes with the start-up). Loopback only; everything started here is stopped on exit.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

ROUNDS=10; DURATION=1; CONNECTIONS=32; TOKENS=""; BUILD=1
PROXY_CPU="${PROXY_CPU:-1}"; LOAD_CPU="${LOAD_CPU:-0}"
ISSUER="https://idp.bench.local"; AUDIENCE="bench-api"
usage() { sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; }
CMDLINE="benches/load/targets.sh${*:+ $*}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="${2:?--rounds N}"; shift ;;
        --duration) DURATION="${2:?--duration S}"; shift ;;
        --connections) CONNECTIONS="${2:?--connections N}"; shift ;;
        --tokens) TOKENS="${2:?--tokens N}"; shift ;;
        --skip-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "targets.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
# Enough distinct tokens for tokengate's S3 runs at up to 20 000 req/s.
[[ -n "$TOKENS" ]] || TOKENS=$(( ROUNDS * DURATION * 20000 + 10000 ))
for n in "$ROUNDS" "$DURATION" "$CONNECTIONS" "$TOKENS"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "targets.sh: numbers must be positive integers" >&2; exit 2; }
done
(( ROUNDS <= 30 && DURATION <= 5 && TOKENS <= 1000000 )) \
    || { echo "targets.sh: at most --rounds 30, --duration 5 and --tokens 1000000" >&2; exit 2; }

LOG_TAG=targets
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"
need_tools nginx haproxy wrk redis-server redis-cli openssl curl taskset ss timeout
BARE_BIN="$TARGET_DIR/release/examples/bare_proxy"
build_release
if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cargo build --release -p tokengate-benches --example bare_proxy) >&2 \
        || die "building bare_proxy failed"
fi
[[ -x "$BARE_BIN" ]] || die "missing $BARE_BIN (drop --skip-build)"

declare -A PID_OF=()
temporary_run_dir targets
LOADAVG_START="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- everything up at once
UPSTREAM_PORT=$(free_port); NGINX_PROXY_PORT=$(free_port); REDIS_PORT=$(free_port)
# haproxy.cfg listens on all four HAProxy ports (render reads them through ${!name}); this
# script drives only the ES256 one.
# shellcheck disable=SC2034
{
    HAPROXY_PASS_PORT=$(free_port); HAPROXY_ES256_PORT=$(free_port)
    HAPROXY_ES256_CLAIMS_PORT=$(free_port); HAPROXY_RS256_PORT=$(free_port)
}
TG_PORT=$(free_port); TG_ADMIN_PORT=$(free_port); BARE_PORT=$(free_port)
render "$HERE/nginx-upstream.conf" "$RUN_DIR/nginx-upstream.conf"
render "$HERE/nginx-proxy.conf" "$RUN_DIR/nginx-proxy.conf"
render "$HERE/haproxy.cfg" "$RUN_DIR/haproxy.cfg"
render "$HERE/tokengate.toml.in" "$RUN_DIR/tokengate.toml"
# The uncached gateway: its own directory (pid file, upgrade socket), the same keys.
TG_NC_PORT=$(free_port); TG_NC_ADMIN_PORT=$(free_port); TG_NC_DIR="$RUN_DIR/nocache"
mkdir -p "$TG_NC_DIR"
RUN_DIR="$TG_NC_DIR" TG_PORT="$TG_NC_PORT" TG_ADMIN_PORT="$TG_NC_ADMIN_PORT" \
    render "$HERE/tokengate.toml.in" "$TG_NC_DIR/tokengate.toml" 0

log "minting keys and $TOKENS distinct ES256 tokens"
timeout 600 "$MINT_BIN" --out "$RUN_DIR" --count "$TOKENS" --issuer "$ISSUER" --audience "$AUDIENCE" >&2
for alg in es256 rs256; do
    openssl pkey -in "$RUN_DIR/$alg.key.pem" -pubout -out "$RUN_DIR/$alg.pub.pem" 2>/dev/null \
        || die "openssl pkey -pubout failed for $alg"
done
TOKEN="$(<"$RUN_DIR/es256.token")"
TOKENS_FILE="$RUN_DIR/es256-tokens.txt"
cp "$RUN_DIR/jwks.json" "$TG_NC_DIR/jwks.json"

start_proc upstream "$LOAD_CPU" "$RUN_DIR/upstream.out" \
    nginx -e "$RUN_DIR/upstream.error.log" -c "$RUN_DIR/nginx-upstream.conf"
start_proc redis "$LOAD_CPU" "$RUN_DIR/redis.log" redis-server --port "$REDIS_PORT" \
    --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN_DIR"
start_proc nginx-proxy "$PROXY_CPU" "$RUN_DIR/nginx-proxy.out" \
    nginx -e "$RUN_DIR/nginx-proxy.error.log" -c "$RUN_DIR/nginx-proxy.conf"
start_proc haproxy "$PROXY_CPU" "$RUN_DIR/haproxy.log" haproxy -db -f "$RUN_DIR/haproxy.cfg"
start_proc bare "$PROXY_CPU" "$RUN_DIR/bare.log" "$BARE_BIN" \
    --listen "127.0.0.1:$BARE_PORT" --upstream "127.0.0.1:$UPSTREAM_PORT"
start_proc tokengate "$PROXY_CPU" "$RUN_DIR/tokengate.log" "$TG_BIN" run --config "$RUN_DIR/tokengate.toml"
start_proc tokengate-nocache "$PROXY_CPU" "$TG_NC_DIR/tokengate.log" "$TG_BIN" run \
    --config "$TG_NC_DIR/tokengate.toml"
UP="http://127.0.0.1:$UPSTREAM_PORT"; NP="http://127.0.0.1:$NGINX_PROXY_PORT"
HE="http://127.0.0.1:$HAPROXY_ES256_PORT"; BP="http://127.0.0.1:$BARE_PORT"
TG="http://127.0.0.1:$TG_PORT"; TG_NC="http://127.0.0.1:$TG_NC_PORT"
wait_http upstream "$UP/"; wait_http nginx-proxy "$NP/"; wait_http haproxy "$HE/"
wait_http bare "$BP/"; wait_http tokengate "http://127.0.0.1:$TG_ADMIN_PORT/readyz"
wait_http tokengate-nocache "http://127.0.0.1:$TG_NC_ADMIN_PORT/readyz"
[[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] || die "redis-server not ready"

expect() { # what got want
    [[ "$2" == "$3" ]] || die "smoke check failed: $1 answered $2, expected $3"
}
expect "haproxy ES256 valid" "$(status_of "$HE/api" "$TOKEN")" 200
expect "haproxy ES256 no token" "$(status_of "$HE/api")" 401
expect "tokengate /api valid" "$(status_of "$TG/api" "$TOKEN")" 200
expect "tokengate /api no token" "$(status_of "$TG/api")" 401
expect "tokengate /rev valid" "$(status_of "$TG/rev" "$TOKEN")" 200
expect "tokengate without cache /api valid" "$(status_of "$TG_NC/api" "$TOKEN")" 200
expect "bare pingora" "$(status_of "$BP/api")" 200

# ---------------------------------------------------------------- points and rounds
# name|url|mode   mode: none, token (the one token), distinct (the token file from a start line)
POINTS=(
    "nginx proxy|$NP/api|none"
    "bare pingora|$BP/api|none"
    "tokengate /pass|$TG/pass|none"
    "tokengate /api|$TG/api|token"
    "tokengate /rev|$TG/rev|token"
    "haproxy ES256|$HE/api|token"
    "haproxy ES256 distinct|$HE/api|distinct"
    "tokengate /api distinct|$TG/api|distinct"
    "tokengate /api distinct, no cache|$TG_NC/api|distinct"
)
NEXT_TOKEN=0   # first unused line of the token file, for tokengate's distinct runs
PROBLEMS=()

cache_hits() {
    curl -s --max-time 2 "http://127.0.0.1:$TG_ADMIN_PORT/metrics" \
        | awk 'index($0, "tokengate_token_cache_hits_total") == 1 { s += $NF } END { printf "%d", s }'
}

wrk_rps() { # seconds url mode start-line: sets WRK_RPS and LAST_REQUESTS; records problems
    local secs="$1" url="$2" mode="$3" start="$4" out line req dur bad
    local -a env=(WRK_THREADS=1)
    case "$mode" in
        token) env+=(WRK_TOKEN="$TOKEN") ;;
        distinct) env+=(WRK_TOKENS_FILE="$TOKENS_FILE" WRK_TOKENS_START="$start") ;;
    esac
    out="$(env "${env[@]}" timeout $((secs + 30)) taskset -c "$LOAD_CPU" wrk -t1 \
        -c"$CONNECTIONS" -d"${secs}s" --timeout 5s -s "$HERE/wrk.lua" "$url" 2>&1)" \
        || die "wrk failed against $url: $out"
    line="$(grep '^RESULT ' <<<"$out" | tail -1)"
    [[ -n "$line" ]] || die "wrk printed no RESULT line against $url: $out"
    req="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")"
    dur="$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$line")"
    bad="$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(non2xx|connect|read|write|timeout)=/) {
        split($i, kv, "="); s += kv[2] } } END { print s + 0 }' <<<"$line")"
    (( bad == 0 )) || PROBLEMS+=("$url ($mode): $bad non-2xx answers or socket errors of $req")
    LAST_REQUESTS="$req"
    WRK_RPS="$(awk -v r="$req" -v d="$dur" 'BEGIN { printf "%.0f", r / (d / 1e6) }')"
}

declare -A RPS=()   # "round|point" -> req/s
measure_point() { # round index
    local round="$1" name url mode start=0 hits
    IFS='|' read -r name url mode <<<"${POINTS[$2]}"
    # Only the cached gateway must never see a token twice; the uncached one (and HAProxy)
    # start from the first line each time.
    local fresh=0
    [[ "$name" == "tokengate /api distinct" ]] && fresh=1
    if (( fresh )); then
        start=$NEXT_TOKEN
        hits="$(cache_hits)"
    fi
    wrk_rps "$DURATION" "$url" "$mode" "$start"
    RPS[$round|$name]="$WRK_RPS"
    if (( fresh )); then
        # wrk sends up to one request per connection past the ones it counts.
        NEXT_TOKEN=$(( NEXT_TOKEN + LAST_REQUESTS + CONNECTIONS ))
        (( NEXT_TOKEN < TOKENS )) || die "ran out of distinct tokens: raise --tokens (now $TOKENS)"
        (( $(cache_hits) == hits )) || PROBLEMS+=("round $round: tokengate's distinct-token run had cache hits")
    fi
}

log "warm-up: one run of each point with the single token"
for i in "${!POINTS[@]}"; do
    IFS='|' read -r _ url mode <<<"${POINTS[$i]}"
    [[ "$mode" == distinct ]] && mode=token
    wrk_rps 1 "$url" "$mode" 0
done
log "$ROUNDS rounds of ${#POINTS[@]} points, ${DURATION}s each, wrk -t1 -c$CONNECTIONS"
for round in $(seq "$ROUNDS"); do
    if (( round % 2 )); then order=$(seq 0 $(( ${#POINTS[@]} - 1 )))
    else order=$(seq $(( ${#POINTS[@]} - 1 )) -1 0); fi
    for i in $order; do measure_point "$round" "$i"; done
    log "round $round done"
done

# ---------------------------------------------------------------- report
stats() { # values on stdin: "median q1 q3"
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- - -"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.3f %.3f %.3f\n", m, v[int((NR + 3) / 4)], v[int((3 * NR + 3) / 4)] }'
}
ratio_row() { # label numerator denominator target(or -)
    local r m q1 q3 met
    read -r m q1 q3 < <(for r in $(seq "$ROUNDS"); do
        awk -v a="${RPS[$r|$2]}" -v b="${RPS[$r|$3]}" 'BEGIN { if (b > 0) printf "%.4f\n", a / b }'
    done | stats)
    if [[ "$4" == - ]]; then met="(reference)"
    else met="$(awk -v m="$m" -v t="$4" 'BEGIN { print (m >= t) ? "yes" : "no" }')"; fi
    printf '| %s | %s | %s–%s | %s | %s |\n' "$1" "$m" "$q1" "$q3" "${4/-/—}" "$met"
}
RESULTS="$HERE/targets-$(date -u +%Y%m%dT%H%M%SZ).md"
{
    echo "# tokengate paired targets — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "- command: \`$CMDLINE\`"
    echo "- git: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && [[ -n "$(git status --porcelain 2>/dev/null)" ]] && echo ' (dirty work tree)')"
    echo "- machine: $(nproc) CPUs; load average at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $ROUNDS rounds; in each, one ${DURATION}s wrk -t1 -c$CONNECTIONS run per point, order reversed every other round; proxies on CPU $PROXY_CPU, wrk/upstream/redis on CPU $LOAD_CPU"
    echo "- distinct tokens used by tokengate: $NEXT_TOKEN of $TOKENS minted"
    echo
    echo "| point | median req/s |"
    echo "| --- | ---: |"
    for p in "${POINTS[@]}"; do
        name="${p%%|*}"
        printf '| %s | %s |\n' "$name" "$(for r in $(seq "$ROUNDS"); do echo "${RPS[$r|$name]}"; done \
            | stats | awk '{ printf "%.0f", $1 }')"
    done
    echo
    echo "| ratio (req/s, same round) | median | quartiles | target | met |"
    echo "| --- | ---: | ---: | ---: | --- |"
    ratio_row "S1 tokengate /pass / nginx proxy" "tokengate /pass" "nginx proxy" 1.0
    ratio_row "bare Pingora / nginx proxy" "bare pingora" "nginx proxy" -
    ratio_row "S1 tokengate /pass / bare Pingora" "tokengate /pass" "bare pingora" -
    ratio_row "S2 / S1 tokengate" "tokengate /api" "tokengate /pass" 0.9
    ratio_row "S2 tokengate / haproxy ES256" "tokengate /api" "haproxy ES256" 2.5
    ratio_row "S3 tokengate / haproxy ES256 (distinct tokens)" "tokengate /api distinct" "haproxy ES256 distinct" 1.0
    ratio_row "S4 / S2 tokengate" "tokengate /rev" "tokengate /api" 0.85
    ratio_row "S3 tokengate, cache on / cache off (distinct tokens)" "tokengate /api distinct" "tokengate /api distinct, no cache" -
    echo
    report_problems "Every run answered only 2xx with no socket error; tokengate's distinct-token runs had no cache hit." "${PROBLEMS[@]}"
} >"$RESULTS"
cat "$RESULTS"
log "results written to $RESULTS"
