"""`dkim-appliance up` end to end, as the README's run command uses it (as root):

  tour         first run into an empty folder (--json facts; users, token, keys, configs and
               modes; each daemon as its own user); the README's tour: swaks gets 451 and a
               request is filed, admin requests, approver approves with a TOTP code, the message
               is signed into the maildir and dkimpy verifies it against the printed records
               served by dnsmasq; /healthz over TLS pinned to the printed fingerprint; passkeys
               out of the box: signerd's [webauthn] names localhost and the console's origin, the
               printed console URL is https://localhost:PORT/ and verifies against webd's
               certificate (subjectAltName DNS:localhost and the listen address); revoke,
               451 again; a DMARC report imported into dkim-reportd (once: a second import
               finds it stored) and its findings; SIGINT stops every daemon cleanly (reportd
               after relayd and webd, before signerd); a second run reuses everything
               (same keys, users, certificate) with a new next hop (smtp-sink)
  rotation     the README's key rotation in the demo: key.rotate approved by one approver, the
               next RSA key generated, published to dnsmasq with `dns records --dnsmasq`,
               activated, and after the grace period retired under a key.retire grant that
               needs both demo approvers (one is not enough); the audit log verifies
  supervision  kill -9 of a daemon is restarted with back-off; a daemon that stops answering
               (SIGSTOP) misses its watchdog pings and is aborted and restarted; SIGTERM stops
               the appliance; refusals: a second `up` on the same folder, a bad key in up.toml
               (file:line), a non-root user, a state folder under a folder of mode 0700 (the
               daemons' users could not reach it: refused before anything is made)

  cluster      up --cluster 2: a PostgreSQL server initialised under the state folder and run
               as the postgres user, two signerds (each its own token and selectors) and two
               relays on consecutive ports, one webd and one reportd; a grant approved through
               node 1 signs on both relays, each message with its node's keys (dkimpy verifies
               all four against the printed records), cluster status lists both nodes, a revoke
               through node 1 stops node 2's relay, audit verify checks the cluster's log with
               both nodes' audit keys; SIGINT stops everything, PostgreSQL last; a second run
               reuses the folder (up.toml keeps cluster = 2; same keys and users)

usage: appliance_up.py GROUP DKIM_APPLIANCE
"""

import atexit
import base64
import glob
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import DnsServer, check, free_port, summary  # noqa: E402

import dkim  # noqa: E402  (python3-dkim)
import dns.resolver  # noqa: E402  (python3-dnspython)


_QUIET_DNS = []


def quiet_dns():
    """A dnsmasq on 127.0.0.1 that answers example.test alone and refuses the rest: what relayd's
    inbound checks and webd's reverse DNS ask (up --dns-server), so that no query leaves the
    machine (report mail from google.com has its DKIM key looked up)."""
    if not _QUIET_DNS:
        folder = tempfile.mkdtemp(prefix="up-dns-")
        _QUIET_DNS.append(DnsServer(folder, {}, "example.test"))
        atexit.register(_QUIET_DNS[0].stop)
    return _QUIET_DNS[0]


class Up:
    """One `dkim-appliance up` process and the facts it printed."""

    def __init__(self, cli, state, *options):
        self.cli, self.state = cli, state
        if "--inbound" not in options:  # not the default port: the groups run side by side
            self.inbound = free_port()
            options = options + ("--inbound", "127.0.0.1:%d" % self.inbound)
        if "--dns-server" not in options:
            options = options + ("--dns-server", quiet_dns().address())
        self.err = open(os.path.join(os.path.dirname(state), "up-%d.err" % time.monotonic_ns()), "w+")
        self.proc = subprocess.Popen([cli, "up", "--state-dir", state, "--json", *options],
                                     stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = self.proc.stdout.readline()
        try:
            self.facts = json.loads(line) if line.strip() else None
        except ValueError:  # not the facts: said below, and the caller's checks fail
            print("up's first line of output is not JSON: %r" % line[:300])
            self.facts = None
        if self.facts is None:
            print(self.stderr()[-3000:])

    def stderr(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def stop(self, sig=signal.SIGINT):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def daemon_pids(state):
    """name -> pid of the daemons running with this state folder's configs."""
    out = {}
    for status in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(status, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 3 and argv[1] == b"--config" and argv[2].startswith(state.encode() + b"/etc/"):
            out[os.path.basename(argv[0].decode())] = int(status.split("/")[2])
    return out


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def wait_for(predicate, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


class Totp:
    """RFC 6238 codes computed here (not by our code), each time step used once: signerd
    refuses a replayed step. The enrolment confirmed the step `up` ran in."""

    def __init__(self, secret):
        self.key = base64.b32decode(secret + "=" * (-len(secret) % 8))
        self.last = int(time.time() // 30)

    def code(self):
        while True:
            now = int(time.time() // 30)
            step = max(now - 1, self.last + 1)
            if step <= now + 1:
                break
            time.sleep(1)
        self.last = step
        mac = hmac.new(self.key, struct.pack(">Q", step), hashlib.sha1).digest()
        o = mac[19] & 15
        return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000)


def swaks(port, subject):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port, "--from", "demo@example.test",
                        "--to", "someone@example.net", "--header", "Subject: " + subject,
                        "--timeout", "30"], capture_output=True, text=True)
    # The reply to the final dot: the last one before QUIT's 221.
    final = [l for l in r.stdout.splitlines() if re.match(r"^ *(<-|<\*\*) +\d{3} ", l)
             and not re.match(r"^ *(<-|<\*\*) +221 ", l)]
    return final[-1].split(None, 2)[1:] if final else ["none", r.stdout[-500:]]


def zone_records(lines):
    """name -> TXT text from the zone lines `up` printed."""
    out = {}
    for line in lines:
        name = line.split()[0].rstrip(".")
        out[name] = "".join(re.findall(r'"([^"]*)"', line))
    return out


def cli(up, *args, stdin=None):
    return subprocess.run([up.cli, "--config", os.path.join(up.state, "dkim-appliance.toml"), *args],
                          capture_output=True, text=True, input=stdin)


def as_user(up, user, *args, totp=None):
    """As `user` (password file); a TOTP code goes on standard input, not into the process list."""
    extra = ["--totp-stdin"] if totp is not None else []
    return cli(up, *args, "--user", user, "--password-file",
               os.path.join(up.state, "secrets", user + ".password"), *extra,
               stdin=None if totp is None else totp + "\n")


def tour(folder, appliance):
    state = os.path.join(folder, "state")
    smtp, https = free_port(), free_port()
    up = Up(appliance, state, "--smtp", "127.0.0.1:%d" % smtp, "--https", "127.0.0.1:%d" % https)
    facts = up.facts
    check(facts is not None, "up prints its facts as one JSON object")
    if facts is None:
        up.stop()
        return
    check(facts["console_url"] == "https://localhost:%d/" % https and facts["smtp"] == "127.0.0.1:%d" % smtp,
          "the facts name the console URL (localhost: passkeys need a host name) and the SMTP address: %s"
          % facts["console_url"])
    users = {u["name"]: u for u in facts["users"]}
    check(set(users) == {"admin", "approver", "approver2"} and
          all(u["password"] and u["totp_secret"] and u["otpauth_uri"] for u in users.values()),
          "an admin and two approvers (key.retire needs two), each with a password and a TOTP seed")
    check(users.get("approver2", {}).get("roles") == "approver", "approver2 is an approver")
    check(facts["swaks"].startswith("swaks --server 127.0.0.1:%d " % smtp), "a ready-to-paste swaks command")
    check(facts["next_hop"] == "maildir:" + os.path.join(state, "maildir"), "mail goes to a maildir under the state folder")
    printed = zone_records(facts["dns_records"])
    check(printed.get("_dmarc.example.test") == "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.test; "
          "ruf=mailto:dmarc-failures@example.test" and
          printed.get("_smtp._tls.example.test") == "v=TLSRPTv1; rua=mailto:tls-reports@example.test",
          "the printed records send DMARC and TLS reports to up.toml's [reports] addresses: %s" % sorted(printed))
    check(facts.get("reports") == {"aggregate_address": "dmarc-reports@example.test",
                                   "failure_address": "dmarc-failures@example.test",
                                   "tls_address": "tls-reports@example.test"},
          "the facts name the report addresses: %s" % facts.get("reports"))

    # What it made, and who owns it.
    mode = lambda p: os.stat(os.path.join(state, p)).st_mode & 0o777  # noqa: E731
    owner = lambda p: os.stat(os.path.join(state, p)).st_uid  # noqa: E731
    import pwd
    ids = {n: pwd.getpwnam(n).pw_uid for n in ("dkim-signer", "dkim-relay", "dkim-web", "dkim-report")}
    check(mode("secrets") == 0o700 and owner("secrets") == 0, "secrets/ is root's, mode 0700")
    check(mode("signerd/user.pin") == 0o600 and owner("signerd/user.pin") == ids["dkim-signer"],
          "the user PIN is dkim-signer's, mode 0600")
    check(all(owner(p) == ids["dkim-signer"] for p in ["tokens"] + [os.path.relpath(x, state) for x in glob.glob(state + "/tokens/**", recursive=True)]),
          "the token's files belong to dkim-signer")
    check(os.path.exists(os.path.join(state, "signerd", "signerd.db")), "signerd's SQLite state is in the folder")
    check(mode("reportd") == 0o700 and owner("reportd") == ids["dkim-report"] and
          os.path.exists(os.path.join(state, "reportd", "reports.db")),
          "the report store is dkim-report's, in reportd/ (0700)")
    for name in ("signerd", "relayd", "webd", "reportd"):
        with open(os.path.join(state, "etc", name + ".toml")) as f:
            text = f.read()
        check(text.count("\n#") >= 3, "etc/%s.toml is commented" % name)
    pids = daemon_pids(state)
    check(set(pids) == {"dkim-signerd", "dkim-relayd", "dkim-webd", "dkim-reportd"},
          "four daemons run (%s)" % sorted(pids))
    check(uid_of(pids.get("dkim-signerd", 0)) == ids["dkim-signer"] and
          uid_of(pids.get("dkim-relayd", 0)) == ids["dkim-relay"] and
          uid_of(pids.get("dkim-webd", 0)) == ids["dkim-web"] and
          uid_of(pids.get("dkim-reportd", 0)) == ids["dkim-report"], "each daemon runs as its own user")

    # The console answers over TLS with the certificate whose fingerprint was printed.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", https), timeout=10) as raw:
        with ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while True:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                answer += chunk
    fingerprint = ":".join("%02X" % b for b in hashlib.sha256(der).digest())
    check(fingerprint == facts["certificate_sha256"], "the console's certificate has the printed fingerprint")
    check(answer.startswith(b"HTTP/1.1 200") and b"ok" in answer, "/healthz answers ok")
    # Passkeys out of the box: signerd's [webauthn] names localhost and the console's origin, and
    # the printed URL verifies against webd's certificate with the host name localhost (its
    # subjectAltName carries DNS:localhost next to the listen address).
    with open(os.path.join(state, "etc", "signerd.toml"), "rb") as f:
        signerd_toml = tomllib.load(f)
    check(signerd_toml.get("webauthn") == {"rp_id": "localhost", "origins": ["https://localhost:%d" % https]},
          "signerd.toml's [webauthn]: rp_id localhost, the console's origin (%s)" % signerd_toml.get("webauthn"))
    pem = ssl.DER_cert_to_PEM_cert(der)
    sans = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem,
                          capture_output=True, text=True).stdout
    check("DNS:localhost" in sans and "IP Address:127.0.0.1" in sans,
          "the certificate's subjectAltName: DNS:localhost and the listen address (%s)" % sans.strip())
    verified_ctx = ssl.create_default_context(cadata=pem)
    try:
        with socket.create_connection(("localhost", https), timeout=10) as raw:
            with verified_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n\r\n" % https)
                page = b""
                while True:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    page += chunk
        console_error = ""
    except (OSError, ssl.SSLError) as e:
        page, console_error = b"", str(e)
    check(page.startswith(b"HTTP/1.1 200") and b"<html" in page.lower(),
          "GET %s verifies against the certificate with host name localhost and serves the console (%s%s)"
          % (facts["console_url"], console_error, page[:60]))

    # The tour: locked until a grant, request, approve, send, verify, revoke, 451.
    code, text = swaks(smtp, "before any grant")
    check(code == "451" and "awaiting approval" in text, "without a grant the relay answers 451 and files a request (%s %s)" % (code, text))
    approver = Totp(users["approver"]["totp_secret"])
    requested = as_user(up, "admin", "elevation", "request", "--operation", "sign", "--domain", "example.test",
                        "--selector", "*", "--duration", "15m", "--reason", "the README tour")
    request = re.search(r"request (\d+)", requested.stdout)
    check(requested.returncode == 0 and request, "admin requests a signing elevation (%s)" % requested.stderr.strip())
    check(request and request.group(1) == "2", "it is request 2, as the README's tour says (%s)" % requested.stdout.strip())
    approved = as_user(up, "approver", "elevation", "approve", "--id", request.group(1) if request else "0",
                       totp=approver.code())
    check(approved.returncode == 0 and "grant" in approved.stdout, "approver approves with a TOTP code (%s)" % approved.stderr.strip())
    code, text = swaks(smtp, "inside the grant")
    check(code == "250", "inside the grant the relay signs and delivers (%s %s)" % (code, text))
    delivered = sorted(glob.glob(os.path.join(state, "maildir", "new", "*")), key=os.path.getmtime)
    check(len(delivered) == 1, "one message in the maildir")
    dns_server = DnsServer(folder, zone_records(facts["dns_records"]), "example.test")
    try:
        with open(delivered[-1], "rb") as f:
            message = f.read()
        d = dkim.DKIM(message)
        sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
        results = [bool(d.verify(idx=i, dnsfunc=dns_server.dkimpy_dnsfunc())) for i in range(len(sigs))]
        check(len(results) == 2 and all(results), "dkimpy verifies both signatures against the printed records (%s)" % results)
    finally:
        dns_server.stop()
    # The README's step 5: the records `up` wrote for dnsmasq, and our own verifier.
    dns_port = free_port()
    dnsmasq = subprocess.Popen(["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1",
                                "--bind-interfaces", "--port=%d" % dns_port, "--pid-file=", "--user=root",
                                "--conf-file=" + facts["dnsmasq_conf"]], stderr=subprocess.DEVNULL)
    try:
        verified = wait_for(lambda: _verify(appliance, dns_port, delivered[-1]), 10, step=0.5)
        check(verified, "dkim-appliance verify passes both signatures with the dnsmasq.conf that up wrote")
        # dns check with the CLI defaults up wrote (the report addresses among them).
        checked = cli(up, "dns", "check", "example.test", "--outbound", "127.0.0.1",
                      "--dns-server", "127.0.0.1:%d" % dns_port, "--json")
        try:
            findings = {f["record"]: f["status"] for f in json.loads(checked.stdout)["findings"]}
        except ValueError:
            findings = {"error": (checked.stdout + checked.stderr).strip()[-300:]}
        check(findings.get("DMARC") == "OK" and findings.get("TLS-RPT") == "OK",
              "dns check finds DMARC and TLS-RPT with up's report addresses in the dnsmasq.conf: %s" % findings)
    finally:
        dnsmasq.kill()
        dnsmasq.wait()
    grants = cli(up, "grant", "list", "--active").stdout.strip().splitlines()
    grant = grants[-1].split("\t")[0] if grants else "0"
    check(grant == "1", "the grant is grant 1, as the README's tour says (%s)" % grants)
    revoked = as_user(up, "approver", "elevation", "revoke", "--grant", grant, "--reason", "tour done",
                      totp=approver.code())
    check(revoked.returncode == 0, "approver revokes the grant (%s)" % revoked.stderr.strip())
    code, text = swaks(smtp, "after the revoke")
    check(code == "451", "after the revoke the relay answers 451 (%s %s)" % (code, text))
    # The README's step 7, as root (the local operator).
    shown = cli(up, "audit", "show", "--limit", "1000")
    check(shown.returncode == 0 and "grant.revoke" in shown.stdout and "tour done" in shown.stdout,
          "audit show lists the tour, the revoke among it (%s)" % shown.stderr.strip())
    # The README's step 8: a receiver's report mail to the aggregate address, on relayd's inbound
    # listener (the domain's MX): 250 once dkim-reportd stored it; then a report file imported
    # with the CLI (its socket from the CLI defaults up wrote), stored once, and what the reports
    # mean next to signerd's signing record.
    check(facts.get("inbound_smtp") == "127.0.0.1:%d" % up.inbound, "the facts name the inbound listener")
    mail = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "dmarc-reports",
                        "aggregate", "google.com-borschow.com-report.eml")
    sent = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % up.inbound, "--from",
                           "noreply-dmarc-support@google.com", "--to", "dmarc-reports@example.test",
                           "--data", mail, "--timeout", "30"], capture_output=True, text=True)
    check(re.search(r"<- +250 2\.0\.0 Ok: report stored \(submission \d+\)", sent.stdout),
          "report mail to the aggregate address is stored by dkim-reportd through relayd's inbound "
          "listener (%s)" % sent.stdout[-300:])
    check(len(glob.glob(os.path.join(state, "maildir", "new", "*"))) == 1, "and never reaches the next hop")
    report = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "dmarc-reports",
                          "aggregate", "example.net_example.com_1529366400_1529452799.xml")
    imported = cli(up, "reports", "import", report)
    check(imported.returncode == 0 and ": 1 reports stored, 0 already stored" in imported.stdout,
          "reports import hands the report to dkim-reportd, which stores it (%s%s)" % (
              imported.stdout.strip(), imported.stderr.strip()))
    again = cli(up, "reports", "import", report)
    check(again.returncode == 0 and ": 0 reports stored, 1 already stored" in again.stdout,
          "imported again, it is found already stored (%s%s)" % (again.stdout.strip(), again.stderr.strip()))
    found = cli(up, "reports", "findings")
    check(found.returncode == 0 and found.stdout.strip() and "example.com" in found.stdout,
          "reports findings says what the reports mean (%s%s)" % (found.stdout.strip()[-300:], found.stderr.strip()))
    # The console's Reports view reads the same store through webd (reportd's web peer): an API
    # token of admin's (an auditor too) asks the dashboard.
    made = as_user(up, "admin", "apitoken", "create", "--label", "tour", "--ttl", "1h",
                   totp=Totp(users["admin"]["totp_secret"]).code())
    token = made.stdout.strip().splitlines()[-1] if made.returncode == 0 and made.stdout.strip() else ""
    status, body = _https_get(https, "/api/v1/reports/dashboard", token)
    try:
        domains = json.loads(body).get("domains")
    except ValueError:
        domains = None
    check(status == 200 and sorted(domains or []) == ["borschow.com", "example.com"],
          "webd's reports API reads the imported report from dkim-reportd (%s %s)" % (status, body[:200]))
    outsider = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", up.cli,
                                  "reports", "findings", "--reportd-socket",
                                  os.path.join(state, "run", "reportd", "reportd.sock")],
                                 capture_output=True, text=True)
    check(outsider.returncode != 0, "a user that is no peer of reportd's cannot reach its socket")

    status = up.stop(signal.SIGINT)
    check(status == 0, "Ctrl-C (SIGINT) stops up with status 0 (%s)" % status)
    err = up.stderr()
    check(all("%s exited with status 0" % d in err for d in ("dkim-signerd", "dkim-relayd", "dkim-webd",
                                                            "dkim-reportd")),
          "every daemon stopped cleanly")
    order = [err.find("%s exited" % d) for d in ("dkim-relayd", "dkim-webd", "dkim-reportd", "dkim-signerd")]
    check(min(order) >= 0 and max(order[:2]) < order[2] < order[3],
          "relayd and webd stop first, then reportd, then signerd (%s)" % order)
    check(wait_for(lambda: not daemon_pids(state), 10), "no daemon is left running")
    audit = subprocess.run([appliance, "audit", "verify", "--db", os.path.join(state, "signerd", "signerd.db")],
                           capture_output=True, text=True)
    check(audit.returncode == 0, "the audit log verifies (%s)" % (audit.stdout + audit.stderr).strip()[-200:])

    # The second run reuses everything; --next-hop changes where mail goes (and is saved).
    sink_dir = os.path.join(folder, "sink")
    os.makedirs(sink_dir)
    os.chmod(sink_dir, 0o777)
    sink_port = free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-d", sink_dir + "/msg.", "127.0.0.1:%d" % sink_port, "16"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        again = Up(appliance, state, "--next-hop", "smtp://127.0.0.1:%d" % sink_port)
        f2 = again.facts or {}
        check(f2.get("dns_records") == facts["dns_records"], "a second run keeps the keys")
        check(f2.get("users") == facts["users"], "a second run keeps the users and their secrets")
        check(f2.get("certificate_sha256") == facts["certificate_sha256"], "a second run keeps the certificate")
        check(f2.get("smtp") == facts["smtp"], "a second run keeps the saved listen addresses")
        check("initialised" not in again.stderr() and "generated" not in again.stderr(),
              "a second run neither initialises a token nor generates keys")
        check(f2.get("next_hop") == "smtp://127.0.0.1:%d" % sink_port, "--next-hop smtp://HOST:PORT is used")
        # (the same Totp: the steps used above stay used)
        requested = as_user(again, "admin", "elevation", "request", "--operation", "sign", "--domain",
                            "example.test", "--selector", "*", "--duration", "5m", "--reason", "second run")
        request = re.search(r"request (\d+)", requested.stdout)
        approved = as_user(again, "approver", "elevation", "approve", "--id",
                           request.group(1) if request else "0", totp=approver.code())
        check(approved.returncode == 0, "the grant is approved on the second run (%s)" % approved.stderr.strip())
        code, text = swaks(smtp, "to the smtp next hop")
        got = wait_for(lambda: [p for p in glob.glob(sink_dir + "/msg.*")
                                if b"DKIM-Signature:" in open(p, "rb").read()], 10)
        check(code == "250" and got, "signed mail reaches the smtp next hop (%s %s)" % (code, text))
        check(again.stop(signal.SIGTERM) == 0, "SIGTERM stops up with status 0")
        with open(os.path.join(state, "up.toml")) as f:
            check("smtp://127.0.0.1:%d" % sink_port in f.read(), "up.toml saved the new next hop")
    finally:
        sink.kill()
        sink.wait()


def rotation(folder, appliance):
    """The README's "A key rotation in the demo", command by command (the TOTP codes computed
    here instead of by oathtool, and a grace period of seconds instead of minutes)."""
    state = os.path.join(folder, "state")
    up = Up(appliance, state, "--smtp", "127.0.0.1:%d" % free_port(), "--https", "127.0.0.1:%d" % free_port())
    facts = up.facts
    check(facts is not None, "up starts")
    if facts is None:
        up.stop()
        return
    users = {u["name"]: u for u in facts["users"]}
    check(set(users) == {"admin", "approver", "approver2"}, "the demo has an admin and two approvers (%s)" % sorted(users))
    totp = {name: Totp(users[name]["totp_secret"]) for name in users if name != "admin"}
    dns_port = free_port()
    grace = 4
    rotate = ["key", "rotate", "example.test", "--algorithm", "rsa-2048", "--grace", "%ds" % grace,
              "--dns-server", "127.0.0.1:%d" % dns_port]
    new = None
    dnsmasq = None

    def serve(conf):
        return _serve_dns(conf, dns_port)

    def approve(user, request_id):
        if user not in totp:
            return subprocess.CompletedProcess([], 1, "", "no user %s" % user)
        return as_user(up, user, "elevation", "approve", "--id", request_id, totp=totp[user].code())

    def keys():
        listed = as_user(up, "admin", "key", "list", "--json")
        try:
            return {k["selector"]: k for k in json.loads(listed.stdout)["keys"] if k["domain"] == "example.test"}
        except ValueError:
            return {}

    try:
        dnsmasq = serve(facts["dnsmasq_conf"])
        # 1. key.rotate: one approver.
        requested = as_user(up, "admin", "elevation", "request", "--operation", "key.rotate", "--domain",
                            "example.test", "--selector", "*", "--duration", "1h", "--reason", "rotation")
        request = re.search(r"request (\d+) pending approval", requested.stdout)
        check(requested.returncode == 0 and request, "admin requests key.rotate (%s)" % requested.stderr.strip())
        approved = approve("approver", request.group(1) if request else "0")
        check(approved.returncode == 0 and "grant" in approved.stdout and "active" in approved.stdout,
              "one approver's approval makes the key.rotate grant (%s%s)" % (approved.stdout.strip(),
                                                                             approved.stderr.strip()))
        # 2. The next RSA key is made, and the rotation waits for its record in DNS.
        r = as_user(up, "admin", *rotate)
        made = re.search(r"generate the next key, (\S+) \(rsa-2048\)", r.stdout)
        new = made.group(1) if made else None
        check(r.returncode == 75 and made and "publish: " + (new or "?") + "._domainkey.example.test." in r.stdout
              and "not published yet" in r.stdout,
              "key rotate generates the next key, shows its record and waits for DNS (exit 75): %s" % (
                  r.stdout + r.stderr).strip()[-300:])
        check(keys().get(new, {}).get("state") == "pending-publish", "the new key is pending-publish")
        # 3. Published: dns records --dnsmasq, served by dnsmasq instead of up's file.
        records = as_user(up, "admin", "dns", "records", "example.test", "--offline", "--outbound", "127.0.0.1",
                          "--dnsmasq")
        conf = os.path.join(state, "dns", "rotation.conf")
        with open(conf, "w") as f:
            f.write(records.stdout)
        check(records.returncode == 0 and "local=/example.test/" in records.stdout and
              "txt-record=%s._domainkey.example.test," % new in records.stdout and
              "txt-record=rsa2048._domainkey.example.test," in records.stdout,
              "dns records --dnsmasq prints the domain's records as dnsmasq lines, the new key's among them")
        dnsmasq.kill()
        dnsmasq.wait()
        dnsmasq = serve(conf)
        # 4. Signing switches to the new key; the old one retires after the grace period.
        r = as_user(up, "admin", *rotate)
        activated = time.monotonic()
        check(r.returncode == 75 and "active; rsa2048 retiring until" in r.stdout,
              "once DNS has the record the new key is activated and rsa2048 retires (exit 75, the grace "
              "period): %s" % (r.stdout + r.stderr).strip()[-300:])
        k = keys()
        check(k.get(new, {}).get("state") == "active" and k.get("rsa2048", {}).get("state") == "retiring",
              "the new key is active, rsa2048 retiring")
        # 5. key.retire: one approval is not enough (the default policy's quorum of two).
        requested = as_user(up, "admin", "elevation", "request", "--operation", "key.retire", "--domain",
                            "example.test", "--selector", "*", "--duration", "1h", "--reason", "rotation")
        request = re.search(r"request (\d+) pending approval", requested.stdout)
        check(requested.returncode == 0 and request, "admin requests key.retire (%s)" % requested.stderr.strip())
        retire_id = request.group(1) if request else "0"
        first = approve("approver2", retire_id)
        check(first.returncode == 0 and "(1 of 2)" in first.stdout,
              "the first approval of key.retire is one of two (%s%s)" % (first.stdout.strip(), first.stderr.strip()))
        time.sleep(max(0.0, grace + 0.5 - (time.monotonic() - activated)))
        r = as_user(up, "admin", *rotate)
        check(r.returncode == 1 and "holds no active grant for key.retire" in (r.stdout + r.stderr),
              "after the grace period, retiring with one approval is refused: %s" % (r.stdout + r.stderr).strip()[-200:])
        second = approve("approver", retire_id)
        check(second.returncode == 0 and "grant" in second.stdout and "active" in second.stdout,
              "the second approver's approval makes the key.retire grant (%s%s)" % (second.stdout.strip(),
                                                                                   second.stderr.strip()))
        # 6. Retired: the private half is destroyed; the rotation is done.
        r = as_user(up, "admin", *rotate)
        check(r.returncode == 0 and "the private key was destroyed in the token" in r.stdout,
              "key rotate retires rsa2048 and destroys its private half: %s" % (r.stdout + r.stderr).strip()[-200:])
        k = keys()
        check(k.get("rsa2048", {}).get("state") == "retired" and k.get(new, {}).get("state") == "active",
              "the end state: rsa2048 retired, %s active" % new)
        r = as_user(up, "admin", *rotate)
        check(r.returncode == 0 and "nothing in progress" in r.stdout, "a rerun reports the rotation done")
    finally:
        if dnsmasq:
            dnsmasq.kill()
            dnsmasq.wait()
        status = up.stop(signal.SIGTERM)
    check(status == 0, "up stops with status 0")
    audit = subprocess.run([appliance, "audit", "verify", "--db", os.path.join(state, "signerd", "signerd.db")],
                           capture_output=True, text=True)
    check(audit.returncode == 0, "the audit log verifies (%s)" % (audit.stdout + audit.stderr).strip()[-200:])


def _serve_dns(conf, port):
    """dnsmasq on the loopback port, answering from `conf` (the README's rotation step)."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], port
    process = subprocess.Popen(["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1",
                                "--bind-interfaces", "--port=%d" % port, "--pid-file=", "--user=root",
                                "--conf-file=" + conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers():
        try:
            return resolver.resolve("ed25519._domainkey.example.test", "TXT", lifetime=0.5)
        except Exception:  # not listening yet
            return None
    check(wait_for(answers, 10), "dnsmasq serves %s" % os.path.basename(conf))
    return process


def cluster_rotation(folder, appliance):
    """One `key rotate` on node 1 rotates both nodes' RSA selectors: each node's signerd makes,
    activates and retires its own key in its own token; the CLI waits for DNS to publish both."""
    state = os.path.join(folder, "state")
    smtp = _port_pair()
    up = Up(appliance, state, "--cluster", "2", "--smtp", "127.0.0.1:%d" % smtp, "--https",
            "127.0.0.1:%d" % free_port(), "--postgres", "127.0.0.1:%d" % free_port())
    facts = up.facts
    check(facts is not None, "up --cluster 2 starts (%s)" % up.stderr()[-1500:])
    if facts is None:
        up.stop()
        return
    users = {u["name"]: u for u in facts["users"]}
    totp = {name: Totp(users[name]["totp_secret"]) for name in ("approver", "approver2")}
    dns_port, grace = free_port(), 4
    rotate = ["key", "rotate", "example.test", "--algorithm", "rsa-2048", "--grace", "%ds" % grace,
              "--dns-server", "127.0.0.1:%d" % dns_port]

    def grant(operation, approvers):
        requested = as_user(up, "admin", "elevation", "request", "--operation", operation, "--domain",
                            "example.test", "--selector", "*", "--duration", "1h", "--reason", "cluster rotation")
        request = re.search(r"request (\d+) pending approval", requested.stdout)
        for name in approvers:
            approved = as_user(up, name, "elevation", "approve", "--id", request.group(1) if request else "0",
                               totp=totp[name].code())
        check(request and approved.returncode == 0 and "active" in approved.stdout,
              "a %s grant, approved through node 1 (%s%s)" % (operation, approved.stdout.strip(), approved.stderr.strip()))

    def keys():
        """(node, selector) -> state, from cluster status on node 1."""
        listed = cli(up, "cluster", "status").stdout
        return {(f[1], f[3]): f[5] for f in (line.split("\t") for line in listed.splitlines())
                if f[0] == "key" and len(f) > 5 and f[2] == "example.test" and f[4].startswith("rsa")}

    dnsmasq = _serve_dns(facts["dnsmasq_conf"], dns_port)
    try:
        grant("key.rotate", ["approver"])
        r = as_user(up, "admin", *rotate)
        made = sorted(set(re.findall(r"publish: (\S+)\._domainkey\.example\.test\.", r.stdout)))
        check(r.returncode == 75 and len(made) == 2 and all(m.endswith(("-node1", "-node2")) for m in made),
              "key rotate on node 1 makes a key on each node and waits for DNS to publish both (exit 75): %s"
              % (r.stdout + r.stderr).strip()[-600:])
        new = {"node1": next((m for m in made if m.endswith("-node1")), "?"),
               "node2": next((m for m in made if m.endswith("-node2")), "?")}
        k = keys()
        check(k.get(("node1", new["node1"])) == "pending-publish" and k.get(("node2", new["node2"])) == "pending-publish",
              "node 2's signerd made its own key in its own token, as node 1's did: %s" % k)
        # Only node 1's record published: the rotation waits for node 2's too.
        records = as_user(up, "admin", "dns", "records", "example.test", "--offline", "--outbound", "127.0.0.1",
                          "--dnsmasq").stdout
        half = os.path.join(state, "dns", "half.conf")
        with open(half, "w") as f:
            f.write("".join(line + "\n" for line in records.splitlines() if new["node2"] not in line))
        dnsmasq.kill()
        dnsmasq.wait()
        dnsmasq = _serve_dns(half, dns_port)
        r = as_user(up, "admin", *rotate)
        k = keys()
        check(r.returncode == 75 and "node2: " in r.stdout and k.get(("node1", new["node1"])) == "pending-publish",
              "with one node's record missing from DNS nothing is activated: %s" % (r.stdout + r.stderr).strip()[-400:])
        # Node 2 gone (its signerd stopped) while only node 1's record is published: node 1
        # switches; node 2, back, does not switch to its unchecked key until DNS has it.
        signerd2 = [pid for name, argv, pid in _cluster_processes(state)
                    if name == "dkim-signerd" and argv[1].endswith("signerd-node2.toml")]
        os.kill(signerd2[0], signal.SIGSTOP)
        try:
            gone = wait_for(lambda: re.search(r"^node\tnode2\tgone", cli(up, "cluster", "status").stdout, re.M), 30, 1)
            check(gone, "node 2 shows as gone while its signerd is stopped")
            r = as_user(up, "admin", *rotate)
        finally:
            os.kill(signerd2[0], signal.SIGCONT)
        time.sleep(3)  # node 2's ticks after it is back
        k = keys()
        check(k.get(("node1", new["node1"])) == "active" and k.get(("node2", new["node2"])) == "pending-publish",
              "node 1 switched; node 2, back from being gone, did not switch to a key DNS does not have (%s; %s)"
              % (k, (r.stdout + r.stderr).strip()[-300:]))
        full = os.path.join(state, "dns", "full.conf")
        with open(full, "w") as f:
            f.write(records)
        dnsmasq.kill()
        dnsmasq.wait()
        dnsmasq = _serve_dns(full, dns_port)
        r = as_user(up, "admin", *rotate)
        activated = time.monotonic()
        k = keys()
        check(r.returncode == 75 and "retiring until" in r.stdout and
              k.get(("node1", new["node1"])) == "active" and k.get(("node2", new["node2"])) == "active" and
              k.get(("node1", "rsa2048")) == "retiring" and k.get(("node2", "n2-rsa2048")) == "retiring",
              "both records published: both nodes switch to their new keys, the old ones retire (%s; %s)"
              % (k, (r.stdout + r.stderr).strip()[-400:]))
        grant("key.retire", ["approver", "approver2"])
        time.sleep(max(0.0, grace + 0.5 - (time.monotonic() - activated)))
        r = as_user(up, "admin", *rotate)
        k = keys()
        check(r.returncode == 0 and k.get(("node1", "rsa2048")) == "retired" and k.get(("node2", "n2-rsa2048")) == "retired",
              "after the grace period both old keys are retired, each in its own node's token (%s; %s)"
              % (k, (r.stdout + r.stderr).strip()[-400:]))
        r = as_user(up, "admin", *rotate)
        check(r.returncode == 0 and "nothing in progress" in r.stdout, "a rerun reports the rotation done (%s)" % r.stdout[-300:])
        # The records of node 2's part are in the cluster's one log, written by node 2.
        listed = cli(up, "audit", "show", "--limit", "200").stdout
        check(re.search(r"key\.generated.*" + re.escape(new["node2"]), listed) is not None and "key.rotation" in listed,
              "the cluster's log holds the rotation's phases and node 2's key.generated")
    finally:
        dnsmasq.kill()
        dnsmasq.wait()
        status = up.stop()
    check(status == 0, "up stops with status 0")


def supervision(folder, appliance):
    state = os.path.join(folder, "state")
    smtp, https = free_port(), free_port()
    up = Up(appliance, state, "--smtp", "127.0.0.1:%d" % smtp, "--https", "127.0.0.1:%d" % https)
    check(up.facts is not None, "up starts")
    if up.facts is None:
        up.stop()
        return
    second = subprocess.run([appliance, "up", "--state-dir", state, "--smtp", "127.0.0.1:%d" % free_port()],
                            capture_output=True, text=True, timeout=60)
    check(second.returncode == 1 and "another `dkim-appliance up` is running" in second.stderr,
          "a second up on the same folder is refused (%s)" % second.stderr.strip())

    # kill -9: restarted, and serving again.
    before = daemon_pids(state)
    os.kill(before["dkim-relayd"], signal.SIGKILL)
    restarted = wait_for(lambda: daemon_pids(state).get("dkim-relayd") not in (None, before["dkim-relayd"]), 20)
    check(restarted, "a relayd killed with SIGKILL is started again")
    banner = wait_for(lambda: _banner(smtp), 20)
    check(banner and banner.startswith(b"220 "), "the restarted relay answers SMTP (%r)" % banner)
    check("dkim-relayd was killed by Killed; restarting in 1 s" in up.stderr(), "up says why and when it restarts")
    # Killed again at once: the back-off doubles.
    pid = wait_for(lambda: daemon_pids(state).get("dkim-relayd"), 10)
    os.kill(pid, signal.SIGKILL)
    check(wait_for(lambda: "restarting in 2 s" in up.stderr(), 10), "a daemon that keeps failing is restarted with back-off")

    # A daemon that hangs misses its watchdog pings (every 5 s of a 10 s interval): aborted and
    # started again.
    webd = daemon_pids(state)["dkim-webd"]
    os.kill(webd, signal.SIGSTOP)
    aborted = wait_for(lambda: "dkim-webd sent no watchdog ping" in up.stderr(), 25, step=0.5)
    check(aborted, "a stopped webd misses its watchdog pings and up notices")
    os.kill(webd, signal.SIGCONT)  # lets the SIGABRT that is waiting take effect
    check(wait_for(lambda: daemon_pids(state).get("dkim-webd") not in (None, webd), 20),
          "the hung webd is replaced by a new process")

    check(up.stop(signal.SIGTERM) == 0, "SIGTERM stops up with status 0")
    check(wait_for(lambda: not daemon_pids(state), 10), "no daemon is left running")

    # Refusals, each with a clear message.
    with open(os.path.join(state, "up.toml"), "a") as f:
        f.write("smtp_lisen = \"127.0.0.1:25\"\n")
    bad = subprocess.run([appliance, "up", "--state-dir", state], capture_output=True, text=True, timeout=60)
    check(bad.returncode == 1 and re.search(r"up\.toml:\d+:\d+: .*smtp_lisen", bad.stderr),
          "a misspelt key in up.toml is refused with file:line:column and the key (%s)" % bad.stderr.strip())
    nobody = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", appliance, "up",
                             "--state-dir", os.path.join(folder, "other")], capture_output=True, text=True)
    check(nobody.returncode == 1 and "run it as root" in nobody.stderr, "up as another user than root is refused")
    # A state folder under a folder only its owner may enter (`mktemp -d` makes them 0700): the
    # daemons, each its own user, could not reach it. Refused before anything is made or
    # started, naming that folder, its mode and the fix.
    private = os.path.join(folder, "private")
    os.mkdir(private)
    os.chmod(private, 0o700)
    blocked = subprocess.run([appliance, "up", "--state-dir", os.path.join(private, "deeper", "state")],
                             capture_output=True, text=True, timeout=60)
    check(blocked.returncode == 1 and "%s (mode 0700, owner root" % private in blocked.stderr
          and "chmod o+x " + private in blocked.stderr and "--state-dir" in blocked.stderr,
          "a state folder the daemons' users cannot reach is refused with the folder that blocks them and "
          "the fix (%s)" % blocked.stderr.strip()[-400:])
    check(os.listdir(private) == [], "nothing was made under it (%s)" % os.listdir(private))
    check(not daemon_pids(os.path.join(private, "deeper", "state")), "no daemon was started")


def custody(folder, appliance):
    """up --pin-custody shares, then sealed, on one state folder (issue 23)."""
    state = os.path.join(folder, "state")
    smtp, https = free_port(), free_port()
    listen = ("--smtp", "127.0.0.1:%d" % smtp, "--https", "127.0.0.1:%d" % https)

    # shares: the demo PIN split 2 of 3 among the demo users before the other daemons start.
    up = Up(appliance, state, *listen, "--pin-custody", "shares")
    try:
        facts = up.facts or {}
        check(facts.get("pin_custody") == "shares", "the facts name the custody: %s" % facts.get("pin_custody"))
        users = {u["name"]: u for u in facts.get("users", [])}
        shares = sorted(glob.glob(os.path.join(state, "secrets", "shares", "*.share")))
        check([os.path.basename(x) for x in shares] == sorted(n + ".share" for n in users) and
              all(os.stat(x).st_mode & 0o077 == 0 for x in shares),
              "one share file per demo user, 0600: %s" % shares)
        with open(os.path.join(state, "etc", "signerd.toml")) as f:
            check('source = "shares"' in f.read(), "signerd.toml says source = \"shares\"")
        status = cli(up, "pin", "status").stdout
        check("custody: shares" in status and "ready: no" in status and "any 2 of 3" in status,
              "pin status: the split, 2 of 3, not ready: %s" % status)
        for name in ("approver", "approver2"):
            password = os.path.join(state, "secrets", name + ".password")
            submitted = as_user(up, name, "pin", "submit", "--share-file",
                                os.path.join(state, "secrets", "shares", name + ".share"),
                                "--passphrase-file", password, totp=Totp(users[name]["totp_secret"]).code())
            check(submitted.returncode == 0, "%s submits the share: %s" % (name, (submitted.stdout + submitted.stderr).strip()))
        status = cli(up, "pin", "status").stdout
        check("ready: yes" in status, "two of three shares unlock: %s" % status)
    finally:
        check(up.stop() == 0, "up stops")

    # sealed, on the same folder: the PIN moves into a credential sealed with the folder's host
    # key, no clear copy stays, and signerd logs in from the credential up opens for it.
    up = Up(appliance, state, *listen, "--pin-custody", "sealed")
    try:
        facts = up.facts or {}
        check(facts.get("pin_custody") == "sealed", "the facts name the custody: %s" % facts.get("pin_custody"))
        cred = os.path.join(state, "credentials", "signerd-pin.cred")
        leftovers = [x for x in (os.path.join(state, "secrets", "user.pin"), os.path.join(state, "signerd", "user.pin"))
                     if os.path.exists(x)]
        check(os.path.exists(cred) and not leftovers, "sealed: the credential, and no clear PIN left: %s" % leftovers)
        status = cli(up, "pin", "status").stdout
        check("custody: sealed" in status, "pin status says sealed: %s" % status)
        users = {u["name"]: u for u in facts.get("users", [])}
        requested = as_user(up, "admin", "elevation", "request", "--operation", "sign", "--domain", "example.test",
                            "--selector", "*", "--duration", "15m", "--reason", "sealed custody")
        request = re.search(r"request (\d+)", requested.stdout)
        approved = as_user(up, "approver", "elevation", "approve", "--id", request.group(1) if request else "0",
                           totp=Totp(users["approver"]["totp_secret"]).code())
        check(approved.returncode == 0, "approved: %s" % approved.stderr.strip())
        code, text = swaks(smtp, "sealed custody")
        check(code == "250", "with the sealed PIN the relay signs and delivers (%s %s)" % (code, text))
    finally:
        check(up.stop() == 0, "up stops")
    # up plays systemd's part: the credential opened into /run (or /dev/shm, or the state folder)
    # at signerd's start, removed when up stops.
    opened = [x for base in ("/run/dkim-appliance-up", "/dev/shm/dkim-appliance-up", state)
              for x in glob.glob(os.path.join(base, "signerd-credentials-*"))]
    check(not opened, "no opened credential stays after up stops: %s" % opened)


def _port_pair():
    """Two consecutive free ports (the relays of node 1 and node 2)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket() as t:
                t.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    return free_port()


def _cluster_processes(state):
    """(basename of argv[0], the rest of argv) of the processes of this folder: the daemons
    (--config under etc/) and PostgreSQL (-D under postgres/)."""
    out = []
    for status in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(status, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
        except OSError:
            continue
        if len(argv) >= 3 and ((argv[1] == "--config" and argv[2].startswith(state + "/etc/")) or
                               (argv[1] == "-D" and argv[2].startswith(state + "/postgres/"))):
            out.append((os.path.basename(argv[0]), argv[1:], int(status.split("/")[2])))
    return out


def _selectors(path):
    with open(path, "rb") as f:
        message = f.read()
    return sorted(re.findall(rb"s=([A-Za-z0-9-]+);", b" ".join(
        v for k, v in dkim.DKIM(message).headers if k.lower() == b"dkim-signature"))), message


def cluster(folder, appliance):
    import pwd
    state = os.path.join(folder, "state")
    smtp, https, pg = _port_pair(), free_port(), free_port()
    up = Up(appliance, state, "--cluster", "2", "--smtp", "127.0.0.1:%d" % smtp, "--https",
            "127.0.0.1:%d" % https, "--postgres", "127.0.0.1:%d" % pg)
    facts = up.facts
    check(facts is not None, "up --cluster 2 prints its facts (%s)" % up.stderr()[-1500:])
    if facts is None:
        up.stop()
        return
    nodes = facts.get("nodes", [])
    check([(n["name"], n["smtp"]) for n in nodes] == [("node1", "127.0.0.1:%d" % smtp), ("node2", "127.0.0.1:%d" % (smtp + 1))],
          "the facts name two nodes, their relays on consecutive ports: %s" % nodes)
    check("dbname=dkim" in facts.get("database", "") and "port=%d" % pg in facts.get("database", ""),
          "the facts name the nodes' database on the port given: %s" % facts.get("database"))
    with open(os.path.join(state, "up.toml"), "rb") as f:
        saved = tomllib.load(f)
    check(saved.get("cluster") == 2, "up.toml keeps cluster = 2 (%s)" % saved.get("cluster"))
    running = _cluster_processes(state)
    names = sorted(name for name, _, _ in running)
    check(names == ["dkim-relayd", "dkim-relayd", "dkim-reportd", "dkim-signerd", "dkim-signerd", "dkim-webd", "postgres"],
          "two signerds, two relays, one reportd, one webd and PostgreSQL run: %s" % names)
    postgres_uid = pwd.getpwnam("postgres").pw_uid
    server = [pid for name, _, pid in running if name == "postgres"]
    check(server and uid_of(server[0]) == postgres_uid, "PostgreSQL runs as the postgres user")
    data = os.path.join(state, "postgres", "data")
    check(os.stat(data).st_uid == postgres_uid and os.stat(data).st_mode & 0o777 == 0o700,
          "its data folder is in the state folder, the postgres user's, mode 0700")
    check(not os.path.exists(os.path.join(state, "signerd", "signerd.db")),
          "no SQLite state: the nodes' state is PostgreSQL's")
    with open(os.path.join(state, "etc", "signerd-node2.toml"), "rb") as f:
        node2 = tomllib.load(f)
    check(node2.get("token") == "dkim-node2" and node2.get("cluster", {}).get("node") == "node2",
          "node 2's signerd has its own token and names itself in [cluster] (%s)" % node2.get("cluster"))
    printed = zone_records(facts["dns_records"])
    check(all(("%s._domainkey.example.test" % s) in printed for s in ("rsa2048", "ed25519", "n2-rsa2048", "n2-ed25519")),
          "the printed records hold both nodes' keys: %s" % sorted(printed))

    # A grant approved through node 1 signs on both relays.
    users = {u["name"]: u for u in facts["users"]}
    approver = Totp(users["approver"]["totp_secret"])
    requested = as_user(up, "admin", "elevation", "request", "--operation", "sign", "--domain", "example.test",
                        "--selector", "*", "--duration", "15m", "--reason", "the cluster tour")
    request = re.search(r"request (\d+)", requested.stdout)
    check(requested.returncode == 0 and request, "admin requests a signing elevation (%s)" % requested.stderr.strip())
    approved = as_user(up, "approver", "elevation", "approve", "--id", request.group(1) if request else "0",
                       totp=approver.code())
    check(approved.returncode == 0, "approver approves through node 1 (%s)" % approved.stderr.strip())
    results = {}
    for port, node in ((smtp, "node1"), (smtp + 1, "node2")):
        before = set(glob.glob(os.path.join(state, "maildir", "new", "*")))
        code, text = "none", ""
        for _ in range(20):  # node 2 hears of the grant within milliseconds
            code, text = swaks(port, "signed by " + node)
            if code == "250":
                break
            time.sleep(0.2)
        check(code == "250", "%s's relay signs and delivers inside the grant (%s %s)" % (node, code, text))
        new = sorted(set(glob.glob(os.path.join(state, "maildir", "new", "*"))) - before)
        results[node] = _selectors(new[-1]) if new else ([], b"")
    check(results["node1"][0] == [b"ed25519", b"rsa2048"] and results["node2"][0] == [b"n2-ed25519", b"n2-rsa2048"],
          "each node signs with its own keys: %s" % {k: v[0] for k, v in results.items()})
    dns_server = DnsServer(folder, printed, "example.test")
    try:
        for node, (_, message) in results.items():
            d = dkim.DKIM(message)
            count = len([1 for k, _ in d.headers if k.lower() == b"dkim-signature"])
            ok = [bool(d.verify(idx=i, dnsfunc=dns_server.dkimpy_dnsfunc())) for i in range(count)]
            check(count == 2 and all(ok), "dkimpy verifies %s's signatures against the printed records (%s)" % (node, ok))
    finally:
        dns_server.stop()
    status = cli(up, "cluster", "status")
    check(status.returncode == 0 and "node1" in status.stdout and "node2" in status.stdout,
          "cluster status lists both nodes (%s%s)" % (status.stdout[-400:], status.stderr[-200:]))
    # dns records on node 1 lists node 2's selectors too (from the cluster's registry, which
    # node 2 signs with its audit key once it is logged in), with the values up printed.
    wanted = {name: value for name, value in printed.items() if "._domainkey." in name}

    def dkim_records():
        out = cli(up, "dns", "records", "example.test", "--offline", "--json")
        listed = {}
        if out.returncode == 0:
            listed = {r["name"].rstrip("."): r["value"] for r in json.loads(out.stdout)["records"]
                      if "._domainkey." in r["name"]}
        return out, listed
    check(wait_for(lambda: dkim_records()[1] == wanted, 10),
          "dns records on node 1 lists every node's DKIM records (%s; wanted %s) %s"
          % (sorted(dkim_records()[1]), sorted(wanted), dkim_records()[0].stderr[-200:]))
    # A database writer's row for a node of its own, with a key of its own and a signature that
    # is not node9's (no key is pinned for it), dated ahead so that it looks up: not listed.
    forged_key = printed.get("rsa2048._domainkey.example.test", "v=DKIM1; k=rsa; p=AAAA")
    future = int((time.time() + 3600) * 1000)
    insert = ("INSERT INTO nodes(name, version, started, last_seen, token, grants, selectors, records, "
              "attestation) VALUES ('node9', 'x', %d, %d, 'logged-in', 1, 'example.test/forged:rsa-2048', "
              "'example.test forged %s' || chr(10), 'AAAA')" % (future, future, forged_key.replace("'", "''")))
    def psql(*statements):
        return subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/psql", "-h",
                               os.path.join(state, "postgres", "run"), "-p", str(pg), "-U", "postgres", "-d", "dkim",
                               "-v", "ON_ERROR_STOP=1"] + [a for s in statements for a in ("-c", s)],
                              capture_output=True, text=True)
    wrote = psql(insert)
    check(wrote.returncode == 0, "a database writer adds a node row of its own (%s)" % wrote.stderr.strip())
    out, listed = dkim_records()
    check(out.returncode == 0 and listed == wanted and "forged._domainkey.example.test" not in listed,
          "dns records does not list the forged node's key (%s)" % sorted(listed))
    check("node node9's keys are not listed" in out.stderr,
          "and says why it left node9 out (%s)" % out.stderr.strip()[-300:])
    status = cli(up, "cluster", "status").stdout
    node_lines = {line.split("\t")[1]: line for line in status.splitlines() if line.startswith("node\t")}
    check("records not shown" in node_lines.get("node9", "") and "records not shown" not in node_lines.get("node2", "x"),
          "cluster status marks node9's records as not shown, node2's as shown (%s)" % status.strip()[-600:])
    check(not re.search(r"^key\tnode9\t.*\tv=DKIM1", status, re.M),
          "and lists no record for node9's key (%s)" % status.strip()[-600:])
    # The red team's way past that: a key row for node 1 itself, active, with the writer's record,
    # and the change announced. Node 1's own keys' records come from its token only.
    wrote = psql("INSERT INTO keys(node, domain, selector, algorithm, state, origin, created, dkim_record) "
                 "VALUES ('node1', 'example.test', 'evil', 'rsa-2048', 'active', 'generated', %d, '%s')"
                 % (int(time.time() * 1000), forged_key.replace("'", "''")),
                 "UPDATE cluster_state SET version = version + 1", "SELECT pg_notify('dkim_state', 'x')")
    check(wrote.returncode == 0, "a database writer adds an active key row for node 1 (%s)" % wrote.stderr.strip())
    check(wait_for(lambda: "evil" in cli(up, "key", "list").stdout, 10),
          "node 1 reads the row (key list: %s)" % cli(up, "key", "list").stdout.strip()[-300:])
    out, listed = dkim_records()
    check(out.returncode == 0 and listed == wanted,
          "dns records lists no record for node 1's planted key (%s)" % sorted(listed))
    check("evil._domainkey.example.test is active in signerd's key registry but the token holds no such key"
          in out.stderr, "and says so (%s)" % out.stderr.strip()[-300:])
    grants = cli(up, "grant", "list", "--active").stdout.strip().splitlines()
    grant = grants[-1].split("\t")[0] if grants else "0"
    revoked = as_user(up, "approver", "elevation", "revoke", "--grant", grant, "--reason", "cluster tour done",
                      totp=approver.code())
    check(revoked.returncode == 0, "approver revokes through node 1 (%s)" % revoked.stderr.strip())
    code, text = swaks(smtp + 1, "after the revoke")
    check(code == "451", "node 2's relay answers 451 after the revoke on node 1 (%s %s)" % (code, text))

    # The cluster's log, with both nodes' audit keys (node 2's from its own token).
    env = dict(os.environ, SOFTHSM2_CONF=os.path.join(state, "softhsm2.conf"))
    module = tomllib.load(open(os.path.join(state, "etc", "signerd.toml"), "rb"))["module"]
    key2 = subprocess.run([appliance, "audit", "key", "--module", module, "--token", "dkim-node2"],
                          capture_output=True, text=True, env=env)
    verified = subprocess.run([appliance, "audit", "verify", "--database", facts["database"], "--password-file",
                               os.path.join(state, "secrets", "postgres.password"), "--module", module,
                               "--token", "dkim", "--node", "node1", "--node-key", "node2=" + key2.stdout.strip()],
                              capture_output=True, text=True, env=env)
    check(key2.returncode == 0 and verified.returncode == 0 and verified.stdout.startswith("ok:"),
          "audit verify checks the cluster's log with both nodes' keys (%s%s%s)" % (
              key2.stderr.strip(), verified.stdout.strip()[-300:], verified.stderr.strip()[-300:]))

    stopped = up.stop()
    check(stopped == 0, "SIGINT stops the cluster (status %s)" % stopped)
    left = _cluster_processes(state)
    check(not left, "no daemon and no PostgreSQL is left running: %s" % left)
    log = up.stderr()
    check(log.find("dkim-signerd-node2") < log.rfind("postgres") or "postgres" not in log,
          "PostgreSQL stops after the nodes")

    # A second run reuses everything: cluster = 2 from up.toml, the same keys and users.
    again = Up(appliance, state, "--smtp", "127.0.0.1:%d" % smtp, "--https", "127.0.0.1:%d" % https)
    try:
        check(again.facts is not None and len(again.facts.get("nodes", [])) == 2,
              "a second run starts the two nodes again (%s)" % (again.stderr()[-800:] if again.facts is None else ""))
        if again.facts is not None:
            check(zone_records(again.facts["dns_records"]) == printed, "with the same keys")
            check(sorted(u["name"] for u in again.facts["users"]) == ["admin", "approver", "approver2"],
                  "and the same users")
            # kill -9 of up: it cannot stop anything, its children stop by themselves (each gets
            # its stop signal when up dies), so that nothing runs on unsupervised.
            check(len(_cluster_processes(state)) == 7, "all seven processes run again")
            again.proc.kill()
            again.proc.wait(timeout=10)
            check(wait_for(lambda: not _cluster_processes(state), 30),
                  "kill -9 of up: the daemons and PostgreSQL stop by themselves (%s)" % _cluster_processes(state))
    finally:
        if again.proc.poll() is None:
            check(again.stop() == 0, "and stops again")
    check(not _cluster_processes(state), "nothing left running")


def _verify(appliance, dns_port, message):
    with open(message, "rb") as f:
        out = subprocess.run([appliance, "verify", "--dns-server", "127.0.0.1:%d" % dns_port,
                              "--authserv-id", "tour.test"], stdin=f, capture_output=True, text=True).stdout
    return out.count("dkim=pass") == 2


def _https_get(port, path, token):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
            tls.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                         "Connection: close\r\n\r\n" % (path, token)).encode())
            answer = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except OSError as e:
        return None, str(e)
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else None
    if b"transfer-encoding: chunked" in head.lower():
        plain, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0] or b"0", 16)
            if n == 0:
                break
            plain, rest = plain + rest[:n], rest[n + 2:]
        body = plain
    return status, body.decode(errors="replace")


def _banner(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            return s.recv(512)
    except OSError:
        return None


def main():
    group, appliance = sys.argv[1], sys.argv[2]
    folder = tempfile.mkdtemp(prefix="appliance-up-")
    os.chmod(folder, 0o711)
    try:
        {"tour": tour, "rotation": rotation, "supervision": supervision,
         "custody": custody, "cluster": cluster,
     "cluster-rotation": cluster_rotation}[group](folder, appliance)
    finally:
        for pid in (list(daemon_pids(os.path.join(folder, "state")).values()) +
                    [p for _, _, p in _cluster_processes(os.path.join(folder, "state"))]):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["rm", "-rf", folder])
    return summary()


if __name__ == "__main__":
    sys.exit(main())
