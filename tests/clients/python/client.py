"""podid SDK conformance client: azure-identity's ManagedIdentityCredential, as an app in a pod uses it.

Usage: client.py [--client-id ID] [--chained] [--resource URI]

Prints one JSON object on stdout: {"ok": true, "expires_on": N, "claims": {...}} when a token
was obtained (the claims are the token's JWT payload), else {"ok": false, "error": TYPE,
"message": TEXT}; exits 0 or 1 accordingly. --chained wraps the credential in a
ChainedTokenCredential, which makes it probe IMDS first with a header-less request.
"""

import argparse
import base64
import json
import sys

from azure.identity import ChainedTokenCredential, ManagedIdentityCredential


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client-id")
    parser.add_argument("--chained", action="store_true")
    parser.add_argument("--resource", default="https://vault.azure.net")
    args = parser.parse_args()
    credential = ManagedIdentityCredential(client_id=args.client_id)
    if args.chained:
        credential = ChainedTokenCredential(credential)
    try:
        token = credential.get_token(args.resource + "/.default")
    except Exception as e:  # noqa: BLE001 - the test wants whatever the SDK raised, by name.
        print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))
        return 1
    print(json.dumps({"ok": True, "expires_on": token.expires_on, "claims": claims(token.token)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
