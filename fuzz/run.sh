#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60): `fuzz/run.sh 60`.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# A crash stops the script with libFuzzer's whole report; the input is kept under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
targets=(push_message hello_request subscribe_request get_table_request config_toml csv_import)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target"
  echo "::: fuzz $target for ${seconds}s"
  if ! cargo +nightly fuzz run --dev "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    cat "$log"
    echo "::: fuzz $target FAILED (input under fuzz/artifacts/$target/)"
    exit 1
  fi
  grep -E '^stat::number_of_executed_runs|^Done' "$log" || tail -n 3 "$log"
done
