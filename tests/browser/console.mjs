// The approval console end to end in Debian's Chromium, driven by playwright-core.
// Started by tests/integration/webd_daemon.py browser, which runs signerd and webd and passes:
//   WEBD_URL, WEBD_SPKI (the server key's SHA-256, pinned), ARTIFACTS (screenshots), DOMAIN,
//   SIGN_COMMAND (a relay signature through signerd, as JSON argv), TOTP_SECRETS, TOTP_LAST,
//   PASSWORDS.
// The story: alice requests (keyboard only), bob approves with his TOTP code, the grant appears
// with a live countdown, a signature through signerd succeeds and spends a use, carol revokes,
// the next signature is refused. Untrusted text (a <script> in the reason) stays text.
// Each user sees only the tabs and buttons they may use, never even for a moment: alice
// (requester) no audit log, no reports and no approve, deny or revoke; bob and carol (approvers)
// no request form, no reports and no audit log; erin (auditor) the reports and the audit log;
// gwen (admin) the reports, the audit log and a cancel button on another's request, which works.
// (The Reports view itself: reports.mjs.)

import { spawnSync } from "node:child_process";
import { check, finish, launchChromium, totpFor } from "./checks.mjs";

const env = process.env;
const url = env.WEBD_URL;
const shots = env.ARTIFACTS;
const secrets = JSON.parse(env.TOTP_SECRETS);
const lastStep = JSON.parse(env.TOTP_LAST);
const passwords = JSON.parse(env.PASSWORDS);
const signCommand = JSON.parse(env.SIGN_COMMAND);

const totp = totpFor(secrets, lastStep);

const message = "From: Alice <alice@" + env.DOMAIN + ">\r\nTo: bob@peer.example\r\nSubject: console\r\n" +
  "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <c1@" + env.DOMAIN + ">\r\n\r\nhello\r\n";
function relaySign() {
  return spawnSync(signCommand[0], signCommand.slice(1), { input: message }).status;
}

const browser = await launchChromium(env.WEBD_SPKI);

async function person(name) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
  // Every tab that is ever rendered visible in this page, also for a moment (a mutation
  // observer runs before the next paint): a tab the user may not use must never be in it.
  await context.addInitScript(() => {
    window.__tabsSeen = [];
    new MutationObserver(() => {
      for (const a of document.querySelectorAll("nav a[data-view]")) {
        if (a.getClientRects().length > 0 && window.__tabsSeen.indexOf(a.dataset.view) < 0) {
          window.__tabsSeen.push(a.dataset.view);
        }
      }
    }).observe(document, { subtree: true, childList: true, attributes: true });
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => check(false, name + ": no script error in the page: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") { console.log("      " + name + " console: " + m.text()); } });
  return page;
}

// The tabs shown now, by name (without the pending count), and every tab this page has ever shown.
async function tabs(page) {
  return (await page.locator("nav a[data-view]:visible").allTextContents())
    .map((t) => t.replace(/\s+\d+\s*$/, "").trim());
}
async function tabsSeen(page) { return page.evaluate(() => window.__tabsSeen.slice().sort()); }
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
// The buttons on the newest pending request's card.
async function cardButtons(page) {
  await page.goto(url + "#requests");
  const card = page.locator("#pending-list .card").first();
  await card.waitFor();
  return (await card.locator("button").allTextContents()).map((t) => t.trim());
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

try {
  // alice, from the keyboard only: sign in, open the form, request.
  const alice = await person("alice");
  await alice.goto(url);
  await alice.locator("#login-form").waitFor();
  await alice.screenshot({ path: shots + "/01-login.png" });
  check(await alice.evaluate(() => document.activeElement && document.activeElement.id === "login-user"),
        "the login form has the focus");
  await alice.keyboard.type("alice");
  await alice.keyboard.press("Tab");
  await alice.keyboard.type(passwords.alice);
  await alice.keyboard.press("Enter");
  await alice.locator("#bar").waitFor();
  check(await alice.textContent("#who-name") === "alice", "alice is signed in with the keyboard");
  check(same(await tabs(alice), ["Requests", "Grants", "Request elevation", "Keys & DNS"]),
        "alice (requester) has no Audit log tab: " + await tabs(alice));
  const aliceAsked = [];
  alice.on("request", (r) => aliceAsked.push(new URL(r.url()).pathname));
  await alice.goto(url + "#audit");
  await alice.locator("#view-requests").waitFor();
  check(await alice.locator("#view-audit").isHidden() && new URL(alice.url()).hash === "#requests" &&
        !aliceAsked.some((p) => p.startsWith("/api/v1/audit")),
        "alice's #audit opens the requests instead, and nothing asks for the audit log");

  await alice.goto(url + "#new");
  await alice.locator("#new-form").waitFor();
  const reason = "CHG-42 <script>window.__xss=1</script><img src=x onerror=window.__xss=2> newsletter";
  await alice.selectOption("#new-form [name=operation]", "sign");
  await alice.fill("#new-form [name=domain]", env.DOMAIN);
  await alice.fill("#new-form [name=selector]", "rsa");
  await alice.fill("#new-form [name=duration]", "10");
  await alice.selectOption("#new-form [name=unit]", "60");
  await alice.fill("#new-form [name=budget]", "5");
  await alice.fill("#new-form [name=reason]", reason);
  await alice.screenshot({ path: shots + "/02-request-form.png" });
  await alice.click("#new-form button[type=submit]");
  await alice.locator("#notice").waitFor();
  check(/pending approval/.test(await alice.textContent("#notice")), "alice's request is pending");
  const card = alice.locator("#pending-list .card").first();
  await card.waitFor();
  check(/someone else must approve/.test(await card.textContent()), "alice sees her own request without approve buttons");

  // bob approves with his TOTP code.
  const bob = await person("bob");
  await login(bob, "bob", true);
  check(same(await tabs(bob), ["Requests", "Grants", "Keys & DNS"]),
        "bob (approver) has no request form and no Audit log tab: " + await tabs(bob));
  const bobCard = bob.locator("#pending-list .card").first();
  await bobCard.waitFor();
  const text = await bobCard.locator(".reason").textContent();
  check(text === reason, "the reason with <script> and <img onerror> is shown as text");
  check(await bob.evaluate(() => window.__xss === undefined && !document.querySelector("#pending-list script, #pending-list img")),
        "nothing in the reason ran or became an element");
  check(/0 of 1 approval/.test(await bobCard.locator(".policy").textContent()), "the card shows the quorum progress");
  check(/alice/.test(await bobCard.locator(".requester").textContent()) &&
        /10 min/.test(await bobCard.locator(".duration").textContent()) &&
        /5 signatures/.test(await bobCard.locator(".budget").textContent()),
        "the card shows requester, duration and budget");
  await bob.screenshot({ path: shots + "/03-pending-requests.png" });
  await bobCard.getByRole("button", { name: "Approve…" }).click();
  await bob.locator("#decide[open]").waitFor();
  await bob.screenshot({ path: shots + "/04-approve-dialog.png" });
  await bob.fill("#decide-form [name=totp]", await totp("bob"));
  await bob.click("#decide-submit");
  await bob.locator("#decide").waitFor({ state: "hidden" });
  check(/grant \d+ active/.test(await bob.textContent("#notice")), "bob's approval makes the grant active");

  // The grant, its countdown and its uses.
  await bob.goto(url + "#grants");
  const row = bob.locator("#grants-table tbody tr").first();
  await row.waitFor();
  const first = await row.locator(".countdown").textContent();
  await bob.waitForTimeout(2100);
  const second = await row.locator(".countdown").textContent();
  check(/min/.test(first) && first !== second, "the countdown runs: " + first + " -> " + second);
  check(/5 of 5/.test(await row.textContent()), "5 of 5 uses left");
  check(relaySign() === 0, "a signature through signerd succeeds inside the grant");
  await bob.locator("#grants-table tbody tr", { hasText: "4 of 5" }).waitFor({ timeout: 12000 });
  check(true, "the console shows the spent use (4 of 5), live");
  await bob.screenshot({ path: shots + "/05-active-grants.png" });
  await alice.goto(url + "#grants");
  const aliceRow = alice.locator("#grants-table tbody tr").first();
  await aliceRow.waitFor();
  check(/alice/.test(await aliceRow.textContent()) && await aliceRow.locator("button").count() === 0,
        "alice sees her grant without a Revoke button (a revoke needs a TOTP code she has not)");

  // carol revokes (each approver spends at most three codes: signerd's window); the next
  // signature is refused.
  const carol = await person("carol");
  await login(carol, "carol", true);
  await carol.goto(url + "#grants");
  const carolRow = carol.locator("#grants-table tbody tr").first();
  await carolRow.waitFor();
  await carolRow.getByRole("button", { name: "Revoke…" }).click();
  await carol.locator("#decide[open]").waitFor();
  await carol.fill("#decide-form [name=reason]", "campaign sent");
  await carol.fill("#decide-form [name=totp]", await totp("carol"));
  await carol.click("#decide-submit");
  await carol.locator("#grants-empty").waitFor();
  check(/revoked/.test(await carol.textContent("#notice")), "the grant is revoked");
  check(relaySign() === 3, "after the revoke the next signature is refused (locked)");
  // The refused signature filed a pending request (the relay's): not alice's to decide.
  check(same(await cardButtons(alice), []),
        "alice sees the relay's pending request with no Approve, Deny or Cancel button");
  check(same(await cardButtons(carol), ["Approve…", "Deny…"]), "carol (approver) may approve or deny it");
  await bob.locator("#grants-empty").waitFor({ timeout: 12000 });
  check(/revoked/.test(await bob.textContent("#ended-table")), "bob's console shows the revoke live");

  // Keys with their DNS records.
  await bob.goto(url + "#keys");
  await bob.locator("#keys-list table").first().waitFor();
  const keys = await bob.textContent("#keys-list");
  check(keys.includes("rsa._domainkey." + env.DOMAIN) && keys.includes("v=DKIM1; k=rsa; p=") &&
        keys.includes("v=DMARC1"), "keys with DKIM and DMARC records");
  check(await bob.locator("#keys-list button.copy").count() >= 3, "copy buttons beside the records");
  await bob.screenshot({ path: shots + "/06-keys-dns.png", fullPage: true });

  // The audit log, as the auditor, with the chain's status.
  const erin = await person("erin");
  await login(erin, "erin", false);
  check(same(await tabs(erin), ["Requests", "Grants", "Keys & DNS", "Reports", "Audit log"]),
        "erin (auditor) has the Reports and Audit log tabs and no request form: " + await tabs(erin));
  check(same(await cardButtons(erin), []), "erin (auditor) may not decide the relay's request");
  await erin.goto(url + "#audit");
  await erin.locator("#verify-status.good").waitFor();
  check(/Chain intact/.test(await erin.textContent("#verify-status")), "the audit chain is shown as intact");
  const actions = await erin.textContent("#audit-table");
  check(/elevation\.approve/.test(actions) && /grant\.revoke/.test(actions) && /sign/.test(actions),
        "the audit page lists the approval, the signature and the revoke");
  await erin.screenshot({ path: shots + "/07-audit.png" });
  await bob.goto(url + "#audit");
  await bob.locator("#view-requests").waitFor();
  check(await bob.locator("#view-audit").isHidden() && !(await tabs(bob)).includes("Audit log"),
        "bob (approver) cannot open the audit log from its address either");

  // gwen (admin, no TOTP): the audit log, and a cancel button on another's request.
  const gwen = await person("gwen");
  await login(gwen, "gwen", false);
  check(same(await tabs(gwen), ["Requests", "Grants", "Keys & DNS", "Reports", "Audit log"]),
        "gwen (admin) has the Reports and Audit log tabs: " + await tabs(gwen));
  await gwen.goto(url + "#audit");
  await gwen.locator("#verify-status.good").waitFor();
  check(/grant\.revoke/.test(await gwen.textContent("#audit-table")), "gwen reads the audit log");
  check(same(await cardButtons(gwen), ["Cancel request"]),
        "gwen may cancel the relay's request, not approve it (no approver role, no TOTP)");
  await gwen.locator("#pending-list .card").first().getByRole("button", { name: "Cancel request" }).click();
  await gwen.locator("#pending-empty").waitFor();
  check(/cancelled/.test(await gwen.textContent("#notice")), "gwen's cancel works");
  await gwen.screenshot({ path: shots + "/09-admin-requests.png" });

  // No page ever showed a tab its user may not use, not even for a moment.
  const never = async (page, who, views) => {
    const seen = await tabsSeen(page);
    check(!views.some((v) => seen.includes(v)), who + " was never shown a tab they may not use: " + seen);
  };
  await never(alice, "alice", ["audit", "reports"]);
  await never(bob, "bob", ["audit", "new", "reports"]);
  await never(carol, "carol", ["audit", "new", "reports"]);
  await never(erin, "erin", ["new"]);
  await never(gwen, "gwen", ["new"]);
  // The next load asks signerd again (GET /api/v1/me, held back here for a second): nothing
  // forbidden shows while it asks, and then the tabs are the permissions it answered.
  await alice.route("**/api/v1/me", async (route) => {
    await new Promise((r) => setTimeout(r, 1000));
    await route.continue();
  });
  await alice.reload();
  await alice.locator("#bar").waitFor();
  await alice.unroute("**/api/v1/me");
  check(same(await tabs(alice), ["Requests", "Grants", "Request elevation", "Keys & DNS"]),
        "after a reload alice's tabs are her permissions again");
  await never(alice, "alice (reloaded)", ["audit", "reports"]);

  // Sign out.
  await alice.click("#logout");
  await alice.locator("#view-login").waitFor();
  check(/signed out/.test(await alice.textContent("#login-error")), "alice signs out");
  await alice.screenshot({ path: shots + "/08-signed-out.png" });
} catch (error) {
  check(false, "the scenario ran to the end: " + error.message.split("\n")[0]);
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      const n = browser.contexts().indexOf(context);
      await page.screenshot({ path: shots + "/failure-" + n + ".png" }).catch(() => {});
      console.log("      page " + n + " notice: " + await page.textContent("#notice").catch(() => "") +
                  " | dialog error: " + await page.textContent("#decide-error").catch(() => ""));
    }
  }
} finally {
  await browser.close();
}
finish();
