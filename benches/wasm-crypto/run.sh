#!/usr/bin/env bash
# Builds every verification candidate natively and for wasm32-wasip1 (release, LTO), runs each
# natively and under node's WASI (V8), and prints one table: µs of CPU per verify, and .wasm size.
#
# Usage: ./run.sh [WARM_MS [TIMED_MS]]   (per algorithm per binary; defaults 300 and 1500)
# Needs: rustup target wasm32-wasip1, clang + llvm-ar (ring's C for wasm32), node >= 20.
set -euo pipefail
cd "$(dirname "$0")"

WARM_MS=${1:-300}
TIMED_MS=${2:-1500}
BINS=(harness jwt_simple ring rustcrypto p256_014 bigint_rsa bigint07_rsa hand_rsa hand_p256 tollgate_verifiers)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/tgt-crypto}
export CC_wasm32_wasip1=${CC_wasm32_wasip1:-clang}
export AR_wasm32_wasip1=${AR_wasm32_wasip1:-llvm-ar}

for tool in clang llvm-ar node; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y clang lld llvm nodejs)" >&2; exit 1; }
done

bin_args=()
for b in "${BINS[@]}"; do bin_args+=(--bin "$b"); done
# One job at a time: the machine has 2 cores shared with other builds.
cargo build --release -j1 --quiet "${bin_args[@]}"
cargo build --release -j1 --quiet --target wasm32-wasip1 "${bin_args[@]}"

native_dir=$CARGO_TARGET_DIR/release
wasm_dir=$CARGO_TARGET_DIR/wasm32-wasip1/release
results=$(mktemp)
trap 'rm -f "$results"' EXIT

for b in "${BINS[@]}"; do
    size=$(stat -c %s "$wasm_dir/$b.wasm")
    "$native_dir/$b" "$WARM_MS" "$TIMED_MS" | sed "s/^RESULT /native $b $size /" >>"$results"
    node --no-warnings run-wasi.mjs "$wasm_dir/$b.wasm" "$WARM_MS" "$TIMED_MS" 2>/dev/null \
        | sed "s/^RESULT /v8 $b $size /" >>"$results"
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), node $(node --version), $(rustc --version | cut -d' ' -f1-2)"
echo "raw (where bin size alg candidate wall_mean_ns wall_best_segment_ns cpu_ns iterations):"
sed 's/^/  /' "$results"
echo
# Columns: µs of CPU per verify (mean over the timed part); in brackets the best 1/10 segment of wall time.
awk '
function us(ns) { return sprintf("%.0f", ns / 1000) }
{
    key = $2; bin[key] = 1; size[key] = $3; cand[key, $4] = $5
    cell[$1, key, $4] = us($8) " (" us($7) ")"
}
END {
    base = size["harness"]
    printf "| %-12s | %-26s | %-14s | %-14s | %-14s | %-14s | %-9s | %-10s |\n", "binary", "candidate", "RS256 native", "RS256 V8", "ES256 native", "ES256 V8", "wasm KB", "+crypto KB"
    printf "|%s|%s|%s|%s|%s|%s|%s|%s|\n", "--------------", "----------------------------", "----------------", "----------------", "----------------", "----------------", "-----------", "------------"
    n = split("jwt_simple ring rustcrypto p256_014 bigint_rsa bigint07_rsa hand_rsa hand_p256 tollgate_verifiers", order, " ")
    for (i = 1; i <= n; i++) {
        k = order[i]
        if (!(k in bin)) continue
        name = cand[k, "RS256"]; if (cand[k, "ES256"] != "" && cand[k, "ES256"] != name) name = (name == "" ? "" : name " + ") cand[k, "ES256"]
        printf "| %-12s | %-26s | %-14s | %-14s | %-14s | %-14s | %9.0f | %10.0f |\n", k, name,
            cell["native", k, "RS256"], cell["v8", k, "RS256"], cell["native", k, "ES256"], cell["v8", k, "ES256"],
            size[k] / 1024, (size[k] - base) / 1024
    }
    printf "(µs of CPU per verify, best-segment wall µs in brackets; wasm KB of the whole command, +crypto KB = minus the %.0f KB harness-only binary)\n", base / 1024
}' "$results"
