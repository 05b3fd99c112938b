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
# Runs the walk-through once in its own process group, so nothing it starts
# outlives it, bounded in time; it must end with an allowed decision.
run() {
  setsid bash -e -c "$script" > "$out" &
  local pid=$! deadline=$((SECONDS + 900)) status=0
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 1
  done
  kill -- -"$pid" 2>/dev/null || true
  wait "$pid" || status=$?
  # The service it started is gone before the next run starts its own.
  for _ in $(seq 30); do
    curl -sf http://127.0.0.1:8080/readyz > /dev/null 2>&1 || break
    sleep 1
  done
  cat "$out"
  if [ "$status" -ne 0 ]; then
    echo "the walk-through ($1) failed (exit $status)" >&2
    exit 1
  fi
  if ! grep -q '"allowed": true' "$out" || ! grep -q '"reason": "allowed"' "$out"; then
    echo "the walk-through ($1) did not end with an allowed decision" >&2
    exit 1
  fi
}
run "from a fresh clone"
# Again on the ./data the first run left: it reuses the tenant.
run "again"
echo "walk-through: ends with an allowed decision, from a fresh clone and again"
