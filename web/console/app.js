// The approval console. Plain JavaScript, no build step, no inline script (the
// Content-Security-Policy allows only this file). Every piece of text that comes from the
// API (names, reasons, scopes, records) is put into the page with textContent, never as HTML.
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

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    if (method !== "GET" && state.csrf) {
      headers["X-CSRF-Token"] = state.csrf;
    }
    const response = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let doc = null;
    try { doc = await response.json(); } catch (e) { doc = null; }
    if (doc && typeof doc.now_ms === "number") {
      state.skew = doc.now_ms - Date.now();
    }
    if (!response.ok) {
      if (response.status === 401 && path !== "/api/v1/session" && state.me) {
        showLogin("Your session has ended. Please sign in again.");
      }
      throw new ApiError(response.status, doc && doc.error);
    }
    return doc;
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
    if (!(error instanceof ApiError)) { return "The appliance cannot be reached."; }
    const rules = {
      self_approval: "Nobody may approve their own request.",
      quorum_met: "This request already has all the approvals it needs.",
      duplicate_approver: "You have already approved this request.",
      role: "Your role does not allow this.",
      csrf: "The page is out of date; reload it.",
    };
    return (error.rule && rules[error.rule] ? rules[error.rule] + " " : "") + error.message;
  }
  function showError(node, error) {
    node.textContent = explain(error);
    node.hidden = false;
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
  const viewNeeds = { new: "request", audit: "audit" };
  function mayView(view) { return !viewNeeds[view] || may(viewNeeds[view]); }
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

  const views = ["requests", "grants", "new", "keys", "audit"];

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
                                          api("GET", "/api/v1/grants")]);
        state.elevations = e.elevations;
        state.grants = g.grants;
        renderRequests();
        renderGrants();
      } else if (state.view === "keys" && !background) {
        await renderKeys();
      } else if (state.view === "audit" && !background) {
        await renderAudit();
      }
    } catch (error) {
      if (!background && !(error instanceof ApiError && error.status === 401)) {
        notify(explain(error), "bad");
      }
    }
  }

  // --- requests ---------------------------------------------------------------------------

  function renderRequests() {
    const pending = state.elevations.filter((e) => e.state === "pending");
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
    const submit = $("decide-submit");
    submit.textContent = { approve: "Approve", deny: "Deny", revoke: "Revoke now" }[action];
    submit.className = action === "approve" ? "primary" : "danger";
    dialog.showModal();
    (needsReason ? form.elements.reason : form.elements.totp).focus();
  }

  async function submitDecision(event) {
    event.preventDefault();
    const form = $("decide-form");
    if (!form.reportValidity()) { return; }
    const { action, elevation } = deciding;
    const body = { totp: form.elements.totp.value.trim() };
    if (action !== "approve") { body.reason = form.elements.reason.value.trim(); }
    const submit = $("decide-submit");
    submit.disabled = true;
    try {
      const answer = await api("POST", "/api/v1/elevations/" + elevation.id + "/" + action, body);
      $("decide").close();
      notify(answer.message || ("Request " + elevation.id + ": done."));
      refresh();
    } catch (error) {
      showError($("decide-error"), error);
      if (error instanceof ApiError && error.rule === "role") {
        relearnPermissions().then(refresh).catch(() => {});
      }
    } finally {
      submit.disabled = false;
      form.elements.totp.value = "";
    }
  }

  // --- grants -----------------------------------------------------------------------------

  function renderGrants() {
    const active = state.grants.filter((g) => g.state === "active");
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
      const ends = el("td", "", "countdown");
      ends.dataset.until = String(g.expires_ms);
      tr.appendChild(ends);
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
    const ended = state.grants.filter((g) => g.state !== "active").slice(0, 15);
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

  async function submitRequest(event) {
    event.preventDefault();
    const f = event.target;
    const body = {
      operation: f.elements.operation.value,
      domain: f.elements.domain.value.trim(),
      duration_seconds: Number(f.elements.duration.value) * Number(f.elements.unit.value),
      reason: f.elements.reason.value.trim(),
    };
    if (f.elements.selector.value.trim()) { body.selector = f.elements.selector.value.trim(); }
    if (f.elements.client.value.trim()) { body.client = f.elements.client.value.trim(); }
    if (f.elements.budget.value) { body.budget = Number(f.elements.budget.value); }
    $("new-error").hidden = true;
    try {
      const answer = await api("POST", "/api/v1/elevations", body);
      f.reset();
      notify(answer.message);
      location.hash = "#requests";
    } catch (error) {
      showError($("new-error"), error);
      if (error.field && f.elements[error.field === "duration_seconds" ? "duration" : error.field]) {
        f.elements[error.field === "duration_seconds" ? "duration" : error.field].focus();
      }
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

  async function renderKeys() {
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

  async function logout() {
    stopPolling();
    state.me = null;  // a refresh still in flight must not report "session ended" over this
    try { await api("DELETE", "/api/v1/session"); } catch (e) { /* gone already */ }
    showLogin("You are signed out.");
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("new-form").addEventListener("submit", submitRequest);
    $("decide-form").addEventListener("submit", submitDecision);
    $("decide-cancel").addEventListener("click", () => $("decide").close());
    $("audit-older").addEventListener("click", () => { state.auditAfter = Math.max(0, state.auditAfter - 50); refresh(); });
    $("audit-newer").addEventListener("click", () => { state.auditAfter = Math.min(state.auditTop, state.auditAfter + 50); refresh(); });
    $("audit-verify").addEventListener("click", () => verifyAudit().catch((e) => notify(explain(e), "bad")));
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
