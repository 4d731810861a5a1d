// The approval console. Plain JavaScript, no build step, no inline script (the
// Content-Security-Policy allows only this file and the vendored chart library, uPlot, which
// draws on canvas and styles through the DOM, never with inline style attributes). Every piece
// of text that comes from the API (names, reasons, scopes, records, report fields) is put into
// the page with textContent, never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    me: null,
    csrf: null,
    skew: 0,            // server clock minus ours, from now_ms in answers
    view: "requests",
    elevations: [],
    grants: [],
    auditAfter: null,   // the page shown starts after this sequence number
    auditTop: 0,
    passkeys: [],       // the signed-in user's passkeys, as GET /api/v1/passkeys listed them
    pin: null,          // PIN custody, as GET /api/v1/pin said it last (null: not shown)
    poll: null,
    tick: null,
  };

  // --- the API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, error) {
      super((error && error.message) || ("HTTP " + status));
      this.status = status;
      this.code = error && error.code;
      this.field = error && error.field;
      this.rule = error && error.rule;
    }
  }

  // What the console itself refuses to do (a challenge or a key offer that does not check out, a
  // share that is not one): its message is shown as it is.
  class Refused extends Error {}

  // `body`: an object sent as JSON, or a Blob (a file) sent as its bytes.
  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    const raw = body instanceof Blob;
    if (body !== undefined) {
      headers["Content-Type"] = raw ? "application/octet-stream" : "application/json";
    }
    if (method !== "GET" && state.csrf) {
      headers["X-CSRF-Token"] = state.csrf;
    }
    const response = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : (raw ? body : JSON.stringify(body)),
    });
    let doc = null;
    try { doc = await response.json(); } catch (e) { doc = null; }
    if (doc && typeof doc.now_ms === "number") {
      state.skew = doc.now_ms - Date.now();
    }
    if (!response.ok) {
      // A 401 is also a second factor refused (a wrong TOTP code, a passkey's assertion signerd
      // did not accept): the session has ended only if GET /api/v1/me says so too.
      if (response.status === 401 && path !== "/api/v1/session" && state.me && !(await sessionAlive(path))) {
        showLogin("Your session has ended. Please sign in again.");
      }
      throw new ApiError(response.status, doc && doc.error);
    }
    return doc;
  }

  async function sessionAlive(path) {
    if (path === "/api/v1/me") { return false; }
    try {
      const r = await fetch("/api/v1/me", { headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" });
      return r.status !== 401;
    } catch (e) {
      return true;  // unreachable is not signed out
    }
  }

  // --- small helpers ----------------------------------------------------------------------

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }
  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }
  function serverNow() { return Date.now() + state.skew; }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
    const m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    if (d > 0) { return d + " d " + h + " h"; }
    if (h > 0) { return h + " h " + String(m).padStart(2, "0") + " min"; }
    if (m > 0) { return m + " min" + (s ? " " + String(s).padStart(2, "0") + " s" : ""); }
    return s + " s";
  }
  function utc(ms) { return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, ""); }

  let noticeTimer = null;
  function notify(text, kind) {
    const n = $("notice");
    n.textContent = text;
    n.className = "notice " + (kind || "ok");
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
  }
  function explain(error) {
    if (error instanceof Refused) { return error.message; }
    if (error && error.name && typeof DOMException !== "undefined" && error instanceof DOMException) {
      return passkeyTrouble(error);
    }
    if (!(error instanceof ApiError)) { return "The appliance cannot be reached."; }
    const rules = {
      self_approval: "Nobody may approve their own request.",
      quorum_met: "This request already has all the approvals it needs.",
      duplicate_approver: "You have already approved this request.",
      role: "Your role does not allow this.",
      csrf: "The page is out of date; reload it.",
      factor: "Policy does not accept this second factor here.",
    };
    return (error.rule && rules[error.rule] ? rules[error.rule] + " " : "") + error.message;
  }
  function showError(node, error) {
    node.textContent = explain(error);
    node.hidden = false;
  }

  // --- passkeys (WebAuthn) ------------------------------------------------------------------
  // The API carries every byte field as base64url without padding. The browser's answers go
  // to webd unchanged (rawId and the response's fields); dkim-signerd verifies them.

  function b64u(buffer) {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function fromB64u(text) {
    const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }
  function passkeysSupported() {
    return !!(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);
  }
  // An assertion as the API takes it: the PublicKeyCredential's rawId and response, unchanged.
  function assertionJson(credential) {
    const r = credential.response;
    const a = {
      credential_id: b64u(credential.rawId),
      client_data_json: b64u(r.clientDataJSON),
      authenticator_data: b64u(r.authenticatorData),
      signature: b64u(r.signature),
    };
    if (r.userHandle && r.userHandle.byteLength) { a.user_handle = b64u(r.userHandle); }
    return a;
  }
  function passkeyTrouble(error) {
    const texts = {
      NotAllowedError: "The passkey was not used: the request was cancelled or timed out, or the " +
        "authenticator could not verify you (a PIN, fingerprint or face is needed).",
      InvalidStateError: "This authenticator already holds one of your passkeys.",
      SecurityError: "Passkeys work only at the console's https:// address with its name, not at an IP address.",
      NotSupportedError: "This authenticator supports none of the signer's algorithms.",
      AbortError: "The passkey request was cancelled.",
    };
    return texts[error.name] || ("The passkey could not be used: " + error.message);
  }
  // Shows what a challenge commits to while the authenticator is asked.
  function showStatement(node, statement) {
    clear(node);
    node.append(el("span", "Your passkey signs: ", "muted"), el("span", statement, "statement-text"));
    node.hidden = false;
  }
  // Before the authenticator is asked: the challenge must commit to the statement (its last 32
  // bytes are the statement's SHA-256) and the statement must be the decision the user chose
  // (action, request id, reason, who decides). Something between this page and signerd that
  // rewrote the request or the answer is caught here, before anything is signed. (A webd that
  // serves this script itself is not: SECURITY.md, design limits.)
  async function checkStatement(asked, c) {
    if (!c.statement) { return; }
    const bytes = fromB64u(c.challenge);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(c.statement)));
    const tail = new Uint8Array(bytes).slice(16);
    const line = (name) => {
      const m = c.statement.split("\n").find((l) => l.startsWith(name + "="));
      return m === undefined ? undefined : m.slice(name.length + 1);
    };
    const actions = { remove: "passkey.remove", register_confirm: "passkey.register" };
    const problems = [];
    if (tail.length !== 32 || digest.some((b, i) => b !== tail[i])) { problems.push("the challenge is not the statement's"); }
    if (line("action") !== (actions[asked.purpose] || asked.purpose)) { problems.push("another action"); }
    if (asked.purpose !== "revoke" && asked.id !== undefined && line("id") !== String(asked.id)) { problems.push("another request"); }
    if (asked.reason !== undefined && line("reason") !== JSON.stringify(asked.reason)) { problems.push("another reason"); }
    if (state.me && line("actor") !== state.me.user) { problems.push("another user"); }
    if (problems.length) {
      throw new Refused("The challenge the server sent is for another decision (" + problems.join(", ") + "): nothing was signed.");
    }
  }
  // Asks signerd (through webd) for a challenge bound to one decision (`challenge`: purpose and
  // the decision's fields), shows the statement it commits to in `statementNode`, and returns
  // the authenticator's assertion over it. Asked right before the authenticator: the challenge
  // is single-use and lives five minutes.
  async function passkeyAssertion(challenge, statementNode) {
    const c = await api("POST", "/api/v1/passkeys/challenge", challenge);
    await checkStatement(challenge, c);
    if (statementNode && c.statement) { showStatement(statementNode, c.statement); }
    const credential = await navigator.credentials.get({ publicKey: {
      challenge: fromB64u(c.challenge),
      rpId: c.rp_id,
      userVerification: c.user_verification,
      timeout: c.timeout_ms,
      allowCredentials: (c.credentials || []).map((id) => ({ type: "public-key", id: fromB64u(id) })),
    } });
    return assertionJson(credential);
  }
  // Which second factors the user can give for an operation's decisions: policy's (GET
  // /api/v1/me factors; TOTP alone from a webd that does not say) and what the user has.
  function acceptedFactors(operation) {
    const f = state.me && state.me.factors && state.me.factors[operation];
    return Array.isArray(f) ? f : ["totp"];
  }
  function factorsFor(operation) {
    const accepted = acceptedFactors(operation);
    return {
      totp: accepted.indexOf("totp") >= 0 && !!state.me.totp,
      passkey: accepted.indexOf("webauthn") >= 0 && state.me.passkeys > 0 && passkeysSupported(),
    };
  }
  // Why neither factor can be used for an operation (shown instead of the buttons).
  function noFactorText(operation) {
    const accepted = acceptedFactors(operation);
    if (accepted.indexOf("webauthn") >= 0 && accepted.indexOf("totp") < 0) {
      return "Policy accepts only a passkey for " + operation + " decisions" +
        (state.me.passkeys > 0 ? ", and this browser cannot use one here." : ": add one under Passkeys.");
    }
    if (accepted.indexOf("totp") >= 0 && accepted.indexOf("webauthn") < 0) {
      return "Policy accepts only an authenticator (TOTP) code for " + operation + " decisions, and you have none.";
    }
    return "You have no second factor that policy accepts for " + operation + " decisions: add a passkey under Passkeys.";
  }

  // --- what the signed-in user may do -----------------------------------------------------
  // signerd says it (permissions in /api/v1/me and the login answer, from the roles, the
  // policy's approvers per operation and the TOTP enrolment) and checks every operation
  // again: hiding what a user may not use spares them dead ends, it protects nothing.

  function may(what) { return !!state.me && !!state.me.permissions && state.me.permissions[what] === true; }
  function mayDecide(operation) {
    return !!state.me && !!state.me.permissions && state.me.permissions.approve.indexOf(operation) >= 0;
  }
  function mayRevoke(grant, elevation) {
    return may("revoke_any") || mayDecide(elevation.operation) ||
      (may("revoke_own") && state.me.user === grant.holder);
  }
  // The views the user may open; the others' tabs stay hidden (index.html hides them until
  // the permissions are known, so none shows for a moment before).
  const viewNeeds = { new: "request", audit: "audit", reports: "reports" };
  function mayView(view) {
    // An admin who may break glass but not request opens the form for break-glass only.
    if (view === "new") { return may("request") || may("break_glass"); }
    return !viewNeeds[view] || may(viewNeeds[view]);
  }
  function applyPermissions() {
    for (const a of document.querySelectorAll("nav a[data-view]")) {
      a.parentElement.hidden = !mayView(a.dataset.view);
    }
  }
  // After a refusal for the role: ask again (roles and policy may have changed since the page
  // was loaded), hide what is gone and leave a view the user may no longer open.
  async function relearnPermissions() {
    const doc = await api("GET", "/api/v1/me");
    state.me = doc.me;
    $("who-roles").textContent = doc.me.roles.join(", ");
    applyPermissions();
    if (!mayView(state.view)) { location.hash = "#requests"; }
  }

  // --- views ------------------------------------------------------------------------------

  const views = ["requests", "grants", "new", "keys", "reports", "audit", "passkeys"];

  function show(view) {
    if (views.indexOf(view) < 0 || !mayView(view)) {
      view = "requests";
      if (location.hash) { history.replaceState(null, "", "#requests"); }
    }
    state.view = view;
    $("view-login").hidden = true;
    for (const v of views) { $("view-" + v).hidden = v !== view; }
    for (const a of document.querySelectorAll("nav a[data-view]")) {
      if (a.dataset.view === view) { a.setAttribute("aria-current", "page"); } else { a.removeAttribute("aria-current"); }
    }
    if (view === "passkeys") { $("passkeys-link").setAttribute("aria-current", "page"); } else { $("passkeys-link").removeAttribute("aria-current"); }
    if (view === "new") { prepareRequestForm(); }
    refresh();
  }

  function showLogin(message) {
    stopPolling();
    state.me = null;
    state.csrf = null;
    $("bar").hidden = true;
    for (const v of views) { $("view-" + v).hidden = true; }
    $("view-login").hidden = false;
    const err = $("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    $("login-user").focus();
  }

  function signedIn(me) {
    state.me = me;
    state.csrf = me.csrf_token;
    $("who-name").textContent = me.user;
    $("who-roles").textContent = me.roles.join(", ");
    applyPermissions();
    $("bar").hidden = false;
    show((location.hash || "#requests").slice(1));
    startPolling();
  }

  function startPolling() {
    stopPolling();
    // Live updates: the lists every 5 s, the countdowns every second.
    state.poll = setInterval(() => { if (!document.hidden) { refresh(true); } }, 5000);
    state.tick = setInterval(renderCountdowns, 1000);
  }
  function stopPolling() {
    clearInterval(state.poll);
    clearInterval(state.tick);
  }

  async function refresh(background) {
    try {
      if (state.view === "requests" || state.view === "grants") {
        const [e, g] = await Promise.all([api("GET", "/api/v1/elevations?state=all"),
                                          api("GET", "/api/v1/grants"), renderPin()]);
        state.elevations = e.elevations;
        state.grants = g.grants;
        renderRequests();
        renderGrants();
      } else if (state.view === "keys" && !background) {
        await renderKeys();
      } else if (state.view === "audit" && !background) {
        await renderAudit();
      } else if (state.view === "reports" && !background) {
        await renderReports();
      } else if (state.view === "passkeys" && !background) {
        await renderPasskeys();
      }
    } catch (error) {
      if (!background && !(error instanceof ApiError && error.status === 401)) {
        notify(explain(error), "bad");
      }
    }
  }

  // --- requests ---------------------------------------------------------------------------

  function renderRequests() {
    // Renewals first, the one whose grant ends soonest at the top: when that grant ends before
    // someone approves, mail for its scope waits.
    const pending = state.elevations.filter((e) => e.state === "pending").sort((a, b) => {
      const ra = a.renews ? a.renews_expires_ms : Infinity, rb = b.renews ? b.renews_expires_ms : Infinity;
      return ra === rb ? 0 : (ra < rb ? -1 : 1);
    });
    $("pending-count").textContent = pending.length ? String(pending.length) : "";
    const list = $("pending-list");
    clear(list);
    $("pending-empty").hidden = pending.length > 0;
    for (const e of pending) { list.appendChild(requestCard(e)); }
    const recent = state.elevations.filter((e) => e.state !== "pending").slice(0, 15);
    const body = $("recent-table").tBodies[0];
    clear(body);
    for (const e of recent) {
      const tr = el("tr");
      tr.appendChild(el("td", e.id));
      tr.appendChild(el("td", e.scope));
      tr.appendChild(el("td", e.requester));
      const st = el("td");
      st.appendChild(el("span", e.grant && e.state === "approved" ? "grant " + e.grant.state : e.state,
                        "badge " + (e.grant ? e.grant.state : e.state)));
      tr.appendChild(st);
      tr.appendChild(el("td", e.decided_by));
      tr.appendChild(el("td", e.decision_reason || e.reason));
      body.appendChild(tr);
    }
  }

  function requestCard(e) {
    const card = $("request-card").content.firstElementChild.cloneNode(true);
    card.dataset.id = String(e.id);
    card.querySelector(".scope").textContent = "#" + e.id + " " + e.scope;
    card.querySelector(".state").textContent = e.state;
    card.querySelector(".requester").textContent = e.requester;
    card.querySelector(".duration").textContent = duration(e.duration_seconds);
    card.querySelector(".budget").textContent = e.budget === null ? "no limit" : e.budget + " signatures";
    card.querySelector(".reason").textContent = e.reason;
    card.querySelector(".policy").textContent = e.approvals.length + " of " + e.quorum +
      " approval" + (e.quorum === 1 ? "" : "s") + (e.approvals.length ? " (" + e.approvals.join(", ") + ")" : "");
    const until = card.querySelector(".pending-until");
    until.dataset.until = String(e.pending_until_ms);
    until.textContent = duration((e.pending_until_ms - serverNow()) / 1000);
    card.querySelector(".filed").hidden = !e.filed_by_signer;
    card.querySelector(".glass").hidden = !e.break_glass;
    const renewal = card.querySelector(".renewal");
    renewal.hidden = !e.renews;
    if (e.renews) {
      card.classList.add("renewal-card");
      card.querySelector(".scope").textContent = "#" + e.id + " Renewal of grant " + e.renews + ": " + e.scope;
      renewal.querySelector(".renews").textContent = String(e.renews);
      const left = renewal.querySelector(".renews-left");
      left.dataset.until = String(e.renews_expires_ms);
      left.textContent = duration((e.renews_expires_ms - serverNow()) / 1000);
    }
    const actions = card.querySelector(".actions");
    const mine = state.me && e.requester === state.me.user;
    if (mayDecide(e.operation) && !mine) {
      // One approval per person; a denial is still open to someone who approved.
      if (e.approvals.indexOf(state.me.user) < 0) {
        const approve = el("button", "Approve…", "primary");
        approve.type = "button";
        approve.addEventListener("click", () => openDecision("approve", e));
        actions.appendChild(approve);
      }
      const deny = el("button", "Deny…", "danger");
      deny.type = "button";
      deny.addEventListener("click", () => openDecision("deny", e));
      actions.appendChild(deny);
    }
    if (mine || may("cancel_any")) {
      if (mine) {
        actions.appendChild(el("span", "Your request: someone else must approve it.", "muted"));
      }
      const cancel = el("button", mine ? "Withdraw" : "Cancel request");
      cancel.type = "button";
      cancel.addEventListener("click", async () => {
        try {
          await api("POST", "/api/v1/elevations/" + e.id + "/cancel", {});
          notify("Request " + e.id + (mine ? " withdrawn." : " cancelled."));
          refresh();
        } catch (error) { notify(explain(error), "bad"); }
      });
      actions.appendChild(cancel);
    }
    return card;
  }

  // --- the decision dialog ----------------------------------------------------------------

  let deciding = null;

  function openDecision(action, e, grant) {
    deciding = { action, elevation: e };
    const dialog = $("decide");
    const titles = { approve: "Approve request #", deny: "Deny request #", revoke: "Revoke the grant of request #" };
    $("decide-title").textContent = titles[action] + e.id;
    const facts = $("decide-facts");
    clear(facts);
    const rows = [["Scope", e.scope], ["Requested by", e.requester], ["Reason", e.reason]];
    if (e.renews && action !== "revoke") {
      const left = (e.renews_expires_ms - serverNow()) / 1000;
      rows.push(["Renews", "grant " + e.renews + (left > 0 ? ", which ends in " + duration(left) +
        ": approved, the new grant starts then" : ", which has ended: approved, the new grant starts now")]);
    }
    if (action === "revoke" && grant) {
      rows.push(["Ends in", duration((grant.expires_ms - serverNow()) / 1000)]);
    } else {
      rows.push(["For", duration(e.duration_seconds)]);
      rows.push(["Budget", e.budget === null ? "no limit" : e.budget + " signatures"]);
    }
    for (const [k, v] of rows) { facts.append(el("dt", k), el("dd", v)); }
    const form = $("decide-form");
    form.reset();
    const needsReason = action !== "approve";
    $("decide-reason-label").hidden = !needsReason;
    form.elements.reason.required = needsReason;
    $("decide-error").hidden = true;
    $("decide-statement").hidden = true;
    // PIN custody "approver": the approval that activates a grant while the token is logged out
    // brings the token PIN, sealed in this browser to the signer.
    showPinField(action === "approve" && pinNeededFor(e));
    // The second factors policy accepts for this operation and the user has: a TOTP code, a
    // passkey (an assertion over a challenge bound to this decision), or both.
    const can = factorsFor(e.operation);
    const submit = $("decide-submit");
    submit.textContent = { approve: "Approve", deny: "Deny", revoke: "Revoke now" }[action];
    submit.className = action === "approve" ? "primary" : "danger";
    submit.hidden = !can.totp;
    $("decide-totp-label").hidden = !can.totp;
    form.elements.totp.required = can.totp;
    const withPasskey = $("decide-passkey");
    withPasskey.textContent = { approve: "Approve", deny: "Deny", revoke: "Revoke" }[action] + " with passkey";
    withPasskey.className = submit.className;
    withPasskey.hidden = !can.passkey;
    const none = $("decide-nofactor");
    none.hidden = can.totp || can.passkey;
    none.textContent = none.hidden ? "" : noFactorText(e.operation);
    dialog.showModal();
    (needsReason ? form.elements.reason : (deciding.needsPin ? form.elements.pin :
      (can.totp ? form.elements.totp : withPasskey))).focus();
  }

  function showPinField(needed) {
    deciding.needsPin = needed;
    $("decide-pin").hidden = !needed;
    $("decide-form").elements.pin.required = needed;
  }

  // After a refusal: signerd says this approval needs the PIN (custody changed, the token logged
  // out meanwhile, another approval came first): the field is shown and custody read again.
  function pinRefused(error) {
    if (error instanceof ApiError && deciding && deciding.action === "approve" && !deciding.needsPin &&
        /needs the token PIN/.test(error.message)) {
      showPinField(true);
      renderPin().catch(() => {});
    }
  }

  // The PIN typed in the dialog, sealed to the signer for this request; the field is emptied
  // whatever happens.
  async function sealedPin(elevation) {
    const input = $("decide-form").elements.pin;
    let pin = input.value;
    input.value = "";
    if (!pin) { throw new Refused("Type the token's PIN: this approval activates the grant."); }
    try {
      return await sealToSigner("approve", String(elevation.id), pin);
    } finally {
      pin = null;
    }
  }

  async function submitDecision(event) {
    event.preventDefault();
    const form = $("decide-form");
    if (!form.reportValidity()) { return; }
    const { action, elevation } = deciding;
    if ($("decide-submit").hidden) { return; }  // no TOTP here: the passkey button decides
    const body = { totp: form.elements.totp.value.trim() };
    if (action !== "approve") { body.reason = form.elements.reason.value.trim(); }
    const submit = $("decide-submit");
    submit.disabled = true;
    try {
      if (action === "approve" && deciding.needsPin) { body.pin_envelope = await sealedPin(elevation); }
      const answer = await api("POST", "/api/v1/elevations/" + elevation.id + "/" + action, body);
      $("decide").close();
      notify(answer.message || ("Request " + elevation.id + ": done."));
      refresh();
    } catch (error) {
      showError($("decide-error"), error);
      pinRefused(error);
      if (error instanceof ApiError && error.rule === "role") {
        relearnPermissions().then(refresh).catch(() => {});
      }
    } finally {
      submit.disabled = false;
      form.elements.totp.value = "";
      form.elements.pin.value = "";
    }
  }

  // The same decision with a passkey: the challenge commits to this request, this decision
  // and its reason; the assertion goes to the same endpoint instead of a TOTP code.
  async function decideWithPasskey() {
    const form = $("decide-form");
    const { action, elevation } = deciding;
    const needsReason = action !== "approve";
    if (needsReason && !form.elements.reason.reportValidity()) { return; }
    if (deciding.needsPin && !form.elements.pin.reportValidity()) { return; }
    const reason = form.elements.reason.value.trim();
    const challenge = { purpose: action, id: elevation.id };
    const body = {};
    if (needsReason) { challenge.reason = reason; body.reason = reason; }
    const buttons = [$("decide-passkey"), $("decide-submit")];
    for (const b of buttons) { b.disabled = true; }
    $("decide-error").hidden = true;
    try {
      // The PIN is sealed first: the signer's identity is checked before the authenticator is asked.
      if (action === "approve" && deciding.needsPin) { body.pin_envelope = await sealedPin(elevation); }
      body.passkey = await passkeyAssertion(challenge, $("decide-statement"));
      const answer = await api("POST", "/api/v1/elevations/" + elevation.id + "/" + action, body);
      $("decide").close();
      notify(answer.message || ("Request " + elevation.id + ": done."));
      refresh();
    } catch (error) {
      showError($("decide-error"), error);
      pinRefused(error);
      if (error instanceof ApiError && error.rule === "role") {
        relearnPermissions().then(refresh).catch(() => {});
      }
    } finally {
      for (const b of buttons) { b.disabled = false; }
      $("decide-statement").hidden = true;
      form.elements.pin.value = "";
    }
  }


  // --- PIN custody (issue 23) -------------------------------------------------------------
  // Who holds the token's user PIN (GET /api/v1/pin), and the two secrets a person brings: the
  // PIN with an approval (custody "approver") and a custodian's share (custody "shares"). Neither
  // crosses webd in clear: each is sealed here to a short-lived X25519 key the signer offers
  // (POST /api/v1/pin/key) once the offer's statement is rebuilt, its Ed25519 signature verified
  // with the signer's identity key, and that key's fingerprint compared with the one this browser
  // pinned the first time (trust on first use). X25519, HKDF-SHA256 and AES-256-GCM with the
  // offer's associated data, as dkim/custody/envelope.hpp says; webd forwards the envelope and
  // cannot open it. (A webd that serves this script itself is not stopped: SECURITY.md, design
  // limits.)

  const PINNED_IDENTITY = "dkim-appliance.signerd-identity";
  const HKDF_INFO = "dkim-appliance pin envelope v1";
  const utf8 = (text) => new TextEncoder().encode(text);

  function pinnedIdentity() {
    try { return localStorage.getItem(PINNED_IDENTITY); } catch (e) { return null; }
  }
  function pinIdentity(fingerprint) {
    try { localStorage.setItem(PINNED_IDENTITY, fingerprint); } catch (e) { /* not kept: asked again next time */ }
  }
  function identityChangedText(pinned, offered) {
    return "The signer's identity is " + offered + ", but this browser pinned " + pinned + ": it sends it no " +
      "PIN and no share. Compare both with the fingerprint `dkim-appliance pin status` prints on the appliance itself: if " +
      "the appliance's identity key really changed, trust the new identity under Token PIN; if not, someone " +
      "between this browser and the signer is posing as it.";
  }

  // "SHA256:" and base64 without padding of SHA-256(identity), as custody::fingerprint.
  async function fingerprintOf(identity) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", identity));
    let text = "";
    for (const b of digest) { text += String.fromCharCode(b); }
    return "SHA256:" + btoa(text).replace(/=+$/, "");
  }
  // custody::key_offer_statement and custody::envelope_associated_data.
  function keyOfferStatement(purpose, subject, user, keyId, publicKey, expiresMs) {
    return "dkim-appliance pin envelope key v1\npurpose=" + purpose + "\nsubject=" + subject + "\nuser=" + user +
      "\nkey=" + keyId + "\npublic=" + b64u(publicKey) + "\nexpires=" + expiresMs + "\n";
  }
  function envelopeAssociatedData(purpose, subject, keyId) {
    return "dkim-appliance pin envelope v1\npurpose=" + purpose + "\nsubject=" + subject + "\nkey=" + keyId + "\n";
  }

  // A key offer for (purpose, subject), checked as the CLI checks it (appliance/cli/pin_envelope.cpp)
  // and against the identity this browser pinned.
  async function checkedKeyOffer(purpose, subject) {
    const o = await api("POST", "/api/v1/pin/key", { purpose, subject });
    const refuse = (why) => {
      throw new Refused("The signer's key offer is refused (" + why + "): nothing was sent.");
    };
    let identity, publicKey, signature;
    try {
      identity = new Uint8Array(fromB64u(o.identity));
      publicKey = new Uint8Array(fromB64u(o.public_key));
      signature = new Uint8Array(fromB64u(o.signature));
    } catch (e) {
      refuse("it is malformed");
    }
    if (identity.length !== 32 || publicKey.length !== 32 || signature.length !== 64) { refuse("it is malformed"); }
    const statement = keyOfferStatement(purpose, subject, state.me.user, o.key_id, publicKey, o.expires_ms);
    if (o.statement !== statement) { refuse("its statement is not about this key, purpose, subject and user"); }
    if (!(await webCrypto(async () => {
      const verifier = await crypto.subtle.importKey("raw", identity, { name: "Ed25519" }, false, ["verify"]);
      return crypto.subtle.verify({ name: "Ed25519" }, verifier, signature, utf8(statement));
    }))) {
      refuse("it is not signed by the identity it names");
    }
    const fingerprint = await fingerprintOf(identity);
    if (o.fingerprint !== fingerprint) { refuse("it names another fingerprint than its identity's"); }
    const pinned = pinnedIdentity();
    if (pinned && pinned !== fingerprint) { throw new Refused(identityChangedText(pinned, fingerprint)); }
    if (o.expires_ms <= serverNow()) { refuse("it has expired"); }
    const associatedData = envelopeAssociatedData(purpose, subject, o.key_id);
    if (o.associated_data !== associatedData) { refuse("its associated data is for something else"); }
    if (!pinned) { pinIdentity(fingerprint); }
    return { keyId: o.key_id, publicKey, associatedData, fingerprint };
  }

  // WebCrypto's own failures (a browser without X25519 or Ed25519) said as such.
  async function webCrypto(run) {
    try {
      return await run();
    } catch (error) {
      throw new Refused("This browser cannot encrypt for the signer (WebCrypto X25519, Ed25519, HKDF, " +
                        "AES-GCM): " + (error && error.message) + ". Nothing was sent.");
    }
  }

  // X25519 with a fresh ephemeral key, HKDF-SHA256 (salt: ephemeral public || recipient public),
  // AES-256-GCM with a random 12-byte iv: "v1.<ephemeral>.<iv>.<ciphertext and tag>".
  async function seal(offer, plaintext) {
    const ephemeral = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
    const ephemeralPublic = new Uint8Array(await crypto.subtle.exportKey("raw", ephemeral.publicKey));
    const recipient = await crypto.subtle.importKey("raw", offer.publicKey, { name: "X25519" }, false, []);
    const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: recipient },
                                                                  ephemeral.privateKey, 256));
    const salt = new Uint8Array(64);
    salt.set(ephemeralPublic, 0);
    salt.set(offer.publicKey, 32);
    const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
    shared.fill(0);
    const key = await crypto.subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt, info: utf8(HKDF_INFO) }, ikm,
                                              { name: "AES-GCM", length: 256 }, false, ["encrypt"]);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const box = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8(offer.associatedData),
                                              tagLength: 128 }, key, plaintext);
    return "v1." + b64u(ephemeralPublic) + "." + b64u(iv) + "." + b64u(box);
  }

  // `text` (a PIN, a share) sealed to the signer for (purpose, subject): {key_id, envelope}. Its
  // bytes are zeroed once sealed; the caller drops the string.
  async function sealToSigner(purpose, subject, text) {
    const offer = await checkedKeyOffer(purpose, subject);
    const bytes = utf8(text);
    try {
      return { key_id: offer.keyId, envelope: await webCrypto(() => seal(offer, bytes)) };
    } finally {
      bytes.fill(0);
    }
  }

  // The approvals that bring the PIN: custody "approver", the token logged out, and the approval
  // that completes the quorum (it activates the grant, and the token logs in with it).
  function pinNeededFor(e) {
    return !!state.pin && state.pin.mode === "approver" && !state.pin.logged_in &&
      e.approvals.length + 1 >= e.quorum;
  }

  const custodyTexts = {
    sealed: "Sealed: a systemd credential encrypted with the appliance's host key; the signer reads it at each login.",
    approver: "Approver: the approval that activates a grant brings the PIN, encrypted in the approver's browser for the signer.",
    shares: "Shares: custodians each hold a share of the PIN, and a quorum of them unlocks the token until the signer stops.",
    file: "File: a PIN file on the appliance (development only).",
  };

  // The panel on the requests view. Never throws: a user signerd does not show custody to, or a
  // webd without it, sees no panel.
  async function renderPin() {
    let doc;
    try {
      doc = await api("GET", "/api/v1/pin");
    } catch (error) {
      if (error instanceof ApiError && error.status !== 401 && error.status !== 503) {
        state.pin = null;
        $("pin-panel").hidden = true;
      }
      return;
    }
    const pin = doc.pin;
    state.pin = pin;
    const panel = $("pin-panel");
    panel.hidden = false;
    panel.classList.toggle("ready", pin.ready);
    panel.classList.toggle("needs", !pin.ready);
    panel.dataset.mode = pin.mode;
    $("pin-mode").textContent = custodyTexts[pin.mode] || pin.mode;
    $("pin-state").textContent = pin.logged_in ? "logged in (a grant is active)" : "logged out";
    $("pin-missing").textContent = pin.ready || !pin.missing ? "nothing: the token logs in when a grant is approved" : pin.missing;
    $("pin-fingerprint").textContent = pin.identity_fingerprint || "(none)";
    const pinned = pinnedIdentity();
    const changed = !!pinned && !!pin.identity_fingerprint && pinned !== pin.identity_fingerprint;
    $("pin-pinned").textContent = changed ? "" : pinned ? "pinned in this browser"
      : "this browser pins it when you first send a PIN or a share";
    $("pin-identity-changed").hidden = !changed;
    $("pin-identity-text").textContent = changed ? identityChangedText(pinned, pin.identity_fingerprint) : "";
    const shares = pin.mode === "shares";
    $("pin-shares").hidden = !shares;
    if (!shares) { return; }
    const windowNote = $("pin-window");
    clear(windowNote);
    if (!pin.set_id) {
      windowNote.textContent = "The PIN has not been split yet: run dkim-appliance pin split on the appliance.";
    } else if (pin.window_ends_ms) {
      const left = el("span", "", "countdown");
      left.dataset.until = String(pin.window_ends_ms);
      left.textContent = duration((pin.window_ends_ms - serverNow()) / 1000);
      windowNote.append("Share set " + pin.set_id + ", " + pin.threshold + " of " + pin.custodians.length +
        " needed. The unlock window ends in ", left, "; the shares submitted in it are wiped then.");
    } else {
      windowNote.textContent = "Share set " + pin.set_id + ", " + pin.threshold + " of " + pin.custodians.length +
        " needed. " + (pin.ready ? "The PIN is in the signer's memory." : "The first share opens the unlock window.");
    }
    const body = $("pin-custodians").tBodies[0];
    clear(body);
    let mine = null;
    for (const c of pin.custodians) {
      const tr = el("tr");
      tr.dataset.custodian = c.name;
      tr.appendChild(el("td", c.name + (state.me && c.name === state.me.user ? " (you)" : "")));
      tr.appendChild(el("td", "#" + c.index));
      tr.appendChild(el("td", c.submitted ? "submitted" : "not yet", c.submitted ? "ok" : "muted"));
      body.appendChild(tr);
      if (state.me && c.name === state.me.user) { mine = c; }
    }
    $("pin-share-form").hidden = !pin.set_id || pin.ready || !mine || mine.submitted;
  }

  async function submitShare(event) {
    event.preventDefault();
    const f = event.target;
    const button = f.querySelector("button[type=submit]");
    let text = f.elements.share.value.trim();
    f.elements.share.value = "";
    button.disabled = true;
    $("pin-share-error").hidden = true;
    try {
      const pin = state.pin;
      const set = text.toLowerCase().replace(/\s+/g, "").split("-");
      if (set[0] !== "dkimpin1" || set.length < 4) {
        throw new Refused("That is not a share: a share starts with dkimpin1-. Paste it again.");
      }
      if (!pin || set[1] !== pin.set_id) {
        throw new Refused("That share is of another split (" + set[1].slice(0, 8) + "), not of the current one (" +
                        (pin && pin.set_id) + ").");
      }
      const sealed = await sealToSigner("share", pin.set_id, text);
      text = "";
      const answer = await api("POST", "/api/v1/pin/shares", { share: sealed });
      notify(answer.message || "Your share was accepted.");
      await renderPin();
    } catch (error) {
      showError($("pin-share-error"), error);
    } finally {
      text = "";
      button.disabled = false;
    }
  }

  // After the operator compared the fingerprint with `dkim-appliance pin status`.
  function trustNewIdentity() {
    if (state.pin && state.pin.identity_fingerprint) {
      pinIdentity(state.pin.identity_fingerprint);
      notify("This browser now trusts the signer identity " + state.pin.identity_fingerprint + ".");
      renderPin().catch(() => {});
    }
  }

  // --- grants -----------------------------------------------------------------------------

  function renderGrants() {
    // Active grants, and the scheduled ones (approved renewals) that start as another ends.
    const active = state.grants.filter((g) => g.state === "active" || g.state === "scheduled");
    const body = $("grants-table").tBodies[0];
    clear(body);
    $("grants-empty").hidden = active.length > 0;
    $("grants-table").hidden = active.length === 0;
    for (const g of active) {
      const tr = el("tr");
      tr.dataset.grant = String(g.id);
      tr.appendChild(el("td", g.id + (g.break_glass ? " (break-glass)" : "")));
      tr.appendChild(el("td", g.scope));
      tr.appendChild(el("td", g.holder));
      if (g.state === "scheduled") {
        const starts = el("td", "starts in ", "scheduled");
        const left = el("span", "", "countdown");
        left.dataset.until = String(g.starts_ms);
        starts.append(left, " (renews grant " + g.renews + "), for " + duration((g.expires_ms - g.starts_ms) / 1000));
        tr.appendChild(starts);
      } else {
        const ends = el("td", "", "countdown");
        ends.dataset.until = String(g.expires_ms);
        tr.appendChild(ends);
      }
      tr.appendChild(el("td", g.uses_left === null ? "no limit (" + g.uses + " used)" : g.uses_left + " of " + g.budget));
      const act = el("td");
      const elevation = state.elevations.find((e) => e.id === g.request_id);
      if (elevation && mayRevoke(g, elevation)) {
        const b = el("button", "Revoke…", "danger");
        b.type = "button";
        b.addEventListener("click", () => openDecision("revoke", elevation, g));
        act.appendChild(b);
      }
      tr.appendChild(act);
      body.appendChild(tr);
    }
    const ended = state.grants.filter((g) => g.state !== "active" && g.state !== "scheduled").slice(0, 15);
    const endedBody = $("ended-table").tBodies[0];
    clear(endedBody);
    for (const g of ended) {
      const tr = el("tr");
      tr.appendChild(el("td", g.id));
      tr.appendChild(el("td", g.scope));
      tr.appendChild(el("td", g.holder));
      const st = el("td");
      st.appendChild(el("span", g.state, "badge " + g.state));
      tr.appendChild(st);
      tr.appendChild(el("td", g.uses));
      tr.appendChild(el("td", g.state === "revoked" ? g.revoked_by + ": " + g.revoke_reason : ""));
      endedBody.appendChild(tr);
    }
    renderCountdowns();
  }

  function renderCountdowns() {
    const now = serverNow();
    let expired = false;
    for (const node of document.querySelectorAll("[data-until]")) {
      const left = (Number(node.dataset.until) - now) / 1000;
      node.textContent = left > 0 ? duration(left) : "ended";
      node.classList.toggle("soon", left > 0 && left < 300);
      if (left <= 0 && node.classList.contains("countdown")) { expired = true; }
    }
    if (expired && !document.hidden) { refresh(true); }
  }

  // --- a new request ----------------------------------------------------------------------

  // The form's request: the fields a break-glass challenge commits to as well.
  function requestFields(f) {
    const body = {
      operation: f.elements.operation.value,
      domain: f.elements.domain.value.trim(),
      duration_seconds: Number(f.elements.duration.value) * Number(f.elements.unit.value),
      reason: f.elements.reason.value.trim(),
    };
    if (f.elements.selector.value.trim()) { body.selector = f.elements.selector.value.trim(); }
    if (f.elements.client.value.trim()) { body.client = f.elements.client.value.trim(); }
    if (f.elements.budget.value) { body.budget = Number(f.elements.budget.value); }
    return body;
  }

  // Break glass (admins): the checkbox, and the second factors policy accepts for the chosen
  // operation. Someone who may break glass but not request can only break glass.
  function prepareRequestForm() {
    const f = $("new-form");
    const glass = may("break_glass");
    $("new-glass").hidden = !glass;
    const box = f.elements.break_glass;
    if (!glass) { box.checked = false; }
    if (glass && !may("request")) { box.checked = true; }
    box.disabled = glass && !may("request");
    const on = glass && box.checked;
    const can = on ? factorsFor(f.elements.operation.value) : { totp: false, passkey: false };
    $("new-glass-totp-label").hidden = !can.totp;
    f.elements.totp.required = can.totp;
    $("new-glass-passkey").hidden = !can.passkey;
    $("new-submit").hidden = on && !can.totp;
    $("new-submit").textContent = on ? "Break glass" : "Send request";
    $("new-submit").className = on ? "danger" : "primary";
    const none = $("new-glass-nofactor");
    none.hidden = !on || can.totp || can.passkey;
    none.textContent = none.hidden ? "" : noFactorText(f.elements.operation.value);
  }

  function showRequestError(f, error) {
    showError($("new-error"), error);
    if (error.field && f.elements[error.field === "duration_seconds" ? "duration" : error.field]) {
      f.elements[error.field === "duration_seconds" ? "duration" : error.field].focus();
    }
  }

  async function submitRequest(event) {
    event.preventDefault();
    const f = event.target;
    const body = requestFields(f);
    const glass = !$("new-glass").hidden && f.elements.break_glass.checked;
    if (glass) {
      if ($("new-submit").hidden) { return; }  // no TOTP here: the passkey button breaks glass
      body.break_glass = true;
      body.totp = f.elements.totp.value.trim();
    }
    $("new-error").hidden = true;
    try {
      const answer = await api("POST", "/api/v1/elevations", body);
      f.reset();
      notify(answer.message);
      location.hash = "#requests";
    } catch (error) {
      showRequestError(f, error);
    } finally {
      f.elements.totp.value = "";
    }
  }

  // Break glass with a passkey: the challenge commits to the form's request as it is now.
  async function breakGlassWithPasskey() {
    const f = $("new-form");
    const totpRequired = f.elements.totp.required;
    f.elements.totp.required = false;  // the passkey stands in for the code
    const valid = f.reportValidity();
    f.elements.totp.required = totpRequired;
    if (!valid) { return; }
    const fields = requestFields(f);
    const button = $("new-glass-passkey");
    button.disabled = true;
    $("new-error").hidden = true;
    try {
      const passkey = await passkeyAssertion(Object.assign({ purpose: "break_glass" }, fields),
                                             $("new-glass-statement"));
      const answer = await api("POST", "/api/v1/elevations", Object.assign(fields, { break_glass: true, passkey }));
      f.reset();
      notify(answer.message);
      location.hash = "#requests";
    } catch (error) {
      showRequestError(f, error);
    } finally {
      button.disabled = false;
      $("new-glass-statement").hidden = true;
    }
  }

  // --- keys and DNS -----------------------------------------------------------------------

  function copyButton(text, what) {
    const b = el("button", "Copy", "copy");
    b.type = "button";
    b.setAttribute("aria-label", "Copy " + what);
    b.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = "Copied";
      } catch (e) {
        b.textContent = "Select and copy";
      }
      setTimeout(() => { b.textContent = "Copy"; }, 2000);
    });
    return b;
  }

  // What each kind of record is, as the Kind column names it.
  const RECORD_KINDS = {
    dkim: "DKIM",
    spf: "SPF",
    dmarc: "DMARC",
    tlsrpt: "TLS-RPT",
    "dmarc-report": "DMARC report authorization",
  };

  // The nodes that share the grant state (each with its own token and selectors), and each
  // node's keys; hidden on a single appliance.
  async function renderCluster() {
    const panel = $("cluster-panel");
    const doc = await api("GET", "/api/v1/cluster");
    if (!doc.cluster) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    const up = doc.nodes.filter((n) => !n.gone).length;
    $("cluster-summary").textContent = doc.nodes.length + " nodes, " + up + " up; this answer from " +
      doc.node + (doc.fenced ? " (cut off from the shared store: signing nothing)" : "") +
      "; a node logs out " + Math.round(doc.lease_ms / 1000) + " s after it loses the database.";
    const nodes = $("cluster-nodes");
    clear(nodes);
    const table = el("table", undefined, "table nodes");
    const head = el("tr");
    for (const h of ["Node", "Token", "Last seen", "Grants", "Signing keys", "Version"]) {
      head.appendChild(el("th", h));
    }
    table.createTHead().appendChild(head);
    const body = table.createTBody();
    for (const n of doc.nodes) {
      const tr = el("tr", undefined, n.gone ? "gone" : undefined);
      tr.appendChild(el("td", n.name + (n.self ? " (this one)" : "") + (n.gone ? " — gone" : "")));
      tr.appendChild(el("td", n.token));
      const ago = Math.max(0, Math.round((doc.now_ms - n.last_seen_ms) / 1000));
      tr.appendChild(el("td", ago + " s ago"));
      tr.appendChild(el("td", String(n.grants)));
      const keysCell = el("td", n.selectors.join(" ") || "—", "mono");
      if (!n.records_verified) {
        keysCell.appendChild(el("div", "records not shown: the node's registry row is not signed with the audit key this node pins for it", "small muted"));
      }
      tr.appendChild(keysCell);
      tr.appendChild(el("td", n.version));
      body.appendChild(tr);
    }
    nodes.appendChild(table);
    const keys = $("cluster-keys");
    clear(keys);
    for (const name of [...new Set(doc.keys.map((k) => k.node))]) {
      const section = el("section", undefined, "node-keys");
      section.appendChild(el("h3", "Keys of " + name));
      const list = el("table", undefined, "table");
      const row = el("tr");
      for (const h of ["Domain", "Selector", "Algorithm", "State", ""]) { row.appendChild(el("th", h)); }
      list.createTHead().appendChild(row);
      const rows = list.createTBody();
      for (const k of doc.keys.filter((x) => x.node === name)) {
        const tr = el("tr");
        for (const v of [k.domain, k.selector, k.algorithm, k.state]) { tr.appendChild(el("td", v)); }
        const copy = el("td");
        if (k.dns_record) {
          copy.appendChild(copyButton(k.dns_record, "DKIM record " + k.selector + "._domainkey." + k.domain));
        }
        tr.appendChild(copy);
        rows.appendChild(tr);
      }
      section.appendChild(list);
      keys.appendChild(section);
    }
  }

  async function renderKeys() {
    await renderCluster();
    const doc = await api("GET", "/api/v1/keys");
    const list = $("keys-list");
    clear(list);
    if (!doc.keys.length) {
      list.appendChild(el("p", "The token holds no DKIM key yet.", "empty"));
      return;
    }
    const domains = [...new Set(doc.keys.map((k) => k.domain))];
    for (const domain of domains) {
      const section = el("section", undefined, "domain");
      section.appendChild(el("h2", domain));
      const records = await api("GET", "/api/v1/domains/" + encodeURIComponent(domain) + "/dns");
      const table = el("table", undefined, "table records");
      const head = el("tr");
      for (const h of ["Kind", "Name", "Value", ""]) { head.appendChild(el("th", h)); }
      table.createTHead().appendChild(head);
      const body = table.createTBody();
      for (const r of records.records) {
        const tr = el("tr");
        const key = doc.keys.find((k) => k.dns_name === r.name);
        tr.appendChild(el("td", (RECORD_KINDS[r.kind] || r.kind.toUpperCase()) +
          (key ? " " + key.algorithm + " (" + key.state + ")" : "")));
        tr.appendChild(el("td", r.name, "mono"));
        const value = el("td");
        value.appendChild(el("code", r.value || "—", "record"));
        if (r.note) { value.appendChild(el("div", r.note, "muted small")); }
        tr.appendChild(value);
        const copy = el("td");
        if (r.value) { copy.appendChild(copyButton(r.value, r.kind + " record " + r.name)); }
        tr.appendChild(copy);
        body.appendChild(tr);
      }
      section.appendChild(table);
      list.appendChild(section);
    }
  }

  // --- reports ----------------------------------------------------------------------------
  // dkim-reportd's dashboard and findings for one domain and a range of UTC days: summary tiles
  // and the findings first (what needs attention), then the charts (uPlot, on canvas), the
  // sources and the reports received; admins upload report files below.

  const DAY = 86400;
  const reports = { domain: null, from: null, until: null, dashboard: null, charts: {}, renders: 0 };
  const COLORS = {
    pass: "#2e7d4f", fail: "#c0392b", none: "#8fa3b8", quarantine: "#d68910", reject: "#a3261b",
    signed: "#1f5f8b", grant: "rgba(31, 95, 139, 0.12)", grantEdge: "rgba(31, 95, 139, 0.55)",
  };
  const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
  const FINDING_KINDS = {
    replay_suspected: "Suspected replay",
    signed_outside_grant: "DKIM passes outside any grant",
    unknown_source: "Unknown source",
    rotation_retired_seen: "Retired selector still seen",
    rotation_new_failing: "New selector failing",
    enforcement_readiness: "Enforcement readiness",
    tls_failures: "TLS failures",
    signing_record_unavailable: "Signing record unavailable",
  };

  function dayText(seconds) { return new Date(seconds * 1000).toISOString().slice(0, 10); }
  function dayStart(text) {
    const t = Date.parse(text + "T00:00:00Z");
    return isNaN(t) ? null : t / 1000;
  }
  function count(n) { return Number(n).toLocaleString("en-US"); }
  function percent(part, whole) {
    return whole > 0 ? (Math.round(part * 1000 / whole) / 10).toFixed(1) + " %" : "—";
  }
  function sum(rows, field) { return rows.reduce((s, r) => s + (Number(r[field]) || 0), 0); }
  function query(extra) {
    let q = "from=" + reports.from + "&until=" + reports.until;
    if (reports.domain) { q += "&domain=" + encodeURIComponent(reports.domain); }
    return q + (extra || "");
  }

  async function renderReports() {
    const form = $("reports-filter");
    $("reports-error").hidden = true;
    $("reports-upload").hidden = !may("reports_upload");
    if (reports.from === null) {
      // The last 30 days, today included.
      const today = Math.floor(Date.now() / 1000 / DAY) * DAY;
      reports.from = today - 29 * DAY;
      reports.until = today + DAY;
      form.elements.from.value = dayText(reports.from);
      form.elements.until.value = dayText(today);
    }
    try {
      let dash = await api("GET", "/api/v1/reports/dashboard?" + query());
      if ((!reports.domain || dash.domains.indexOf(reports.domain) < 0) && dash.domains.length) {
        // First, the domain with the most mail reported in the range (every domain's days are
        // in the answer when none is named).
        const volume = new Map();
        for (const d of dash.daily) { volume.set(d.domain, (volume.get(d.domain) || 0) + d.messages); }
        reports.domain = dash.domains.slice().sort((a, b) => (volume.get(b) || 0) - (volume.get(a) || 0))[0];
        dash = await api("GET", "/api/v1/reports/dashboard?" + query());
      }
      const select = $("reports-domain");
      clear(select);
      for (const d of dash.domains) {
        const o = el("option", d);
        o.value = d;
        o.selected = d === reports.domain;
        select.appendChild(o);
      }
      $("reports-none").hidden = dash.domains.length > 0;
      if (!dash.domains.length) {
        $("reports-body").hidden = true;
        return;
      }
      const [found, list] = await Promise.all([
        api("GET", "/api/v1/reports/findings?" + query()),
        api("GET", "/api/v1/reports/list?" + query("&limit=50")),
      ]);
      reports.dashboard = dash;
      $("reports-body").hidden = false;  // the charts measure their width: shown first
      renderTiles(dash, found);
      renderFindings(found);
      fillSelectors(dash);
      drawComplianceCharts(dash);
      drawSigningChart();
      renderSources(dash);
      renderReceived(list);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) { return; }
      $("reports-body").hidden = true;
      showError($("reports-error"), error);
      if (error instanceof ApiError && error.status === 403) {
        relearnPermissions().catch(() => {});
      }
    } finally {
      reports.renders++;
      $("view-reports").dataset.rendered = String(reports.renders);
    }
  }

  function submitReportsFilter(event) {
    event.preventDefault();
    const f = event.target;
    const from = dayStart(f.elements.from.value);
    const last = dayStart(f.elements.until.value);
    if (from === null || last === null || last < from) {
      showError($("reports-error"), new Refused("The range must start on or before its last day."));
      return;
    }
    if (last - from >= 400 * DAY) {
      showError($("reports-error"), new Refused("Choose at most 400 days."));
      return;
    }
    reports.domain = f.elements.domain.value || null;
    reports.from = from;
    reports.until = last + DAY;
    renderReports();
  }

  function tile(value, label, kind) {
    const t = el("div", undefined, "tile" + (kind ? " " + kind : ""));
    t.appendChild(el("div", value, "tile-value"));
    t.appendChild(el("div", label, "tile-label"));
    return t;
  }

  function renderTiles(dash, found) {
    const tiles = $("reports-tiles");
    clear(tiles);
    const messages = sum(dash.daily, "messages");
    const pass = sum(dash.daily, "dmarc_pass");
    const share = messages ? pass / messages : 1;
    tiles.appendChild(tile(count(messages), "messages reported"));
    tiles.appendChild(tile(percent(pass, messages), "DMARC pass",
                           messages === 0 ? "" : share >= 0.98 ? "good" : share >= 0.9 ? "warn" : "bad"));
    const quarantined = sum(dash.daily, "quarantined"), rejected = sum(dash.daily, "rejected");
    tiles.appendChild(tile(percent(quarantined + rejected, messages),
                           "quarantined (" + count(quarantined) + ") or rejected (" + count(rejected) + ")",
                           quarantined + rejected > 0 ? "warn" : ""));
    tiles.appendChild(tile(dash.signing_available ? count(sum(dash.signing, "signed")) : "unknown",
                           "signatures issued", dash.signing_available ? "" : "warn"));
    tiles.appendChild(tile(count(sum(dash.signing, "reported_pass")), "reported DKIM passes"));
    const critical = found.findings.filter((f) => f.severity === "critical").length;
    const warnings = found.findings.filter((f) => f.severity === "warning").length;
    const others = found.findings.length - critical;
    tiles.appendChild(tile(critical ? critical + " critical" : others ? String(others) : "none",
                           critical ? "findings, and " + warnings + " warning" + (warnings === 1 ? "" : "s") + " below"
                                    : "findings" + (warnings ? ", " + warnings + " warning" + (warnings === 1 ? "" : "s") : ""),
                           critical ? "bad" : warnings ? "warn" : "good"));
    const missing = $("signing-missing");
    missing.hidden = dash.signing_available;
    missing.textContent = dash.signing_available ? "" :
      "The signer's record could not be read" + (dash.signing_error ? " (" + dash.signing_error + ")" : "") +
      ": signatures are not shown, and replays cannot be ruled out.";
  }

  // --- findings, each with its evidence (expandable) ---

  function evidenceValue(key, value) {
    if (typeof value === "number" && value > 946684800 && /(start|end|hour|since|time|from|until)$/.test(key)) {
      return utc(value * 1000) + " UTC";
    }
    if (typeof value === "number" && /lifetime$/.test(key)) { return duration(value); }
    if (typeof value === "number" && !Number.isInteger(value)) {
      return /share$/.test(key) ? percent(value, 1) : value.toFixed(2);
    }
    if (value === null) { return "—"; }
    if (typeof value === "boolean") { return value ? "yes" : "no"; }
    return String(value);
  }

  function evidenceNode(key, value) {
    if (Array.isArray(value) && value.length && value.every((v) => v && typeof v === "object" && !Array.isArray(v))) {
      const columns = [...new Set(value.flatMap((v) => Object.keys(v)))];
      const table = el("table", undefined, "table evidence");
      const head = el("tr");
      for (const c of columns) { head.appendChild(el("th", c.replace(/_/g, " "))); }
      table.createTHead().appendChild(head);
      const body = table.createTBody();
      for (const row of value) {
        const tr = el("tr");
        for (const c of columns) { tr.appendChild(el("td", evidenceValue(c, row[c] === undefined ? null : row[c]))); }
        body.appendChild(tr);
      }
      return table;
    }
    if (Array.isArray(value)) { return el("span", value.map((v) => evidenceValue(key, v)).join(", ")); }
    if (value && typeof value === "object") { return evidenceList(value); }
    return el("span", evidenceValue(key, value));
  }

  function evidenceList(evidence) {
    const dl = el("dl", undefined, "facts evidence");
    for (const [k, v] of Object.entries(evidence)) {
      dl.appendChild(el("dt", k.replace(/_/g, " ")));
      const dd = el("dd");
      dd.appendChild(evidenceNode(k, v));
      dl.appendChild(dd);
    }
    return dl;
  }

  // Findings of one kind together (a key used outside its grants shows on every day it was):
  // the most severe kinds first, each folded to one line that says how many, for what and when.
  function renderFindings(found) {
    const list = $("findings-list");
    clear(list);
    const sorted = found.findings.slice().sort((a, b) =>
      (SEVERITY_ORDER[a.severity] ?? 3) - (SEVERITY_ORDER[b.severity] ?? 3) || b.from - a.from);
    $("findings-empty").hidden = sorted.length > 0;
    const groups = new Map();
    for (const f of sorted) {
      if (!groups.has(f.kind)) { groups.set(f.kind, []); }
      groups.get(f.kind).push(f);
    }
    for (const [kind, members] of groups) {
      if (members.length === 1) {
        list.appendChild(findingNode(members[0]));
        continue;
      }
      const g = el("details", undefined, "finding-group " + members[0].severity);
      g.dataset.kind = kind;
      const s = el("summary");
      s.appendChild(el("span", members[0].severity, "badge " + members[0].severity));
      s.appendChild(el("span", FINDING_KINDS[kind] || kind.replace(/_/g, " "), "finding-kind"));
      const selectors = [...new Set(members.map((f) => f.selector).filter(Boolean))].sort();
      s.appendChild(el("span", members.length + " findings" +
        (selectors.length ? " for s=" + selectors.join(", s=") : "") + "; the latest: " + members[0].summary,
        "finding-summary"));
      const first = Math.min(...members.map((f) => f.from)), last = Math.max(...members.map((f) => f.until));
      s.appendChild(el("span", [members[0].domain, first ? dayText(first) + " – " + dayText(last - 1) : ""]
        .filter(Boolean).join(" · "), "muted small finding-where"));
      g.appendChild(s);
      const inner = el("div", undefined, "finding-members");
      for (const f of members) { inner.appendChild(findingNode(f)); }
      g.appendChild(inner);
      list.appendChild(g);
    }
  }

  function findingNode(f) {
    const d = el("details", undefined, "finding " + f.severity);
    d.dataset.kind = f.kind;
    const s = el("summary");
    s.appendChild(el("span", f.severity, "badge " + f.severity));
    s.appendChild(el("span", FINDING_KINDS[f.kind] || f.kind.replace(/_/g, " "), "finding-kind"));
    s.appendChild(el("span", f.summary, "finding-summary"));
    const where = [f.domain, f.selector ? "s=" + f.selector : "",
                   f.from ? dayText(f.from) + (f.until - f.from > DAY ? " – " + dayText(f.until - 1) : "") : ""];
    s.appendChild(el("span", where.filter(Boolean).join(" · "), "muted small finding-where"));
    d.appendChild(s);
    const keys = Object.keys(f.evidence || {});
    d.appendChild(keys.length ? evidenceList(f.evidence) : el("p", "No further evidence.", "muted small"));
    return d;
  }

  // --- charts (uPlot) ---

  // Each UTC day of the range, as the x value of its middle (bars sit on their day; grant
  // intervals, in seconds, fall where they happened on the same axis).
  function rangeDays() {
    const days = [];
    for (let t = reports.from; t < reports.until; t += DAY) { days.push(t); }
    return days;
  }
  function perDay(rows, fields, filter) {
    const index = new Map(rangeDays().map((t, i) => [dayText(t), i]));
    const out = fields.map(() => new Array(index.size).fill(0));
    for (const r of rows) {
      const i = index.get(r.day);
      if (i === undefined || (filter && !filter(r))) { continue; }
      fields.forEach((f, k) => { out[k][i] += Number(r[f]) || 0; });
    }
    return out;
  }

  const resizer = typeof ResizeObserver === "function" ? new ResizeObserver((entries) => {
    for (const e of entries) {
      const chart = reports.charts[e.target.id];
      if (chart && e.contentRect.width > 0) { chart.setSize({ width: Math.floor(e.contentRect.width), height: chart.height }); }
    }
  }) : null;

  function chart(id, series, data, extra) {
    const node = $(id);
    if (reports.charts[id]) { reports.charts[id].destroy(); }
    clear(node);
    const opts = Object.assign({
      width: Math.max(280, Math.floor(node.clientWidth)),
      height: 240,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      cursor: { sync: { key: "reports" }, drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => [reports.from, reports.until] } },
      axes: [{ space: 60 }, { size: 56, values: (u, vals) => vals.map((v) => count(v)) }],
      legend: { live: true },
      series: [{ label: "Day", value: (u, v) => v === null ? "—" : dayText(v) }].concat(series),
    }, extra || {});
    reports.charts[id] = new uPlot(opts, [rangeDays().map((t) => t + DAY / 2)].concat(data), node);
    node.dataset.series = series.map((s) => s.label).join("|");
    node.dataset.points = String(rangeDays().length);
    if (resizer) { resizer.observe(node); }
  }

  function bars(size) { return uPlot.paths.bars({ size: [size || 0.7, 48], align: 0 }); }

  // Stacked bars: uPlot draws each series over the ones before it, so the stack is given top
  // first, each series the sum of itself and those below; the legend shows each one's own count.
  function stacked(parts) {
    const sums = [];
    let below = parts[parts.length - 1].values.map(() => 0);
    for (let k = parts.length - 1; k >= 0; k--) {
      below = below.map((b, i) => b + parts[k].values[i]);
      sums[k] = below;
    }
    return {
      series: parts.map((p) => ({
        label: p.label, stroke: p.color, fill: p.color, width: 0, paths: bars(),
        points: { show: false },
        value: (u, v, si, i) => i === null || i === undefined ? "—" : count(p.values[i]),
      })),
      data: sums,
    };
  }

  function drawComplianceCharts(dash) {
    const [messages, pass, quarantined, rejected] =
      perDay(dash.daily, ["messages", "dmarc_pass", "quarantined", "rejected"]);
    const fail = messages.map((m, i) => Math.max(0, m - pass[i]));
    const c = stacked([{ label: "DMARC fail", color: COLORS.fail, values: fail },
                       { label: "DMARC pass", color: COLORS.pass, values: pass }]);
    const rate = messages.map((m, i) => m ? Math.round(pass[i] * 1000 / m) / 10 : null);
    c.series.push({ label: "Pass rate", scale: "%", stroke: "#1d2733", width: 2, dash: [4, 3],
                    value: (u, v) => v === null ? "—" : v.toFixed(1) + " %" });
    c.data.push(rate);
    chart("chart-compliance", c.series, c.data, {
      scales: { x: { time: true, range: () => [reports.from, reports.until] }, "%": { range: [0, 100] } },
      axes: [{ space: 60 }, { size: 56, values: (u, vals) => vals.map((v) => count(v)) },
             { scale: "%", side: 1, size: 44, grid: { show: false }, values: (u, vals) => vals.map((v) => v + "%") }],
    });
    const delivered = messages.map((m, i) => Math.max(0, m - quarantined[i] - rejected[i]));
    const d = stacked([{ label: "Delivered (none)", color: COLORS.none, values: delivered },
                       { label: "Quarantined", color: COLORS.quarantine, values: quarantined },
                       { label: "Rejected", color: COLORS.reject, values: rejected }]);
    chart("chart-disposition", d.series, d.data);
  }

  function fillSelectors(dash) {
    const select = $("reports-selector");
    const current = select.value;
    clear(select);
    const all = el("option", "all selectors");
    all.value = "";
    select.appendChild(all);
    for (const s of [...new Set(dash.signing.map((r) => r.selector))].sort()) {
      const o = el("option", s);
      o.value = s;
      o.selected = s === current;
      select.appendChild(o);
    }
  }

  function drawSigningChart() {
    const dash = reports.dashboard;
    if (!dash) { return; }
    const selector = $("reports-selector").value;
    const [signed, passed, failed] = perDay(dash.signing, ["signed", "reported_pass", "reported_fail"],
                                            (r) => !selector || r.selector === selector);
    const grants = dash.grants.filter((g) => !selector || g.selector === "*" || g.selector === selector);
    const series = [
      { label: "Signatures issued", stroke: COLORS.signed, fill: COLORS.signed, width: 0, paths: bars(0.55),
        points: { show: false }, value: (u, v) => v === null ? "—" : count(v) },
      { label: "Reported DKIM pass", stroke: COLORS.pass, width: 2.5, points: { show: true, size: 6, fill: COLORS.pass },
        value: (u, v) => v === null ? "—" : count(v) },
      { label: "Reported DKIM fail", stroke: COLORS.fail, width: 2, dash: [6, 4], points: { show: false },
        value: (u, v) => v === null ? "—" : count(v) },
    ];
    // asinh: a handful of signatures and ten thousand reported passes on one axis, both visible.
    // Ticks at 0, 1, 10, 100, ... up to the first power of ten above the data.
    const top = Math.max(10, ...signed, ...passed, ...failed);
    const decades = [0];
    for (let p = 1; p < top * 10; p *= 10) { decades.push(p); }
    chart("chart-signing", series, [signed, passed, failed], {
      height: 260,
      scales: { x: { time: true, range: () => [reports.from, reports.until] },
                y: { distr: 4, asinh: 1, range: () => [0, decades[decades.length - 1]] } },
      axes: [{ space: 60 }, { size: 72, splits: () => decades, values: (u, vals) => vals.map((v) => count(v)) }],
      hooks: { drawClear: [(u) => drawGrants(u, grants)] },
    });
    const node = $("chart-signing");
    node.dataset.grants = String(grants.length);
    node.setAttribute("aria-label", "Signatures issued and reported DKIM results per day" +
      (grants.length ? ", with " + grants.length + " sign grant" + (grants.length === 1 ? "" : "s") : ""));
  }

  // Sign grants as shaded bands across the plot, under the series, labelled with their id.
  function drawGrants(u, grants) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.font = Math.round(11 * uPlot.pxRatio) + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    for (const g of grants) {
      const x0 = u.valToPos(Math.max(g.start, reports.from), "x", true);
      const x1 = u.valToPos(Math.min(g.end, reports.until), "x", true);
      if (x1 <= left || x0 >= left + width) { continue; }
      const w = Math.max(2 * uPlot.pxRatio, x1 - x0);
      ctx.fillStyle = COLORS.grant;
      ctx.fillRect(x0, top, w, height);
      ctx.fillStyle = COLORS.grantEdge;
      ctx.fillRect(x0, top, Math.max(1, uPlot.pxRatio), height);
      const label = "grant " + g.grant_id + (g.selector === "*" ? "" : " (" + g.selector + ")");
      const pad = 3 * uPlot.pxRatio;
      const fits = x0 + w + pad + ctx.measureText(label).width < left + width;
      ctx.textAlign = fits ? "left" : "right";
      ctx.fillText(label, fits ? x0 + w + pad : x0 - pad, top + pad);
    }
    ctx.restore();
  }

  // --- sources and reports received ---

  // A long table shows its first `shown` rows; a button under it shows the rest.
  function foldRows(table, shown, what) {
    const rows = [...table.tBodies[0].rows];
    const old = table.nextElementSibling;
    if (old && old.classList.contains("more")) { old.remove(); }
    if (rows.length <= shown) { return; }
    for (const r of rows.slice(shown)) { r.hidden = true; }
    const more = el("button", "Show all " + rows.length + " " + what, "more link");
    more.type = "button";
    more.addEventListener("click", () => {
      for (const r of rows) { r.hidden = false; }
      more.remove();
    });
    table.after(more);
  }

  function renderSources(dash) {
    const body = $("sources-table").tBodies[0];
    clear(body);
    $("sources-empty").hidden = dash.sources.length > 0;
    $("sources-table").hidden = dash.sources.length === 0;
    for (const s of dash.sources) {
      const tr = el("tr", undefined, s.dmarc_pass * 2 < s.messages ? "flag" : "");
      tr.appendChild(el("td", s.source_ip, "mono"));
      tr.appendChild(el("td", s.reverse_dns || "—", s.reverse_dns ? "" : "muted"));
      tr.appendChild(el("td", count(s.messages), "num"));
      tr.appendChild(el("td", percent(s.dmarc_pass, s.messages), "num"));
      tr.appendChild(el("td", percent(s.dkim_aligned, s.messages), "num"));
      tr.appendChild(el("td", percent(s.spf_aligned, s.messages), "num"));
      body.appendChild(tr);
    }
    foldRows($("sources-table"), 12, "sources");
  }

  function renderReceived(list) {
    const body = $("received-table").tBodies[0];
    clear(body);
    for (const r of list.reports) {
      const tr = el("tr");
      tr.appendChild(el("td", utc(r.received * 1000), "mono"));
      tr.appendChild(el("td", r.kind));
      // The org_name is the sender's word; who vouched for it (the report mail's DKIM
      // signature, checked by relayd or the CLI) is shown beside it.
      const who = el("td", r.org_name || "—");
      who.appendChild(el("span", r.authenticated ? " · DKIM: " + r.reporter : " · unauthenticated",
                         "muted small" + (r.authenticated ? " reporter-verified" : " reporter-unverified")));
      if (r.conflict) {
        who.appendChild(el("span", " · conflicts with another report of this id", "warn small"));
      }
      tr.appendChild(who);
      tr.appendChild(el("td", r.begin ? dayText(r.begin) + (r.end - r.begin > DAY ? " – " + dayText(r.end) : "") : "—"));
      tr.appendChild(el("td", count(r.records), "num"));
      tr.appendChild(el("td", count(r.messages), "num"));
      body.appendChild(tr);
    }
    if (!list.reports.length) {
      const tr = el("tr");
      const td = el("td", "No report was received in this range.", "muted");
      td.colSpan = 6;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    foldRows($("received-table"), 10, "reports");
  }

  // --- uploads (admins) ---

  async function submitUpload(event) {
    event.preventDefault();
    const form = event.target;
    const files = [...form.elements.files.files];
    const results = $("upload-results");
    clear(results);
    const button = form.querySelector("button");
    button.disabled = true;
    let stored = 0;
    for (const file of files) {
      const li = el("li", file.name + ": uploading…");
      results.appendChild(li);
      try {
        const name = file.name.replace(/[^A-Za-z0-9._+!@,=-]/g, "_").slice(0, 200);
        const a = await api("POST", "/api/v1/reports/upload?name=" + encodeURIComponent(name), file);
        stored += a.reports;
        li.textContent = file.name + ": " + a.reports + " report" + (a.reports === 1 ? "" : "s") + " read" +
          (a.duplicates ? ", " + a.duplicates + " already kept" : "") +
          (a.errors.length ? ", " + a.errors.length + " could not be read" : "") + ".";
        li.className = a.errors.length ? "bad" : "ok";
        if (a.errors.length) {
          const ul = el("ul");
          for (const e of a.errors) { ul.appendChild(el("li", e, "small")); }
          li.appendChild(ul);
        }
      } catch (error) {
        li.textContent = file.name + ": " + explain(error);
        li.className = "bad";
      }
    }
    button.disabled = false;
    form.reset();
    if (stored > 0) { await renderReports(); }
  }

  // --- audit ------------------------------------------------------------------------------

  async function renderAudit() {
    const table = $("audit-table");
    try {
      const after = state.auditAfter === null ? 0 : state.auditAfter;
      let doc = await api("GET", "/api/v1/audit?after=" + after + "&limit=50");
      if (state.auditAfter === null) {
        // Start at the newest page: find the end, then show the last 50.
        let next = doc.next_after;
        let size = doc.records.length;
        let limit = 50;
        while (size === limit) {
          limit = 1000;
          const page = await api("GET", "/api/v1/audit?after=" + next + "&limit=" + limit);
          size = page.records.length;
          next = page.next_after;
        }
        state.auditTop = next;
        state.auditAfter = Math.max(0, next - 50);
        doc = await api("GET", "/api/v1/audit?after=" + state.auditAfter + "&limit=50");
      }
      const body = table.tBodies[0];
      clear(body);
      for (const r of doc.records.slice().reverse()) {
        const tr = el("tr", undefined, r.outcome === "ok" || r.outcome === "issued" ? "" : "flag");
        tr.appendChild(el("td", r.seq));
        tr.appendChild(el("td", utc(r.time_ms), "mono"));
        tr.appendChild(el("td", r.actor));
        tr.appendChild(el("td", r.action));
        tr.appendChild(el("td", r.scope));
        tr.appendChild(el("td", r.outcome));
        tr.appendChild(el("td", [r.reason, r.detail].filter(Boolean).join(" · "), "small"));
        body.appendChild(tr);
      }
      $("audit-newer").disabled = state.auditAfter + 50 >= state.auditTop;
      $("audit-older").disabled = state.auditAfter === 0;
      await verifyAudit();
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) {
        await relearnPermissions();
      }
      throw error;
    }
  }

  async function verifyAudit() {
    const status = $("verify-status");
    status.hidden = false;
    const v = await api("GET", "/api/v1/audit/verify");
    status.className = "verify " + (v.ok ? "good" : "bad");
    status.textContent = v.ok
      ? "Chain intact: " + v.records + " records, " + v.checkpoints + " checkpoints, " +
        v.checkpoint_signatures + " checkpoint signatures valid (checked " + utc(v.verified_ms) + " UTC)."
      : "BROKEN at record " + v.first_broken + ": " + v.problem;
  }

  // --- passkeys ---------------------------------------------------------------------------
  // Every user's own: the list, adding one (navigator.credentials.create; the first confirmed
  // with a TOTP code, later ones with an assertion of an existing passkey over a challenge bound
  // to the new credential), renaming, removing (with a second factor; never the last one).

  function when(ms) { return ms === null || ms === undefined ? "never" : utc(ms); }

  async function renderPasskeys() {
    const supported = passkeysSupported();
    $("passkeys-unsupported").hidden = supported;
    const doc = await api("GET", "/api/v1/passkeys");
    const mine = doc.passkeys.filter((p) => !p.user || p.user === state.me.user);
    // A first passkey is pending until root confirms it at the appliance (webd sees the TOTP
    // code that registered it); only confirmed ones sign in and decide.
    const confirmed = mine.filter((p) => p.confirmed !== false);
    state.passkeys = mine;
    state.me.passkeys = confirmed.length;
    const body = $("passkeys-table").tBodies[0];
    clear(body);
    $("passkeys-table").hidden = mine.length === 0;
    $("passkeys-empty").hidden = mine.length > 0;
    $("passkeys-last").hidden = confirmed.length !== 1;
    for (const p of mine) {
      const tr = el("tr");
      tr.dataset.credential = p.credential_id;
      const name = el("td", p.name || "(unnamed)");
      if (p.confirmed === false) {
        tr.classList.add("pending");
        name.appendChild(el("div", "Pending: it works once root confirms it at the appliance: " +
          "dkim-appliance passkey confirm --for " + state.me.user + " " + p.credential_id, "muted"));
      }
      tr.appendChild(name);
      tr.appendChild(el("td", p.algorithm + (p.backup_eligible ? " · synced" : "")));
      tr.appendChild(el("td", when(p.created_ms), "mono"));
      tr.appendChild(el("td", when(p.last_used_ms), "mono"));
      const act = el("td", undefined, "row-actions");
      const rename = el("button", "Rename…");
      rename.type = "button";
      rename.addEventListener("click", () => openPasskeyDialog("rename", p));
      act.appendChild(rename);
      if (confirmed.length > 1 || (p.confirmed === false && confirmed.length > 0)) {
        const remove = el("button", "Remove…", "danger");
        remove.type = "button";
        remove.addEventListener("click", () => openPasskeyDialog("remove", p));
        act.appendChild(remove);
      }
      tr.appendChild(act);
      body.appendChild(tr);
    }
    const f = $("passkey-add-form");
    const first = confirmed.length === 0;
    const blocked = first && !state.me.totp;
    $("passkey-add-totp-label").hidden = !first || blocked;
    f.elements.totp.required = first && !blocked;
    $("passkey-add-confirm").hidden = first;
    $("passkey-add-none").hidden = !blocked;
    for (const node of f.elements) { node.disabled = blocked || !supported; }
  }

  async function addPasskey(event) {
    event.preventDefault();
    const f = event.target;
    if (!f.reportValidity()) { return; }
    const first = state.passkeys.length === 0;
    const name = f.elements.name.value.trim();
    const totp = f.elements.totp.value.trim();
    const button = f.querySelector("button[type=submit]");
    button.disabled = true;
    $("passkey-add-error").hidden = true;
    try {
      const c = await api("POST", "/api/v1/passkeys/challenge", { purpose: "register" });
      const credential = await navigator.credentials.create({ publicKey: {
        challenge: fromB64u(c.challenge),
        rp: { id: c.rp_id, name: c.rp_name },
        user: { id: fromB64u(c.user.id), name: c.user.name, displayName: c.user.name },
        pubKeyCredParams: c.algorithms.map((alg) => ({ type: "public-key", alg })),
        excludeCredentials: (c.credentials || []).map((id) => ({ type: "public-key", id: fromB64u(id) })),
        authenticatorSelection: { residentKey: "required", requireResidentKey: true,
                                  userVerification: c.user_verification },
        attestation: "none",
        timeout: c.timeout_ms,
      } });
      const body = {
        name,
        client_data_json: b64u(credential.response.clientDataJSON),
        attestation_object: b64u(credential.response.attestationObject),
      };
      if (first) {
        body.totp = totp;
      } else {
        body.passkey = await passkeyAssertion({ purpose: "register_confirm", attestation_object: body.attestation_object },
                                              $("passkey-add-statement"));
      }
      await api("POST", "/api/v1/passkeys", body);
      f.reset();
      notify("Passkey \u201c" + name + "\u201d added.");
      await relearnPermissions();
      await renderPasskeys();
    } catch (error) {
      showError($("passkey-add-error"), error);
    } finally {
      button.disabled = false;
      f.elements.totp.value = "";
      $("passkey-add-statement").hidden = true;
    }
  }

  let passkeyEditing = null;

  function openPasskeyDialog(kind, p) {
    passkeyEditing = { kind, passkey: p };
    const form = $("passkey-dialog-form");
    form.reset();
    $("passkey-dialog-title").textContent = (kind === "rename" ? "Rename the passkey \u201c" : "Remove the passkey \u201c") +
      (p.name || "(unnamed)") + "\u201d";
    $("passkey-dialog-name-label").hidden = kind !== "rename";
    form.elements.name.required = kind === "rename";
    form.elements.name.value = kind === "rename" ? (p.name || "") : "";
    const totp = kind === "remove" && !!state.me.totp;
    $("passkey-dialog-totp-label").hidden = !totp;
    form.elements.totp.required = totp;
    const submit = $("passkey-dialog-submit");
    submit.textContent = kind === "rename" ? "Rename" : "Remove";
    submit.className = kind === "rename" ? "primary" : "danger";
    submit.hidden = kind === "remove" && !totp;
    $("passkey-dialog-passkey").hidden = kind !== "remove" || !passkeysSupported();
    $("passkey-dialog-statement").hidden = true;
    $("passkey-dialog-error").hidden = true;
    $("passkey-dialog").showModal();
    (kind === "rename" ? form.elements.name : (totp ? form.elements.totp : $("passkey-dialog-passkey"))).focus();
  }

  async function passkeyDialogDone(message) {
    $("passkey-dialog").close();
    notify(message);
    await relearnPermissions();
    await renderPasskeys();
  }

  async function submitPasskeyDialog(event) {
    event.preventDefault();
    const form = $("passkey-dialog-form");
    if ($("passkey-dialog-submit").hidden || !form.reportValidity()) { return; }
    const { kind, passkey } = passkeyEditing;
    const path = "/api/v1/passkeys/" + encodeURIComponent(passkey.credential_id) + "/" + kind;
    try {
      if (kind === "rename") {
        const name = form.elements.name.value.trim();
        await api("POST", path, { name });
        await passkeyDialogDone("Passkey renamed to \u201c" + name + "\u201d.");
      } else {
        const answer = await api("POST", path, { totp: form.elements.totp.value.trim() });
        await passkeyDialogDone(answer.message || ("Passkey \u201c" + (passkey.name || "") + "\u201d removed."));
      }
    } catch (error) {
      showError($("passkey-dialog-error"), error);
    } finally {
      form.elements.totp.value = "";
    }
  }

  async function removeWithPasskey() {
    const { passkey } = passkeyEditing;
    const button = $("passkey-dialog-passkey");
    button.disabled = true;
    $("passkey-dialog-error").hidden = true;
    try {
      const assertion = await passkeyAssertion({ purpose: "remove", credential_id: passkey.credential_id },
                                               $("passkey-dialog-statement"));
      const answer = await api("POST", "/api/v1/passkeys/" + encodeURIComponent(passkey.credential_id) + "/remove",
                               { passkey: assertion });
      await passkeyDialogDone(answer.message || ("Passkey \u201c" + (passkey.name || "") + "\u201d removed."));
    } catch (error) {
      showError($("passkey-dialog-error"), error);
    } finally {
      button.disabled = false;
      $("passkey-dialog-statement").hidden = true;
    }
  }

  // --- start ------------------------------------------------------------------------------

  async function login(event) {
    event.preventDefault();
    const f = event.target;
    const body = { user: f.elements.user.value.trim(), password: f.elements.password.value };
    if (f.elements.totp.value.trim()) { body.totp = f.elements.totp.value.trim(); }
    try {
      const doc = await api("POST", "/api/v1/session", body);
      f.reset();
      $("login-error").hidden = true;
      signedIn(doc.session);
    } catch (error) {
      f.elements.password.value = "";
      f.elements.totp.value = "";
      showError($("login-error"), error);
    }
  }

  // Username-less: the authenticator offers the passkeys it holds for this site; signerd finds
  // the user by the credential and applies the same lockout and audit as to a password login.
  async function loginWithPasskey() {
    const button = $("login-passkey");
    button.disabled = true;
    $("login-error").hidden = true;
    try {
      const c = await api("POST", "/api/v1/session/passkey/challenge", {});
      const credential = await navigator.credentials.get({ publicKey: {
        challenge: fromB64u(c.challenge), rpId: c.rp_id, userVerification: c.user_verification,
        allowCredentials: [], timeout: c.timeout_ms,
      } });
      const doc = await api("POST", "/api/v1/session/passkey", assertionJson(credential));
      $("login-form").reset();
      signedIn(doc.session);
    } catch (error) {
      showError($("login-error"), error);
    } finally {
      button.disabled = false;
    }
  }

  async function logout() {
    stopPolling();
    state.me = null;  // a refresh still in flight must not report "session ended" over this
    try { await api("DELETE", "/api/v1/session"); } catch (e) { /* gone already */ }
    showLogin("You are signed out.");
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("login-form").addEventListener("submit", login);
    $("login-passkey-box").hidden = !passkeysSupported();
    $("login-passkey").addEventListener("click", loginWithPasskey);
    $("decide-passkey").addEventListener("click", decideWithPasskey);
    $("new-form").elements.operation.addEventListener("change", prepareRequestForm);
    $("new-form").elements.break_glass.addEventListener("change", prepareRequestForm);
    $("new-glass-passkey").addEventListener("click", breakGlassWithPasskey);
    $("passkey-add-form").addEventListener("submit", addPasskey);
    $("passkey-dialog-form").addEventListener("submit", submitPasskeyDialog);
    $("passkey-dialog-passkey").addEventListener("click", removeWithPasskey);
    $("passkey-dialog-cancel").addEventListener("click", () => $("passkey-dialog").close());
    $("logout").addEventListener("click", logout);
    $("new-form").addEventListener("submit", submitRequest);
    $("decide-form").addEventListener("submit", submitDecision);
    $("decide-cancel").addEventListener("click", () => $("decide").close());
    $("decide").addEventListener("close", () => { $("decide-form").elements.pin.value = ""; });
    $("pin-share-form").addEventListener("submit", submitShare);
    $("pin-trust").addEventListener("click", trustNewIdentity);
    $("audit-older").addEventListener("click", () => { state.auditAfter = Math.max(0, state.auditAfter - 50); refresh(); });
    $("audit-newer").addEventListener("click", () => { state.auditAfter = Math.min(state.auditTop, state.auditAfter + 50); refresh(); });
    $("audit-verify").addEventListener("click", () => verifyAudit().catch((e) => notify(explain(e), "bad")));
    $("reports-filter").addEventListener("submit", submitReportsFilter);
    $("reports-domain").addEventListener("change", () => $("reports-filter").requestSubmit());
    $("reports-selector").addEventListener("change", () => drawSigningChart());
    $("upload-form").addEventListener("submit", submitUpload);
    window.addEventListener("hashchange", () => { if (state.me) { show(location.hash.slice(1)); } });
    document.addEventListener("visibilitychange", () => { if (!document.hidden && state.me) { refresh(true); } });
    try {
      const doc = await api("GET", "/api/v1/me");
      signedIn(doc.me);
    } catch (error) {
      showLogin();
    }
  });
})();
