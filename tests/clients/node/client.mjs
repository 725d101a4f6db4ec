// podid SDK conformance client: @azure/identity's ManagedIdentityCredential, as an app in a pod uses it.
//
// Usage: node client.mjs [--client-id ID] [--resource URI]
//
// Prints one JSON object on stdout: {"ok": true, "expires_on": N, "claims": {...}} when a token
// was obtained (the claims are the token's JWT payload), else {"ok": false, "error": NAME,
// "message": TEXT}; exits 0 or 1 accordingly.
import { parseArgs } from "node:util";
import { ManagedIdentityCredential } from "@azure/identity";

const { values } = parseArgs({
  options: {
    "client-id": { type: "string" },
    resource: { type: "string", default: "https://vault.azure.net" },
  },
});

const clientId = values["client-id"];
const credential = clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();

function claims(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

try {
  const token = await credential.getToken(`${values.resource}/.default`);
  console.log(JSON.stringify({ ok: true, expires_on: token.expiresOnTimestamp, claims: claims(token.token) }));
  process.exit(0);
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: e?.name ?? "Error", message: String(e?.message ?? e) }));
  process.exit(1);
}
