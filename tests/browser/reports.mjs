// The console's Reports view in Debian's Chromium, driven by playwright-core. Started by
// tests/integration/webd_daemon.py reports, which runs signerd, dkim-reportd and webd, loads a
// fixture (generated aggregate reports for the last 14 days, the parsedmarc and TLS samples,
// six signatures under a grant) and passes:
//   WEBD_URL, WEBD_SPKI (the server key's SHA-256, pinned), ARTIFACTS (screenshots), DOMAIN,
//   UPLOADS (files for the upload form, as JSON; the last one is not a report), PASSWORDS.
// gwen (admin) sees the tiles, the findings (one opened: its evidence), the three charts drawn
// by uPlot with their series and the grant band, the sources and the reports received, and
// uploads through the form; erin (auditor) reads but has no upload form; alice (requester) has
// no Reports tab and never asks for reports. No Content-Security-Policy violation anywhere.

import { check, finish, launchChromium } from "./checks.mjs";

const env = process.env;
const url = env.WEBD_URL;
const shots = env.ARTIFACTS;
const passwords = JSON.parse(env.PASSWORDS);
const uploads = JSON.parse(env.UPLOADS);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

const browser = await launchChromium(env.WEBD_SPKI);

async function person(name) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  // Every Content-Security-Policy violation in the page (the chart library included).
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sourceFile || ""));
    });
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => check(false, name + ": no script error in the page: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") { console.log("      " + name + " console: " + m.text()); } });
  return page;
}

async function login(page, user) {
  await page.goto(url);
  await page.locator("#login-form").waitFor();
  await page.fill("#login-form [name=user]", user);
  await page.fill("#login-form [name=password]", passwords[user]);
  await page.click("#login-form button[type=submit]");
  await page.locator("#bar").waitFor();
}
async function tabs(page) {
  return (await page.locator("nav a[data-view]:visible").allTextContents())
    .map((t) => t.replace(/\s+\d+\s*$/, "").trim());
}

// Pixels of a colour (within a small distance) on a chart's canvas: the series are drawn.
async function pixels(page, chartId, rgb) {
  return page.evaluate(([id, [r, g, b]]) => {
    const canvas = document.querySelector("#" + id + " canvas");
    if (!canvas) { return -1; }
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 24 && data[i + 3] > 200) { n++; }
    }
    return n;
  }, [chartId, rgb]);
}
async function legend(page, chartId) {
  return (await page.locator("#" + chartId + " .u-legend .u-series th").allTextContents()).map((t) => t.trim());
}

try {
  const gwen = await person("gwen");
  await login(gwen, "gwen");
  check((await tabs(gwen)).includes("Reports"), "gwen (admin) has the Reports tab: " + await tabs(gwen));
  await gwen.goto(url + "#reports");
  await gwen.locator("#reports-body:not([hidden])").waitFor();
  await gwen.locator("#chart-signing canvas").waitFor();
  check(await gwen.inputValue("#reports-domain") === env.DOMAIN,
        "the domain picker starts on a domain with reports: " + await gwen.inputValue("#reports-domain"));
  const domains = await gwen.locator("#reports-domain option").allTextContents();
  check(domains.includes(env.DOMAIN) && domains.includes("example.com"), "every domain with reports is offered: " + domains);

  // At a glance: the tiles.
  const tiles = await gwen.locator("#reports-tiles .tile").allTextContents();
  check(tiles.length === 6, "six summary tiles: " + tiles.join(" | "));
  check(tiles.some((t) => /^6\s*signatures issued/.test(t)), "the tiles count the six signatures: " + tiles.join(" | "));
  check(await gwen.locator("#reports-tiles .tile.bad, #reports-tiles .tile.warn").count() > 0,
        "what needs attention is coloured");
  await gwen.screenshot({ path: shots + "/01-reports-overview.png" });

  // The charts: uPlot on canvas, the right series, drawn.
  const series = async (id) => gwen.getAttribute("#" + id, "data-series");
  check(await series("chart-compliance") === "DMARC fail|DMARC pass|Pass rate",
        "compliance chart series: " + await series("chart-compliance"));
  check(await series("chart-disposition") === "Delivered (none)|Quarantined|Rejected",
        "disposition chart series: " + await series("chart-disposition"));
  check(await series("chart-signing") === "Signatures issued|Reported DKIM pass|Reported DKIM fail",
        "signing chart series: " + await series("chart-signing"));
  check(same(await legend(gwen, "chart-signing"), ["Day", "Signatures issued", "Reported DKIM pass", "Reported DKIM fail"]),
        "the signing chart's legend names its series: " + await legend(gwen, "chart-signing"));
  check(await gwen.getAttribute("#chart-signing", "data-points") === "30", "30 days on the time axis (the default range)");
  check(Number(await gwen.getAttribute("#chart-signing", "data-grants")) >= 1, "the grant is on the signing chart's time axis");
  check(await pixels(gwen, "chart-compliance", [0x2e, 0x7d, 0x4f]) > 200, "DMARC pass bars are drawn");
  check(await pixels(gwen, "chart-disposition", [0x8f, 0xa3, 0xb8]) > 200, "delivered bars are drawn");
  check(await pixels(gwen, "chart-signing", [0x1f, 0x5f, 0x8b]) > 20, "the signature bar is drawn");
  check(await pixels(gwen, "chart-signing", [0x2e, 0x7d, 0x4f]) > 100, "the reported DKIM pass line is drawn");

  // The findings, each with its evidence.
  const findings = gwen.locator("#findings-list details.finding");
  check(await findings.count() > 0, "findings are listed: " + await findings.count());
  const kinds = await findings.evaluateAll((nodes) => nodes.map((n) => n.dataset.kind));
  check(kinds.includes("signed_outside_grant") || kinds.includes("replay_suspected"),
        "the reports against the signing record give a replay or outside-grant finding: " + [...new Set(kinds)]);
  // One line per kind: the findings of a kind fold into a group that says how many.
  const top = gwen.locator("#findings-list > details");
  const severities = await top.evaluateAll((nodes) => nodes.map((n) => n.classList[1]));
  const order = { critical: 0, warning: 1, info: 2 };
  check(severities.every((s, i) => i === 0 || order[severities[i - 1]] <= order[s]), "the most severe come first: " + severities);
  const topKinds = await top.evaluateAll((nodes) => nodes.map((n) => n.dataset.kind));
  check(topKinds.length === new Set(topKinds).size && topKinds.length < await findings.count(),
        "one line per kind of finding (" + topKinds.length + " lines for " + await findings.count() + " findings)");
  const group = gwen.locator("#findings-list > details.finding-group").first();
  check(/\d+ findings/.test(await group.locator("> summary").textContent()), "a group says how many findings it holds");
  await group.locator("> summary").click();
  const first = group.locator("details.finding").first();
  check(await first.locator("dl.evidence").isHidden(), "the evidence is folded until asked for");
  await first.locator("> summary").click();
  check(await first.locator("dl.evidence").isVisible() && (await first.locator("dl.evidence dt").count()) > 0,
        "the first finding opens to its evidence: " + (await first.locator("dl.evidence").textContent()).slice(0, 120));

  // Sources and the reports received.
  const sources = gwen.locator("#sources-table tbody tr");
  check(await sources.count() > 5, "the sources table: " + await sources.count() + " sources");
  check(await gwen.locator("#sources-table tbody tr:visible").count() === 12, "the first 12 sources show, the rest on request");
  const firstSource = await sources.first().locator("td").allTextContents();
  check(/^(192\.0\.2|203\.0\.113)\./.test(firstSource[0]) && /%$/.test(firstSource[3]),
        "a source with its address, volume and DMARC pass share: " + firstSource.join(" | "));
  check(await gwen.locator("#sources-table tr.flag").count() > 0, "sources that fail DMARC stand out");
  check(await gwen.locator("#received-table tbody tr").count() > 5, "the reports received are listed");
  const vouching = await gwen.locator("#received-table tbody").textContent();
  check(vouching.includes("DKIM: google.com") && vouching.includes("unauthenticated"),
        "each report received says who vouched for it (DKIM: google.com, or unauthenticated)");
  await gwen.screenshot({ path: shots + "/reports-full-page.png", fullPage: true });
  await first.scrollIntoViewIfNeeded();
  await gwen.screenshot({ path: shots + "/02-reports-finding-evidence.png" });

  // A selector of its own on the signing chart.
  await gwen.selectOption("#reports-selector", "rsa");
  check(await gwen.getAttribute("#chart-signing", "data-series") !== null && await gwen.locator("#chart-signing canvas").count() === 1,
        "the signing chart redraws for one selector");
  await gwen.locator("#chart-signing").scrollIntoViewIfNeeded();
  await gwen.screenshot({ path: shots + "/03-reports-signing-rsa.png" });

  // Another domain, from the picker: the parsedmarc samples are years old, so this range is empty.
  const rendered = async () => Number(await gwen.getAttribute("#view-reports", "data-rendered"));
  let renders = await rendered();
  await gwen.selectOption("#reports-domain", "example.com");
  await gwen.waitForFunction((n) => Number(document.querySelector("#view-reports").dataset.rendered) > n, renders);
  check(await gwen.inputValue("#reports-domain") === "example.com" && await gwen.locator("#sources-empty").isVisible(),
        "example.com, picked: no sources in the last 30 days (its samples are years old)");

  // An upload through the form: two reports and a file that is none.
  renders = await rendered();
  await gwen.selectOption("#reports-domain", env.DOMAIN);
  await gwen.waitForFunction((n) => Number(document.querySelector("#view-reports").dataset.rendered) > n, renders);
  await gwen.locator("#reports-upload").scrollIntoViewIfNeeded();
  await gwen.setInputFiles("#upload-form [name=files]", uploads);
  await gwen.click("#upload-form button[type=submit]");
  const results = gwen.locator("#upload-results > li");
  await gwen.waitForFunction((n) => document.querySelectorAll("#upload-results > li").length === n &&
                             ![...document.querySelectorAll("#upload-results > li")].some((li) => /uploading/.test(li.textContent)),
                             uploads.length, { timeout: 60000 });
  const texts = await results.allTextContents();
  check(/1 report read/.test(texts[0]) && /1 report read/.test(texts[1]), "the two reports are read: " + texts.slice(0, 2));
  check(/could not be read/.test(texts[2]) && await results.nth(2).getAttribute("class") === "bad",
        "the broken file is said to be unreadable, with why: " + texts[2]);
  await gwen.screenshot({ path: shots + "/04-reports-upload.png" });
  check(same(await gwen.evaluate(() => window.__csp), []), "no Content-Security-Policy violation: " +
        await gwen.evaluate(() => window.__csp.join("; ")));

  // erin (auditor) reads, without the upload form.
  const erin = await person("erin");
  await login(erin, "erin");
  check((await tabs(erin)).includes("Reports"), "erin (auditor) has the Reports tab");
  await erin.goto(url + "#reports");
  await erin.locator("#chart-compliance canvas").waitFor();
  check(await erin.locator("#reports-upload").isHidden(), "erin has no upload form (admins upload)");
  check(same(await erin.evaluate(() => window.__csp), []), "no CSP violation for erin either");

  // alice (requester): no tab, and #reports asks for nothing.
  const alice = await person("alice");
  await login(alice, "alice");
  check(!(await tabs(alice)).includes("Reports"), "alice (requester) has no Reports tab: " + await tabs(alice));
  const asked = [];
  alice.on("request", (r) => asked.push(new URL(r.url()).pathname));
  await alice.goto(url + "#reports");
  await alice.locator("#view-requests").waitFor();
  check(await alice.locator("#view-reports").isHidden() && !asked.some((p) => p.startsWith("/api/v1/reports")),
        "alice's #reports opens the requests instead, and nothing asks for reports");
} catch (error) {
  check(false, "the scenario ran to the end: " + error.message.split("\n")[0]);
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      const n = browser.contexts().indexOf(context);
      await page.screenshot({ path: shots + "/failure-" + n + ".png", fullPage: true }).catch(() => {});
      console.log("      page " + n + " error: " + await page.textContent("#reports-error").catch(() => ""));
    }
  }
} finally {
  await browser.close();
}
finish();
