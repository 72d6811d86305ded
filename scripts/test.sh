#!/bin/sh
# `npm test`: lint, pytest and Jest side by side. Lint and pytest need no build, so they start first and the build
# (Jest's tests run the built CLI) overlaps them. Every test process runs one torch thread, so they share a small
# machine's cores without OpenMP threads spinning. Lint's and pytest's output go to files, printed as each ends.
set -u
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npm run --silent lint >"$out/lint" 2>&1 &
lint=$!
npm run --silent test:py >"$out/py" 2>&1 &
py=$!
npm run --silent build && npm run --silent test:jest
jest=$?
wait "$lint"
lint_rc=$?
wait "$py"
py_rc=$?
echo "--- lint (exit $lint_rc)"
cat "$out/lint"
echo "--- pytest (exit $py_rc)"
cat "$out/py"
echo "--- jest, after the build (exit $jest)"
[ "$lint_rc" -eq 0 ] && [ "$py_rc" -eq 0 ] && [ "$jest" -eq 0 ]
