# The frame the shell tests share; source it after `set -u` with the denserl binary as $1:
# BIN and ROOT (the repository), W a scratch directory removed on exit, PASS/FAIL counters
# with ok/bad/expect/expect_eq, need_helper for the test-model writer, and finish for the
# summary line and the exit status.
BIN=$(realpath "$1")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "PASS $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# expect NAME WANT GOT: GOT must contain WANT
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: expected '$2' in '$3'" ;; esac; }
# expect_eq NAME WANT GOT
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi; }
# HELPER: test_chat_dataset beside denserl (it writes the tiny test models); skip (77) without
need_helper() {
    HELPER=$(dirname "$BIN")/test_chat_dataset
    if [ ! -x "$HELPER" ]; then
        echo "SKIP: $HELPER not built (it writes the test model)"
        exit 77
    fi
}
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
