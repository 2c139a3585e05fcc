#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded number of inputs (ctest's fuzz_* tests).
#   run_fuzzer.sh FUZZER SEED_DIR DICT WORK_DIR RUNS [more libFuzzer flags...]
# New inputs go to WORK_DIR/corpus (the committed SEED_DIR is only read), a crashing input to
# WORK_DIR/artifacts/. The seed is fixed, so a CI run is reproducible; pass -seed=0 for a new
# one each run.
set -euo pipefail
fuzzer="$1" seeds="$2" dict="$3" work="$4" runs="$5"
shift 5
rm -rf "${work}"
mkdir -p "${work}/corpus" "${work}/artifacts"
exec "${fuzzer}" -runs="${runs}" -seed=1 -max_len=4096 -timeout=30 -rss_limit_mb=2560 \
  -print_final_stats=1 -dict="${dict}" -artifact_prefix="${work}/artifacts/" "$@" \
  "${work}/corpus" "${seeds}"
