#!/usr/bin/env python3
"""Verify Vitals-signed webhook samples with the standardwebhooks library.

Usage: verify.py SAMPLES.json

SAMPLES.json is a list of objects written by the Go test
api.TestSignaturesVerifyWithStandardWebhooksLibrary:
  {"name", "id", "timestamp", "body", "signature", "secret" | "public_key", "expect": bool}
"v1," entries are checked with standardwebhooks.Webhook(secret).verify (the
PyPI reference library). The library (1.1.0) has no asymmetric support, so
"v1a," entries are checked with the ed25519 public key using the
cryptography package, over the same signed content "id.timestamp.body".
Prints one line per sample and exits 1 if any result differs from expect.
"""
import base64
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def verify_v1(s):
    headers = {"webhook-id": s["id"], "webhook-timestamp": s["timestamp"], "webhook-signature": s["signature"]}
    try:
        Webhook(s["secret"]).verify(s["body"], headers)
        return True
    except WebhookVerificationError:
        return False


def verify_v1a(s):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(s["public_key"].removeprefix("whpk_")))
    content = f'{s["id"]}.{s["timestamp"]}.{s["body"]}'.encode()
    for entry in s["signature"].split():
        version, _, sig = entry.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(sig), content)
            return True
        except (InvalidSignature, ValueError):
            pass
    return False


def main():
    samples = json.load(open(sys.argv[1]))
    bad = 0
    for s in samples:
        got = verify_v1a(s) if s.get("public_key") else verify_v1(s)
        ok = got == s["expect"]
        bad += not ok
        print(f'{"ok  " if ok else "FAIL"} {s["name"]}: verified={got} expected={s["expect"]}')
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
