#!/bin/sh
# `npm test` once the build is done: lint, pytest and Jest side by side. Every test process runs one torch thread, so
# the three share a small machine's cores without OpenMP threads spinning, and pytest (one process) no longer leaves
# a core idle before Jest starts. Lint's and pytest's output go to files, printed as each ends, not into Jest's.
set -u
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npm run --silent lint >"$out/lint" 2>&1 &
lint=$!
npm run --silent test:py >"$out/py" 2>&1 &
py=$!
npm run --silent test:jest
jest=$?
wait "$lint"
lint_rc=$?
wait "$py"
py_rc=$?
echo "--- lint (exit $lint_rc)"
cat "$out/lint"
echo "--- pytest (exit $py_rc)"
cat "$out/py"
echo "--- jest (exit $jest)"
[ "$lint_rc" -eq 0 ] && [ "$py_rc" -eq 0 ] && [ "$jest" -eq 0 ]
