"""Credentials for every request schemathesis sends to a test `host serve`: each endpoint's own
auth kind, as tests/tests/schemathesis.rs configures it. The signed webhooks are signed over the
exact bytes sent, so the server checks a body it can verify and the fuzzing reaches the handler.

  /hooks/alertmanager   hmac-sha256 (X-Hub-Signature-256)       RB_ST_HMAC_SECRET
  /hooks/run/…          standard-webhooks (webhook-*)           RB_ST_WHSEC
  /agent/v1/…           the node's bearer token, for its node   RB_ST_NODE_TOKEN
  /ui…                  [ui] basic auth                         RB_ST_UI_USER, RB_ST_UI_PASSWORD
  everything else       [webhooks.api] bearer token             RB_ST_API_TOKEN
"""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import schemathesis
from schemathesis.core import NotSet

SESSION = uuid.uuid4().hex


def _raw_body(case):
    """The body as the bytes that will be sent; a JSON body is serialized here, once."""
    body = case.body
    if isinstance(body, NotSet) or body is None:
        if isinstance(body, NotSet):
            return b""
        case.body = b"null"
        return case.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        case.body = body.encode("utf-8", errors="surrogatepass")
        return case.body
    case.body = json.dumps(body).encode()
    return case.body


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    headers = case.headers if isinstance(case.headers, dict) else {}
    case.headers = headers
    for name in list(headers):
        if name.lower() in ("authorization", "x-hub-signature-256", "webhook-id",
                            "webhook-timestamp", "webhook-signature"):
            del headers[name]
    if path == "/hooks/alertmanager":
        raw = _raw_body(case)
        mac = hmac.new(os.environ["RB_ST_HMAC_SECRET"].encode(), raw, hashlib.sha256)
        headers["X-Hub-Signature-256"] = "sha256=" + mac.hexdigest()
    elif path.startswith("/hooks/run/"):
        raw = _raw_body(case)
        key = base64.b64decode(os.environ["RB_ST_WHSEC"].removeprefix("whsec_"))
        msg_id = "msg_" + uuid.uuid4().hex
        stamp = str(int(time.time()))
        signed = msg_id.encode() + b"." + stamp.encode() + b"." + raw
        signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = stamp
        headers["webhook-signature"] = "v1," + signature
    elif path.startswith("/agent/"):
        headers["Authorization"] = "Bearer " + os.environ["RB_ST_NODE_TOKEN"]
        # The token's own node and a well-formed session: past the identity checks, into the
        # handler (a random node name would only ever be refused 403).
        if isinstance(case.body, dict) and isinstance(case.body.get("agent"), dict):
            case.body["agent"]["node"] = "node-a"
            case.body["agent"]["session"] = SESSION
    elif path.startswith("/ui"):
        pair = f"{os.environ['RB_ST_UI_USER']}:{os.environ['RB_ST_UI_PASSWORD']}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif path.startswith("/hooks/slack/"):
        pass  # no Slack channel here: unsigned, refused or 404
    else:
        headers["Authorization"] = "Bearer " + os.environ["RB_ST_API_TOKEN"]
