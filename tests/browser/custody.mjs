// PIN custody in the console (issue 23), in Debian's Chromium driven by playwright-core.
// Started by tests/integration/webd_daemon.py custody, once per phase, which runs signerd (its
// [pin] source = PHASE) and webd and passes:
//   PHASE ("approver" or "shares"), WEBD_URL, WEBD_SPKI (the server key's SHA-256, pinned),
//   ARTIFACTS (screenshots), DOMAIN, SIGN_COMMAND ({selector: argv}) and PIN_STATUS_COMMAND (argv),
//   TOTP_SECRETS, TOTP_LAST, PASSWORDS, REQUESTS (ids of alice's requests), and
//   approver: PIN, the token's user PIN, typed in the approval dialog;
//   shares: SHARES, {custodian: share text} of `dkim-appliance pin split`.
//
// approver: bob sees the custody panel (approver, logged out, the signer identity that `pin
//   status` prints on the appliance), approves alice's request with his TOTP code and the PIN
//   typed in the dialog; the PIN leaves the page only sealed (no request body carries it), the
//   identity is pinned in the browser at first use, the grant is active, the token logged in and
//   a signature works. carol revokes (the token logs out), then, in a browser that pinned another
//   identity, the approval of the next request (another selector) is refused before anything is sent, with the
//   message that says to compare with `dkim-appliance pin status`; she trusts the identity again
//   and approves with the PIN.
// shares: a grant approved while the PIN is not in memory (nothing signs); carol, dave and erin
//   (3 of 5 custodians) each submit their share in the console (the panel shows who has and when
//   the unlock window ends; erin's try with dave's share is refused); at the third the token logs
//   in and the signature works. No request body carries a share.

import { spawnSync } from "node:child_process";
import { check, finish, launchChromium, totpFor } from "./checks.mjs";

const env = process.env;
const url = env.WEBD_URL;
const shots = env.ARTIFACTS;
const phase = env.PHASE;
const secrets = JSON.parse(env.TOTP_SECRETS);
const lastStep = JSON.parse(env.TOTP_LAST);
const passwords = JSON.parse(env.PASSWORDS);
const requests = JSON.parse(env.REQUESTS);
const signCommand = JSON.parse(env.SIGN_COMMAND);
const statusCommand = JSON.parse(env.PIN_STATUS_COMMAND);

const totp = totpFor(secrets, lastStep);

const message = "From: Alice <alice@" + env.DOMAIN + ">\r\nTo: bob@peer.example\r\nSubject: custody\r\n" +
  "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <p1@" + env.DOMAIN + ">\r\n\r\nhello\r\n";
function relaySign(selector = "rsa") {
  const argv = signCommand[selector];
  return spawnSync(argv[0], argv.slice(1), { input: message }).status;
}
// `dkim-appliance pin status` as root on the appliance: what the operator compares with.
function pinStatus() {
  return spawnSync(statusCommand[0], statusCommand.slice(1)).stdout.toString();
}

const browser = await launchChromium(env.WEBD_SPKI);

// Every request body each page sends, to look for secrets in them.
const sent = [];
async function person(name) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => check(false, name + ": no script error in the page: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") { console.log("      " + name + " console: " + m.text()); } });
  page.on("request", (r) => { sent.push({ who: name, method: r.method(), path: new URL(r.url()).pathname, body: r.postData() || "" }); });
  return page;
}
async function login(page, user, withTotp) {
  await page.goto(url);
  await page.locator("#login-form").waitFor();
  await page.fill("#login-form [name=user]", user);
  await page.fill("#login-form [name=password]", passwords[user]);
  if (withTotp) { await page.fill("#login-form [name=totp]", await totp(user)); }
  await page.click("#login-form button[type=submit]");
  await page.locator("#bar").waitFor();
}
// The card of request `id` on the requests view.
async function cardOf(page, id) {
  await page.goto(url + "#requests");
  const card = page.locator("#pending-list .card[data-id='" + id + "']");
  await card.waitFor();
  return card;
}
async function apiGet(page, path) {
  return page.evaluate(async (p) => (await fetch(p, { headers: { Accept: "application/json" } })).json(), path);
}
const pinned = (page) => page.evaluate(() => localStorage.getItem("dkim-appliance.signerd-identity"));

async function approver() {
  const identity = (pinStatus().match(/signerd identity: (SHA256:\S+)/) || [])[1];
  check(!!identity, "pin status prints signerd's identity: " + identity);

  const bob = await person("bob");
  await login(bob, "bob", true);
  await bob.locator("#pin-panel").waitFor();
  check(/Approver/.test(await bob.textContent("#pin-mode")), "the panel says the custody is approver");
  check(/logged out/.test(await bob.textContent("#pin-state")), "and that the token is logged out");
  check((await bob.textContent("#pin-missing")).length > 0, "and what is missing: " + await bob.textContent("#pin-missing"));
  check(await bob.textContent("#pin-fingerprint") === identity,
        "the panel shows the signer identity that pin status prints on the appliance");
  check(await pinned(bob) === null && /pins it/.test(await bob.textContent("#pin-pinned")),
        "nothing is pinned yet in bob's browser");
  await bob.screenshot({ path: shots + "/01-approver-panel.png", fullPage: true });

  const card = await cardOf(bob, requests.first);
  await card.getByRole("button", { name: "Approve…" }).click();
  await bob.locator("#decide[open]").waitFor();
  check(await bob.locator("#decide-pin").isVisible(), "approving while the token is logged out asks for the PIN");
  await bob.fill("#decide-form [name=pin]", env.PIN);
  await bob.fill("#decide-form [name=totp]", await totp("bob"));
  await bob.screenshot({ path: shots + "/02-approve-with-pin.png" });
  await bob.click("#decide-submit");
  await bob.locator("#decide").waitFor({ state: "hidden" });
  check(/grant \d+ active/.test(await bob.textContent("#notice")), "bob's approval makes the grant active: " +
        await bob.textContent("#notice"));
  check(await pinned(bob) === identity, "the signer identity is pinned in bob's browser at first use");
  const approve = sent.filter((s) => s.who === "bob" && s.path === "/api/v1/elevations/" + requests.first + "/approve");
  const body = approve.length === 1 ? JSON.parse(approve[0].body) : {};
  check(body.pin_envelope && /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(body.pin_envelope.envelope) &&
        !("pin" in body), "the approval carries pin_envelope (v1 envelope), no pin");
  const e = await apiGet(bob, "/api/v1/elevations/" + requests.first);
  check(e.elevation && e.elevation.grant && e.elevation.grant.state === "active", "the grant is active");
  const status = pinStatus();
  check(/the token is logged in/.test(status), "pin status on the appliance: the token is logged in");
  await bob.goto(url + "#requests");
  await bob.locator("#pin-state", { hasText: "logged in" }).waitFor();
  check(true, "the panel says the token is logged in");
  check(relaySign() === 0, "a signature through signerd succeeds inside the grant");
  await bob.screenshot({ path: shots + "/03-approver-logged-in.png", fullPage: true });

  // carol revokes (the last grant: the token logs out), then approves the next request in a
  // browser that pinned another identity: refused before anything is sent.
  const carol = await person("carol");
  await login(carol, "carol", true);
  await carol.goto(url + "#grants");
  const row = carol.locator("#grants-table tbody tr").first();
  await row.waitFor();
  await row.getByRole("button", { name: "Revoke…" }).click();
  await carol.locator("#decide[open]").waitFor();
  check(await carol.locator("#decide-pin").isHidden(), "a revoke asks for no PIN");
  await carol.fill("#decide-form [name=reason]", "done");
  await carol.fill("#decide-form [name=totp]", await totp("carol"));
  await carol.click("#decide-submit");
  await carol.locator("#grants-empty").waitFor();
  check(relaySign() === 3, "after the revoke the next signature is refused (locked)");
  const forged = "SHA256:" + "A".repeat(43);
  await carol.evaluate((f) => localStorage.setItem("dkim-appliance.signerd-identity", f), forged);
  await carol.goto(url + "#requests");
  await carol.locator("#pin-state", { hasText: "logged out" }).waitFor();
  await carol.locator("#pin-identity-changed").waitFor();
  check(/dkim-appliance pin status/.test(await carol.textContent("#pin-identity-text")),
        "a browser that pinned another identity says so, pointing to dkim-appliance pin status");
  const carolCard = await cardOf(carol, requests.second);
  await carolCard.getByRole("button", { name: "Approve…" }).click();
  await carol.locator("#decide[open]").waitFor();
  check(await carol.locator("#decide-pin").isVisible(), "the next activating approval asks for the PIN again");
  const before = sent.length;
  await carol.fill("#decide-form [name=pin]", env.PIN);
  await carol.fill("#decide-form [name=totp]", "000000");
  await carol.click("#decide-submit");
  await carol.locator("#decide-error").waitFor();
  const refusal = await carol.textContent("#decide-error");
  check(/dkim-appliance pin status/.test(refusal) && refusal.includes(forged) && refusal.includes(identity),
        "the approval is refused: the identity changed, compare with pin status: " + refusal);
  check(!sent.slice(before).some((s) => /\/approve$/.test(s.path)), "nothing was sent to approve");
  check(await carol.inputValue("#decide-form [name=pin]") === "", "the PIN field is emptied");
  await carol.screenshot({ path: shots + "/04-identity-changed.png" });
  await carol.click("#decide-cancel");
  // Compared with the appliance: trusted again, and the approval goes through.
  await carol.click("#pin-trust");
  check(await pinned(carol) === identity, "trusting the identity pins the one the signer names");
  const again = await cardOf(carol, requests.second);
  await again.getByRole("button", { name: "Approve…" }).click();
  await carol.locator("#decide[open]").waitFor();
  await carol.fill("#decide-form [name=pin]", env.PIN);
  await carol.fill("#decide-form [name=totp]", await totp("carol"));
  await carol.click("#decide-submit");
  await carol.locator("#decide").waitFor({ state: "hidden" });
  check(/grant \d+ active/.test(await carol.textContent("#notice")), "carol's approval with the PIN makes the grant active");
  check(relaySign("ed") === 0, "and a signature under it works");
}

async function shares() {
  const custodians = JSON.parse(env.SHARES);
  const identity = (pinStatus().match(/signerd identity: (SHA256:\S+)/) || [])[1];
  check(relaySign() !== 0, "with the grant approved but the PIN not in memory, nothing is signed");
  const order = ["carol", "dave", "erin"];
  for (let i = 0; i < order.length; i++) {
    const name = order[i];
    const page = await person(name);
    await login(page, name, name !== "erin");
    await page.locator("#pin-panel").waitFor();
    check(/Shares/.test(await page.textContent("#pin-mode")), name + " sees the custody: shares");
    check(await page.textContent("#pin-fingerprint") === identity, name + " sees the signer identity pin status prints");
    const rows = page.locator("#pin-custodians tbody tr");
    check(await rows.count() === 5, name + " sees the 5 custodians");
    const submitted = await page.locator("#pin-custodians tbody tr", { hasText: "submitted" }).count();
    check(submitted === i, name + " sees " + i + " shares submitted");
    if (i > 0) {
      check(/window ends in/.test(await page.textContent("#pin-window")), name + " sees when the unlock window ends");
    }
    await page.locator("#pin-share-form").waitFor();
    if (name === "erin") {
      // dave's share, pasted by erin: it is not the one erin was given.
      await page.fill("#pin-share-form [name=share]", custodians.dave);
      await page.click("#pin-share-form button[type=submit]");
      await page.locator("#pin-share-error").waitFor();
      check(/not the one erin was given/.test(await page.textContent("#pin-share-error")),
            "erin's try with dave's share is refused: " + await page.textContent("#pin-share-error"));
      check(await page.inputValue("#pin-share-form [name=share]") === "", "and the field is emptied");
    }
    await page.fill("#pin-share-form [name=share]", "  " + custodians[name] + "\n");
    if (i === 1) { await page.screenshot({ path: shots + "/05-share-form.png", fullPage: true }); }
    await page.click("#pin-share-form button[type=submit]");
    await page.locator("#notice").waitFor();
    const said = await page.textContent("#notice");
    check(i < 2 ? /accepted: \d of 3/.test(said) : /quorum/.test(said), name + "'s share is accepted: " + said);
    check(await pinned(page) === identity, name + "'s browser pinned the signer identity");
    if (i < 2) {
      await page.locator("#pin-custodians tbody tr[data-custodian='" + name + "']", { hasText: "submitted" }).waitFor();
      check(await page.locator("#pin-share-form").isHidden(), name + " is offered no second submission");
    } else {
      await page.locator("#pin-state", { hasText: "logged in" }).waitFor({ timeout: 15000 });
      check(true, "at the third share the token logs in");
      check(/ready: yes/.test(pinStatus()), "pin status on the appliance: ready");
      await page.screenshot({ path: shots + "/06-quorum.png", fullPage: true });
    }
  }
  check(relaySign() === 0, "the signature works once the quorum unlocked the token");
  const bodies = sent.filter((s) => s.path === "/api/v1/pin/shares").map((s) => JSON.parse(s.body));
  check(bodies.length === 4 && bodies.every((b) => /^v1\./.test(b.share.envelope)), "four submissions, each a v1 envelope");
}

try {
  await (phase === "approver" ? approver() : shares());
  // The secrets never left a page in clear.
  const secretsTyped = phase === "approver" ? [env.PIN] : Object.values(JSON.parse(env.SHARES));
  const leaked = sent.filter((s) => secretsTyped.some((x) => s.body.includes(x) ||
    s.body.includes(x.replace(/-/g, "")) || s.body.toLowerCase().includes(x.toLowerCase())));
  check(sent.length > 10 && leaked.length === 0,
        "none of the " + sent.length + " requests the pages sent carries the " + (phase === "approver" ? "PIN" : "shares") +
        " in clear: " + leaked.map((s) => s.method + " " + s.path));
} catch (error) {
  check(false, "the scenario ran to the end: " + error.message.split("\n")[0]);
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      const n = browser.contexts().indexOf(context);
      await page.screenshot({ path: shots + "/failure-" + phase + "-" + n + ".png" }).catch(() => {});
      console.log("      page " + n + " notice: " + await page.textContent("#notice").catch(() => "") +
                  " | dialog error: " + await page.textContent("#decide-error").catch(() => "") +
                  " | share error: " + await page.textContent("#pin-share-error").catch(() => ""));
    }
  }
} finally {
  await browser.close();
}
finish();
