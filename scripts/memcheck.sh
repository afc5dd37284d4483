#!/usr/bin/env bash
# Runs the compiled-code test corpus (code generation, differential op × dtype graphs) under
# valgrind's memcheck, which follows JIT-generated code (--smc-check=all). Any invalid read or
# write, or use of uninitialised memory, fails the script.
#
#   bash scripts/memcheck.sh            # the differential corpus (fewer cases: valgrind is slow)
#   TENJIT_DIFF_CASES=500 bash scripts/memcheck.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed: apt-get install valgrind" >&2; exit 1; }
export TENJIT_DIFF_CASES="${TENJIT_DIFF_CASES:-150}"
for t in differential codegen; do
  bin=$(cargo test --release --no-run --test "$t" --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//' | tail -1)
  [ -n "$bin" ] || { echo "could not build the $t test binary" >&2; exit 1; }
  echo "== memcheck: $t ($bin)"
  valgrind --tool=memcheck --smc-check=all --error-exitcode=99 --errors-for-leak-kinds=none \
    --leak-check=no -q "$bin" --test-threads=1 -q
done
echo "memcheck: no errors"
