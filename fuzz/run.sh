#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS seconds, one after the other, then prints a table of
# executions, coverage and findings per target. Called by `make fuzz`; exits non-zero when any
# target found a crash, a timeout or an out-of-memory input (saved under fuzz/artifacts/<target>/).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"/\1/p' fuzz/Cargo.toml | grep -v '^tollgate-fuzz$')}
target_dir=${FUZZ_TARGET_DIR:-fuzz/target}
# No sanitizer: the filter has no unsafe code, and without one libFuzzer runs several times
# faster. Debug assertions stay on so integer overflows count as findings.
flags=(-s none --debug-assertions --target-dir "$target_dir")

cargo +nightly fuzz build "${flags[@]}" || exit 1
mkdir -p fuzz/logs
failed=0
rows=()
for t in $targets; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/seeds/$t"
  before=$(ls "fuzz/artifacts/$t" | wc -l)
  log="fuzz/logs/$t.log"
  echo "== $t (${seconds}s)"
  cargo +nightly fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1
  status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  corpus=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1)
  found=$(( $(ls "fuzz/artifacts/$t" | wc -l) - before ))
  if [ "$status" -ne 0 ] || [ "$found" -gt 0 ]; then
    failed=1
    grep -m3 -E 'panicked at|ERROR: libFuzzer|Test unit written' "$log" | sed 's/^/   /'
  fi
  rows+=("$(printf '%-20s %12s  %-22s %-16s %s' "$t" "${execs:-?}" "${cov:-?}" "${corpus:-?}" "$found")")
done

echo
printf '%-20s %12s  %-22s %-16s %s\n' target execs coverage corpus findings
printf '%s\n' "${rows[@]}"
echo "logs: fuzz/logs/<target>.log; crashing inputs: fuzz/artifacts/<target>/"
exit $failed
