"""keygate's SCIM endpoint checked by real clients (run by tests/scim/run.sh).

1. scim2-tester's check_server: discovery, then create / read / list /
   attributes / .search / replace / delete and PATCH add / remove / replace
   of every attribute the published User schema has. One count per check.
2. scim2-client driving a deprovisioning the way an identity provider does:
   discover, create a user, find them by `userName eq` (in another case),
   give them a keygate key (management API), PATCH active=false, see the
   key refused by verify and the user refused as acting user, PATCH active
   true again, DELETE, and the resource gone. One count per step.

Prints every failure; writes `# pass N` / `# fail M` to the summary file.
"""

import json
import os
import sys
import traceback
import uuid

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import (
    Email,
    Error,
    ListResponse,
    Name,
    PatchOp,
    PatchOperation,
    SearchRequest,
    User,
)
from scim2_tester import Status, check_server

BASE = os.environ["KEYGATE_URL"]
TOKEN = os.environ["KEYGATE_SCIM_TOKEN"]
ADMIN = os.environ["KEYGATE_ADMIN_TOKEN"]
SUMMARY = os.environ["SCIM_SUMMARY"]

passed = failed = 0


def count(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}: {detail}")


def scim_client():
    http = httpx2.Client(
        base_url=f"{BASE}/scim/v2",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    return SyncSCIMClient(http)


def tester():
    print("--- scim2-tester check_server")
    results = check_server(scim_client())
    for r in results:
        label = f"scim2-tester {r.title} {r.resource_type or ''}".strip()
        reason = (r.reason or "").replace("\n", " ")
        if r.status == Status.SKIPPED:
            print(f"skip  {label}: {reason}")
            continue
        count(r.status == Status.SUCCESS, label, reason)


def management(method, path, acting=None, body=None):
    headers = {"Authorization": f"Bearer {ADMIN}"}
    if acting:
        headers["X-Acting-User"] = acting
    return httpx2.request(method, f"{BASE}{path}", headers=headers, json=body, timeout=30)


def step(what, f):
    try:
        result = f()
        count(result is not False, what, "" if result is not False else "check failed")
    except Exception as exc:  # noqa: BLE001 - every failure is reported and counted
        count(False, what, f"{type(exc).__name__}: {exc}")
        traceback.print_exc(limit=2)


def client_lifecycle():
    print("--- scim2-client: provision, find, deprovision, readmit, delete")
    client = scim_client()
    client.discover()
    login = f"Client.{uuid.uuid4().hex[:8]}@Example.com"
    state = {}

    def create():
        user = client.create(
            User(
                user_name=login,
                name=Name(given_name="Client", family_name="Test"),
                emails=[Email(value=login, type="work", primary=True)],
                active=True,
            )
        )
        state["user"] = user
        return user.id is not None and user.user_name == login and user.meta.version

    def find():
        found = client.query(
            User, query_parameters=SearchRequest(filter=f'userName eq "{login.lower()}"')
        )
        return isinstance(found, ListResponse) and found.total_results == 1 and (
            found.resources[0].id == state["user"].id
        )

    def conditional_read():
        # A resource carrying its version: the read is conditional
        # (If-None-Match); 304 hands back the very object.
        return client.query(state["user"]) is state["user"]

    def key():
        r = management("POST", "/api/keys", acting=login, body={"name": "client-sync"})
        state["secret"] = r.json().get("secret")
        return r.status_code == 201

    def verify_status():
        r = httpx2.get(
            f"{BASE}/api/verify",
            headers={"Authorization": f"Bearer {state['secret']}"},
            timeout=30,
        )
        return r.status_code, r.json().get("code")

    def deactivate():
        patch = PatchOp[User](
            operations=[PatchOperation(op=PatchOperation.Op.replace_, path="active", value=False)]
        )
        user = client.modify(User, state["user"].id, patch)
        return user is None or user.active is False

    def refused():
        return verify_status() == (401, "revoked_key")

    def cannot_act():
        return management("GET", "/api/keys", acting=login).status_code == 403

    def reactivate():
        patch = PatchOp[User](
            operations=[PatchOperation(op=PatchOperation.Op.replace_, path="active", value=True)]
        )
        user = client.modify(User, state["user"].id, patch)
        return user is None or user.active is True

    def acts_again_key_stays_revoked():
        return (
            management("GET", "/api/keys", acting=login).status_code == 200
            and verify_status() == (401, "revoked_key")
        )

    def delete():
        client.delete(User, state["user"].id)
        gone = client.query(User, state["user"].id, raise_scim_errors=False)
        return isinstance(gone, Error) and gone.status == 404

    for what, f in [
        ("create", create),
        ("search by userName eq (another case)", find),
        ("GET with If-None-Match of the current version: 304", conditional_read),
        ("a keygate key for the user", key),
        ("PATCH active false", deactivate),
        ("the key refuses verify (revoked_key)", refused),
        ("the user cannot act (403)", cannot_act),
        ("PATCH active true", reactivate),
        ("the user acts again; the old key stays revoked", acts_again_key_stays_revoked),
        ("DELETE, then 404", delete),
    ]:
        step(f"scim2-client {what}", f)


def main():
    for part in (tester, client_lifecycle):
        try:
            part()
        except Exception as exc:  # noqa: BLE001
            count(False, part.__name__, f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
    with open(SUMMARY, "a") as f:
        f.write(f"# pass {passed}\n# fail {failed}\n")
    print(f"scim: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
