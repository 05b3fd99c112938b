#!/usr/bin/env bash
# Runs the README's walk-through verbatim, from the repository root, and
# checks that it ends with an allowed decision. Needs curl and jq.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -e data ]; then
  echo "refusing to run: ./data exists (the walk-through starts from a fresh clone)" >&2
  exit 1
fi
script=$(awk '/<!-- walkthrough -->/{on=1; next} /<!-- \/walkthrough -->/{on=0} on' README.md | sed '/^```/d')
[ -n "$script" ] || { echo "no walk-through found in README.md" >&2; exit 1; }
out=$(mktemp)
cleanup() { rm -rf data "$out"; }
trap cleanup EXIT
# Its own process group, so nothing it starts outlives it; bounded in time.
setsid bash -e -c "$script" > "$out" &
pid=$!
deadline=$((SECONDS + 900))
while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
  sleep 1
done
kill -- -"$pid" 2>/dev/null || true
status=0
wait "$pid" || status=$?
cat "$out"
if [ "$status" -ne 0 ]; then
  echo "the walk-through failed (exit $status)" >&2
  exit 1
fi
if grep -q '"allowed": true' "$out" && grep -q '"reason": "allowed"' "$out"; then
  echo "walk-through: ends with an allowed decision"
else
  echo "the walk-through did not end with an allowed decision" >&2
  exit 1
fi
