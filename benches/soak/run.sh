#!/usr/bin/env bash
# A longer soak than the test suite's: slow-loris clients (200 connections) and a flood of
# garbage tokens against the real binary (release build) while valid traffic is measured;
# fails if a valid request fails, p99 exceeds 1 s, or the gateway's RSS grows by more
# than 64 MiB. Loopback only; bounded in time (at most 600 s) and in request counts.
#
#   benches/soak/run.sh [SECONDS]     (default 120)
#
# It is the e2e test `soak::` with TOKENGATE_SOAK_SECS set; the summary line ("soak …")
# gives valid-request latencies, garbage count and RSS baseline/peak.
set -euo pipefail
secs="${1:-120}"
cd "$(dirname "$0")/../.."
TOKENGATE_SOAK_SECS="$secs" cargo test --release --locked -p tokengate --test e2e -- soak:: --nocapture 2>&1 |
    grep -E '^soak |test result|panicked'
