#!/usr/bin/python3
"""dkim-webd as a real daemon over TLS, in front of a real dkim-signerd on SoftHSM2.

Started by ctest (labels "hsm;signerd;webd"):

  api   the REST API with a real HTTPS client (Python's ssl, the self-signed certificate
        pinned as the only CA): TLS 1.2+ only; security headers on every response; every
        API endpoint refuses a request without credentials (401) except /healthz; login with
        password (+ TOTP for approvers), the session cookie's attributes, CSRF on every
        state-changing request; request -> approve with TOTP -> a relay signature through
        signerd -> revoke -> the next signature is refused; wrong role, self-approval, quorum
        already met (403 with the rule); malformed, oversized, mistyped and unknown-field
        bodies (400 naming the field, 413, 415); 404, 405 with Allow; bearer API tokens; the
        login rate limit (429 with Retry-After); keys, DNS records, key generation under a
        key.generate grant; the audit log and its verification; every JSON answer checked
        against web/openapi.json; SIGTERM stops cleanly.

webd runs as user daemon (group nogroup), which signerd knows as its web peer.

  browser the console in Debian's Chromium driven by playwright-core (tests/browser/console.mjs):
        alice requests, bob approves with TOTP, the grant appears with its countdown, a
        signature through signerd succeeds, bob revokes and the next signature is refused; a
        <script> in a reason is shown as text; keys with DNS records; the audit log verified;
        each user (alice requester, bob and carol approvers, erin auditor, gwen admin) sees
        only the tabs and buttons they may use, never even for a moment; a screenshot of each
        page in ARTIFACTS.

  reports the Reports view and API over a real dkim-reportd (its web peer is webd; signerd's
        reports peer is reportd, user bin): a fixture of generated aggregate reports for the
        last 14 days (tests/reports/generate_reports.py) and the parsedmarc and TLS samples,
        uploaded through the API as the admin gwen, and signatures under a grant; the role
        rules (auditor reads, requester does not, only admins upload), every answer checked
        against web/openapi.json, 503 once reportd is gone; then tests/browser/reports.mjs in
        Chromium: the charts with their series and the grant band, the findings with their
        evidence, the sources, an upload through the form, no CSP violation, screenshots in
        ARTIFACTS.

  passkeys the console's passkeys (issue 22) in Debian's Chromium with the CDP WebAuthn virtual
        authenticator (tests/browser/passkeys.mjs), the page at https://localhost:PORT (WebAuthn
        wants a name, not an address), signerd's [webauthn] rp_id "localhost" and that origin,
        and [policy.sign] factors = ["webauthn"]: bob enrols a passkey (TOTP), adds a second one
        confirmed by the first, renames and removes it, signs in with the passkey alone, approves
        a sign request with it (the statement shown), the grant signs; a tampering proxy that
        moves his approval to another request is refused by signerd and both stay pending; an
        authenticator that does not verify the user is refused by the browser, and, when a lying
        webd asks only for "discouraged", by signerd (enrolment and approval); carol's TOTP
        approval of a sign request is refused (403 factor) and her console offers no TOTP field;
        the audit record of the approval names the factor. Screenshots in ARTIFACTS.

  custody PIN custody in the console (issue 23; tests/browser/custody.mjs), twice: signerd with
        [pin] source = "approver", where bob approves with the token PIN typed in the dialog
        (sealed in Chromium with WebCrypto to the key signerd offers: the identity checked and
        pinned, the grant active, the token logged in, a signature), and a browser that pinned
        another identity refuses to seal; then source = "shares", split 3 of 5 at the CLI (`pin
        split`), a grant approved that cannot sign until carol, dave and erin submit their shares
        in the console (erin's try with dave's share refused), when the token logs in and signs.
        No request a page sent, and nothing in webd's log, carries the PIN or a share; the audit
        log has the quorum. Screenshots in ARTIFACTS.

usage: webd_daemon.py api DKIM_APPLIANCE DKIM_SIGNERD DKIM_WEBD SOFTHSM2_MODULE OPENAPI_JSON
       webd_daemon.py browser DKIM_APPLIANCE DKIM_SIGNERD DKIM_WEBD SOFTHSM2_MODULE ARTIFACTS
       webd_daemon.py passkeys DKIM_APPLIANCE DKIM_SIGNERD DKIM_WEBD SOFTHSM2_MODULE ARTIFACTS
       webd_daemon.py custody DKIM_APPLIANCE DKIM_SIGNERD DKIM_WEBD SOFTHSM2_MODULE ARTIFACTS
       webd_daemon.py reports DKIM_APPLIANCE DKIM_SIGNERD DKIM_WEBD SOFTHSM2_MODULE ARTIFACTS DKIM_REPORTD
"""

import email.message
import email.policy
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signerd_daemon import DOMAIN, Appliance  # noqa: E402
from testlib import FAILURES, DnsServer, check, free_port, reportd_call, summary, until  # noqa: E402


class Webd:
    def __init__(self, folder, webd, signerd_socket, extra="", port=None):
        self.folder = os.path.join(folder, "webd")
        os.makedirs(self.folder)
        shutil.chown(self.folder, "daemon", "nogroup")
        self.port = port or free_port()
        self.config = os.path.join(folder, "webd.toml")
        with open(self.config, "w") as f:
            f.write('listen = "127.0.0.1:%d"\nself_signed = true\nstate_dir = "%s"\n'
                    'signerd_socket = "%s"\nbody_limit = "16KiB"\n%s\n'
                    '[dns]\noutbound_addresses = ["192.0.2.25", "2001:db8::25"]\n'
                    'dmarc_rua = "mailto:dmarc@%s"\ndmarc_ruf = "mailto:failures@reports.example.net"\n'
                    'tlsrpt_rua = "mailto:tls@%s"\n' % (self.port, self.folder, signerd_socket, extra, DOMAIN,
                                                       DOMAIN))
        self.log_path = os.path.join(folder, "webd.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=daemon", "--regid=nogroup", "--clear-groups", webd, "--config", self.config],
            stdout=self.log, stderr=self.log)
        for _ in until():
            text = open(self.log_path).read()
            if "listening on" in text:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("dkim-webd exited: " + text)
            time.sleep(0.05)
        self.ca = os.path.join(self.folder, "webd-selfsigned.crt")
        self.context = ssl.create_default_context(cafile=self.ca)

    def spki(self):
        """The SHA-256 of webd's certificate's public key, base64: what Chromium is told to trust."""
        return subprocess.run(
            "openssl x509 -in %s -pubkey -noout | openssl pkey -pubin -outform der | "
            "openssl dgst -sha256 -binary | base64" % self.ca, shell=True, capture_output=True,
            check=True).stdout.decode().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        return self.proc.returncode


class Client:
    """One HTTPS client with a cookie jar and the session's CSRF token."""

    def __init__(self, webd):
        self.webd = webd
        self.cookie = None
        self.csrf = None
        self.bearer = None

    def request(self, method, path, body=None, headers=None, raw=None, csrf=True):
        conn = http.client.HTTPSConnection("127.0.0.1", self.webd.port, context=self.webd.context, timeout=30)
        h = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if self.cookie:
            h["Cookie"] = self.cookie
        if self.csrf and csrf and method in ("POST", "DELETE"):
            h.setdefault("X-CSRF-Token", self.csrf)
        if self.bearer:
            h["Authorization"] = "Bearer " + self.bearer
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        text = r.read()
        conn.close()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = None
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), doc, text

    def login(self, user, password, totp=None):
        body = {"user": user, "password": password}
        if totp:
            body["totp"] = totp
        status, headers, doc, _ = self.request("POST", "/api/v1/session", body)
        if status == 201:
            self.cookie = headers["set-cookie"].split(";")[0]
            self.csrf = doc["session"]["csrf_token"]
        return status, headers, doc


# --- a small validator for the subset of JSON Schema that web/openapi.json uses ---------------

def resolve(spec, schema):
    while "$ref" in schema:
        node = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def validate(spec, schema, value, where="$"):
    schema = resolve(spec, schema)
    if value is None:
        return [] if schema.get("nullable") else ["%s: null where %s is required" % (where, schema.get("type"))]
    if "allOf" in schema:
        return [p for sub in schema["allOf"] for p in validate(spec, sub, value, where)]
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return ["%s: not an integer" % where]
    elif kind in types and not isinstance(value, types[kind]):
        return ["%s: not a %s" % (where, kind)]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append("%s: %r not in %r" % (where, value, schema["enum"]))
    if kind == "object":
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append("%s: missing %s" % (where, name))
        for name, v in value.items():
            if name in props:
                problems += validate(spec, props[name], v, where + "." + name)
            elif schema.get("additionalProperties") is False:
                problems.append("%s: undocumented field %s" % (where, name))
    if kind == "array":
        for i, item in enumerate(value):
            problems += validate(spec, schema.get("items", {}), item, "%s[%d]" % (where, i))
    return problems


class ApiChecker:
    """Checks each JSON answer against the document's response schema for its route."""

    def __init__(self, openapi):
        with open(openapi) as f:
            self.spec = json.load(f)
        self.checked = 0
        self.problems = []

    def route(self, path):
        for template in self.spec["paths"]:
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            if re.match(pattern, path):
                return template
        return None

    def check(self, method, path, status, doc):
        template = self.route(path.split("?")[0])
        if template is None:
            return  # 404s for paths that do not exist
        operation = self.spec["paths"][template].get(method.lower())
        if operation is None:
            return  # 405s are checked separately
        responses = operation["responses"]
        response = responses.get(str(status)) or responses.get("default")
        if response is None:
            self.problems.append("%s %s: status %d not documented" % (method, template, status))
            return
        response = resolve(self.spec, response)
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            self.checked += 1
            self.problems += ["%s %s %d: %s" % (method, template, status, p)
                              for p in validate(self.spec, schema, doc)]


def start_appliance(folder, cli, signerd, module, reports_peer=None, configure=None, pin_source="file"):
    """signerd with users alice (requester), bob, carol, frank (approvers, TOTP), dave
    (requester and approver, TOTP) and erin (auditor); webd is its web peer. signerd accepts
    each TOTP code once and a window of three steps, so each approver here spends at most
    three codes (enrolment included) and no test waits for the clock."""
    app = Appliance(folder, cli, signerd, module, web_peer="daemon", reports_peer=reports_peer,
                    pin_source=pin_source)
    if configure:
        with open(app.config) as f:
            text = f.read()
        with open(app.config, "w") as f:
            f.write(configure(text))
    app.start()
    app.add_users()
    for name, roles in (("dave", "requester,approver"), ("erin", "auditor")):
        app.secret_file("pw-" + name, name + "-correct-horse")
        app.op("user", "add", "--name", name, "--roles", roles, "--new-password-file",
               os.path.join(folder, "pw-" + name), check=True)
    app.secret_file("pw-frank", "frank-correct-horse")
    app.op("user", "add", "--name", "frank", "--roles", "approver", "--new-password-file",
           os.path.join(folder, "pw-frank"), check=True)
    for name in ("dave", "frank"):
        out = app.op("totp", "enrol", user=name, check=True).stdout.decode()
        app.totp_secrets[name] = re.search(r"secret=([A-Z2-7]+)", out).group(1)
        app.op("totp", "confirm", "--code", app.totp(name), user=name, check=True)
    os.chmod(os.path.dirname(app.socket), 0o755)
    return app


def api(folder, cli, signerd, webd_path, module, openapi):
    warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are asked for on purpose
    app = start_appliance(folder, cli, signerd, module)
    web = None
    idle_web = None
    try:
        # Every client here is 127.0.0.1: the per-address login limit is raised so that the
        # per-user one is what the rate-limit check below meets.
        web = Webd(folder, webd_path, app.socket, "[login]\nattempts_per_address = 50")
        checker = ApiChecker(openapi)
        log = open(web.log_path).read()
        check(re.search(r"fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}", log) is not None,
              "first start: a self-signed certificate is made and its fingerprint printed")
        pw = lambda name: name + "-correct-horse"  # noqa: E731

        def call(client, method, path, body=None, **kw):
            status, headers, doc, raw = client.request(method, path, body, **kw)
            if headers.get("content-type", "").startswith("application/json"):
                checker.check(method, path, status, doc)
            return status, headers, doc, raw

        # TLS: 1.2 and 1.3 only.
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(web.ca)
        old.check_hostname = False
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            old.set_ciphers("ALL:@SECLEVEL=0")
            with socket.create_connection(("127.0.0.1", web.port)) as s, old.wrap_socket(s) as t:
                refused = False
        except (ssl.SSLError, OSError):
            refused = True
        check(refused, "TLS 1.0/1.1 handshakes are refused")
        only12 = ssl.create_default_context(cafile=web.ca)
        only12.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", web.port)) as s, \
                only12.wrap_socket(s, server_hostname="127.0.0.1") as t:
            check(t.version() == "TLSv1.2", "TLS 1.2 works, with the certificate verified for 127.0.0.1")

        anonymous = Client(web)
        status, headers, doc, _ = call(anonymous, "GET", "/healthz")
        check(status == 200 and doc == {"status": "ok", "signerd": "ok", "audit": "ok"}, "GET /healthz: ok")
        for name, value in (("strict-transport-security", "max-age="), ("content-security-policy", "script-src 'self'"),
                            ("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"),
                            ("cache-control", "no-store")):
            check(value in headers.get(name, ""), "security header %s: %s" % (name, headers.get(name)))

        # Every API endpoint without credentials: 401 (GET /healthz and the logins excepted).
        spec = checker.spec
        unauthenticated = []
        logins = ("/api/v1/session", "/api/v1/session/passkey/challenge", "/api/v1/session/passkey")
        for template, operations in spec["paths"].items():
            for method in operations:
                if (method, template) == ("get", "/healthz") or (method == "post" and template in logins):
                    continue
                path = template.replace("{id}", "1").replace("{domain}", DOMAIN).replace("{credential_id}", "AAAA")
                status, _, doc, _ = call(anonymous, method.upper(), path, {} if method == "post" else None)
                if status != 401 or doc.get("error", {}).get("code") != "unauthenticated":
                    unauthenticated.append("%s %s -> %d" % (method.upper(), path, status))
        check(not unauthenticated, "every endpoint but /healthz answers 401 without credentials: %s" % unauthenticated)

        # Login: a session cookie with the right attributes; approvers need their TOTP code.
        alice = Client(web)
        status, headers, doc = alice.login("alice", pw("alice"))
        cookie = headers.get("set-cookie", "")
        check(status == 201 and cookie.startswith("__Host-dkim_session=") and
              all(a in cookie for a in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/")),
              "alice logs in: %d %s" % (status, cookie.split("=")[0]))
        bob = Client(web)
        status, _, doc = bob.login("bob", pw("bob"))
        check(status == 401, "bob without his TOTP code: 401 (%s)" % (doc or {}).get("error"))
        status, _, doc = bob.login("bob", pw("bob"), app.totp("bob"))
        check(status == 201 and doc["session"]["totp"] is True, "bob logs in with password and TOTP")
        # A second webd with session_idle = 1m, for issue 18 (finding 6): alice's session there
        # is left idle while the checks below run, and is tried as a Bearer token at the end.
        idle_web = Webd(os.path.join(folder, "idle"), webd_path, app.socket, 'session_idle = "1m"')
        idle_alice = Client(idle_web)
        status, _, _ = idle_alice.login("alice", pw("alice"))
        idle_since = time.monotonic()
        check(status == 201, "alice logs in at a webd with session_idle = 1m")
        status, _, doc, _ = call(alice, "GET", "/api/v1/me")
        check(status == 200 and doc["me"]["user"] == "alice" and doc["me"]["roles"] == ["requester"],
              "GET /api/v1/me names alice")
        may = doc["me"]["permissions"]
        check(may["request"] and not may["audit"] and not may["approve"] and not may["revoke_own"],
              "alice may request, not read the audit log, decide or revoke (no TOTP): %s" % may)
        status, _, doc, _ = call(bob, "GET", "/api/v1/me")
        may = doc["me"]["permissions"]
        check(may["approve"] == ["sign", "key.generate", "key.rotate", "key.retire", "admin"] and
              may["revoke_own"] and not may["request"] and not may["audit"],
              "bob may approve what the policy's role:approver may, and not request: %s" % may)

        # CSRF: a state-changing request without the session's token is refused.
        request = {"operation": "sign", "domain": DOMAIN, "selector": "rsa", "duration_seconds": 600,
                   "budget": 10, "reason": "CHG-7 <script>alert(1)</script> newsletter"}
        status, _, doc, _ = call(alice, "POST", "/api/v1/elevations", request, csrf=False)
        check(status == 403 and doc["error"]["code"] == "csrf", "no CSRF token: 403 csrf")
        status, _, doc, _ = call(alice, "POST", "/api/v1/elevations", request, headers={"X-CSRF-Token": "0" * 64})
        check(status == 403 and doc["error"]["code"] == "csrf", "a wrong CSRF token: 403 csrf")
        status, _, doc, _ = call(alice, "POST", "/api/v1/elevations", request,
                                 headers={"Origin": "https://evil.example"})
        check(status == 403 and doc["error"]["code"] == "origin", "another Origin: 403")
        status, headers, doc, _ = call(alice, "POST", "/api/v1/elevations", request)
        check(status == 201 and doc["elevation"]["state"] == "pending" and
              headers.get("location") == "/api/v1/elevations/%d" % doc["elevation"]["id"],
              "alice requests an elevation: 201, pending")
        request_id = doc["elevation"]["id"]
        check(doc["elevation"]["reason"] == request["reason"], "the reason comes back as it was sent (text)")

        # Bad bodies.
        for body, headers, want, field in (
                (None, {"Content-Type": "application/json"}, 400, None),
                (b"{not json", {"Content-Type": "application/json"}, 400, None),
                (json.dumps(dict(request, duration_seconds="ten")).encode(), None, 400, "duration_seconds"),
                (json.dumps(dict(request, colour="red")).encode(), None, 400, "colour"),
                (json.dumps({k: v for k, v in request.items() if k != "reason"}).encode(), None, 400, "reason"),
                (b'{"reason":"a","reason":"b"}', None, 400, "reason"),
                (b"\xff\xfe{}", None, 400, None),
                (json.dumps(request).encode(), {"Content-Type": "text/plain"}, 415, None),
                (b'{"a":"' + b"x" * 20000 + b'"}', None, 413, None)):
            h = {"Content-Type": "application/json"}
            h.update(headers or {})
            status, _, doc, _ = alice.request("POST", "/api/v1/elevations", raw=body if body is not None else b"[]",
                                              headers=h)
            ok = status == want and (field is None or doc["error"].get("field") == field)
            check(ok, "bad body %r...: %d (%s)" % ((body or b"[]")[:24], status, (doc or {}).get("error")))
        status, headers, doc, _ = call(alice, "PUT", "/api/v1/elevations")
        check(status == 405 and "POST" in headers.get("allow", ""), "PUT /api/v1/elevations: 405 with Allow")
        status, _, doc, _ = call(alice, "GET", "/api/v1/nothing")
        check(status == 404 and doc["error"]["code"] == "not_found", "unknown path: 404")
        status, _, doc, _ = call(alice, "GET", "/api/v1/elevations/9999")
        check(status == 404, "unknown elevation: 404")
        status, _, doc, _ = call(alice, "GET", "/api/v1/elevations?state=bogus")
        check(status == 400 and doc["error"]["field"] == "state", "a bad state filter: 400 naming state")

        # Decisions: wrong role, missing TOTP, approve, quorum met.
        status, _, doc, _ = call(alice, "POST", "/api/v1/elevations/%d/approve" % request_id, {"totp": "000000"})
        check(status == 403 and doc["error"].get("rule") == "role",
              "alice (requester) cannot approve: %d %s" % (status, doc["error"]))
        status, _, doc, _ = call(bob, "POST", "/api/v1/elevations/%d/approve" % request_id, {})
        check(status == 400 and doc["error"]["field"] == "totp", "approve without a TOTP code: 400 naming totp")
        status, _, doc, _ = call(bob, "POST", "/api/v1/elevations/%d/approve" % request_id, {"totp": app.totp("bob")})
        grant = (doc or {}).get("elevation", {}).get("grant") or {}
        check(status == 200 and doc["elevation"]["state"] == "approved" and grant.get("state") == "active" and
              grant.get("uses_left") == 10, "bob approves with TOTP: the grant is active with 10 uses left")
        carol = Client(web)
        carol.login("carol", pw("carol"), app.totp("carol"))
        status, _, doc, _ = call(carol, "POST", "/api/v1/elevations/%d/approve" % request_id, {"totp": "123456"})
        check(status == 403 and doc["error"].get("rule") == "quorum_met", "a late approval: 403 quorum_met")
        status, _, doc, _ = call(alice, "GET", "/api/v1/grants?active=true")
        check(status == 200 and any(g["request_id"] == request_id for g in doc["grants"]) and doc["now_ms"] > 0,
              "GET /api/v1/grants?active=true lists the grant")

        signed = app.relay_sign("rsa", "rsa-sha256")
        check(signed.returncode == 0, "a relay signature through signerd inside the grant: %s" % signed.stderr.strip())

        # Self-approval.
        dave = Client(web)
        dave.login("dave", pw("dave"), app.totp("dave"))
        status, _, doc, _ = call(dave, "POST", "/api/v1/elevations", dict(request, selector="ed"))
        own = doc["elevation"]["id"]
        status, _, doc, _ = call(dave, "POST", "/api/v1/elevations/%d/approve" % own, {"totp": "123456"})
        check(status == 403 and doc["error"].get("rule") == "self_approval",
              "self-approval: 403 self_approval (%s)" % doc["error"]["message"])
        status, _, doc, _ = call(carol, "POST", "/api/v1/elevations/%d/deny" % own, {"totp": "123456"})
        check(status == 400 and doc["error"]["field"] == "reason", "deny without a reason: 400 naming reason")
        status, _, doc, _ = call(carol, "POST", "/api/v1/elevations/%d/deny" % own,
                                 {"totp": app.totp("carol"), "reason": "not this week"})
        check(status == 200 and doc["elevation"]["state"] == "denied", "carol denies dave's request with a reason")

        # Revoke: the token is logged out, the next signature refused.
        status, _, doc, _ = call(dave, "POST", "/api/v1/elevations/%d/revoke" % request_id,
                                 {"totp": app.totp("dave"), "reason": "done"})
        check(status == 200 and doc["elevation"]["grant"]["state"] == "revoked", "dave revokes the grant")
        refused = app.relay_sign("rsa", "rsa-sha256")
        check(refused.returncode == 3, "after the revoke the next signature is refused (locked)")
        status, _, doc, _ = call(dave, "POST", "/api/v1/elevations/%d/revoke" % request_id,
                                 {"totp": "123456", "reason": "again"})
        check(status == 409, "revoking twice: 409 (%s)" % doc["error"]["message"])

        # Bearer API tokens: made with the password again, no CSRF needed.
        status, _, doc, _ = call(alice, "POST", "/api/v1/apitokens", {"label": "ci", "password": "wrong"})
        check(status == 401, "an API token needs the right password: %d" % status)
        status, _, doc, _ = call(alice, "POST", "/api/v1/apitokens",
                                 {"label": "ci", "ttl_seconds": 3600, "password": pw("alice")})
        check(status == 201 and doc["token"].startswith("dkt_"), "alice makes an API token (shown once): %s" % doc)
        robot = Client(web)
        robot.bearer = doc["token"]
        status, _, doc, _ = call(robot, "GET", "/api/v1/me")
        check(status == 200 and doc["me"]["auth"] == "api" and doc["me"]["csrf_token"] is None,
              "a bearer token authenticates alice for automation")
        status, _, doc, _ = call(robot, "POST", "/api/v1/elevations", dict(request, selector="short"))
        check(status == 201, "a bearer request needs no CSRF token")
        robot.bearer = "dkt_" + "A" * 43
        status, _, doc, _ = call(robot, "GET", "/api/v1/me")
        check(status == 401, "an unknown bearer token: 401")
        # Issue 18, finding 6: a console session token is not an API token. Sent as a Bearer
        # token it would skip session_idle (and CSRF): webd refuses a session it knows, and
        # signerd refuses any session token that webd sends as "api" (one webd has forgotten).
        session_token = alice.cookie.split("=", 1)[1]
        stolen = Client(web)
        stolen.bearer = session_token
        status, _, doc, _ = call(stolen, "GET", "/api/v1/me")
        check(status == 401, "alice's live session token as a Bearer token: 401 (%s)" % status)
        status, _, doc, _ = call(stolen, "POST", "/api/v1/elevations", dict(request, selector="short"))
        check(status == 401, "nor may it change anything without the CSRF token: %d" % status)
        status, _, doc, _ = call(alice, "GET", "/api/v1/me")
        check(status == 200, "the same token as alice's cookie still works")
        # idle_web never saw this session: only signerd can refuse it there.
        other = Client(idle_web)
        other.bearer = session_token
        status, _, _, _ = other.request("GET", "/api/v1/me")
        check(status == 401, "a webd that does not know the session: signerd refuses it as a Bearer token")

        # Keys and DNS records.
        status, _, doc, _ = call(alice, "GET", "/api/v1/keys")
        names = sorted(k["dns_name"] for k in (doc or {}).get("keys", []))
        check(status == 200 and names == sorted("%s._domainkey.%s" % (s, DOMAIN) for s in ("rsa", "ed", "short")),
              "GET /api/v1/keys lists the token's keys: %s" % names)
        status, _, doc, _ = call(alice, "GET", "/api/v1/domains/%s/dns" % DOMAIN)
        dkim = {r["name"]: r["value"] for r in doc["records"] if r["kind"] == "dkim"}
        spf = [r["value"] for r in doc["records"] if r["kind"] == "spf"]
        dmarc = [r for r in doc["records"] if r["kind"] == "dmarc"]
        check(status == 200 and dkim == app.records, "the DKIM records equal what the CLI printed for the token")
        check(spf == ["v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all"] and
              dmarc and dmarc[0]["value"].startswith("v=DMARC1; p=none; rua=mailto:dmarc@") and
              "; ruf=mailto:failures@reports.example.net" in dmarc[0]["value"],
              "SPF and DMARC suggestions: %s %s" % (spf, [d["value"] for d in dmarc]))
        reports = {r["kind"]: (r["name"], r["value"]) for r in doc["records"] if r["kind"] in ("tlsrpt", "dmarc-report")}
        check(reports == {"tlsrpt": ("_smtp._tls." + DOMAIN, "v=TLSRPTv1; rua=mailto:tls@" + DOMAIN),
                          "dmarc-report": (DOMAIN + "._report._dmarc.reports.example.net", "v=DMARC1")},
              "the TLS-RPT record and the external report domain's authorization: %s" % reports)
        status, _, doc, _ = call(alice, "GET", "/api/v1/domains/unknown.example/dns")
        check(status == 404, "DNS records for a domain without keys: 404")
        newkey = {"domain": DOMAIN, "selector": "web1", "algorithm": "ed25519"}
        status, _, doc, _ = call(alice, "POST", "/api/v1/keys", newkey)
        check(status == 403 and doc["error"].get("rule") == "no_grant", "a key without a key.generate grant: 403")
        status, _, doc, _ = call(alice, "POST", "/api/v1/elevations",
                                 {"operation": "key.generate", "domain": DOMAIN, "selector": "web1",
                                  "duration_seconds": 600, "reason": "CHG-8 new selector"})
        gen_id = doc["elevation"]["id"]
        frank = Client(web)
        frank.login("frank", pw("frank"), app.totp("frank"))
        call(frank, "POST", "/api/v1/elevations/%d/approve" % gen_id, {"totp": app.totp("frank")})
        status, _, doc, _ = call(alice, "POST", "/api/v1/keys", newkey)
        check(status == 201 and doc["key"]["dns_name"] == "web1._domainkey." + DOMAIN and
              doc["key"]["dns_record"].startswith("v=DKIM1; k=ed25519; p="),
              "with the grant the key is generated in the token: %s" % (doc.get("error") if doc else status))

        # Audit log.
        status, _, doc, _ = call(alice, "GET", "/api/v1/audit")
        check(status == 403, "alice may not read the audit log: %s" % doc["error"]["message"])
        erin = Client(web)
        erin.login("erin", pw("erin"))
        status, _, doc, _ = call(erin, "GET", "/api/v1/audit?after=0&limit=5")
        check(status == 200 and len(doc["records"]) == 5 and doc["next_after"] == 5, "the auditor pages the log")
        status, _, doc, _ = call(erin, "GET", "/api/v1/audit?after=5&limit=1000")
        actions = {r["action"] for r in doc["records"]}
        check({"elevation.approve", "grant.revoke", "sign", "key.generated"} <= actions,
              "the log holds the approval, the signature, the revoke and the key: %s" % sorted(actions))
        status, _, doc, _ = call(erin, "GET", "/api/v1/audit/verify")
        check(status == 200 and doc["ok"] is True and doc["records"] > 10, "the chain verifies: %s" % doc)
        status, _, doc, _ = call(erin, "GET", "/api/v1/audit?limit=0")
        check(status == 400 and doc["error"]["field"] == "limit", "limit=0: 400 naming limit")
        status, _, _, text = call(erin, "GET", "/metrics")
        check(status == 200 and b"dkim_webd_responses_total" in text, "the auditor reads /metrics")
        status, _, _, _ = call(alice, "GET", "/metrics")
        check(status == 403, "a requester may not read /metrics")

        # Users: listed here (admin, auditor); added, disabled and enrolled only at the CLI
        # (signerd refuses the web peer; attack_webd plays it).
        status, _, doc, _ = call(erin, "GET", "/api/v1/users")
        check(status == 200 and {"alice", "bob", "erin"} <= {u["name"] for u in doc["users"]},
              "the auditor lists the users")
        status, headers, doc, _ = call(erin, "POST", "/api/v1/users",
                                       {"name": "mallory", "roles": "admin", "password": "x" * 16})
        check(status == 405 and headers.get("allow") == "GET",
              "webd offers no way to add users: %d, Allow: %s" % (status, headers.get("allow")))

        # Logout.
        status, headers, doc, _ = call(alice, "DELETE", "/api/v1/session")
        check(status == 200 and "Max-Age=0" in headers.get("set-cookie", ""), "logout clears the cookie")
        status, _, _, _ = call(alice, "GET", "/api/v1/me")
        check(status == 401, "after logout the session is gone")

        # The login rate limit (per user: 5 attempts in the window).
        mallory = Client(web)
        statuses = [mallory.login("carol", "wrong-%d" % i)[0] for i in range(6)]
        status, headers, doc = mallory.login("carol", "wrong-7")
        check(statuses[:5] == [401] * 5 and status == 429 and int(headers.get("retry-after", "0")) > 0,
              "repeated failed logins: 401 x5 then 429 with Retry-After: %s %d" % (statuses, status))

        # The idle webd: alice's session there has been unused for over a minute.
        time.sleep(max(0.0, 61 - (time.monotonic() - idle_since)))
        status, _, _, _ = idle_alice.request("GET", "/api/v1/me")
        check(status == 401, "after session_idle without use the session cookie is refused: %d" % status)
        idle_bearer = Client(idle_web)
        idle_bearer.bearer = idle_alice.cookie.split("=", 1)[1]
        status, _, _, _ = idle_bearer.request("GET", "/api/v1/me")
        check(status == 401, "and so is its token as a Bearer token (signerd: session, not api): %d" % status)
        idle_web.stop()
        leaked = [s for s in ("alice-correct-horse", "dkt_") if s in open(idle_web.log_path).read()]
        check(not leaked, "no password or token in the idle webd's log: %s" % leaked)

        check(checker.checked > 40 and not checker.problems,
              "%d JSON answers match web/openapi.json: %s" % (checker.checked, checker.problems[:8]))
        code = web.stop()
        check(code == 0 and "stopped" in open(web.log_path).read(), "SIGTERM: webd stops cleanly (%s)" % code)
        leaked = [s for s in ("alice-correct-horse", "bob-correct-horse", "dkt_") if s in open(web.log_path).read()]
        check(not leaked, "no password or token in webd's log: %s" % leaked)
    finally:
        if web:
            web.stop()
        if idle_web:
            idle_web.stop()
        app.stop()


def browser(folder, cli, signerd, webd_path, module, artifacts):
    """The console in Debian's Chromium, driven by playwright-core (tests/browser/console.mjs)."""
    app = start_appliance(folder, cli, signerd, module)
    # gwen: an admin without TOTP (the audit log, cancelling another's request; no decisions).
    app.secret_file("pw-gwen", "gwen-correct-horse")
    app.op("user", "add", "--name", "gwen", "--roles", "admin", "--new-password-file",
           os.path.join(folder, "pw-gwen"), check=True)
    web = None
    try:
        web = Webd(folder, webd_path, app.socket)
        # Chromium trusts exactly this certificate: its public key's SHA-256 is pinned.
        spki = web.spki()
        os.makedirs(artifacts, exist_ok=True)
        sign = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", cli, "sign",
                "--signerd", app.socket, "--domain", DOMAIN, "--selector", "rsa", "--algorithm", "rsa-sha256"]
        env = dict(os.environ, WEBD_URL="https://127.0.0.1:%d/" % web.port, WEBD_SPKI=spki,
                   ARTIFACTS=artifacts, DOMAIN=DOMAIN, SIGN_COMMAND=json.dumps(sign),
                   TOTP_SECRETS=json.dumps(app.totp_secrets), TOTP_LAST=json.dumps(app.totp_last),
                   PASSWORDS=json.dumps({u: u + "-correct-horse" for u in ("alice", "bob", "carol", "erin", "gwen")}))
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser", "console.mjs")
        run = subprocess.run(["node", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=400)
        output = run.stdout.decode(errors="replace")
        print(output, end="")
        check(run.returncode == 0, "the console scenario in Chromium (exit %d)" % run.returncode)
        shots = sorted(f for f in os.listdir(artifacts) if f.endswith(".png") and f[0].isdigit())
        check(len(shots) == 9, "screenshots of each console page in %s: %s" % (artifacts, shots))
    finally:
        if web:
            web.stop()
        app.stop()


def passkeys(folder, cli, signerd, webd_path, module, artifacts):
    """Passkeys in the console (tests/browser/passkeys.mjs): enrolment, login, a decision bound to
    what it approves, a tampering proxy, authenticators that do not verify the user. Then the
    CLI: a TOTP approval refused where policy wants a passkey (pointing to the console), passkey
    list as root, and root removing bob's last passkey, which webd refuses."""
    port = free_port()
    origin = "https://localhost:%d" % port

    def configure(text):
        text = text.replace("[policy.sign]\n", '[policy.sign]\nfactors = ["webauthn"]\n', 1)
        return text + '[webauthn]\nrp_id = "localhost"\norigins = ["%s"]\n' % origin

    app = start_appliance(folder, cli, signerd, module, configure=configure)
    web = None
    try:
        web = Webd(folder, webd_path, app.socket, port=port)
        spki = web.spki()
        os.makedirs(artifacts, exist_ok=True)
        for old in os.listdir(artifacts):
            if old.endswith(".png"):
                os.remove(os.path.join(artifacts, old))
        # alice's requests: one bob approves with his passkey (rsa, the relay signs under it), and
        # two for the tampering proxy (it moves an approval of the first to the second).
        requests = {"approve": app.request("rsa", "10m", "CHG-201 passkey approval"),
                    "a": app.request("ed", "10m", "CHG-202 what bob approves"),
                    "b": app.request("short", "10m", "CHG-203 what a proxy would like approved")}
        sign = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", cli, "sign",
                "--signerd", app.socket, "--domain", DOMAIN, "--selector", "rsa", "--algorithm", "rsa-sha256"]
        env = dict(os.environ, WEBD_URL=origin + "/", WEBD_SPKI=spki, ARTIFACTS=artifacts, DOMAIN=DOMAIN,
                   SIGN_COMMAND=json.dumps(sign), REQUESTS=json.dumps(requests),
                   CONFIRM_COMMAND=json.dumps([cli, "passkey", "confirm", "--socket", app.socket, "--for"]),
                   TOTP_SECRETS=json.dumps(app.totp_secrets), TOTP_LAST=json.dumps(app.totp_last),
                   PASSWORDS=json.dumps({u: u + "-correct-horse" for u in ("alice", "bob", "carol", "frank", "erin")}))
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser", "passkeys.mjs")
        started = time.monotonic()
        run = subprocess.run(["node", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=240)
        print(run.stdout.decode(errors="replace"), end="")
        check(run.returncode == 0, "the passkey scenarios in Chromium (exit %d, %.0f s)"
              % (run.returncode, time.monotonic() - started))
        shots = sorted(f for f in os.listdir(artifacts) if f.endswith(".png") and f[0].isdigit())
        check(len(shots) >= 8, "screenshots of the passkey pages in %s: %s" % (artifacts, shots))

        # What signerd kept: the approval's audit record names the factor; the requests the
        # proxy and the unverified authenticator tried stay pending.
        erin = Client(web)
        check(erin.login("erin", "erin-correct-horse")[0] == 201, "erin (auditor) signs in")
        status, _, doc, _ = erin.request("GET", "/api/v1/audit?after=0&limit=1000")
        approvals = [r for r in (doc or {}).get("records", [])
                     if r["action"] == "elevation.approve" and r["outcome"] == "ok"]
        check(len(approvals) == 1 and "webauthn" in json.dumps(approvals[0]),
              "one approval in the audit log, made with webauthn: %s" % approvals)
        # The auditor's check from the log alone: the approval's assertion (Chromium's) verifies
        # with the public key of its passkey.register record.
        verify = app.cli("audit", "verify", "--db", app.db, check=False)
        out = verify.stdout.decode(errors="replace") if isinstance(verify.stdout, bytes) else verify.stdout
        checked = re.search(r"; (\d+) passkey decisions verified", out)
        check(verify.returncode == 0 and checked and int(checked.group(1)) >= 1,
              "audit verify checks the passkey decisions: %s" % out.strip()[-300:])
        for key in ("a", "b"):
            status, _, doc, _ = erin.request("GET", "/api/v1/elevations/%d" % requests[key])
            check(status == 200 and doc["elevation"]["state"] == "pending" and not doc["elevation"]["approvals"],
                  "request %d stays pending without approvals: %s" % (requests[key], (doc or {}).get("elevation")))

        # The CLI keeps TOTP: where policy wants a passkey (sign here) it is refused and says
        # where to decide instead; the request stays pending.
        refused = app.cli("elevation", "approve", "--id", str(requests["a"]), "--socket", app.socket, "--user", "bob",
                          "--password-file", os.path.join(folder, "pw-bob"), "--totp-stdin", stdin=b"000000\n",
                          check=False)
        said = refused.stderr.decode()
        check(refused.returncode != 0 and "policy accepts only a passkey for sign decisions" in said and
              "web console" in said and "open Requests" in said and not refused.stdout,
              "the CLI's TOTP approval is refused where policy wants a passkey, pointing to the console "
              "(exit %d): %s" % (refused.returncode, said.strip()))

        # passkey list and remove at the CLI: root (the admin peer) needs no credentials. bob's
        # passkey is the one the browser enrolled, his last: webd refuses to remove it, root may.
        # bob signs in with his password and a TOTP code, of a step after any the browser used.
        app.totp_last["bob"] = int(time.time() // 30) + 1
        bob = Client(web)
        signed_in = bob.login("bob", "bob-correct-horse", totp=app.totp("bob"))
        check(signed_in[0] == 201, "bob signs in with his password and TOTP (%s %s)" % (signed_in[0], signed_in[2]))
        status, _, doc, _ = bob.request("GET", "/api/v1/passkeys")
        held = [p["credential_id"] for p in (doc or {}).get("passkeys", [])]
        check(status == 200 and len(held) == 1, "bob has one passkey left after the browser's scenarios: %s" % held)
        listed = app.op("passkey", "list", "--all")
        rows = [line.split("\t") for line in listed.stdout.decode().splitlines()]
        bobs = [r for r in rows if r[0] == "bob"]
        check(listed.returncode == 0 and len(bobs) == 1 and len(bobs[0]) >= 6 and bobs[0][3] == (held or [""])[0] and
              bobs[0][2] in ("ES256", "Ed25519", "RS256") and re.match(r"created \d{4}-\d\d-\d\dT", bobs[0][4]) and
              re.match(r"last used (\d{4}-|never)", bobs[0][5]),
              "passkey list --all as root: user, name, algorithm, credential id (base64url), created, last used: %s%s"
              % (rows, listed.stderr.decode().strip()))
        one = app.op("passkey", "list", "--for", "bob")
        check(one.returncode == 0 and [l.split("\t") for l in one.stdout.decode().splitlines()] == bobs,
              "passkey list --for bob lists the same: %s" % one.stdout.decode().strip())
        wrong = app.op("passkey", "list", "--user", "bob")
        check(wrong.returncode == 2 and "--for bob" in wrong.stderr.decode(),
              "--user without a password file is taken for what it is, and --for suggested: %s"
              % wrong.stderr.decode().strip())
        if held:
            status, _, doc, _ = bob.request("POST", "/api/v1/passkeys/%s/remove" % held[0], {"totp": "000000"})
            check(status == 403, "webd refuses to remove bob's last passkey (%d %s)" % (status, doc))
            alice = app.op("passkey", "remove", "--for", "bob", held[0], user="alice")
            check(alice.returncode != 0 and "admin" in alice.stderr.decode(),
                  "a requester cannot remove another user's passkey: %s" % alice.stderr.decode().strip())
            removed = app.op("passkey", "remove", "--for", "bob", held[0])
            check(removed.returncode == 0 and "removed" in removed.stdout.decode(),
                  "root removes bob's last passkey at the CLI (a lost authenticator): %s%s"
                  % (removed.stdout.decode().strip(), removed.stderr.decode().strip()))
            again = app.op("passkey", "remove", "--for", "bob", held[0])
            check(again.returncode != 0 and "no such passkey" in again.stderr.decode(),
                  "a second removal finds none: %s" % again.stderr.decode().strip())
        status, _, doc, _ = bob.request("GET", "/api/v1/passkeys")
        check(status == 200 and doc["passkeys"] == [], "through the API bob has no passkey now: %s" % doc)
        empty = app.op("passkey", "list", "--for", "bob")
        check(empty.returncode == 0 and empty.stdout == b"", "and passkey list --for bob lists none")
        status, _, doc, _ = erin.request("GET", "/api/v1/audit?after=0&limit=1000")
        removals = [r for r in (doc or {}).get("records", []) if r["action"] == "passkey.remove" and "the last one" in json.dumps(r)]
        check(len(removals) == 1, "the audit log has the removal of bob's last passkey: %s" % removals)
    finally:
        if web:
            web.stop()
        app.stop()


class Reportd:
    """dkim-reportd as user bin (signerd's reports peer), webd (daemon) its web peer, root its admin."""

    def __init__(self, folder, reportd, signerd_socket, outbound):
        self.folder = os.path.join(folder, "reportd")
        os.makedirs(self.folder)
        shutil.chown(self.folder, "bin", "nogroup")
        self.socket = os.path.join(self.folder, "reportd.sock")
        self.config = os.path.join(folder, "reportd.toml")
        with open(self.config, "w") as f:
            f.write('socket = "%s"\nsocket_mode = 432\nsocket_group = "nogroup"\nstore = "%s/reports.db"\n'
                    'signerd_socket = "%s"\noutbound = %s\n[peers]\nweb = ["daemon"]\nadmin = ["root"]\n'
                    % (self.socket, self.folder, signerd_socket, json.dumps(outbound)))
        os.chmod(self.folder, 0o755)
        self.log_path = os.path.join(folder, "reportd.log")
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=bin", "--regid=nogroup", "--clear-groups", reportd, "--config", self.config],
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT)
        for _ in until():
            text = open(self.log_path).read()
            if "listening on" in text:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("dkim-reportd exited: " + text)
            time.sleep(0.05)
        raise RuntimeError("dkim-reportd did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        return self.proc.returncode


def reports(folder, cli, signerd, webd_path, module, artifacts, reportd_path):
    """The Reports API and view over a real dkim-reportd, with a fixture of reports."""
    app = start_appliance(folder, cli, signerd, module, reports_peer="bin")
    app.secret_file("pw-gwen", "gwen-correct-horse")
    app.op("user", "add", "--name", "gwen", "--roles", "admin", "--new-password-file",
           os.path.join(folder, "pw-gwen"), check=True)
    here = os.path.dirname(os.path.abspath(__file__))
    checker = ApiChecker(os.path.join(here, "..", "..", "web", "openapi.json"))
    rd = None
    web = None
    names = None
    try:
        rd = Reportd(folder, reportd_path, app.socket, ["192.0.2.0/28"])
        # A DNS server of the test's own for the sources' reverse DNS: 9.9.9.9 has a name that
        # confirms it, 9.9.9.10 a PTR that its name does not confirm (192.0.2.0/24 and
        # 203.0.113.0/24, documentation blocks, are never looked up).
        names = DnsServer(folder, {}, "reporting.test",
                          extra=["host-record=mx.reporting.test,9.9.9.9",
                                 "ptr-record=10.9.9.9.in-addr.arpa,liar.reporting.test"],
                          local_zones=["9.9.9.in-addr.arpa"])
        web = Webd(folder, webd_path, app.socket,
                   '[reports]\nsocket = "%s"\ndns_server = "%s"' % (rd.socket, names.address()))

        # Signatures with the rsa key under a grant today: the signing record to join with.
        grant = app.approve(app.request("rsa", "30m"))
        signed = sum(app.relay_sign("rsa", "rsa-sha256").returncode == 0 for _ in range(6))
        check(signed == 6, "six signatures under grant %d" % grant)

        # The fixture: aggregate reports for the last 14 days (the generator's own seed), as
        # receivers would send them (gzip), for the signed domain, our outbound network and an
        # unknown one; the parsedmarc samples (other domains, years ago) and TLS reports.
        today = int(time.time()) // 86400 * 86400
        generated = os.path.join(folder, "generated")
        subprocess.run(["/usr/bin/python3", os.path.join(here, "..", "reports", "generate_reports.py"),
                        "--many", "60", "--out", generated, "--domains", DOMAIN, "--selectors", "rsa,ed",
                        "--sources", "192.0.2.0/28,203.0.113.0/28", "--orgs", "google.com,Yahoo,Mail Provider C",
                        "--begin", time.strftime("%Y-%m-%d", time.gmtime(today - 13 * 86400)), "--days", "14",
                        "--compress", "gzip", "--records-per-report", "5-25"],
                       check=True, capture_output=True)
        files = sorted(os.path.join(generated, f) for f in os.listdir(generated))
        browser_files = files[:2]
        samples = os.path.join(here, "..", "data", "dmarc-reports")
        files = files[2:] + [os.path.join(samples, d, f) for d in ("aggregate", "smtp_tls")
                             for f in sorted(os.listdir(os.path.join(samples, d)))]

        def call(client, method, path, body=None, **kw):
            status, headers, doc, raw = client.request(method, path, body, **kw)
            if headers.get("content-type", "").startswith("application/json"):
                checker.check(method, path, status, doc)
            return status, doc

        gwen, erin, alice = Client(web), Client(web), Client(web)
        check(gwen.login("gwen", "gwen-correct-horse")[0] == 201, "gwen (admin) signs in")
        check(erin.login("erin", "erin-correct-horse")[0] == 201, "erin (auditor) signs in")
        check(alice.login("alice", "alice-correct-horse")[0] == 201, "alice (requester) signs in")
        stored = 0
        vouched = 0
        direct = 0  # files handed to reportd, not through the API
        for path in files:
            with open(path, "rb") as f:
                data = f.read()
            # google.com's reports arrive as relayd hands them over after their mail's DKIM
            # signature verified (the authenticated reporter, as the admin peer may name it);
            # the others are uploaded through the API, unauthenticated.
            if path.startswith(generated) and b"<org_name>google.com</org_name>" in gzip.decompress(data):
                # relayd hands over the report mail, not its attachment: reportd takes a
                # reporter only for bytes that read as a mail message.
                mail = email.message.EmailMessage()
                mail["From"] = "noreply-dmarc-support@google.com"
                mail["To"] = "dmarc-reports@" + DOMAIN
                mail["Subject"] = "Report domain: " + DOMAIN + " Submitter: google.com"
                mail.add_attachment(data, maintype="application", subtype="gzip",
                                    filename=os.path.basename(path))
                doc = reportd_call(rd.socket, {"op": "submit", "origin": "test: relayd, DKIM verified",
                                               "reporter": "google.com"},
                                   mail.as_bytes(policy=email.policy.SMTP))
                check(doc.get("ok") is True, "a google.com report with its reporter: %s" % doc)
                stored += doc.get("reports", 0)
                vouched += doc.get("reports", 0)
                direct += 1
                continue
            status, doc = call(gwen, "POST", "/api/v1/reports/upload?name=" + re.sub(r"[^A-Za-z0-9._+!@,=-]", "_",
                                                                                    os.path.basename(path)),
                               raw=data, headers={"Content-Type": "application/octet-stream"})
            if status != 200:
                check(False, "upload of %s: %d %s" % (path, status, doc))
                continue
            stored += doc["reports"]
        public = ("<?xml version=\"1.0\"?><feedback><report_metadata><org_name>Mail Provider C</org_name>"
                  "<email>dmarc@provider-c.example</email><report_id>public-1</report_id><date_range>"
                  "<begin>%d</begin><end>%d</end></date_range></report_metadata><policy_published>"
                  "<domain>%s</domain><p>none</p></policy_published>" % (today - 86400, today - 1, DOMAIN))
        for ip, n in (("9.9.9.9", 40), ("9.9.9.10", 30)):
            public += ("<record><row><source_ip>%s</source_ip><count>%d</count><policy_evaluated>"
                       "<disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated>"
                       "</row><identifiers><header_from>%s</header_from></identifiers><auth_results><spf>"
                       "<domain>%s</domain><result>fail</result></spf></auth_results></record>"
                       % (ip, n, DOMAIN, DOMAIN))
        public += "</feedback>"
        status, doc = call(gwen, "POST", "/api/v1/reports/upload?name=public.xml", raw=public.encode(),
                           headers={"Content-Type": "application/octet-stream"})
        check(status == 200 and doc["reports"] == 1, "a report with public sources: %d %s" % (status, doc))
        check(stored >= len(files) - 1, "the fixture is uploaded through the API: %d reports from %d files"
              % (stored, len(files)))
        with open(files[0], "rb") as f:
            status, doc = call(gwen, "POST", "/api/v1/reports/upload", raw=f.read(),
                               headers={"Content-Type": "application/gzip"})
        check(status == 200 and doc["reports"] == 0 and doc["duplicates"] == 1,
              "the same report again is a duplicate: %s" % doc)
        status, doc = call(erin, "POST", "/api/v1/reports/upload", raw=b"<feedback/>",
                           headers={"Content-Type": "text/xml"})
        check(status == 403 and doc["error"].get("rule") == "role", "erin (auditor) may not upload: %d" % status)
        status, doc = call(gwen, "POST", "/api/v1/reports/upload", raw=b"a=b",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        check(status == 415, "an upload shaped like a form post is refused (415): %d" % status)

        q = "?domain=%s&from=%d&until=%d" % (DOMAIN, today - 13 * 86400, today + 86400)
        status, dash = call(erin, "GET", "/api/v1/reports/dashboard" + q)
        check(status == 200 and DOMAIN in dash["domains"] and "example.com" in dash["domains"],
              "erin reads the dashboard; the domains: %s" % (dash or {}).get("domains"))
        check(sum(d["messages"] for d in dash["daily"]) > 0 and len(dash["sources"]) > 0,
              "the dashboard has daily totals and sources")
        named = {s["source_ip"]: s["reverse_dns"] for s in dash["sources"]}
        check(named.get("9.9.9.9") == "mx.reporting.test" and "9.9.9.10" in named and
              named["9.9.9.10"] is None,
              "sources get their forward-confirmed name from DNS, and an unconfirmed PTR none: %s"
              % {k: v for k, v in named.items() if k.startswith("9.")})
        check(all(v is None for k, v in named.items() if not k.startswith("9.")),
              "documentation addresses are not looked up")
        check(dash["signing_available"] and sum(s["signed"] for s in dash["signing"]) == 6 and
              any(g["grant_id"] == grant for g in dash["grants"]),
              "the six signatures and grant %d come from signerd's record" % grant)
        status, found = call(erin, "GET", "/api/v1/reports/findings" + q)
        kinds = sorted(set(f["kind"] for f in found["findings"])) if status == 200 else []
        check(status == 200 and ("signed_outside_grant" in kinds or "replay_suspected" in kinds),
              "findings join the reports with the signing record: %s" % kinds)
        keyed = [f for f in (found or {}).get("findings", [])
                 if f["kind"] in ("signed_outside_grant", "replay_suspected")]
        check(vouched > 0 and any(f["severity"] == "critical" and f["authenticated"] and
                                  "google.com" in f["evidence"].get("authenticated_reporters", [])
                                  for f in keyed),
              "google.com's authenticated reports make a critical finding naming it (%d reports)" % vouched)
        check(all(f["severity"] == "warning" and "may be forged" in f["summary"]
                  for f in keyed if not f["authenticated"]),
              "the same evidence from unauthenticated reports alone is a warning that says so")
        status, listed = call(erin, "GET", "/api/v1/reports/list" + q + "&limit=10")
        check(status == 200 and len(listed["reports"]) == 10, "the list of reports, 10 of them")
        status, listed = call(erin, "GET", "/api/v1/reports/list" + q + "&limit=1000")
        reporters = set((r["org_name"], r["reporter"], r["authenticated"]) for r in listed["reports"])
        check(("google.com", "google.com", True) in reporters and
              all(r[1] == "" and not r[2] for r in reporters if r[0] != "google.com"),
              "the list says who vouched for each report: %s" % sorted(reporters))
        status, doc = call(alice, "GET", "/api/v1/reports/dashboard" + q)
        check(status == 403 and doc["error"].get("rule") == "role", "alice (requester) may not read reports")
        status, doc = call(erin, "GET", "/api/v1/reports/dashboard?domain=exa%20mple")
        check(status == 400 and doc["error"].get("field") == "domain", "a bad domain is named (400)")
        check(checker.checked >= len(files) - direct + 8 and not checker.problems,
              "%d answers match web/openapi.json: %s" % (checker.checked, checker.problems[:5]))

        # The view in Chromium.
        spki = web.spki()
        os.makedirs(artifacts, exist_ok=True)
        for old in os.listdir(artifacts):
            if old.endswith(".png"):
                os.remove(os.path.join(artifacts, old))
        bad = os.path.join(folder, "not-a-report.xml")
        with open(bad, "w") as f:
            f.write("<feedback><report_metadata>")
        env = dict(os.environ, WEBD_URL="https://127.0.0.1:%d/" % web.port, WEBD_SPKI=spki,
                   ARTIFACTS=artifacts, DOMAIN=DOMAIN, UPLOADS=json.dumps(browser_files + [bad]),
                   PASSWORDS=json.dumps({u: u + "-correct-horse" for u in ("alice", "erin", "gwen")}))
        script = os.path.join(here, "..", "browser", "reports.mjs")
        run = subprocess.run(["node", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=300)
        print(run.stdout.decode(errors="replace"), end="")
        check(run.returncode == 0, "the Reports view in Chromium (exit %d)" % run.returncode)
        shots = sorted(f for f in os.listdir(artifacts) if f.endswith(".png") and f[0].isdigit())
        check(len(shots) == 4, "screenshots of the Reports view in %s: %s" % (artifacts, shots))

        # Without reportd: 503, said as such.
        rd.stop()
        status, doc = call(erin, "GET", "/api/v1/reports/findings")
        check(status == 503 and doc["error"]["code"] == "reports_unavailable",
              "reportd stopped: 503 reports_unavailable (%d)" % status)
    finally:
        if web:
            web.stop()
        if rd:
            rd.stop()
        if names:
            names.stop()
        app.stop()


def split_shares(app, custodians, threshold):
    """`dkim-appliance pin split` as root, the PIN from its file: {custodian: share text}."""
    out = app.op("pin", "split", "--custodians", ",".join(custodians), "--threshold", str(threshold),
                 "--pin-file", app.pin, check=True).stdout.decode()
    shares = dict(re.findall(r"^([a-z]+): share \d+ of \d+ .*\n(dkimpin1-\S+)$", out, re.M))
    check(sorted(shares) == sorted(custodians), "pin split hands out a share to each custodian: %s" % sorted(shares))
    return shares


def custody(folder, cli, signerd, webd_path, module, artifacts):
    """PIN custody in the console (tests/browser/custody.mjs): approver, then shares."""
    os.makedirs(artifacts, exist_ok=True)
    for old in os.listdir(artifacts):
        if old.endswith(".png"):
            os.remove(os.path.join(artifacts, old))
    pin = "user-pin-1234"  # the Appliance's token PIN
    os.chmod(folder, 0o755)  # webd (user daemon) reads its configuration in the phase's folder
    for phase in ("approver", "shares"):
        sub = os.path.join(folder, phase)
        os.makedirs(sub)
        app = start_appliance(sub, cli, signerd, module, pin_source=phase)
        web = None
        try:
            web = Webd(sub, webd_path, app.socket)
            spki = web.spki()
            requests = {"first": app.request("rsa", "10m", "CHG-301 PIN custody"),
                        "second": app.request("ed", "10m", "CHG-302 PIN custody again")}
            secrets = {}
            if phase == "shares":
                secrets = split_shares(app, ["bob", "carol", "dave", "erin", "frank"], 3)
                app.approve(requests["first"], "bob")
            sign = {selector: ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", cli, "sign",
                               "--signerd", app.socket, "--domain", DOMAIN, "--selector", selector,
                               "--algorithm", algorithm]
                    for selector, algorithm in (("rsa", "rsa-sha256"), ("ed", "ed25519-sha256"))}
            env = dict(os.environ, PHASE=phase, WEBD_URL="https://127.0.0.1:%d/" % web.port, WEBD_SPKI=spki,
                       ARTIFACTS=artifacts, DOMAIN=DOMAIN, SIGN_COMMAND=json.dumps(sign),
                       PIN_STATUS_COMMAND=json.dumps([cli, "pin", "status", "--socket", app.socket]),
                       TOTP_SECRETS=json.dumps(app.totp_secrets), TOTP_LAST=json.dumps(app.totp_last),
                       REQUESTS=json.dumps(requests), PIN=pin if phase == "approver" else "",
                       SHARES=json.dumps(secrets),
                       PASSWORDS=json.dumps({u: u + "-correct-horse"
                                             for u in ("alice", "bob", "carol", "dave", "erin", "frank")}))
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser", "custody.mjs")
            started = time.monotonic()
            run = subprocess.run(["node", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=400)
            print(run.stdout.decode(errors="replace"), end="")
            check(run.returncode == 0, "%s custody in Chromium (exit %d, %.0f s)"
                  % (phase, run.returncode, time.monotonic() - started))
            actions = [r for r in app.op("audit", "show", "--limit", "1000", check=True).stdout.decode().splitlines()]
            if phase == "shares":
                check(any("pin.share.quorum" in a for a in actions) and
                      any("pin.share.submit" in a and "refused" in a for a in actions),
                      "the audit log has the quorum and the refused share")
            web.stop()
            log = open(web.log_path).read()
            leaked = [x for x in [pin] + list(secrets.values()) if x in log]
            check(not leaked, "%s: no PIN or share in webd's log" % phase)
        finally:
            if web:
                web.stop()
            app.stop()


def main():
    if len(sys.argv) != (8 if sys.argv[1:2] == ["reports"] else 7):
        print(__doc__)
        return 2
    group, cli, signerd, webd, module, extra = sys.argv[1:7]
    folder = tempfile.mkdtemp(prefix="dkim-webd-")
    try:
        if group == "reports":
            reports(folder, cli, signerd, webd, module, extra, sys.argv[7])
        else:
            {"api": api, "browser": browser, "passkeys": passkeys,
             "custody": custody}[group](folder, cli, signerd, webd, module, extra)
    finally:
        if FAILURES:
            for name in ("webd.log", "signerd.log", "reportd.log"):
                log = os.path.join(folder, name)
                if os.path.exists(log):
                    print("--- %s\n%s" % (name, open(log).read()[-4000:]))
        shutil.rmtree(folder, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
