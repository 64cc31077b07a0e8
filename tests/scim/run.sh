#!/usr/bin/env bash
# SCIM 2.0 compliance of /scim/v2 against a live runner: scim2-tester's
# check_server (every check its discovery of the published User schema
# leads to) and a scim2-client deprovisioning (create, search by filter,
# PATCH active false / true, DELETE, with a keygate key refused by verify in
# between). scim2-tester and scim2-client are pinned in requirements.txt and
# installed from PyPI into a venv under target/. Part of `./dev test`; needs
# python3 (3.11+) with venv and the release build (`./dev test` builds it first).
#
# Writes `# pass N` / `# fail M` (one per check and per step) to $SCIM_SUMMARY
# (default target/scim/summary).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/target/scim
summary=${SCIM_SUMMARY:-$out/summary}
mkdir -p "$out"
: >"$summary"
fail() {
  echo "scim: $1" >&2
  printf '# pass 0\n# fail 1\n' >>"$summary"
  exit 1
}

python=$(command -v python3) || fail "python3 is needed"
venv=$out/venv
req=tests/scim/requirements.txt
if [[ ! -x $venv/bin/python || $req -nt $venv/installed ]]; then
  echo "--- installing $(tr '\n' ' ' <"$req")into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" || fail "pip install failed"
  touch "$venv/installed"
fi

bin=target/release/keygate-host
[[ -x $bin ]] || fail "$bin is missing: build with ./dev test (or cargo build --release -p keygate-host)"
state=$(mktemp -d)
scim_token=scim-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
admin_token=scim-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
SPIN_VARIABLE_ADMIN_TOKEN=$admin_token \
  "$bin" up --listen 127.0.0.1:0 --state-dir "$state/state" --variable "scim_token=$scim_token" \
  >"$state/out" 2>"$out/runner.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$state"' EXIT
url=""
while [[ -z $url ]]; do
  kill -0 "$pid" 2>/dev/null || { cat "$out/runner.log" >&2; fail "keygate-host did not start"; }
  url=$(sed -n 's/^Serving //p' "$state/out")
  [[ -n $url ]] || sleep 0.1
done

echo "--- scim2-tester and scim2-client against $url/scim/v2"
start=$SECONDS
# From target/scim, not the repository (no stray caches in the tree).
cd "$out"
KEYGATE_URL=$url KEYGATE_SCIM_TOKEN=$scim_token KEYGATE_ADMIN_TOKEN=$admin_token SCIM_SUMMARY=$summary \
  PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" "$root/tests/scim/check.py"
code=$?
echo "scim: exit $code after $((SECONDS - start)) s"
grep -q '^# pass' "$summary" || fail "no result written"
((code == 0))
