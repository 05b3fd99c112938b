#!/usr/bin/env bash
# Fuzzes the running service against the OpenAPI document it serves, with
# Schemathesis: no 5xx, and every answer's status, content type and body as
# the document says. Then stops the service and checks that the ledger it
# wrote still verifies (`consent-ledger verify-db`). Exit 0 only if both hold.
#
#   bash scripts/fuzz-api.sh
#
# Needs curl, jq and python3 with venv (Debian: python3-venv); Schemathesis
# is installed from PyPI into a venv under the cargo target dir, reused while
# its version stays the same. Everything else runs on a fresh temp data dir
# and a free loopback port; the service is killed on exit whatever happens.
#
# Environment (all optional):
#   CONSENT_LEDGER_BIN   the binary to test [default: cargo build, then
#                        $CARGO_TARGET_DIR/debug/consent-ledger]
#   FUZZ_OPERATOR_TOKEN  operator token for the service [default: random]
#   FUZZ_MAX_EXAMPLES    test cases per operation and phase [default: 100]
#   FUZZ_SEED            Schemathesis seed [default: 20240601]
#   FUZZ_TIME_LIMIT      hard limit for the Schemathesis run, seconds [default: 240]
#   FUZZ_REPORT_DIR      where the reports go [default: a new temp dir, kept]
#   FUZZ_WORKERS         Schemathesis workers [default: 1; more than one has crashed Hypothesis's lambda descriptions]
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
HYPOTHESIS_VERSION=6.170.17
max_examples=${FUZZ_MAX_EXAMPLES:-100}
seed=${FUZZ_SEED:-20240601}
time_limit=${FUZZ_TIME_LIMIT:-240}
workers=${FUZZ_WORKERS:-1}
target_dir=${CARGO_TARGET_DIR:-target}

for tool in curl jq python3; do
  command -v "$tool" > /dev/null || { echo "fuzz-api: $tool is required" >&2; exit 2; }
done

# --- the binary ---------------------------------------------------------
if [ -n "${CONSENT_LEDGER_BIN:-}" ]; then
  bin=$CONSENT_LEDGER_BIN
else
  cargo build --quiet
  bin=$target_dir/debug/consent-ledger
fi
[ -x "$bin" ] || { echo "fuzz-api: no executable at $bin" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# --- Schemathesis in its own venv ----------------------------------------
venv=$target_dir/fuzz-api-venv-$SCHEMATHESIS_VERSION-$HYPOTHESIS_VERSION
if [ ! -x "$venv/bin/st" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "hypothesis==$HYPOTHESIS_VERSION"
fi
st=$venv/bin/st
py=$venv/bin/python

# --- a fresh service on a free loopback port ------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-api.XXXXXX")
report=${FUZZ_REPORT_DIR:-$work/report}
mkdir -p "$report"
data=$work/data
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  stop_server
  # The data dir holds secrets (master key, tokens); the reports are kept.
  rm -rf "$data" "$work/schemathesis.toml"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
operator=${FUZZ_OPERATOR_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')}

export CONSENT_LEDGER_DATA_DIR=$data
export CONSENT_LEDGER_BIND=127.0.0.1:$port
export CONSENT_LEDGER_METRICS_BIND=off
export CONSENT_LEDGER_OPERATOR_TOKEN=$operator
export CONSENT_LEDGER_CHECKPOINT_INTERVAL=1s
# Every generated webhook carries a wrong signature: without this, the
# address's budget of failed authentications (tested on its own in the
# suite) would answer 429 to nearly everything after the first minute.
export CONSENT_LEDGER_AUTH_FAILURES_PER_MINUTE=1000000
unset CONSENT_LEDGER_CONFIG DATABASE_URL CONSENT_LEDGER_MASTER_KEY_FILE \
  CONSENT_LEDGER_SIGNER_STATE_FILE CONSENT_LEDGER_PUBLIC_URL CONSENT_LEDGER_TRUSTED_PROXIES

"$bin" serve > "$report/server.log" 2>&1 &
server_pid=$!
ready=0
for _ in $(seq 1 150); do
  if curl -sf "$base/readyz" > /dev/null; then ready=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
if [ "$ready" -ne 1 ]; then
  echo "fuzz-api: the service did not become ready; its log:" >&2
  cat "$report/server.log" >&2
  exit 1
fi

# A tenant, and one key with every role so that every route is exercised.
admin=$(curl -sf -X POST "$base/v1/tenants" \
  -H "Authorization: Bearer $operator" -H 'Content-Type: application/json' \
  -d '{"id": "fuzz", "brand": "Fuzz"}' | jq -er .admin_key.key)
key=$(curl -sf -X POST "$base/v1/keys" \
  -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  -d '{"name": "schemathesis", "roles": ["admin", "collector", "sender", "auditor"]}' | jq -er .key)

# A few entries (opt-ins and an opt-out), so that entries, receipts, proofs,
# subjects and exports have something to find.
post() {
  curl -sf -X POST "$base$1" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d "$2" > /dev/null
}
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for i in 1 2 3 4 5; do
  post /v1/opt-ins "$(jq -cn --arg n "+4915112345$((670 + i))" --arg at "$now" '{
    number: $n, channel: "web", company_name_shown: "Fuzz",
    consent_text: "Yes, I want offers from Fuzz on WhatsApp. Reply STOP to end.",
    purposes: ["marketing"], captured_at: $at,
    evidence: {page_url: "https://fuzz.example/form", ip: "203.0.113.7", user_agent: "fuzz"}}')"
done
post /v1/opt-outs "$(jq -cn --arg at "$now" '{number: "+4915112345671", channel: "api",
  captured_at: $at, evidence: {reason: "asked by phone"}}')"

# Each security scheme of the document gets its own credential: the tenant
# key for `bearer`, the operator token for `operator` (POST /v1/tenants).
# Path parameters that name something are pinned to what exists; a key's id
# is not (the fuzzer would revoke its own key).
cat > "$work/schemathesis.toml" <<'EOF'
[auth.openapi.bearer]
bearer = "${FUZZ_API_KEY}"

[auth.openapi.operator]
bearer = "${FUZZ_OPERATOR_TOKEN}"

[parameters]
"path.seq" = 2
"path.tenant" = "fuzz"
"path.name" = "Fuzz"
EOF

export FUZZ_API_KEY=$key FUZZ_OPERATOR_TOKEN=$operator
st_status=0
timeout --kill-after=10 "$time_limit" \
  "$st" --config-file "$work/schemathesis.toml" --no-color run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers "$workers" \
    --request-timeout 30 \
    --report junit,ndjson --report-dir "$report" \
  | tee "$report/schemathesis.txt" || st_status=$?

stop_server
verify_status=0
"$bin" verify-db > "$report/verify-db.txt" 2>&1 || verify_status=$?
echo "--- verify-db"
cat "$report/verify-db.txt"

echo "--- answers by status"
server_errors=$(python3 - "$report" <<'PY'
import collections, glob, json, sys
counts = collections.Counter()
def walk(value):
    if isinstance(value, dict):
        if isinstance(value.get("status_code"), int) and "elapsed" in value:
            counts[value["status_code"]] += 1
        for inner in value.values():
            walk(inner)
    elif isinstance(value, list):
        for inner in value:
            walk(inner)
for path in glob.glob(sys.argv[1] + "/ndjson-*.ndjson"):
    with open(path) as lines:
        for line in lines:
            walk(json.loads(line))
print(f"{sum(counts.values())} requests: "
      + ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())), file=sys.stderr)
print(sum(n for s, n in counts.items() if s >= 500))
PY
)
echo "5xx answers: $server_errors"

# How far generated requests get: of those the fuzzing phase drew as valid
# from the document, the share refused with 422 (docs/operations.md).
echo "--- 422 among the requests generated as valid (fuzzing phase)"
python3 - "$report" <<'PY' || true
import collections, glob, sys
import json
drawn, refused = collections.Counter(), collections.Counter()
for path in glob.glob(sys.argv[1] + "/ndjson-*.ndjson"):
    with open(path) as lines:
        for line in lines:
            finished = json.loads(line).get("ScenarioFinished")
            if not finished or finished.get("phase") != "fuzzing":
                continue
            recorder = finished["recorder"]
            for case_id, interaction in recorder.get("interactions", {}).items():
                case = recorder["cases"].get(case_id, {}).get("value", {})
                if case.get("meta", {}).get("generation", {}).get("mode") != "positive":
                    continue
                drawn[recorder["label"]] += 1
                refused[recorder["label"]] += (interaction.get("response") or {}).get("status_code") == 422
for label in sorted(drawn, key=lambda l: (l.split(" ", 1)[-1], l)):
    if refused[label]:
        print(f"{label}: {refused[label]}/{drawn[label]} ({refused[label] / drawn[label]:.0%})")
total, total_refused = sum(drawn.values()), sum(refused.values())
print(f"all: {total_refused}/{total} ({total_refused / max(total, 1):.0%})")
PY
panics=$(grep -c "panicked" "$report/server.log" || true)
echo "panics in the service's log: $panics"

echo "--- reports in $report"
status=0
if [ "$server_errors" != "0" ] || [ "$panics" != "0" ]; then
  echo "fuzz-api: the service answered 5xx or panicked" >&2
  status=1
fi
if [ "$st_status" -eq 124 ] || [ "$st_status" -eq 137 ]; then
  echo "fuzz-api: Schemathesis did not finish within ${time_limit}s" >&2
  status=1
elif [ "$st_status" -ne 0 ]; then
  echo "fuzz-api: Schemathesis found failures (exit $st_status)" >&2
  status=1
fi
if [ "$verify_status" -ne 0 ]; then
  echo "fuzz-api: the ledger does not verify (exit $verify_status)" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "fuzz-api: no failures; the ledger verifies"
exit "$status"
