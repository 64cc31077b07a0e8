#!/usr/bin/env bash
# schemathesis (pinned in requirements.txt, installed from PyPI into a venv
# under target/) against the OpenAPI description a live keygate serves at
# /api/openapi.json: every documented operation, SCHEMATHESIS_EXAMPLES
# examples each (default 150), with management credentials, a real key for
# verify and signed webhook deliveries (hooks.py). Checks: no 5xx, status codes, content types and response
# bodies as documented. Part of `./dev test`; needs python3 (3.10+) with venv
# and the release build (`./dev test` builds it first).
#
# Writes `# pass N` / `# fail M` (one per API operation) to $SCHEMATHESIS_SUMMARY
# (default target/schemathesis/summary) and the JUnit report next to it.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/target/schemathesis
summary=${SCHEMATHESIS_SUMMARY:-$out/summary}
examples=${SCHEMATHESIS_EXAMPLES:-150}
mkdir -p "$out"
: >"$summary"
fail() {
  echo "schemathesis: $1" >&2
  printf '# pass 0\n# fail 1\n' >>"$summary"
  exit 1
}

python=$(command -v python3) || fail "python3 is needed"
venv=$out/venv
req=tests/schemathesis/requirements.txt
if [[ ! -x $venv/bin/schemathesis || $req -nt $venv/installed ]]; then
  echo "--- installing schemathesis ($(cat "$req")) into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" || fail "pip install failed"
  touch "$venv/installed"
fi

bin=target/release/keygate-host
[[ -x $bin ]] || fail "$bin is missing: build with ./dev test (or cargo build --release -p keygate-host)"
state=$(mktemp -d)
admin_token=st-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
webhook_secret=whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')
SPIN_VARIABLE_ADMIN_TOKEN=$admin_token SPIN_VARIABLE_WEBHOOK_SECRET=$webhook_secret \
  "$bin" up --listen 127.0.0.1:0 --state-dir "$state/state" >"$state/out" 2>"$out/runner.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$state"' EXIT
url=""
while [[ -z $url ]]; do
  kill -0 "$pid" 2>/dev/null || { cat "$out/runner.log" >&2; fail "keygate-host did not start"; }
  url=$(sed -n 's/^Serving //p' "$state/out")
  [[ -n $url ]] || sleep 0.1
done

# Some keys and audit entries, so lists and lookups have data to return; the
# last key is the one verify calls without a key of their own present (hooks.py).
for i in 1 2 3; do
  created=$(curl -sf -H "Authorization: Bearer $admin_token" -H "X-Acting-User: seed@example.com" \
    -H 'content-type: application/json' -d "{\"name\":\"seed-$i\"}" "$url/api/keys") || fail "could not create seed keys"
done
verify_key=$(printf '%s' "$created" | sed -n 's/.*"secret":"\(kg_[^"]*\)".*/\1/p')

echo "--- schemathesis $url/api/openapi.json ($examples examples per operation)"
start=$SECONDS
rm -f "$out/junit.xml"
# From target/schemathesis: schemathesis keeps its .schemathesis/ cache in
# the working directory, which must not be the repository.
cd "$out"
SCHEMATHESIS_HOOKS=hooks PYTHONPATH=$root/tests/schemathesis \
  KEYGATE_ADMIN_TOKEN=$admin_token KEYGATE_VERIFY_KEY=$verify_key KEYGATE_WEBHOOK_SECRET=$webhook_secret \
  "$venv/bin/schemathesis" run "$url/api/openapi.json" \
  --url "$url" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" \
  --seed "${SCHEMATHESIS_SEED:-20261127}" \
  --workers 1 \
  --request-timeout 10 \
  --report junit --report-junit-path "$out/junit.xml" \
  --no-color
code=$?
echo "schemathesis: exit $code after $((SECONDS - start)) s"
[[ -s $out/junit.xml ]] || fail "no report written"
total=$(grep -o '<testcase ' "$out/junit.xml" | wc -l)
failed=$(grep -cE '<(failure|error)[ >]' "$out/junit.xml")
((total > 0)) || fail "no operation was tested"
if ((code != 0 && failed == 0)); then failed=1; fi
printf '# pass %d\n# fail %d\n' "$((total - failed))" "$failed" >>"$summary"
((code == 0))
