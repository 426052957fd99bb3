#!/usr/bin/env bash
# Hugging Face parity: for every fixture in tests/fixtures/hf/*/ (tiny random
# models saved by transformers, made by tests/fixtures/make_fixtures.py), runs
# `denserl logprobs` on the fixture's inputs and compares the result with the
# float64 log-probs transformers computed, through tests/compare_logprobs.py.
#
#   bash tests/test_hf_parity.sh /path/to/denserl        (ctest runs it so)
#
# Prints one line per model and a final `N passed, M failed` line. Exits 1 if
# any model failed or no fixture was found: a missing fixture tree is a broken
# checkout, not a reason to skip.

set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fixtures="$here/fixtures/hf"
compare="$here/compare_logprobs.py"
tol="${DENSERL_PARITY_TOL:-1e-4}"

if [ $# -ne 1 ]; then
  echo "usage: bash tests/test_hf_parity.sh /path/to/denserl" >&2
  exit 2
fi
bin="$1"
if [ ! -x "$bin" ]; then
  echo "FAIL: $bin is not an executable"
  echo "0 passed, 1 failed"
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "FAIL: python3 is needed to compare log-probs (standard library only)"
  echo "0 passed, 1 failed"
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/denserl-parity.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# a hung binary must fail the test, not hold ctest forever
run_limit=()
if command -v timeout >/dev/null 2>&1; then
  run_limit=(timeout 300)
fi

passed=0
failed=0
for dir in "$fixtures"/*/; do
  [ -f "$dir/config.json" ] || continue
  dir=${dir%/}
  name=$(basename "$dir")
  out="$tmp/$name.out.jsonl"
  log="$tmp/$name.log"

  if [ ! -f "$dir/inputs.jsonl" ] || [ ! -f "$dir/expected.jsonl" ]; then
    echo "FAIL $name: fixture lacks inputs.jsonl or expected.jsonl"
    failed=$((failed + 1))
    continue
  fi

  rc=0
  ${run_limit[@]+"${run_limit[@]}"} "$bin" logprobs --model "$dir" --data "$dir/inputs.jsonl" \
    --out "$out" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $name: denserl logprobs exited with $rc"
    tail -n 20 "$log" | sed 's/^/    /'
    failed=$((failed + 1))
    continue
  fi

  if result=$(python3 "$compare" "$out" "$dir/expected.jsonl" --tol "$tol" 2>&1); then
    echo "ok   $name: ${result#*: }"
    passed=$((passed + 1))
  else
    echo "FAIL $name: ${result#*: }"
    failed=$((failed + 1))
  fi
done

if [ $((passed + failed)) -eq 0 ]; then
  echo "FAIL: no fixtures under $fixtures (run tests/fixtures/make_fixtures.py)"
  echo "0 passed, 1 failed"
  exit 1
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] || exit 1
exit 0
