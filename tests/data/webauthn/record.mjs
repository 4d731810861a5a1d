// Records the WebAuthn vectors in this folder from Debian's Chromium and its virtual
// authenticator (CDP WebAuthn domain), so that the verifier's positive tests rest on what a
// real browser and authenticator produced, not on our own encoder.
//
// Run once (the output is checked in; the unit tests never run this):
//   (cd tests/browser && npm ci) && node tests/data/webauthn/record.mjs
// It serves an empty page from 127.0.0.1 and opens it as http://localhost:PORT, a secure
// context, so the relying party is rpId "localhost" with origin "http://localhost:PORT"; the
// port is fixed so that the vectors' origin does not change between recordings.
//
// For each algorithm (ES256, Ed25519, RS256), on a fresh authenticator that verifies users:
// a registration (attestation "none", a discoverable credential, user verification required)
// and two assertions, so the counter grows. Then, on a second authenticator that cannot verify
// users (hasUserVerification false), a registration and an assertion with user verification
// "discouraged": the UV flag is clear. Challenges are fixed text, so the files say what each
// challenge was for. Byte fields are base64url without padding.
import { writeFileSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";

const require = createRequire(new URL("../../browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const PORT = 8447;
const ORIGIN = `http://localhost:${PORT}`;
const RP_ID = "localhost";
const OUT = new URL(".", import.meta.url);

const server = createServer((request, response) => {
  response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
  response.end("<!doctype html><title>webauthn vectors</title><p>recording</p>");
});
await new Promise((resolve) => server.listen(PORT, "127.0.0.1", resolve));

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--metrics-recording-only"],
});
const page = await browser.newPage();
await page.goto(ORIGIN + "/");
const cdp = await page.context().newCDPSession(page);
await cdp.send("WebAuthn.enable", { enableUI: false });

async function authenticator(verifiesUsers) {
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: verifiesUsers,
      isUserVerified: verifiesUsers,
      automaticPresenceSimulation: true,
    },
  });
  return authenticatorId;
}

// In the page: navigator.credentials.create / get with the challenge given as text, the
// results as base64url.
async function register(alg, challenge, userVerification) {
  return page.evaluate(async ({ alg, challenge, userVerification, rpId }) => {
    const b64url = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const credential = await navigator.credentials.create({
      publicKey: {
        rp: { id: rpId, name: "DKIM appliance (vectors)" },
        user: { id: new TextEncoder().encode("approver-alice"), name: "alice",
                displayName: "Alice" },
        challenge: new TextEncoder().encode(challenge),
        pubKeyCredParams: [{ type: "public-key", alg }],
        attestation: "none",
        authenticatorSelection: { residentKey: "required", requireResidentKey: true,
                                  userVerification },
        timeout: 10000,
      },
    });
    return {
      challenge: b64url(new TextEncoder().encode(challenge)),
      credentialId: b64url(credential.rawId),
      clientDataJSON: b64url(credential.response.clientDataJSON),
      attestationObject: b64url(credential.response.attestationObject),
    };
  }, { alg, challenge, userVerification, rpId: RP_ID });
}

async function assert(credentialId, challenge, userVerification) {
  return page.evaluate(async ({ credentialId, challenge, userVerification, rpId }) => {
    const b64url = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const fromB64url = (text) => Uint8Array.from(
      atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    const credential = await navigator.credentials.get({
      publicKey: {
        rpId,
        challenge: new TextEncoder().encode(challenge),
        allowCredentials: [{ type: "public-key", id: fromB64url(credentialId) }],
        userVerification,
        timeout: 10000,
      },
    });
    return {
      challenge: b64url(new TextEncoder().encode(challenge)),
      credentialId: b64url(credential.rawId),
      clientDataJSON: b64url(credential.response.clientDataJSON),
      authenticatorData: b64url(credential.response.authenticatorData),
      signature: b64url(credential.response.signature),
      userHandle: credential.response.userHandle ? b64url(credential.response.userHandle) : "",
    };
  }, { credentialId, challenge, userVerification, rpId: RP_ID });
}

const algorithms = [
  { name: "ES256", file: "es256.json", cose: -7 },
  { name: "Ed25519", file: "ed25519.json", cose: -8 },
  { name: "RS256", file: "rs256.json", cose: -257 },
];
const version = await browser.version();
const summary = [];
for (const algorithm of algorithms) {
  const label = algorithm.name.toLowerCase();
  const verifying = await authenticator(true);
  let vector;
  try {
    const registration = await register(algorithm.cose, `${label} registration challenge 01`,
                                        "required");
    const assertions = [];
    for (const n of [1, 2]) {
      assertions.push(await assert(registration.credentialId,
                                   `${label} decision challenge 0${n}`, "required"));
    }
    vector = {
      recordedWith: `Chromium ${version}, CDP WebAuthn virtual authenticator (ctap2, internal, ` +
                    "resident keys, user verification), by tests/data/webauthn/record.mjs",
      algorithm: algorithm.name,
      coseAlgorithm: algorithm.cose,
      rpId: RP_ID,
      origin: ORIGIN,
      ...registration,
      assertions,
    };
  } catch (error) {
    summary.push(`${algorithm.name}: not recorded (${error.message.split("\n")[0]})`);
    await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: verifying });
    continue;
  }
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: verifying });

  const nonVerifying = await authenticator(false);
  const registration = await register(algorithm.cose,
                                      `${label} registration without UV 01`, "discouraged");
  vector.withoutUserVerification = {
    ...registration,
    assertion: await assert(registration.credentialId, `${label} decision without UV 01`,
                            "discouraged"),
  };
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: nonVerifying });

  writeFileSync(new URL(algorithm.file, OUT), JSON.stringify(vector, null, 2) + "\n");
  summary.push(`${algorithm.name}: ${algorithm.file}`);
}
await browser.close();
server.close();
console.log(summary.join("\n"));
// The files must parse back (a sanity check of what was just written).
for (const algorithm of algorithms) {
  try {
    JSON.parse(readFileSync(new URL(algorithm.file, OUT), "utf8"));
  } catch {
    // not recorded: said above
  }
}
