#!/usr/bin/env bash
# Paired A/B of two tokengate builds (or two routes of one build) on a noisy machine.
#
#   benches/load/pair.sh --a BIN --b BIN [--path /api] [--path-b /rev] [--pairs 20]
#                        [--duration S] [--connections N]
#
# A shared 2-core VM drifts by ±20 % from one minute to the next, more than most changes
# worth measuring. This runs both gateways at once (same configuration as run.sh's
# tokengate.toml.in, threads = 1, both pinned to CPU 1; only the one under load is busy) and
# alternates short wrk runs between them (A B, B A, A B, …), so that each pair sees the same
# machine. Prints every pair and the median, quartiles and mean of B/A (requests/s).
# With --path-b, B is the same binary as A on another route (e.g. /api against /rev: the
# cost of a revocation check). Routes: /pass (no auth), /api (validated, cache hit), /rev
# (validated + Redis revocation check). Upstream nginx, wrk and redis-server run on CPU 0.
#
# Bounded: at most 100 pairs of at most 10 s. Loopback only; everything started here is
# stopped on exit. Needs the tools of run.sh and target/release/examples/mint (cargo build
# --release -p tokengate-benches --example mint).
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

A=""; B=""; PATH_A="/api"; PATH_B=""; PAIRS=20; DURATION=1; CONNECTIONS=32
usage() { sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --a) A="${2:?--a BIN}"; shift ;;
        --b) B="${2:?--b BIN}"; shift ;;
        --path) PATH_A="${2:?--path /route}"; shift ;;
        --path-b) PATH_B="${2:?--path-b /route}"; shift ;;
        --pairs) PAIRS="${2:?--pairs N}"; shift ;;
        --duration) DURATION="${2:?--duration S}"; shift ;;
        --connections) CONNECTIONS="${2:?--connections N}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "pair.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ -n "$A" ]] || { usage >&2; exit 2; }
[[ -n "$B" ]] || B="$A"
[[ -n "$PATH_B" ]] || PATH_B="$PATH_A"
for n in "$PAIRS" "$DURATION" "$CONNECTIONS"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "pair.sh: numbers must be positive integers" >&2; exit 2; }
done
(( PAIRS <= 100 && DURATION <= 10 )) || { echo "pair.sh: at most --pairs 100 and --duration 10" >&2; exit 2; }

LOG_TAG=pair
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"
need_tools nginx wrk redis-server curl taskset ss
BUILD=0
build_release   # only checks that the mint example exists

declare -A PID_OF=()
temporary_run_dir pair

# shellcheck disable=SC2034  # render reads UPSTREAM_PORT through ${!name}
UPSTREAM_PORT=$(free_port)
REDIS_PORT=$(free_port)
ISSUER="https://idp.bench.local"; AUDIENCE="bench-api"
render "$HERE/nginx-upstream.conf" "$RUN_DIR/nginx-upstream.conf"
start_proc upstream 0 "$RUN_DIR/upstream.log" nginx -c "$RUN_DIR/nginx-upstream.conf"
start_proc redis 0 "$RUN_DIR/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --save "" --appendonly no
timeout 120 "$MINT_BIN" --out "$RUN_DIR" --count 1 --issuer "$ISSUER" --audience "$AUDIENCE" >&2
TOKEN="$(<"$RUN_DIR/es256.token")"

start_gateway() { # name binary: starts it and sets GW_PORT (not in a subshell: PID_OF)
    local name="$1" bin="$2" port admin dir="$RUN_DIR/$1"
    port=$(free_port); admin=$(free_port)
    mkdir -p "$dir"
    cp "$RUN_DIR/jwks.json" "$dir/jwks.json"
    RUN_DIR="$dir" TG_PORT="$port" TG_ADMIN_PORT="$admin" \
        render "$HERE/tokengate.toml.in" "$dir/tokengate.toml"
    start_proc "$name" 1 "$dir/tokengate.log" "$bin" run --config "$dir/tokengate.toml"
    wait_http "$name" "http://127.0.0.1:$port/"
    GW_PORT=$port
}
start_gateway a "$A"; PORT_A=$GW_PORT; PORT_B=$GW_PORT
if [[ "$B" != "$A" ]]; then start_gateway b "$B"; PORT_B=$GW_PORT; fi

rps() { # port path
    taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$1$2" | awk '/Requests\/sec/ {print $2}'
}
rps "$PORT_A" "$PATH_A" >/dev/null; rps "$PORT_B" "$PATH_B" >/dev/null   # warm-up
log "A = $A $PATH_A, B = $B $PATH_B: $PAIRS pairs of ${DURATION}s, wrk -c$CONNECTIONS"
echo "| pair | A req/s | B req/s | B/A |"
echo "| ---: | ---: | ---: | ---: |"
for i in $(seq "$PAIRS"); do
    if (( i % 2 )); then a=$(rps "$PORT_A" "$PATH_A"); b=$(rps "$PORT_B" "$PATH_B")
    else b=$(rps "$PORT_B" "$PATH_B"); a=$(rps "$PORT_A" "$PATH_A"); fi
    echo "$i $a $b"
done | awk '
    { r[NR] = $3 / $2; sa += $2; sb += $3; printf "| %d | %.0f | %.0f | %.3f |\n", $1, $2, $3, $3 / $2 }
    END {
        n = asort(r)
        # The median of an even count is the mean of the two middle values; quartiles as in
        # targets.sh.
        m = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
        printf "\nB/A over %d pairs: median %.3f, quartiles %.3f–%.3f; mean A %.0f req/s, mean B %.0f req/s\n",
            n, m, r[int((n + 3) / 4)], r[int((3 * n + 3) / 4)], sa / n, sb / n
    }'
