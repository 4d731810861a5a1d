#!/usr/bin/python3
"""dkim-signerd as a real daemon, driven through the operator CLI and a relay client.

Started by ctest (labels "hsm;signerd"), one group per run:

  lifecycle   locked until approved; signatures through signerd verify with dkimpy and
              Mail::DKIM over a real DNS server; revoke logs out before it is acknowledged;
              kill -9 and restart restores active grants and never revives expired ones; the
              audit chain stays intact, and tampering or truncation is reported by
              `dkim-appliance audit verify` at the right record; SIGTERM stops cleanly
  faults      a peer that is not configured is refused; malformed, oversized, wrong-version
              and stalled frames end the connection with an error and harm nothing; a full
              disk under the audit log (RLIMIT_FSIZE on the running daemon) stops signing and
              grants until it is writable again; the webhook receives HMAC-signed events;
              the Prometheus endpoint reports what happened
  pin-sources the PIN sealed (`pin seal` refuses a PIN the token refuses, seals with
              systemd-creds and a host key of the test's own, which another host key cannot
              open; signerd logs in from $CREDENTIALS_DIRECTORY), and from the approver (sealed
              by the CLI to signerd's key, held only until C_Login: a wrong one approves
              nothing, and the next grant needs it again);
              configuration errors name file:line:column and the key
  renewal     a 40 s sign grant with renew_before = "50%" files its renewal at 20 s (webhook
              request.renewal, listed as a renewal); approved, it is scheduled and starts as the
              old grant ends: a relay client signing all along is never locked, the signatures
              before the boundary are the old grant's and after it the new one's, and the token
              stays logged in
  opencryptoki the lifecycle on openCryptoki's software token (see the function)

The relay client runs as user nobody (setpriv), the operator CLI as root (the admin peer).
Each run has its own SoftHSM2 token, state folder and dnsmasq. Debian's python3-dkim belongs
to /usr/bin/python3.

usage: signerd_daemon.py GROUP DKIM_APPLIANCE DKIM_SIGNERD SOFTHSM2_MODULE
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import dkim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import FAILURES, DnsServer, check, summary, until  # noqa: E402

DOMAIN = "signerd.example"
MESSAGE = (b"From: Alice <alice@signerd.example>\r\nTo: Bob <bob@peer.example>\r\n"
           b"Subject: through signerd\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <s1@signerd.example>\r\n\r\nSigned inside a grant.\r\n")


def totp_code(secret, step):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    o = mac[19] & 15
    return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000)


class Appliance:
    """A token with keys, a signerd configuration, the daemon, and the CLI around it."""

    def __init__(self, folder, cli, signerd, module, webhook_url=None, pin_source="file", web_peer=None,
                 webhook_outbox=None, reports_peer=None, sign_policy=(),
                 selectors=(("rsa", "rsa-2048"), ("ed", "ed25519"), ("short", "ed25519")), cluster=None,
                 pins=("so-pin-1234", "user-pin-1234")):
        """`cluster`: a node of a cluster, {"node", "database", "password_file", "lease"}: its
        [cluster] section (the state in that PostgreSQL, not in state/signerd.db)."""
        self.folder, self.cli_path, self.signerd, self.module = folder, cli, signerd, module
        os.chmod(folder, 0o755)  # nobody must reach the socket inside
        self.env = dict(os.environ, SOFTHSM2_CONF=os.path.join(folder, "softhsm2.conf"))
        os.makedirs(os.path.join(folder, "tokens"))
        with open(self.env["SOFTHSM2_CONF"], "w") as f:
            f.write("directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n" % folder)
        so = self.secret_file("so-pin", pins[0])
        self.pin = self.secret_file("pin", pins[1])
        self.cli("token", "init", "--module", module, "--label", "dkim", "--so-pin-file", so, "--pin-file", self.pin)
        self.records = {}
        for selector, algorithm in selectors:
            out = self.cli("key", "generate", "--module", module, "--token", "dkim", "--pin-file", self.pin,
                           "--domain", DOMAIN, "--selector", selector, "--algorithm", algorithm,
                           "--json").stdout.decode()
            self.records["%s._domainkey.%s" % (selector, DOMAIN)] = re.search(r'"dns_record": "([^"]*)"', out).group(1)
        self.audit_key = None
        if cluster:
            # A node's audit key, made now (signerd would make it at its first checkpoint), so
            # that the other nodes can pin it ([cluster] node_keys) before they start.
            self.cli("key", "generate", "--module", module, "--token", "dkim", "--pin-file", self.pin,
                     "--domain", "signerd.invalid", "--selector", "audit", "--algorithm", "ed25519")
            self.audit_key = self.cli("audit", "key", "--module", module, "--token", "dkim").stdout.decode().strip()
        self.socket = os.path.join(folder, "signerd.sock")
        self.db = os.path.join(folder, "state", "signerd.db")
        config = [
            'module = "%s"' % module, 'token = "dkim"', 'state_dir = "%s/state"' % folder,
            'socket = "%s"' % self.socket, 'socket_group = "nogroup"', 'password_cost = "minimal-for-tests"',
            "[pin]", 'source = "%s"' % pin_source,
            # credential: the default name, "pin", as the appliance's unit loads it (LoadCredentialEncrypted=pin:...)
            {"file": 'file = "%s"' % self.pin, "sealed": "", "approver": "", "shares": ""}[pin_source],
            "[peers]", 'admin = ["root"]', 'relay = ["nobody"]',
            'web = ["%s"]' % web_peer if web_peer else "",
            'reports = ["%s"]' % reports_peer if reports_peer else "",
            "[metrics]", 'listen = "127.0.0.1:0"',
            "[audit]", 'checkpoint_interval = "2s"',
        ]
        if webhook_url:
            config += ["[webhook]", 'url = "%s"' % webhook_url,
                       'secret_file = "%s"' % self.secret_file("webhook-key", "webhook-hmac-key")]
        if webhook_outbox:
            config += ["[webhook]", 'outbox = "%s"' % webhook_outbox]
        if cluster:
            config += ["[cluster]", 'node = "%s"' % cluster["node"], 'database = "%s"' % cluster["database"],
                       'password_file = "%s"' % cluster["password_file"], 'lease = "%s"' % cluster.get("lease", "3s")]
            # The other nodes' audit keys, once they are known (Appliance.pin_node_keys).
            config += ["#node_keys"]
        config += ["[policy.sign]", 'max_duration = "1h"', 'approvers = ["role:approver"]'] + list(sign_policy)
        if web_peer:
            config += ["[policy.key.generate]", 'approvers = ["role:approver"]']
        self.config = os.path.join(folder, "signerd.toml")
        with open(self.config, "w") as f:
            f.write("\n".join(config) + "\n")
        self.proc = None
        self.totp_secrets = {}
        self.totp_last = {}

    def pin_node_keys(self, keys):
        """[cluster] node_keys = the other nodes' audit keys ({name: base64})."""
        with open(self.config) as f:
            text = f.read()
        line = "node_keys = [%s]" % ", ".join('"%s=%s"' % item for item in sorted(keys.items()))
        with open(self.config, "w") as f:
            f.write(text.replace("#node_keys\n", line + "\n"))

    def secret_file(self, name, content):
        path = os.path.join(self.folder, name)
        with open(path, "w") as f:
            f.write(content + "\n")
        os.chmod(path, 0o600)
        return path

    def cli(self, *args, stdin=None, check=True):
        return subprocess.run([self.cli_path] + list(args), input=stdin, capture_output=True, env=self.env,
                              check=check)

    def op(self, *args, user=None, totp=False, check=False):
        """An operator command through signerd, as `user` (password file) or as local root. A
        TOTP code goes on standard input (--totp-stdin), never into the process list."""
        extra = ["--socket", self.socket]
        stdin = None
        if user:
            extra += ["--user", user, "--password-file", os.path.join(self.folder, "pw-" + user)]
        if totp:
            extra += ["--totp-stdin"]
            stdin = (self.totp(user) + "\n").encode()
        return self.cli(*(list(args) + extra), stdin=stdin, check=check)

    def start(self, env=None):
        self.log = open(os.path.join(self.folder, "signerd.log"), "ab")
        self.proc = subprocess.Popen([self.signerd, "--config", self.config], stdout=self.log,
                                     stderr=self.log, env=env or self.env)
        for _ in until():
            text = open(os.path.join(self.folder, "signerd.log")).read()
            if text.count("listening on") > getattr(self, "starts", 0):
                self.starts = text.count("listening on")
                self.metrics_port = int(re.findall(r"metrics on port (\d+)", text)[-1])
                return
            if self.proc.poll() is not None:
                raise RuntimeError("dkim-signerd exited: " + text)
            time.sleep(0.05)
        raise RuntimeError("dkim-signerd did not start")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        return self.proc.returncode if self.proc else 0

    def add_users(self):
        for name, roles in (("alice", "requester"), ("bob", "approver"), ("carol", "approver")):
            self.secret_file("pw-" + name, name + "-correct-horse")
            self.op("user", "add", "--name", name, "--roles", roles, "--new-password-file",
                    os.path.join(self.folder, "pw-" + name), check=True)
        for name in ("bob", "carol"):
            out = self.op("totp", "enrol", user=name, check=True).stdout.decode()
            self.totp_secrets[name] = re.search(r"secret=([A-Z2-7]+)", out).group(1)
            self.cli("totp", "confirm", "--code", "-", "--socket", self.socket, "--user", name,
                     "--password-file", os.path.join(self.folder, "pw-" + name),
                     stdin=(self.totp(name) + "\n").encode(), check=True)

    def totp(self, user):
        """A code signerd accepts once: the next unused time step within its +-1 window."""
        while True:
            clock = time.time()
            now = int(clock // 30)
            # The previous step is only safe early in this one: a slow CLI under ASan may reach
            # signerd after the step turns, when now - 1 has left the window.
            oldest = now - 1 if clock % 30 < 15 else now
            step = max(oldest, self.totp_last.get(user, 0) + 1)
            if step <= now + 1:
                self.totp_last[user] = step
                return totp_code(self.totp_secrets[user], step)
            time.sleep(1)

    def request(self, selector, duration, reason="CHG-100 newsletter"):
        out = self.op("elevation", "request", "--operation", "sign", "--domain", DOMAIN, "--selector", selector,
                      "--duration", duration, "--reason", reason, user="alice", check=True).stdout.decode()
        return int(re.search(r"request (\d+)", out).group(1))

    def approve(self, request_id, approver="bob", *extra):
        out = self.op("elevation", "approve", "--id", str(request_id), *extra, user=approver, totp=True, check=True)
        return int(re.search(r"grant (\d+)", out.stdout.decode()).group(1))

    def relay_sign(self, selector, algorithm, message=MESSAGE):
        """Signs as the relay client: user nobody, no PIN, no module, only the socket."""
        return subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", self.cli_path, "sign",
             "--signerd", self.socket, "--domain", DOMAIN, "--selector", selector, "--algorithm", algorithm],
            input=message, capture_output=True, env=self.env)

    def status(self):
        return self.op("signerd", "status").stdout.decode()

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5) as r:
            return r.read().decode()


def dkimpy_verifies(dns_server, signed):
    try:
        return bool(dkim.verify(signed, dnsfunc=dns_server.dkimpy_dnsfunc()))
    except dkim.DKIMException as e:
        print("      dkimpy: %s" % e)
        return False


def mail_dkim_result(dns_server, signed):
    script = (r'use Mail::DKIM::Verifier; use Net::DNS::Resolver;'
              r'Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(nameservers=>["127.0.0.1"],port=>$ARGV[0]));'
              r'my $d=Mail::DKIM::Verifier->new(); local $/; my $m=<STDIN>; $d->PRINT($m); $d->CLOSE;'
              r'print $d->result;')
    return subprocess.run(["perl", "-e", script, str(dns_server.port)], input=signed, capture_output=True,
                          check=True).stdout.decode()


def superseded(app, request_id, grant_id):
    """Whether `elevation list` shows the request as superseded by the grant, and `--pending`
    leaves it out."""
    listed = app.op("elevation", "list", check=True).stdout.decode().splitlines()
    pending = app.op("elevation", "list", "--pending", check=True).stdout.decode().splitlines()
    line = [x for x in listed if x.split("\t")[0] == str(request_id)]
    return (len(line) == 1 and line[0].split("\t")[1] == "superseded" and
            line[0].endswith("(superseded by grant %d)" % grant_id) and
            not [x for x in pending if x.split("\t")[0] == str(request_id)])


def grant_states(app):
    out = app.op("grant", "list", check=True).stdout.decode()
    return {int(line.split("\t")[0]): line.split("\t")[1] for line in out.splitlines()}


# --- groups -------------------------------------------------------------------------------

def lifecycle(folder, cli, signerd, module):
    app = Appliance(folder, cli, signerd, module)
    dns_server = DnsServer(folder, app.records, DOMAIN)
    app.start()
    try:
        app.add_users()
        locked = app.relay_sign("rsa", "rsa-sha256")
        check(locked.returncode == 3 and b"locked" in locked.stderr and b"pending request" in locked.stderr,
              "without a grant the relay is told 'locked' and a pending request is filed: %s" % locked.stderr[-120:])
        check("token: logged out" in app.status(), "the token is logged out while no grant is active")

        # The relay's request names one selector; the grant approved below covers the domain
        # (issue 19): it closes the relay's request as superseded, with an audit record.
        relay_request = int(re.search(rb"pending request (\d+)", locked.stderr).group(1))
        request_id = app.request("*", "30m")
        approved = app.op("elevation", "approve", "--id", str(request_id), user="bob", totp=True)
        grant_id = int(re.search(r"grant (\d+)", approved.stdout.decode()).group(1))
        check(approved.returncode == 0 and ("supersedes pending request %d" % relay_request) in approved.stdout.decode(),
              "the approval of the wider request says it supersedes the relay's: %s" % approved.stdout.decode().strip())
        check("token: logged in" in app.status(), "approval logs the token in")
        check(superseded(app, relay_request, grant_id),
              "the relay's request is listed as superseded by grant %d, not pending" % grant_id)
        late = app.op("elevation", "approve", "--id", str(relay_request), user="carol", totp=True)
        check(late.returncode == 1 and b"superseded" in late.stderr and b"conflict" in late.stderr,
              "an approval of the superseded request is refused: %s" % late.stderr.strip())
        db = sqlite3.connect("file:%s?mode=ro" % app.db, uri=True)
        records = db.execute("SELECT actor, outcome, grant_id FROM audit WHERE action = 'elevation.supersede' "
                             "AND request_id = ?", (relay_request,)).fetchall()
        db.close()
        check(records == [("signerd", "superseded", grant_id)],
              "one audit record of the supersession, naming the grant: %s" % records)
        rsa = app.relay_sign("rsa", "rsa-sha256")
        ed = app.relay_sign("ed", "ed25519-sha256")
        check(rsa.returncode == 0 and ed.returncode == 0, "the relay signs through signerd (RSA, Ed25519)")
        check(dkimpy_verifies(dns_server, rsa.stdout), "dkimpy verifies the RSA signature made through signerd")
        check(dkimpy_verifies(dns_server, ed.stdout), "dkimpy verifies the Ed25519 signature made through signerd")
        check(mail_dkim_result(dns_server, rsa.stdout) == "pass", "Mail::DKIM verifies the RSA signature")
        metrics = app.metrics()
        check('dkim_signerd_signatures_total{outcome="ok"} 2' in metrics and "dkim_signerd_token_logged_in 1" in metrics,
              "metrics count the signatures and show the login")

        started = time.monotonic()
        revoked = app.op("elevation", "revoke", "--grant", str(grant_id), "--reason", "incident 7", user="carol",
                         totp=True)
        took = time.monotonic() - started
        check(revoked.returncode == 0 and b"the token is logged out" in revoked.stdout,
              "revoke answers only after the logout (%.0f ms for the whole CLI call): %s" % (took * 1000, revoked.stdout))
        check(app.relay_sign("rsa", "rsa-sha256").returncode == 3, "after the revoke the relay is locked again")

        # The last grant expires by itself: logged out within a second of its end.
        request_id = app.request("ed", "2s")
        app.approve(request_id, "carol")
        # The grant began inside the approve call, so it ends no later than 2 s after the call
        # returned (the CLI's own start-up, slow under ASan, must not count).
        approved_at = time.time()
        check("token: logged in" in app.status(), "a 2-second grant logs the token in")
        time.sleep(max(0.0, approved_at + 2.0 + 1.0 - time.time()))
        check("token: logged out" in app.status(), "logged out within 1 s of the last grant's expiry")

        # kill -9 with one long and one short grant active; restart after the short one ended.
        long_grant = app.approve(app.request("rsa", "30m"), "carol")
        short_grant = app.approve(app.request("short", "3s"))
        check(app.relay_sign("short", "ed25519-sha256").returncode == 0, "the short grant signs")
        app.kill9()
        time.sleep(3.5)
        app.start()
        states = grant_states(app)
        check(states.get(long_grant) == "active" and states.get(short_grant) == "expired",
              "after kill -9 and restart the long grant is active, the short one expired: %s" % states)
        check(app.relay_sign("rsa", "rsa-sha256").returncode == 0, "the restored grant signs after the restart")
        check(superseded(app, relay_request, grant_id), "the relay's request is still superseded after the restart")
        check(app.relay_sign("short", "ed25519-sha256").returncode == 3, "the expired grant is not revived")
        verify = app.cli("audit", "verify", "--db", app.db, "--module", module, "--token", "dkim", check=False)
        check(verify.returncode == 0 and b"chain intact" in verify.stdout and b"signatures valid" in verify.stdout
              and b"1 unclean end (signerd stopped without logging out) covered by a signed recovery" in verify.stdout,
              "the audit chain is intact after kill -9, with signed checkpoints, and the crash is covered by the "
              "restart's signed recovery checkpoint: %s" % verify.stdout.strip())

        export = os.path.join(folder, "export.jsonl")
        app.cli("audit", "export", "--db", app.db, "--out", export)
        count = sum(1 for line in open(export) if '"type":"record"' in line)
        for what, sql, broken_at in (
                ("an edited record", "UPDATE audit SET actor = 'mallory' WHERE seq = 5", 5),
                ("a deleted record", "DELETE FROM audit WHERE seq = 6", 6),
                ("two swapped records", "UPDATE audit SET seq = -3 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 8;"
                 " UPDATE audit SET seq = 8 WHERE seq = -3", 3),
                ("truncation after the export", "DELETE FROM audit WHERE seq > %d" % (count - 2), count - 1)):
            copy = os.path.join(folder, "tampered.db")
            app.op("signerd", "status")  # a read through signerd while the copy is made
            shutil.copy(app.db, copy)
            for suffix in ("-wal", "-shm"):
                if os.path.exists(app.db + suffix):
                    shutil.copy(app.db + suffix, copy + suffix)
            db = sqlite3.connect(copy)
            db.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; " + sql)
            db.commit()
            db.close()
            result = app.cli("audit", "verify", "--db", copy, "--against", export, check=False)
            check(result.returncode == 1 and ("BROKEN at record %d" % broken_at).encode() in result.stdout,
                  "audit verify reports %s at record %d: %s" % (what, broken_at, result.stdout.strip()))
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(copy + suffix):
                    os.remove(copy + suffix)

        code = app.stop()
        check(code == 0 and not os.path.exists(app.socket), "SIGTERM stops signerd cleanly and removes its socket")
        last = app.cli("audit", "verify", "--db", app.db, "--module", module, "--token", "dkim", check=False)
        check(last.returncode == 0, "the log verifies after the clean stop: %s" % last.stdout.strip())
    finally:
        app.stop()
        dns_server.stop()


class WebhookReceiver(http.server.BaseHTTPRequestHandler):
    events = []
    bad = []
    failed_first = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not WebhookReceiver.failed_first:  # the first delivery fails: it must be retried
            WebhookReceiver.failed_first.append(body)
            self.send_response(500)
            self.end_headers()
            return
        stamp = self.headers.get("X-DKIM-Signerd-Timestamp", "")
        expected = "v1=" + hmac.new(b"webhook-hmac-key", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
        if hmac.compare_digest(expected, self.headers.get("X-DKIM-Signerd-Signature", "")) and fresh:
            WebhookReceiver.events.append(json.loads(body))
        else:
            WebhookReceiver.bad.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def raw_exchange(path, data, read=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(path)
    s.sendall(data)
    reply = b""
    if read:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    s.close()
    return reply


def faults(folder, cli, signerd, module):
    receiver = http.server.HTTPServer(("127.0.0.1", 0), WebhookReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    app = Appliance(folder, cli, signerd, module,
                    webhook_url="http://127.0.0.1:%d/hook" % receiver.server_address[1])
    app.start()
    try:
        app.add_users()
        stranger = subprocess.run(["setpriv", "--reuid=daemon", "--regid=nogroup", "--clear-groups", cli,
                                   "signerd", "status", "--socket", app.socket], capture_output=True)
        check(stranger.returncode == 1 and b"not a configured peer" in stranger.stderr,
              "a peer uid that is not configured is refused: %s" % stranger.stderr.strip())

        for what, frame, expect in (
                ("an oversized frame", struct.pack(">IHH", 64 << 20, 1, 0), b"exceeds the limit"),
                ("another protocol version", struct.pack(">IHH", 4, 9, 0) + b"abcd", b"protocol version 9"),
                ("a malformed payload", struct.pack(">IHH", 6, 1, 0) + b"\x63\x00\x00\x00\x00\x00", b"malformed"),
                ("a payload with trailing bytes", struct.pack(">IHH", 5, 1, 0) + b"\x01\x00\x00\x00\x00", b"trailing")):
            reply = raw_exchange(app.socket, frame)
            check(b"protocol" in reply and expect in reply, "%s is refused with a protocol error" % what)
        started = time.monotonic()
        stalled = raw_exchange(app.socket, struct.pack(">IHH", 100, 1, 0) + b"only part")
        check(b"timed out" in stalled and time.monotonic() - started < 10, "a stalled frame times out")
        check(app.proc.poll() is None and "token:" in app.status(), "signerd is unharmed by bad frames")

        app.approve(app.request("rsa", "30m"))
        check(app.relay_sign("rsa", "rsa-sha256").returncode == 0, "signing works before the disk fills up")
        subprocess.run(["prlimit", "--pid", str(app.proc.pid), "--fsize=1:"], check=True)
        full = app.relay_sign("rsa", "rsa-sha256")
        check(full.returncode == 1 and b"unavailable" in full.stderr,
              "with the audit log unwritable, no signature is released: %s" % full.stderr.strip()[-160:])
        check("AUDIT LOG FAILING" in app.status(), "status says why signing stopped")
        denied = app.op("elevation", "request", "--operation", "sign", "--domain", DOMAIN, "--duration", "5m",
                        "--reason", "CHG-2", user="alice")
        check(denied.returncode == 1 and b"unavailable" in denied.stderr, "and no new request or grant either")
        subprocess.run(["prlimit", "--pid", str(app.proc.pid), "--fsize=unlimited:"], check=True)
        check(app.relay_sign("rsa", "rsa-sha256").returncode == 0, "signing resumes once the log is writable")
        metrics = app.metrics()
        check(re.search(r'dkim_signerd_refusals_total\{reason="protocol"\} [1-9]', metrics) is not None and
              re.search(r'dkim_signerd_audit_write_failures_total [1-9]', metrics) is not None and
              re.search(r'dkim_signerd_refusals_total\{reason="peer"\} [1-9]', metrics) is not None,
              "metrics count protocol, peer and audit refusals")

        grants = grant_states(app)
        for grant_id, state in grants.items():
            if state == "active":
                revoked = app.op("elevation", "revoke", "--grant", str(grant_id), "--reason", "done", user="carol",
                                 totp=True)
                check(revoked.returncode == 0, "grant %d revoked for the webhook: %s" % (grant_id, revoked.stderr.strip()))
        deadline = time.time() + 30  # the webhook retries after 1, 2, 4 and 8 s
        while time.time() < deadline and not {"request.pending", "request.approved", "grant.revoked"} <= {
                e["type"] for e in WebhookReceiver.events}:
            time.sleep(0.1)
        types = [e["type"] for e in WebhookReceiver.events]
        check({"request.pending", "request.approved", "grant.revoked"} <= set(types) and not WebhookReceiver.bad,
              "the webhook receives HMAC-signed events: %s" % types)
        check(WebhookReceiver.failed_first and json.loads(WebhookReceiver.failed_first[0]) in WebhookReceiver.events,
              "a delivery that failed (HTTP 500) was retried and arrived")
        verify = app.cli("audit", "verify", "--db", app.db, check=False)
        check(verify.returncode == 0, "the chain is intact after the failed writes: %s" % verify.stdout.strip())
    finally:
        app.stop()
        receiver.shutdown()


def pin_sources(folder, cli, signerd, module):
    os.chmod(folder, 0o755)  # the relay (nobody) reaches the sockets in the sub-folders
    # A configuration error names the file, the line and the key.
    bad = os.path.join(folder, "bad.toml")
    with open(bad, "w") as f:
        f.write('module = "%s"\ntoken = "dkim"\n[pin]\nsource = "file"\nfile = "/x"\n[peers]\nrelay = ["nobody"]\n'
                '[policy.sign]\nquorum = 0\n' % module)
    result = subprocess.run([signerd, "--config", bad, "--check-config"], capture_output=True)
    check(result.returncode == 2 and ("%s:9:10: key 'policy.sign.quorum'" % bad).encode() in result.stderr,
          "a config error names file:line:column and the key: %s" % result.stderr.strip())

    # sealed: `dkim-appliance pin seal` checks the PIN against the token, then seals it with
    # systemd-creds, with a host key of this test's own (SYSTEMD_CREDENTIAL_SECRET, never the
    # machine's); systemd's part at the unit's start (LoadCredentialEncrypted=) is played by
    # `systemd-creds decrypt` into a folder given as $CREDENTIALS_DIRECTORY.
    sub = os.path.join(folder, "sealed")
    os.makedirs(sub)
    app = Appliance(sub, cli, signerd, module, pin_source="sealed")
    missing = subprocess.run([signerd, "--config", app.config], capture_output=True, env=app.env)
    check(missing.returncode == 2 and b"CREDENTIALS_DIRECTORY is not set" in missing.stderr,
          "sealed mode without $CREDENTIALS_DIRECTORY refuses to start: %s" % missing.stderr.strip())
    sealing = dict(app.env, SYSTEMD_CREDENTIAL_SECRET=os.path.join(sub, "credential.secret"))
    cred = os.path.join(sub, "signerd-pin.cred")
    seal = [cli, "pin", "seal", "--signerd-config", app.config, "--with-key", "host"]
    wrong = app.secret_file("wrong-pin-sealed", "not-the-pin")
    refused = subprocess.run(seal + ["--output", cred, "--pin-file", wrong], capture_output=True, env=sealing)
    check(refused.returncode != 0 and not os.path.exists(cred) and b"not-the-pin" not in refused.stdout + refused.stderr,
          "pin seal refuses a PIN the token refuses, and seals nothing: %s" % refused.stderr.strip())
    with open(app.pin) as f:
        pin_text = f.read().strip()
    sealed = subprocess.run(seal + ["--output", cred, "--pin-file", app.pin], capture_output=True, env=sealing)
    with open(cred, "rb") as f:
        cred_bytes = f.read()
    check(sealed.returncode == 0 and pin_text.encode() not in cred_bytes and os.stat(cred).st_mode & 0o077 == 0,
          "pin seal checks the PIN with the token and seals it (0600, no PIN in clear): %s"
          % (sealed.stdout + sealed.stderr).strip())
    from_stdin = subprocess.run(seal + ["--output", cred + ".stdin"], input=(pin_text + "\n").encode(),
                                capture_output=True, env=sealing)
    check(from_stdin.returncode == 0 and os.path.exists(cred + ".stdin"),
          "pin seal reads the PIN from standard input too: %s" % from_stdin.stderr.strip())
    other_host = dict(sealing, SYSTEMD_CREDENTIAL_SECRET=os.path.join(sub, "another-host.secret"))
    subprocess.run(["systemd-creds", "encrypt", "--name=x", "-", os.path.join(sub, "x.cred")], input=b"x",
                   env=other_host, capture_output=True)
    elsewhere = subprocess.run(["systemd-creds", "decrypt", "--name=pin", cred, "-"], capture_output=True,
                               env=other_host)
    check(elsewhere.returncode != 0 and pin_text.encode() not in elsewhere.stdout,
          "the credential does not open with another host key: %s" % elsewhere.stderr.strip())
    creds = os.path.join(sub, "creds")
    os.makedirs(creds, mode=0o700)
    subprocess.run(["systemd-creds", "decrypt", "--name=pin", cred, os.path.join(creds, "pin")],
                   env=sealing, check=True)
    os.chmod(os.path.join(creds, "pin"), 0o400)
    app.start(env=dict(app.env, CREDENTIALS_DIRECTORY=creds))
    try:
        app.add_users()
        app.approve(app.request("rsa", "10m"))
        signed = app.relay_sign("rsa", "rsa-sha256")
        check("token: logged in" in app.status() and signed.returncode == 0,
              "sealed mode: logged in with the sealed credential, signing works: %s" % signed.stderr.strip())
        # A restart while the grant is active: signerd logs in again by itself, from the
        # credential systemd hands it at each start.
        app.stop()
        app.start(env=dict(app.env, CREDENTIALS_DIRECTORY=creds))
        signed = app.relay_sign("rsa", "rsa-sha256")
        check("token: logged in" in app.status() and signed.returncode == 0,
              "sealed mode: after a restart with a grant active the token logs in by itself and signs: %s"
              % signed.stderr.strip())
        with open(os.path.join(sub, "signerd.log"), errors="replace") as f:
            check(pin_text not in f.read(), "sealed mode: the PIN is not in signerd's log")
    finally:
        app.stop()

    # approver mode: the PIN comes with the approval that activates a grant, and is not kept.
    sub = os.path.join(folder, "approver")
    os.makedirs(sub)
    app = Appliance(sub, cli, signerd, module, pin_source="approver")
    app.start()
    try:
        app.add_users()
        request_id = app.request("rsa", "10m")
        no_pin = app.op("elevation", "approve", "--id", str(request_id), user="bob", totp=True)
        check(no_pin.returncode == 1 and b"needs the token PIN" in no_pin.stderr,
              "approver mode: an activating approval without the PIN is refused: %s" % no_pin.stderr.strip())
        wrong = app.secret_file("wrong-pin", "not-the-pin")
        refused = app.op("elevation", "approve", "--id", str(request_id), "--pin-file", wrong, user="bob", totp=True)
        check(refused.returncode == 1 and b"refused the PIN" in refused.stderr and "token: logged out" in app.status(),
              "approver mode: a wrong PIN is refused and approves nothing: %s" % refused.stderr.strip())
        grant_id = app.approve(request_id, "carol", "--pin-file", app.pin)
        signed = app.relay_sign("rsa", "rsa-sha256")
        check("token: logged in" in app.status() and signed.returncode == 0,
              "approver mode: the approver's PIN logs the token in and signing works: %s" % signed.stderr.strip())
        app.op("elevation", "revoke", "--grant", str(grant_id), "--reason", "done", user="bob", totp=True, check=True)
        again = app.request("rsa", "10m")
        kept = app.op("elevation", "approve", "--id", str(again), user="carol", totp=True)
        check(kept.returncode == 1 and b"needs the token PIN" in kept.stderr and "token: logged out" in app.status(),
              "approver mode: the PIN was not kept after the logout")
        # A restart while a grant is active waits for people: the PIN was only in memory.
        active = app.approve(again, "carol", "--pin-file", app.pin)
        app.stop()
        app.start()
        refused = app.relay_sign("rsa", "rsa-sha256")
        check(grant_states(app).get(active) == "active" and "token: logged out" in app.status()
              and refused.returncode != 0,
              "approver mode: after a restart the grant is active but the token logged out, nothing signs: %s"
              % refused.stderr.strip())
        third = app.request("rsa", "10m")
        app.approve(third, "bob", "--pin-file", app.pin)
        signed = app.relay_sign("rsa", "rsa-sha256")
        check("token: logged in" in app.status() and signed.returncode == 0,
              "approver mode: the next approval with the PIN logs the token in again: %s" % signed.stderr.strip())
    finally:
        app.stop()

def renewal(folder, cli, signerd, module):
    WebhookReceiver.failed_first.append(b"")  # no failed first delivery here: events arrive at once
    receiver = http.server.HTTPServer(("127.0.0.1", 0), WebhookReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    app = Appliance(folder, cli, signerd, module, sign_policy=['renew_before = "50%"'],
                    webhook_url="http://127.0.0.1:%d/hook" % receiver.server_address[1])
    dns_server = DnsServer(folder, app.records, DOMAIN)
    app.start()
    results = []  # (time, returncode, signed message)
    stop = threading.Event()

    def keep_signing():
        while not stop.is_set():
            done = app.relay_sign("ed", "ed25519-sha256")
            results.append((time.time(), done.returncode, done.stdout if done.returncode == 0 else done.stderr))
            time.sleep(0.2)

    signer = threading.Thread(target=keep_signing, daemon=True)
    try:
        app.add_users()
        old = app.approve(app.request("*", "40s", reason="CHG-300 steady mail"))
        granted_at = time.time()
        signer.start()
        renewal_line = None
        for _ in until(30):
            pending = app.op("elevation", "list", "--pending", check=True).stdout.decode().splitlines()
            renewal_line = next((x for x in pending if "RENEWAL of grant %d " % old in x), None)
            if renewal_line:
                break
            time.sleep(0.2)
        filed_after = time.time() - granted_at
        check(renewal_line is not None and 15 <= filed_after <= 25,
              "the grant files its renewal halfway (after %.1f s of 40): %s" % (filed_after, renewal_line))
        if renewal_line is None:
            return
        renewal_id = int(renewal_line.split("\t")[0])
        check("renewal of grant %d (CHG-300 steady mail)" % old in renewal_line and "\talice\t" in renewal_line,
              "the renewal is alice's, with the scope and the original reason")
        for _ in until(10):
            if any(e["type"] == "request.renewal" for e in WebhookReceiver.events):
                break
            time.sleep(0.1)
        hooks = [e for e in WebhookReceiver.events if e["type"] == "request.renewal"]
        check(len(hooks) == 1 and hooks[0]["request_id"] == renewal_id and hooks[0]["grant_id"] == old
              and not WebhookReceiver.bad,
              "the webhook receives request.renewal naming the request and the grant it renews: %s" % hooks)

        new = app.approve(renewal_id, "carol")
        listed = [x for x in app.op("grant", "list", check=True).stdout.decode().splitlines()
                  if x.split("\t")[0] == str(new)]
        check(len(listed) == 1 and listed[0].split("\t")[1] == "scheduled" and
              listed[0].endswith("renews grant %d" % old),
              "the approved renewal is scheduled, linked to the old grant: %s" % listed)
        # Sign across the old grant's end (40 s after its approval) and a few seconds beyond.
        time.sleep(max(0.0, granted_at + 45 - time.time()))
        stop.set()
        signer.join(timeout=15)
        states = grant_states(app)
        check(states.get(old) == "expired" and states.get(new) == "active",
              "after the boundary the old grant is expired, the new one active: %s" % states)
        refused = [(round(t - granted_at, 2), rc, out[-120:]) for t, rc, out in results if rc != 0]
        # However slowly the client goes (a sign command takes a second or more under a
        # sanitizer on a loaded machine), it signed in the seconds on either side of the boundary.
        around = [t - granted_at for t, _, _ in results if 35 <= t - granted_at <= 45]
        check(len(results) >= 10 and any(t < 40 for t in around) and any(t > 40 for t in around) and not refused,
              "a relay client signing every 0.2 s across the boundary is never refused (%d signatures, "
              "%d within 5 s of it): %s" % (len(results), len(around), refused[:3]))
        db = sqlite3.connect("file:%s?mode=ro" % app.db, uri=True)
        signs = db.execute("SELECT grant_id, outcome FROM audit WHERE action = 'sign' ORDER BY seq").fetchall()
        logouts = db.execute("SELECT count(*) FROM audit WHERE action = 'token.logout'").fetchone()[0]
        renewal_records = db.execute("SELECT actor, grant_id FROM audit WHERE action = 'elevation.renewal' "
                                     "AND request_id = ?", (renewal_id,)).fetchall()
        db.close()
        by_grant = [g for g, outcome in signs if outcome == "issued"]
        switch = by_grant.index(new) if new in by_grant else -1
        check(switch > 0 and set(by_grant[:switch]) == {old} and set(by_grant[switch:]) == {new} and
              all(outcome == "issued" for _, outcome in signs),
              "the signatures before the boundary are grant %d's, after it grant %d's, none locked: %d + %d"
              % (old, new, switch, len(by_grant) - switch))
        check(logouts == 0, "the token stayed logged in across the boundary (no token.logout record)")
        check(renewal_records == [("signerd", old)], "the renewal has its audit record: %s" % renewal_records)
        signed = [out for _, rc, out in results if rc == 0]
        check(dkimpy_verifies(dns_server, signed[0]) and dkimpy_verifies(dns_server, signed[-1]),
              "dkimpy verifies the first and the last signature")
    finally:
        stop.set()
        app.stop()
        dns_server.stop()
        receiver.shutdown()


def opencryptoki(folder, cli, signerd, module):
    """signerd on openCryptoki 3.8.1's software token (run inside tests/support/opencryptoki/
    private-run.sh, which starts a private pkcsslotd with an uninitialised token): the CLI
    initialises it (factory SO PIN, a user PIN of at most 8 characters), makes an RSA key (the
    token has no EdDSA, no CKA_ALLOWED_MECHANISMS, no CKM_SHA256_RSA_PKCS); grants log it in and
    out, signatures made with CKM_RSA_PKCS over our DigestInfo verify with dkimpy and Mail::DKIM,
    a grant survives kill -9 (new object handles after the new login)."""
    app = Appliance(folder, cli, signerd, module, selectors=(("rsa", "rsa-2048"),), pins=("87654321", "pin-1234"))
    dns_server = DnsServer(folder, app.records, DOMAIN)
    app.start()
    try:
        listed = app.cli("key", "list", "--module", module, "--token", "dkim", "--pin-file", app.pin).stdout.decode()
        check("signerd.example  rsa" in listed and "protected (this token has no CKA_ALLOWED_MECHANISMS"
              in listed, "the key is listed as protected, with the token's missing mechanism limit said: %s"
              % listed.strip())
        ed = app.cli("key", "generate", "--module", module, "--token", "dkim", "--pin-file", app.pin, "--domain",
                     DOMAIN, "--selector", "ed", "--algorithm", "ed25519", check=False)
        check(ed.returncode != 0 and b"CKR_MECHANISM_INVALID" in ed.stderr and b"does not support" in ed.stderr,
              "an Ed25519 key is refused with the token's reason: %s" % ed.stderr.strip()[-200:])
        app.add_users()
        locked = app.relay_sign("rsa", "rsa-sha256")
        check(locked.returncode == 3 and b"locked" in locked.stderr, "without a grant the relay is told 'locked'")
        check("token: logged out" in app.status(), "the token is logged out while no grant is active")
        grant = app.approve(app.request("rsa", "30m"))
        check("token: logged in" in app.status(), "approval logs the token in")
        signed = [app.relay_sign("rsa", "rsa-sha256") for _ in range(3)]
        check(all(r.returncode == 0 for r in signed), "the relay signs through signerd: %s"
              % [r.stderr[-200:] for r in signed if r.returncode != 0])
        check(all(dkimpy_verifies(dns_server, r.stdout) for r in signed), "dkimpy verifies the RSA signatures")
        check(mail_dkim_result(dns_server, signed[0].stdout) == "pass", "Mail::DKIM verifies the RSA signature")

        revoked = app.op("elevation", "revoke", "--grant", str(grant), "--reason", "incident 8", user="carol",
                         totp=True)
        check(revoked.returncode == 0 and b"the token is logged out" in revoked.stdout,
              "revoke logs openCryptoki's token out: %s" % revoked.stdout.strip())
        check(app.relay_sign("rsa", "rsa-sha256").returncode == 3, "after the revoke the relay is locked again")

        long_grant = app.approve(app.request("rsa", "30m"), "carol")
        check(app.relay_sign("rsa", "rsa-sha256").returncode == 0, "a new grant signs again (new key handles)")
        app.kill9()
        app.start()
        check(grant_states(app).get(long_grant) == "active", "after kill -9 the grant is active again")
        after = app.relay_sign("rsa", "rsa-sha256")
        check(after.returncode == 0 and dkimpy_verifies(dns_server, after.stdout),
              "the restored grant signs verifiably after the restart: %s" % after.stderr[-200:])
        code = app.stop()
        check(code == 0, "SIGTERM stops signerd cleanly")
        # The token has no EdDSA: the checkpoints are signed with an RSA audit key.
        audit_key = app.cli("audit", "key", "--module", module, "--token", "dkim").stdout.decode().strip()
        check(len(base64.b64decode(audit_key)) > 256, "`audit key` prints an RSA key's SubjectPublicKeyInfo")
        verify = app.cli("audit", "verify", "--db", app.db, "--module", module, "--token", "dkim", check=False)
        check(verify.returncode == 0 and b"chain intact" in verify.stdout and b"signatures valid" in verify.stdout,
              "the audit chain is intact and its checkpoints' RSA signatures verify: %s" % verify.stdout.strip())
        db = sqlite3.connect("file:%s?mode=ro" % app.db, uri=True)
        algorithms = [re.search(r" alg=(\S+)", row[0]).group(1) for row in
                      db.execute("SELECT detail FROM audit WHERE action = 'audit.checkpoint' AND outcome = 'ok'")]
        db.close()
        check(algorithms and set(algorithms) == {"rsa-sha256"},
              "the %d checkpoints are rsa-sha256: %s" % (len(algorithms), set(algorithms)))
    finally:
        app.stop()
        dns_server.stop()


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    group, cli, signerd, module = sys.argv[1:]
    groups = {"lifecycle": lifecycle, "faults": faults, "pin-sources": pin_sources, "renewal": renewal,
              "opencryptoki": opencryptoki}
    folder = tempfile.mkdtemp(prefix="dkim-signerd-")
    try:
        groups[group](folder, cli, signerd, module)
    finally:
        if FAILURES:
            log = os.path.join(folder, "signerd.log")
            if os.path.exists(log):
                print("--- signerd.log\n" + open(log).read()[-4000:])
        shutil.rmtree(folder, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
