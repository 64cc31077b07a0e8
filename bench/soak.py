"""The soak's webhook side (bench/soak.sh): at a steady rate, for each
delivery a fresh user gets a key, the identity system removes the user with a
Standard Webhooks-signed delivery, and the key must then fail verify with
revoked_key. Prints one line per minute: deliveries, errors, p99 of the
webhook call in ms. Only the standard library.

    python3 bench/soak.py URL TOKEN WEBHOOK_SECRET PER_SECOND SECONDS
"""

import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request

url, token, secret, rate, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
key = base64.b64decode(secret.removeprefix("whsec_"))
run = f"{int(time.time())}"


def call(method, path, headers, body=None):
    req = urllib.request.Request(url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cycle(n):
    """One create → remove → verify; returns (ok, webhook latency in s, what failed)."""
    user = f"soak-wh-{run}-{n}@example.com"
    status, body = call(
        "POST", "/api/keys",
        {"Authorization": f"Bearer {token}", "X-Acting-User": user, "Content-Type": "application/json"},
        json.dumps({"name": f"wh-{n}"}).encode(),
    )
    if status != 201:
        return False, 0.0, f"create {status}"
    api_key = json.loads(body)["secret"]
    event = json.dumps({"type": "user.removed", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "data": {"user_id": user}}).encode()
    msg_id, stamp = f"msg_soak_{run}_{n}", str(int(time.time()))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + event, hashlib.sha256).digest()).decode()
    start = time.monotonic()
    status, body = call("POST", "/webhooks/user-removed", {
        "webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": f"v1,{sig}",
        "Content-Type": "application/json"}, event)
    took = time.monotonic() - start
    if status != 200 or json.loads(body).get("revoked_keys") != 1:
        return False, took, f"webhook {status} {body[:120]!r}"
    status, body = call("GET", "/api/verify", {"Authorization": f"Bearer {api_key}"})
    if status != 401 or b'"revoked_key"' not in body:
        return False, took, f"verify after removal {status}"
    return True, took, ""


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000 if xs else 0.0


begin = time.monotonic()
n, minute, done, errors, lat = 0, 1, 0, 0, []
while True:
    now = time.monotonic() - begin
    if now >= minute * 60 or now >= seconds:
        print(f"WEBHOOKS {minute} {done} {errors} {p99(lat):.1f}", flush=True)
        minute, done, errors, lat = minute + 1, 0, 0, []
        if now >= seconds:
            break
    # Pacing: the next delivery is due at n / rate seconds from the start.
    due = n / rate
    if due > now:
        time.sleep(min(due - now, minute * 60 - now))
        continue
    n += 1
    ok, took, what = cycle(n)
    done += 1
    lat.append(took)
    if not ok:
        errors += 1
        if errors <= 3:
            print(f"soak: webhook cycle {n}: {what}", file=sys.stderr, flush=True)
