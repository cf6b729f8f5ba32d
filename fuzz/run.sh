#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60), one after the
# other, one libFuzzer process each; fails if any target finds a crash, a panic, a leak,
# an input slower than 10 s, or does not build.
#
#   fuzz/run.sh [SECONDS]          all targets
#   FUZZ_TARGETS="vpath htpasswd" fuzz/run.sh 20
#
# Needs the nightly toolchain (cargo-fuzz builds with sanitizers); installs cargo-fuzz if
# it is missing. Seeds come from fuzz/corpus/<target>/ (read only); what the fuzzer
# finds goes to a scratch corpus under the target dir, crashes to fuzz/artifacts/<target>/
# (reproduce one with `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: fuzz/run.sh [SECONDS]" >&2
  exit 2
fi

toolchains=$(rustup toolchain list 2>/dev/null || true)
if ! grep -q '^nightly' <<<"$toolchains"; then
  echo "fuzz/run.sh: the nightly toolchain is not installed (cargo-fuzz needs it:" >&2
  echo "  rustup toolchain install nightly), so the fuzz targets cannot run." >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
scratch="$target_dir/fuzz-corpus"
logs="$target_dir/fuzz-logs"
mkdir -p "$logs"

# One build of all targets (sanitizer: address, debug assertions on).
cargo +nightly fuzz build

failed=()
summary=()
for t in $targets; do
  mkdir -p "$scratch/$t" "corpus/$t"
  log="$logs/$t.log"
  echo "== fuzz target $t: ${seconds} s (log: $log)"
  # The first corpus dir is written to (new inputs), the committed seeds only read.
  if cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$t")
    # The crash report: libFuzzer's and the panic message, the input it saved.
    grep -E -A30 'panicked|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY|Test unit written' "$log" | head -80 || true
  fi
  # The last status line: executions, coverage (cov: edges, ft: features), exec/s.
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  summary+=("$(printf '%-14s %-6s execs=%-9s exec/s=%-7s %s' "$t" "$status" "${execs:-?}" "${rate:-?}" \
    "$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last" || true)")")
done

echo "== fuzz summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
n=$(wc -w <<<"$targets")
echo "fuzz: $((n - ${#failed[@]})) passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz/run.sh: failing targets: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
