// What the console's browser tests share (console, passkeys, custody, reports): Debian's
// Chromium through playwright-core, checks that count their failures and end the run, and
// RFC 6238 codes computed here, not by the appliance.
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

// Debian's Chromium, headless, quiet (no network of its own), trusting only webd's key (its
// SubjectPublicKeyInfo's SHA-256, base64: `spki`) beyond the system's.
export function launchChromium(spki) {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
           "--ignore-certificate-errors-spki-list=" + spki],
  });
}

let failures = 0;

export function check(ok, what) {
  console.log((ok ? "ok    " : "FAIL  ") + what);
  if (!ok) { failures++; }
}

// The summary line, and the exit status: 1 when a check failed.
export function finish() {
  console.log(failures ? "\n" + failures + " check(s) failed" : "\nall checks passed");
  process.exit(failures ? 1 : 0);
}

function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of text.replace(/=+$/, "")) { bits += alphabet.indexOf(c).toString(2).padStart(5, "0"); }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) { bytes.push(parseInt(bits.slice(i, i + 8), 2)); }
  return Buffer.from(bytes);
}

// totp(user): RFC 6238 with SHA-1, 30 s steps, 6 digits, from `secrets` (base32, by user); each
// step used once (signerd refuses a replay), `lastStep` (by user) holding the ones spent.
export function totpFor(secrets, lastStep) {
  return async function totp(user) {
    for (;;) {
      const clock = Date.now();
      const now = Math.floor(clock / 30000);
      // The previous step only while this one is young: the form may reach signerd after it turns.
      const oldest = clock % 30000 < 15000 ? now - 1 : now;
      const step = Math.max(oldest, (lastStep[user] || 0) + 1);
      if (step <= now + 1) {
        lastStep[user] = step;
        const counter = Buffer.alloc(8);
        counter.writeBigUInt64BE(BigInt(step));
        const mac = createHmac("sha1", base32(secrets[user])).update(counter).digest();
        const o = mac[19] & 15;
        return String((mac.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, "0");
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
}
