#!/usr/bin/env bash
# Memory soak of tokengate: many distinct valid tokens at once, then their expiry.
#
#   benches/load/soak.sh [--tokens N] [--lifetime S] [--connections N] [--waves 1|2] [--skip-build]
#
# Mints N (default 100000) distinct ES256 tokens that expire S seconds (default 90) after
# minting, sends each once through a release tokengate (threads = 1, verified-token cache of
# its default size, 100000) with wrk on loopback, then waits until every token has expired.
# Samples the gateway's VmRSS from /proc every 0.5 s throughout and reports, as one markdown
# table (also written to benches/load/soak-<timestamp>.md): RSS at idle, peak RSS (VmHWM),
# RSS with every token cached, RSS after expiry (before any request, then after each of five
# 2 s runs of requests with one token: the RSS falls as the gateway allocates again), and the
# verified-token cache's entry count (tokengate_token_cache_entries from the admin /metrics)
# at each point.
# With --waves 2, a second set of N tokens (from a second issuer, minted at the start with a
# lifetime 300 s longer) is sent once the first set has expired, and the table adds the RSS
# with the second set cached and the peak after it: memory freed at expiry must be reused,
# not added to.
#
# Bounded: minting at most 5 min, the send at most 10 min, the wait for expiry at most
# S + 60 s, the requests after expiry 5 × 2 s. Every process started here is stopped on exit.
# Needs nginx, wrk, redis-server, curl (run benches/load/run.sh once, or apt-get install
# nginx-light wrk redis-server).
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

TOKENS=100000
LIFETIME=90
CONNECTIONS=32
WAVES=1
BUILD=1
PROXY_CPU="${PROXY_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
ISSUER="https://idp.bench.local"
AUDIENCE="bench-api"
RSS_LIMIT_MIB=256

usage() { sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; }
CMDLINE="benches/load/soak.sh${*:+ $*}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tokens) TOKENS="${2:?--tokens N}"; shift ;;
        --lifetime) LIFETIME="${2:?--lifetime S}"; shift ;;
        --connections) CONNECTIONS="${2:?--connections N}"; shift ;;
        --waves) WAVES="${2:?--waves 1|2}"; shift ;;
        --skip-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "soak.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for n in "$TOKENS" "$LIFETIME" "$CONNECTIONS"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: numbers must be positive integers" >&2; exit 2; }
done
(( TOKENS <= 1000000 && LIFETIME >= 30 && LIFETIME <= 900 )) \
    || { echo "soak.sh: --tokens at most 1000000, --lifetime 30..900" >&2; exit 2; }
[[ "$WAVES" == 1 || "$WAVES" == 2 ]] || { echo "soak.sh: --waves 1 or 2" >&2; exit 2; }

LOG_TAG=soak
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"
need_tools nginx wrk redis-server redis-cli curl taskset ss timeout
build_release

RUN_DIR="$(mktemp -d /tmp/tokengate-soak.XXXXXX)"
declare -A PID_OF=()
SAMPLER=""
cleanup() {
    local rc=$? name
    trap - EXIT INT TERM
    [[ -z "$SAMPLER" ]] || { kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; }
    for name in "${!PID_OF[@]}"; do stop_proc "$name"; done
    if [[ $rc == 0 ]]; then rm -rf "$RUN_DIR"; else log "run directory kept: $RUN_DIR"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

UPSTREAM_PORT=$(free_port); REDIS_PORT=$(free_port); TG_PORT=$(free_port); TG_ADMIN_PORT=$(free_port)
render "$HERE/nginx-upstream.conf" "$RUN_DIR/nginx-upstream.conf"
render "$HERE/tokengate.toml.in" "$RUN_DIR/tokengate.toml"

if [[ $WAVES == 2 ]]; then
    # Minted first, with a lifetime that outlasts the first wave's send and expiry.
    log "minting the second wave: $TOKENS tokens of a second issuer, lifetime $((LIFETIME + 300))s"
    mkdir -p "$RUN_DIR/wave2"
    WAVE2_MINTED_AT=$(date +%s)
    timeout 300 "$MINT_BIN" --out "$RUN_DIR/wave2" --count "$TOKENS" --issuer "${ISSUER/idp/idp2}" \
        --audience "$AUDIENCE" --lifetime-secs "$((LIFETIME + 300))" >&2
    WAVE2_EXPIRES_AT=$(( WAVE2_MINTED_AT + LIFETIME + 300 ))
    cat >>"$RUN_DIR/tokengate.toml" <<TOML

[[issuer]]
id = "bench2"
issuer = "${ISSUER/idp/idp2}"
jwks_file = "$RUN_DIR/wave2/jwks.json"
audiences = ["$AUDIENCE"]
algorithms = ["ES256", "RS256"]
TOML
fi
log "minting $TOKENS distinct ES256 tokens, lifetime ${LIFETIME}s"
MINTED_AT=$(date +%s)
timeout 300 "$MINT_BIN" --out "$RUN_DIR" --count "$TOKENS" --issuer "$ISSUER" --audience "$AUDIENCE" \
    --lifetime-secs "$LIFETIME" >&2
EXPIRES_AT=$(( MINTED_AT + LIFETIME + 1 ))
"$TG_BIN" check --config "$RUN_DIR/tokengate.toml" >&2 || die "tokengate check refused the configuration"

start_proc upstream "$LOAD_CPU" "$RUN_DIR/nginx-upstream.out" \
    nginx -e "$RUN_DIR/nginx-upstream.error.log" -c "$RUN_DIR/nginx-upstream.conf"
start_proc redis "$LOAD_CPU" "$RUN_DIR/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --save "" --appendonly no --dir "$RUN_DIR" --daemonize no
start_proc tokengate "$PROXY_CPU" "$RUN_DIR/tokengate.log" "$TG_BIN" run --config "$RUN_DIR/tokengate.toml"
TG_PID="${PID_OF[tokengate]}"
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
for _ in $(seq 100); do
    kill -0 "$TG_PID" 2>/dev/null || die "tokengate exited at start (log: $RUN_DIR/tokengate.log)"
    [[ "$(status_of "http://127.0.0.1:$TG_ADMIN_PORT/readyz")" == 200 \
        && "$(status_of "http://127.0.0.1:$UPSTREAM_PORT/")" == 200 ]] && break
    sleep 0.1
done
[[ "$(status_of "http://127.0.0.1:$TG_ADMIN_PORT/readyz")" == 200 ]] || die "tokengate not ready within 10 s"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$TG_PID/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$TG_PID/status"; }
metric() { # exact metric name (no labels): its value, or "n/a"
    curl -s --max-time 5 "http://127.0.0.1:$TG_ADMIN_PORT/metrics" \
        | awk -v m="$1" '$1 == m { v = $2 } END { print (v == "" ? "n/a" : v) }'
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# Warm up with the long-lived token (connections, pools, allocator), then record idle.
ES_TOKEN="$(<"$RUN_DIR/es256.token")"
one_token_load() { # seconds: requests with the one long-lived token (cache hits); the gateway must live
    WRK_TOKEN="$ES_TOKEN" timeout 30 taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$1"s \
        -s "$HERE/wrk.lua" "http://127.0.0.1:$TG_PORT/api" >/dev/null 2>&1 || true
    kill -0 "$TG_PID" 2>/dev/null || die "tokengate exited (log: $RUN_DIR/tokengate.log)"
}
one_token_load 2
sleep 1
IDLE_RSS=$(rss_kib); IDLE_ENTRIES=$(metric tokengate_token_cache_entries)

( while kill -0 "$TG_PID" 2>/dev/null; do echo "$(date +%s.%N) $(rss_kib)"; sleep 0.5; done ) \
    >"$RUN_DIR/rss.log" 2>/dev/null &
SAMPLER=$!

send_wave() { # tokens-file expires-at: sends each token once; sets SENT, NON2XX, SEND_START, SEND_END
    local file="$1" expires="$2" misses new last=-1 flat=0 result
    log "sending each of the $TOKENS tokens of $(basename "$(dirname "$file")")/$(basename "$file") once (wrk -c$CONNECTIONS, at most 600 s)"
    SEND_START=$(date +%s)
    (( SEND_START + 10 < expires )) || die "minting took longer than the token lifetime: raise --lifetime"
    # wrk's thread stops after the last answer (soak.lua), but wrk itself waits for -d: poll the
    # cache-miss counter (one miss per distinct token) and end wrk with SIGINT, which prints
    # its summary.
    WRK_TOKENS_FILE="$file" taskset -c "$LOAD_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d600s --timeout 10s -s "$HERE/soak.lua" \
        "http://127.0.0.1:$TG_PORT/api" >"$RUN_DIR/wrk.out" 2>&1 &
    WRK_PID=$!
    PID_OF[wrk]=$WRK_PID
    # Done when the misses stop growing for 2 s after at least TOKENS - 1 new ones (wrk may
    # never send one of them: past the end it repeats the last token, which only hits).
    BASE_MISSES="$(metric tokengate_token_cache_misses_total)"; BASE_MISSES="${BASE_MISSES%.*}"
    while kill -0 "$WRK_PID" 2>/dev/null; do
        misses="$(metric tokengate_token_cache_misses_total)"
        if [[ "$misses" != n/a ]]; then
            new=$(( ${misses%.*} - BASE_MISSES ))
            if (( new == last )); then flat=$(( flat + 1 )); else flat=0; last=$new; fi
            (( new >= TOKENS - 1 && flat >= 4 )) && break
        fi
        (( $(date +%s) < SEND_START + 610 )) || die "the send exceeded its bound"
        sleep 0.5
    done
    sleep 1
    kill -INT "$WRK_PID" 2>/dev/null || true
    wait "$WRK_PID" 2>/dev/null || true
    unset "PID_OF[wrk]"
    result="$(grep '^RESULT ' "$RUN_DIR/wrk.out")" || die "wrk printed no result: $(tail -3 "$RUN_DIR/wrk.out")"
    SEND_END=$(date +%s)
    SENT=$(field "$result" requests); NON2XX=$(field "$result" non2xx)
    (( SEND_END < expires )) || log "WARNING: the send ended after the tokens expired (raise --lifetime)"
}
field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<" $1"; }
send_wave "$RUN_DIR/es256-tokens.txt" "$EXPIRES_AT"
LOADED_RSS=$(rss_kib); LOADED_ENTRIES=$(metric tokengate_token_cache_entries)
MISSES=$(metric tokengate_token_cache_misses_total)

log "waiting for the tokens to expire (until $(date -d "@$EXPIRES_AT" +%T), at most $((LIFETIME + 60)) s)"
deadline=$(( $(date +%s) + LIFETIME + 60 ))
while (( $(date +%s) < EXPIRES_AT )); do
    (( $(date +%s) < deadline )) || die "expiry wait exceeded its bound"
    sleep 1
done
# Poll (bounded) until the cache reports its expired entries gone.
for _ in $(seq 30); do
    [[ "$(metric tokengate_token_cache_entries)" == 0 ]] && break
    sleep 1
done
sleep 2
AFTER_RSS=$(rss_kib); AFTER_ENTRIES=$(metric tokengate_token_cache_entries)
# The expired entries were dropped by the metrics scrape, on the admin listener's thread.
# mimalloc takes back blocks freed by another thread only when the thread that allocated them
# allocates again: the RSS falls once the gateway serves requests.
log "after expiry: 5 runs of 2 s of requests with one token"
TRAFFIC_STEPS=""
for _ in 1 2 3 4 5; do
    one_token_load 2
    TRAFFIC_RSS=$(rss_kib)
    TRAFFIC_STEPS="${TRAFFIC_STEPS:+$TRAFFIC_STEPS, }$(mib "$TRAFFIC_RSS")"
done
TRAFFIC_ENTRIES=$(metric tokengate_token_cache_entries)
PEAK_RSS=$(hwm_kib)
FIRST_SEND="$SENT requests in $((SEND_END - SEND_START)) s, $NON2XX non-2xx"; FIRST_NON2XX=$NON2XX
if [[ $WAVES == 2 ]]; then
    send_wave "$RUN_DIR/wave2/es256-tokens.txt" "$WAVE2_EXPIRES_AT"
    WAVE2_RSS=$(rss_kib); WAVE2_ENTRIES=$(metric tokengate_token_cache_entries)
    WAVE2_PEAK_RSS=$(hwm_kib)
    WAVE2_SEND="$SENT requests in $((SEND_END - SEND_START)) s, $NON2XX non-2xx"
    NON2XX=$(( FIRST_NON2XX + NON2XX ))
fi
kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""
SAMPLED_MAX=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$RUN_DIR/rss.log")

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$HERE/soak-$STAMP.md"
{
    echo "# tokengate memory soak — $STAMP"
    echo
    echo "- command: \`$CMDLINE\`; git $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- $TOKENS distinct ES256 tokens (lifetime ${LIFETIME} s), each sent once: $FIRST_SEND; verified-token cache misses: $MISSES"
    [[ $WAVES == 1 ]] || echo "- second wave, sent after the first expired: $TOKENS tokens of a second issuer, $WAVE2_SEND"
    echo "- tokengate threads = 1, [cache] max_tokens = 100000 (default); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| point | RSS MiB | cache entries |"
    echo "| --- | ---: | ---: |"
    echo "| idle, after a warm-up with one token | $(mib "$IDLE_RSS") | $IDLE_ENTRIES |"
    echo "| peak (VmHWM; highest 0.5 s sample $(mib "$SAMPLED_MAX")) | $(mib "$PEAK_RSS") | |"
    echo "| every token sent once (all still valid) | $(mib "$LOADED_RSS") | $LOADED_ENTRIES |"
    echo "| after every token expired, no request since | $(mib "$AFTER_RSS") | $AFTER_ENTRIES |"
    echo "| then after 5 runs of 2 s of requests with one token | $(mib "$TRAFFIC_RSS") | $TRAFFIC_ENTRIES |"
    if [[ $WAVES == 2 ]]; then
        echo "| second wave: every token sent once | $(mib "$WAVE2_RSS") | $WAVE2_ENTRIES |"
        echo "| peak after the second wave (VmHWM) | $(mib "$WAVE2_PEAK_RSS") | |"
    fi
    echo
    if (( ${WAVE2_PEAK_RSS:-$PEAK_RSS} < RSS_LIMIT_MIB * 1024 )); then
        echo "Peak RSS under the ${RSS_LIMIT_MIB} MiB target."
    else
        echo "Peak RSS OVER the ${RSS_LIMIT_MIB} MiB target."
    fi
    echo "After expiry, RSS after each 2 s run of requests: $TRAFFIC_STEPS MiB (idle before the wave: $(mib "$IDLE_RSS") MiB)."
    if [[ $WAVES == 2 ]]; then
        echo
        echo "Second wave: peak $(mib "$WAVE2_PEAK_RSS") MiB after it, $(mib "$PEAK_RSS") MiB after the first."
    fi
} >"$OUT"
cat "$OUT"
log "written to $OUT"
[[ "$NON2XX" == 0 ]] || die "$NON2XX requests were refused (expected every token to be valid)"
