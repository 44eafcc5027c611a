"""Schemathesis hooks for the contract test (crates/avisa/tests/cli/contract.rs):
the webhooks are fuzzed past their signature and token, as Twilio and
Kannel would call them.

- Twilio's: `X-Twilio-Signature` computed as Twilio does (HMAC-SHA1 of the
  public URL with its query, then every form pair sorted, key then value,
  under the auth token; base64), over the very pairs `requests` will send.
- Kannel's inbound: the configured `token` in the query.
- Kannel's DLR stays unsigned (its signature is the server's own HMAC): 403.

The secrets are the contract server's test values, passed in AVISA_ST_*.
"""

import base64
import hashlib
import hmac
import os
from urllib.parse import parse_qsl, urlencode

import schemathesis

TWILIO = os.environ.get("AVISA_ST_TWILIO_TOKEN", "")
KANNEL = os.environ.get("AVISA_ST_KANNEL_TOKEN", "")
PUBLIC = os.environ.get("AVISA_ST_PUBLIC_URL", "").rstrip("/")


def _form_pairs(body):
    """The pairs `requests` sends for a dict body (None values dropped,
    sequences repeated), or None when the body is not a flat form."""
    if not isinstance(body, dict):
        return None
    flat = {}
    for key, value in body.items():
        if value is None:
            continue
        if isinstance(value, (dict, bytes)):
            return None
        if isinstance(value, (list, tuple)):
            if any(isinstance(v, (dict, list, tuple, bytes)) for v in value):
                return None
            value = [v for v in value if v is not None]
        flat[key] = value
    return parse_qsl(urlencode(flat, doseq=True), keep_blank_values=True)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    path = case.operation.path
    if path.startswith("/hooks/twilio/") and TWILIO and PUBLIC:
        pairs = _form_pairs(case.body if case.body is not None else {})
        if pairs is None:
            return
        url = PUBLIC + case.formatted_path
        if case.query:
            url += "?" + urlencode({k: v for k, v in case.query.items() if v is not None}, doseq=True)
        data = url + "".join(k + v for k, v in sorted(pairs))
        digest = hmac.new(TWILIO.encode(), data.encode(), hashlib.sha1).digest()
        headers = dict(case.headers or {})
        headers["X-Twilio-Signature"] = base64.b64encode(digest).decode()
        case.headers = headers
    elif path == "/hooks/kannel/inbound" and KANNEL:
        query = dict(case.query or {})
        query["token"] = KANNEL
        case.query = query
