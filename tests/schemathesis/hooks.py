"""schemathesis hooks for keygate (loaded through SCHEMATHESIS_HOOKS by run.sh).

Without them, verify and the webhook would only ever answer 401: a generated
key never has a valid checksum and a generated signature never matches. So:

- management calls (keys, service accounts, users, audit) get the admin token
  and an acting user (run.sh sends no global Authorization header, which would
  also land on verify);
- a verify call that brings no key of its own gets a real one
  (KEYGATE_VERIFY_KEY), so the 200 answer is checked against the schema too;
- every webhook delivery is signed per Standard Webhooks with the runner's
  secret over the exact bytes sent, so bodies reach the parser and the 200 /
  400 answers are checked; most timestamps are now, a few far off.
"""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import schemathesis

ADMIN_TOKEN = os.environ["KEYGATE_ADMIN_TOKEN"]
VERIFY_KEY = os.environ["KEYGATE_VERIFY_KEY"]
WEBHOOK_KEY = base64.b64decode(os.environ["KEYGATE_WEBHOOK_SECRET"].removeprefix("whsec_"))
ACTING_USER = "schemathesis@example.com"

# /ssf/events takes a Security Event Token (a JWT, text) as
# application/secevent+jwt, which schemathesis has no serializer for.
schemathesis.serializer.alias("application/secevent+jwt", "text/plain")


def _has(headers, name):
    return any(k.lower() == name for k in headers)


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    headers = dict(case.headers or {})
    if path.startswith(("/api/keys", "/api/service-accounts", "/api/users/")) or path == "/api/audit":
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        # Always this user: a generated one may be the one a webhook removed.
        headers["X-Acting-User"] = ACTING_USER
    elif path == "/api/verify":
        has_body_key = isinstance(case.body, dict) and "key" in case.body
        if not (_has(headers, "authorization") or _has(headers, "x-api-key") or has_body_key):
            headers["Authorization"] = f"Bearer {VERIFY_KEY}"
    elif path == "/webhooks/user-removed":
        body = case.body
        if isinstance(body, (dict, list, str, int, float, bool)) or body is None:
            body = json.dumps(body).encode()
            case.body = body
        elif not isinstance(body, bytes):  # no body at all
            body = b""
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = int(time.time())
        # One delivery in eight is outside the 5-minute tolerance.
        stamp = now - 3600 if hashlib.sha256(body).digest()[0] < 32 else now
        mac = hmac.new(WEBHOOK_KEY, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256)
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = str(stamp)
        headers["webhook-signature"] = "v1," + base64.b64encode(mac.digest()).decode()
    case.headers = headers
