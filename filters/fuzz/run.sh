#!/usr/bin/env bash
# Runs every cargo-fuzz target of filters/fuzz for a bounded time each, one after the other.
#
#   filters/fuzz/run.sh [SECONDS] [TARGET...]     (default: 60 s; jws jwks dpop config)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Stable Rust works: targets are built with
# `-s none` (no sanitizer, which would need nightly); libFuzzer still instruments coverage
# and catches panics, overflows (debug assertions are on) and timeouts.
# Runs under `unshare -n` (no network at all) when it can: the config loader resolves host
# names. Without unshare the config target is skipped.
#
# Corpora grow in filters/fuzz/corpus/<target> (seeded from seeds/<target>, and conf/*.toml
# for config); crashes land in filters/fuzz/artifacts/<target>/. One summary line per target
# ("<target>: <runs> runs in <s> s, <n> new crash files") goes to stdout and to
# filters/fuzz/last-run.txt.
set -euo pipefail

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(jws jwks dpop config)

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here/.."

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }

isolate=()
if unshare -n true 2>/dev/null; then
    isolate=(unshare -n)
fi

cargo fuzz build -s none -O >/dev/null
bin_dir="$here/target/x86_64-unknown-linux-gnu/release"

max_len() {
    case "$1" in
        jwks) echo 300000 ;;   # above the 256 KiB document cap
        *) echo 16384 ;;       # above the 8 KiB token cap
    esac
}

: > "$here/last-run.txt"
for t in "${targets[@]}"; do
    if [ "$t" = config ] && [ ${#isolate[@]} -eq 0 ]; then
        echo "config: skipped (no unshare -n: the loader would resolve host names)" | tee -a "$here/last-run.txt"
        continue
    fi
    corpus="$here/corpus/$t"
    artifacts="$here/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    cp -n "$here/seeds/$t/"* "$corpus/" 2>/dev/null || true
    if [ "$t" = config ]; then
        for f in "$root"/conf/*.toml; do cp -n "$f" "$corpus/seed-$(basename "$f")"; done
    fi
    before=$(find "$artifacts" -type f | wc -l)
    log="$here/artifacts/$t.log"
    # -timeout: one input taking 10 s is a finding; -rss_limit_mb bounds memory.
    "${isolate[@]}" "$bin_dir/$t" "$corpus" \
        -artifact_prefix="$artifacts/" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(max_len "$t")" -print_final_stats=1 >"$log" 2>&1 || true
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE 'in [0-9]+' | grep -oE '[0-9]+' | tail -1)
    after=$(find "$artifacts" -type f | wc -l)
    echo "$t: ${runs:-?} runs in ${secs:-?} s, $((after - before)) new crash files, corpus $(find "$corpus" -type f | wc -l) inputs" | tee -a "$here/last-run.txt"
    if [ "$after" -gt "$before" ]; then
        grep -m1 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | tee -a "$here/last-run.txt" || true
    fi
done
