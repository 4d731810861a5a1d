#!/usr/bin/python3
"""Provisioning end to end: the operator CLI against a real dkim-signerd (SoftHSM2 token in a
temporary folder) and a real DNS server (dnsmasq on 127.0.0.1) whose zone the test changes
as an operator would.

Started by ctest (labels "dns;hsm;signerd"), one group per run:

  rotation  every key operation is refused without its grant; `key rotate` from an unmanaged
            RSA key to the next selector, with dkim-signerd killed (SIGKILL) and restarted
            between every two steps, the CLI killed while it waits for DNS, and each step
            rerun: one new key, published, activated, the old one retiring, then retired with
            its private half destroyed in the token; a relay with a managed domain signs with
            the new selector (dkimpy verifies it), the retired selector no longer signs, the
            audit chain verifies
  dnscheck  `dns check` on a correct domain, and on missing, mismatched, malformed, duplicated
            and over-limit records (exit status and the fix it names); the report records
            (DMARC rua=/ruf=, TLS-RPT, an external report domain's authorization) missing and
            published; `dns records` merges SPF with the published record and prints the report
            records (zone lines, --json, --dnsmasq)
  apply     apply's plan and its execution from nothing to RSA + Ed25519 keys, waiting for the
            records to be published, then activating them; a second apply changes nothing
            (same keys, no new audit records); --dry-run changes nothing; the DNS policy (the
            DMARC stage, tlsrpt_rua) names the records to publish until they are
  import    keys made by Debian's opendkim-genkey, listed in a KeyTable and a SigningTable, are
            imported (refused without a key.generate grant; malformed tables name file and
            line), the test message each signs verifies with dkimpy against the published
            record, the keys are sensitive and not extractable in the token, and they sign
            through signerd afterwards

usage: provisioning.py GROUP DKIM_APPLIANCE DKIM_SIGNERD DKIM_RELAYD SOFTHSM2_MODULE
"""

import datetime
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import dkim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signerd_daemon import DOMAIN, Appliance  # noqa: E402
from testlib import FAILURES, DnsServer, check, free_port, summary, until  # noqa: E402

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
WAITING = 75  # EX_TEMPFAIL: the CLI waits for DNS or a grace period


def out(result):
    return (result.stdout + result.stderr).decode(errors="replace")


def dkimpy_verifies(dns_server, message):
    try:
        return bool(dkim.verify(message, dnsfunc=dns_server.dkimpy_dnsfunc()))
    except dkim.DKIMException as e:
        print("      dkimpy: %s" % e)
        return False


class Operator:
    """The appliance with its users, and the grants they ask for and approve."""

    def __init__(self, folder, cli, signerd, module):
        self.app = Appliance(folder, cli, signerd, module)
        self.records = dict(self.app.records)
        self.records[DOMAIN] = "v=spf1 ip4:127.0.0.1 -all"
        self.records["_dmarc." + DOMAIN] = "v=DMARC1; p=none; rua=mailto:dmarc@" + DOMAIN
        self.dns = DnsServer(folder, self.records, DOMAIN)
        self.app.start()
        self.app.add_users()

    def grant(self, operation, selector="*", domain=DOMAIN, duration="30m"):
        request = self.app.op("elevation", "request", "--operation", operation, "--domain", domain,
                              "--selector", selector, "--duration", duration, "--reason",
                              "CHG-8 provisioning", user="alice")
        if request.returncode != 0:
            raise RuntimeError("elevation request %s %s: %s" % (operation, domain, out(request)))
        request_id = re.search(r"request (\d+)", out(request)).group(1)
        approved = self.app.op("elevation", "approve", "--id", request_id, user="bob", totp=True, check=True)
        if "grant" not in out(approved):  # key.retire: two approvers
            self.app.op("elevation", "approve", "--id", request_id, user="carol", totp=True, check=True)

    def alice(self, *args):
        return self.app.op(*(list(args) + ["--dns-server", self.dns.address()]) if self.takes_dns(args)
                           else args, user="alice")

    @staticmethod
    def takes_dns(args):
        return args[:2] in (("key", "rotate"), ("key", "activate"), ("dns", "check"), ("dns", "records"),
                            ("import", "opendkim")) or args[:1] == ("apply",)

    def keys(self, domain=DOMAIN):
        listed = self.app.op("key", "list", "--json", user="alice", check=True)
        return {k["selector"]: k for k in json.loads(listed.stdout)["keys"] if k["domain"] == domain}

    def publish(self, domain=DOMAIN):
        """Publishes every key of the domain that should be (as the operator's zone change)."""
        for selector, k in self.keys(domain).items():
            if k["state"] in ("pending-publish", "active", "retiring"):
                self.records["%s._domainkey.%s" % (selector, domain)] = k["dns_record"]
        self.dns.republish(self.records)

    def audit_count(self):
        """Audit records of decisions and changes: the log's own periodic checkpoints (every 2 s
        while the token is logged in) are left out."""
        shown = self.app.op("audit", "show", "--limit", "10000", check=True)
        return len([line for line in out(shown).strip().splitlines() if "audit.checkpoint" not in line])

    def stop(self):
        self.app.stop()
        self.dns.stop()


def restart_signerd(op, why):
    op.app.kill9()
    op.app.start()
    print("      (dkim-signerd killed with SIGKILL and restarted %s)" % why)


class ManagedRelay:
    """dkim-relayd with a managed domain (no selectors: signerd's active keys), delivering to a
    maildir."""

    def __init__(self, folder, relayd, app):
        self.folder, self.relayd = folder, relayd
        self.last_reply = ""
        self.maildir = os.path.join(folder, "maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub), exist_ok=True)
        shutil.chown(self.maildir, "nobody", "nogroup")
        for sub in ("new", "cur", "tmp"):
            shutil.chown(os.path.join(self.maildir, sub), "nobody", "nogroup")
        self.port = free_port()
        self.config = os.path.join(folder, "relay.toml")
        self.logfile = os.path.join(folder, "relay.log")
        with open(self.config, "w") as f:
            f.write('hostname = "relay.test"\nsignerd_socket = "%s"\n' % app.socket)
            f.write('[[listen]]\naddress = "127.0.0.1:%d"\n' % self.port)
            f.write('[next_hop]\nurl = "maildir:%s"\n' % self.maildir)
            f.write('[signing]\nkey_refresh = "1s"\n')
            f.write('[[domain]]\nname = "%s"\n' % DOMAIN)
            f.write('[[client]]\nname = "apps"\nnetworks = ["127.0.0.0/8"]\ndomains = ["%s"]\n' % DOMAIN)
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(NOBODY + [relayd, "--config", self.config], stdout=self.log, stderr=self.log)
        for _ in until():
            if "listening on" in open(self.logfile).read():
                return
            if self.proc.poll() is not None:
                raise RuntimeError("dkim-relayd exited: " + open(self.logfile).read())
            time.sleep(0.05)
        raise RuntimeError("dkim-relayd did not start")

    def send(self, subject):
        message = ("From: alice@%s\r\nTo: bob@peer.example\r\nSubject: %s\r\n"
                   "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@%s>\r\n\r\nbody\r\n"
                   % (DOMAIN, subject, subject.replace(" ", "."), DOMAIN)).encode()
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.port, "--from", "alice@" + DOMAIN,
                            "--to", "bob@peer.example", "--helo", "client.test", "--data", "-"],
                           input=message, capture_output=True, timeout=60)
        replies = [line for line in r.stdout.decode(errors="replace").splitlines() if line.startswith("<~")]
        self.last_reply = replies[-1] if replies else r.stderr.decode(errors="replace").strip()
        return r.returncode

    def delivered(self):
        names = sorted(glob.glob(os.path.join(self.maildir, "new", "*")), key=os.path.getmtime)
        return [open(n, "rb").read() for n in names]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


def selectors_of(message):
    return re.findall(rb"\bs=([a-z0-9.-]+);", message)


# --- groups ---------------------------------------------------------------------------------

def rotation(folder, cli, signerd, relayd, module):
    op = Operator(folder, cli, signerd, module)
    relay = None
    try:
        new = datetime.datetime.now(datetime.timezone.utc).strftime("s%Y-%m")
        keys = op.keys()
        check(keys["rsa"]["state"] == "active" and not keys["rsa"]["managed"],
              "a key made offline is active and unmanaged: %s" % keys["rsa"]["state"])

        # Without grants: refused, and nothing changes.
        refused = {
            "key generate": op.alice("key", "generate", "--domain", DOMAIN, "--selector", "x1"),
            "key rotate": op.alice("key", "rotate", DOMAIN, "--algorithm", "rsa-2048"),
            "key retire": op.alice("key", "retire", "--domain", DOMAIN, "--selector", "rsa", "--force"),
        }
        for what, r in refused.items():
            check(r.returncode == 1 and "holds no active grant" in out(r),
                  "%s is refused without its grant: %s" % (what, out(r).strip()[-110:]))
        check(op.keys() == keys, "the refused operations changed nothing")

        op.grant("key.rotate")
        op.grant("sign")
        relay = ManagedRelay(folder, relayd, op.app)
        sent = relay.send("before")
        if sent != 0:
            # Seen once in a full parallel ASan run (not reproduced alone): the first message
            # after the relay started got 451 while its key prefetch ran. A client retries a 451;
            # so does this test, once, and says what the first answer was.
            print("      the first message was deferred (%s); retrying once" % relay.last_reply)
            sent = relay.send("before")
        delivered = relay.delivered()
        check(sent == 0 and delivered and sorted(selectors_of(delivered[-1])) == [b"ed", b"rsa", b"short"],
              "the managed relay signs with every active key: %s" % (delivered and selectors_of(delivered[-1])))

        # Step 1: generate. Then kill signerd.
        grace = 20  # long enough for the checks below under ASan; the test sleeps out the rest
        rotate = ["key", "rotate", DOMAIN, "--algorithm", "rsa-2048", "--grace", "%ds" % grace, "--steps", "1"]
        r = op.alice(*rotate)
        check(r.returncode == 0 and "generate the next key, " + new in out(r) and "publish:" in out(r),
              "step 1 generates %s and shows its record: %s" % (new, out(r).strip()[-150:]))
        restart_signerd(op, "after the generation")
        check(op.keys()[new]["state"] == "pending-publish", "the new key is pending-publish after the restart")

        # Rerun: it waits for DNS instead of making another key.
        r = op.alice(*rotate)
        check(r.returncode == WAITING and "not published yet" in out(r),
              "the rerun waits for the record (exit 75): %s" % out(r).strip()[-120:])
        # The CLI killed while it polls DNS: nothing is left half done.
        waiting = subprocess.Popen([cli] + rotate + ["--wait", "60s", "--socket", op.app.socket, "--user", "alice",
                                                     "--password-file", os.path.join(folder, "pw-alice"),
                                                     "--dns-server", op.dns.address()],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=op.app.env)
        time.sleep(1.5)
        waiting.send_signal(signal.SIGKILL)
        waiting.wait()
        keys = op.keys()
        check(keys[new]["state"] == "pending-publish" and len([k for k in keys.values() if k["algorithm"] ==
                                                                "rsa-2048"]) == 2,
              "killing the waiting CLI left one pending key and the old one")
        check(op.alice("dns", "check", DOMAIN, "--outbound", "127.0.0.1").returncode == 1,
              "dns check reports the unpublished key as a problem")

        # Step 2: published, so it activates. Then kill signerd.
        op.publish()
        r = op.alice(*rotate)
        activated = time.monotonic()
        check(r.returncode == 0 and "active; rsa retiring until" in out(r),
              "step 2 activates %s once DNS has it; rsa retires: %s" % (new, out(r).strip()[-150:]))
        restart_signerd(op, "after the activation")
        keys = op.keys()
        check(keys[new]["state"] == "active" and keys["rsa"]["state"] == "retiring" and keys["rsa"]["managed"],
              "after the restart %s is active and rsa is retiring" % new)
        check(op.alice("dns", "check", DOMAIN, "--outbound", "127.0.0.1").returncode == 0,
              "dns check passes with both keys published")
        # The relay reloads its keys every key_refresh (1 s): mail sent before then is still
        # signed with rsa. Send until a message carries the new key (seconds at most), instead of
        # a fixed sleep that a loaded machine outlasted.
        for _ in until(30):
            relay.send("after activation")
            if new.encode() in selectors_of(relay.delivered()[-1]):
                break
            time.sleep(0.2)
        check(new.encode() in selectors_of(relay.delivered()[-1]) and b"rsa" not in selectors_of(relay.delivered()[-1]),
              "the relay switched to %s without a restart: %s" % (new, selectors_of(relay.delivered()[-1])))
        check(dkimpy_verifies(op.dns, relay.delivered()[-1]), "dkimpy verifies the relay's mail after the rotation")

        # Step 3: the grace period; then the retirement needs its own grant.
        r = op.alice(*rotate)
        if time.monotonic() - activated < grace - 1:
            check(r.returncode == WAITING and "retiring until" in out(r), "the rerun waits for the grace period")
        time.sleep(max(0.0, grace + 0.5 - (time.monotonic() - activated)))
        r = op.alice(*rotate)
        check(r.returncode == 1 and "holds no active grant for key.retire" in out(r),
              "retiring needs key.retire: %s" % out(r).strip()[-100:])
        op.grant("key.retire")
        r = op.alice(*rotate)
        check(r.returncode == 0 and "the private key was destroyed in the token" in out(r),
              "step 3 retires rsa and destroys its private half: %s" % out(r).strip()[-120:])
        restart_signerd(op, "after the retirement")
        r = op.alice(*rotate)
        check(r.returncode == 0 and "nothing in progress" in out(r),
              "a rerun after the last step starts no new rotation: %s" % out(r).strip()[-100:])

        keys = op.keys()
        check(keys["rsa"]["state"] == "retired" and keys[new]["state"] == "active",
              "the end state: rsa retired, %s active" % new)
        direct = op.app.cli("key", "list", "--module", module, "--token", "dkim", "--pin-file", op.app.pin)
        rsa_line = [line for line in out(direct).splitlines() if line.startswith(DOMAIN) and " rsa " in line]
        check(rsa_line and "MISSING: no private key" in rsa_line[0],
              "the token holds rsa's public half only: %s" % rsa_line)
        signed = subprocess.run(NOBODY + [cli, "sign", "--signerd", op.app.socket, "--domain", DOMAIN,
                                          "--selector", "rsa", "--algorithm", "rsa-sha256"],
                                input=b"From: a@signerd.example\r\n\r\nx\r\n", capture_output=True, env=op.app.env)
        check(signed.returncode != 0 and "retired" in out(signed), "the retired key does not sign: %s" % out(signed)[-80:])
        generated = [k for k in op.keys().values() if k["origin"] == "generated"]
        check(len(generated) == 1, "exactly one key was generated across the reruns")
        verified = op.app.cli("audit", "verify", "--db", op.app.db, "--module", module, "--token", "dkim",
                              check=False)
        check(verified.returncode == 0, "the audit chain verifies: %s" % out(verified).strip()[-100:])
        actions = out(op.app.op("audit", "show", "--limit", "10000", check=True))
        for action in ("key.generating", "key.generated", "key.activated", "key.retired", "key.destroyed"):
            check(action in actions, "the audit log records %s" % action)
    finally:
        if relay:
            relay.stop()
        op.stop()


def dnscheck(folder, cli, signerd, relayd, module):
    op = Operator(folder, cli, signerd, module)
    try:
        base = dict(op.records)

        def run(records, *extra):
            op.dns.republish(records)
            r = op.alice("dns", "check", DOMAIN, "--outbound", "127.0.0.1", "--json", *extra)
            try:
                return r.returncode, {f["record"]: f for f in json.loads(r.stdout)["findings"]}
            except ValueError:
                return r.returncode, {"error": {"status": "?", "message": out(r), "fix": ""}}

        code, findings = run(base)
        check(code == 0 and all(f["status"] in ("OK", "WARNING") for f in findings.values()),
              "a correct domain passes: %s" % {k: f["status"] for k, f in findings.items()})

        missing = {k: v for k, v in base.items() if not k.startswith("rsa._domainkey") and k != "_dmarc." + DOMAIN}
        code, findings = run(missing)
        check(code == 1 and findings["DKIM rsa"]["status"] == "PROBLEM" and "not published" in
              findings["DKIM rsa"]["message"] and "rsa._domainkey." + DOMAIN + ". IN TXT" in findings["DKIM rsa"]["fix"],
              "a missing DKIM record is a problem, with the record to publish")
        check(findings["DMARC"]["status"] == "PROBLEM" and "p=none" in findings["DMARC"]["fix"],
              "a missing DMARC record: start in monitor mode")

        mismatched = dict(base)
        mismatched["rsa._domainkey." + DOMAIN] = base["ed._domainkey." + DOMAIN]
        mismatched["ed._domainkey." + DOMAIN] = base["short._domainkey." + DOMAIN]
        code, findings = run(mismatched)
        check(code == 1 and findings["DKIM rsa"]["message"] == "the published record is of another key type" and
              findings["DKIM ed"]["message"] == "the published key is not the token's key",
              "mismatched keys are problems: %s / %s" % (findings["DKIM rsa"]["message"], findings["DKIM ed"]["message"]))

        malformed = dict(base)
        malformed[DOMAIN] = "v=spf1 ip4:127.0.0.1/40 -all"
        malformed["short._domainkey." + DOMAIN] = "v=DKIM1; k=ed25519; p=!!!"
        malformed["_dmarc." + DOMAIN] = "v=DMARC1; p=sometimes"
        code, findings = run(malformed)
        check(code == 1 and "invalid" in findings["SPF"]["message"] and "invalid" in findings["DKIM short"]["message"]
              and findings["DMARC"]["status"] == "PROBLEM",
              "malformed SPF, DKIM and DMARC records are problems: %s" % findings["SPF"]["message"])

        over = dict(base)
        over[DOMAIN] = "v=spf1 ip4:127.0.0.1 " + " ".join("include:i%d.%s" % (i, DOMAIN) for i in range(11)) + " -all"
        for i in range(11):
            over["i%d.%s" % (i, DOMAIN)] = "v=spf1 ip4:192.0.2.%d -all" % i
        code, findings = run(over)
        check(code == 1 and "11 DNS-querying terms" in findings["SPF"]["message"],
              "an SPF record over the 10-lookup limit is a problem: %s" % findings["SPF"]["message"])

        duplicated = dict(base)
        duplicated[DOMAIN] = ["v=spf1 -all", "v=spf1 ip4:127.0.0.1 -all"]
        code, findings = run(duplicated)
        check(code == 1 and "2 SPF records" in findings["SPF"]["message"], "two SPF records are a problem")

        unauthorized = dict(base)
        unauthorized[DOMAIN] = "v=spf1 include:_spf.provider." + DOMAIN + " ~all"
        unauthorized["_spf.provider." + DOMAIN] = "v=spf1 ip4:192.0.2.0/24 -all"
        code, findings = run(unauthorized)
        check(code == 1 and "does not authorize 127.0.0.1 (softfail)" in findings["SPF"]["message"] and
              "v=spf1 ip4:127.0.0.1 include:_spf.provider." + DOMAIN + " ~all" in findings["SPF"]["fix"],
              "SPF that misses our address: the fix merges it into the published record: %s" % findings["SPF"]["fix"])

        records = op.alice("dns", "records", DOMAIN, "--outbound", "127.0.0.1", "--outbound", "2001:db8::25",
                           "--dmarc-rua", "mailto:dmarc@" + DOMAIN)
        text = out(records)
        check(records.returncode == 0 and "v=spf1 ip4:127.0.0.1 ip6:2001:db8::25 include:_spf.provider." in text and
              'rsa._domainkey.%s. IN TXT ( "v=DKIM1; k=rsa; p=' % DOMAIN in text and
              "p=quarantine; pct=25" in text,
              "dns records: DKIM, the merged SPF record and the DMARC ramp")

        # Where reports go: the configured addresses in DMARC, TLS-RPT, an external report
        # domain's authorization (RFC 7489 section 7.1) in its own zone.
        op.dns.locals.append("--local=/reports.example.net/")
        reporting = ("--dmarc-rua", "mailto:dmarc@" + DOMAIN, "--dmarc-ruf", "mailto:failures@reports.example.net",
                     "--tlsrpt-rua", "mailto:tls@" + DOMAIN)
        authorization = DOMAIN + "._report._dmarc.reports.example.net"
        code, findings = run(base, *reporting)
        check(code == 1 and findings["DMARC"]["status"] == "PROBLEM" and
              "ruf=mailto:failures@reports.example.net" in findings["DMARC"]["fix"] and
              findings["TLS-RPT"]["status"] == "PROBLEM" and
              "_smtp._tls.%s. IN TXT" % DOMAIN in findings["TLS-RPT"]["fix"] and
              findings["DMARC report"]["status"] == "PROBLEM" and
              authorization + '. IN TXT ( "v=DMARC1" )' in findings["DMARC report"]["fix"],
              "dns check: DMARC without ruf=, no TLS-RPT and no authorization are problems, each with its fix: %s" % {
                  k: f["status"] for k, f in findings.items()})
        reported = dict(base)
        reported["_dmarc." + DOMAIN] = ("v=DMARC1; p=none; rua=mailto:dmarc@%s; "
                                        "ruf=mailto:failures@reports.example.net" % DOMAIN)
        reported["_smtp._tls." + DOMAIN] = "v=TLSRPTv1; rua=mailto:tls@" + DOMAIN
        reported[authorization] = "v=DMARC1"
        code, findings = run(reported, *reporting)
        check(code == 0 and all(findings[k]["status"] == "OK" for k in ("DMARC", "TLS-RPT", "DMARC report")),
              "dns check: the report records as configured are OK: %s" % {k: f["status"] for k, f in findings.items()})

        records = op.alice("dns", "records", DOMAIN, "--outbound", "127.0.0.1", *reporting)
        text = out(records)
        check('_dmarc.%s. IN TXT ( "v=DMARC1; p=none; rua=mailto:dmarc@%s; ruf=mailto:failures@reports.example.net" )'
              % (DOMAIN, DOMAIN) in text and
              '_smtp._tls.%s. IN TXT ( "v=TLSRPTv1; rua=mailto:tls@%s" )' % (DOMAIN, DOMAIN) in text and
              '%s. IN TXT ( "v=DMARC1" )' % authorization in text,
              "dns records: DMARC with rua= and ruf=, TLS-RPT and the report domain's authorization")
        listed = op.alice("dns", "records", DOMAIN, "--offline", "--json", *reporting)
        try:
            kinds = {r["kind"]: r["name"] for r in json.loads(listed.stdout)["records"]}
        except ValueError:
            kinds = {"error": out(listed)}
        check(kinds.get("tlsrpt") == "_smtp._tls." + DOMAIN and kinds.get("dmarc-report") == authorization,
              "dns records --json: kinds tlsrpt and dmarc-report: %s" % kinds)
        served = op.alice("dns", "records", DOMAIN, "--offline", "--dnsmasq", *reporting)
        check('txt-record=_smtp._tls.%s,"v=TLSRPTv1; rua=mailto:tls@%s"' % (DOMAIN, DOMAIN) in out(served) and
              'txt-record=%s,"v=DMARC1"' % authorization in out(served),
              "dns records --dnsmasq: the TLS-RPT record and the authorization as txt-record lines")
        bad = op.alice("dns", "records", DOMAIN, "--offline", "--dmarc-ruf", "failures@reports.example.net")
        check(bad.returncode == 2 and "--dmarc-ruf" in out(bad), "a report address that is no mailto: URI is a usage error")
    finally:
        op.stop()


APPLY_CONFIG = """
outbound_addresses = ["127.0.0.1"]
dmarc_rua = "mailto:dmarc@apply.example"
[rotation]
grace = "1h"
[[domain]]
name = "apply.example"
[[domain.key]]
algorithm = "rsa-2048"
selector = "rsa1"
[[domain.key]]
algorithm = "ed25519"
selector = "ed1"
"""


def apply_group(folder, cli, signerd, relayd, module):
    op = Operator(folder, cli, signerd, module)
    try:
        config = os.path.join(folder, "appliance.toml")
        with open(config, "w") as f:
            f.write(APPLY_CONFIG)
        for selector in ("rsa1", "ed1"):  # a key.generate grant names its selector
            op.grant("key.generate", selector, domain="apply.example")

        dry = op.alice("apply", "--config", config, "--dry-run")
        check(dry.returncode == 0 and "create   apply.example rsa1 (rsa-2048)" in out(dry) and
              "create   apply.example ed1 (ed25519)" in out(dry) and not op.keys("apply.example"),
              "--dry-run prints the plan and changes nothing: %s" % out(dry).strip()[-160:])

        first = op.alice("apply", "--config", config)
        keys = op.keys("apply.example")
        check(first.returncode == WAITING and {k: v["state"] for k, v in keys.items()} ==
              {"rsa1": "pending-publish", "ed1": "pending-publish"},
              "apply creates both keys and waits for their records (exit 75)")
        audit_before = op.audit_count()
        second = op.alice("apply", "--config", config)
        check(second.returncode == WAITING and "publish  apply.example rsa1" in out(second) and
              op.keys("apply.example") == keys and op.audit_count() == audit_before,
              "a second apply before publication changes nothing: %s" % out(second).strip()[-120:])

        op.records["apply.example"] = "v=spf1 ip4:127.0.0.1 -all"
        op.records["_dmarc.apply.example"] = "v=DMARC1; p=none; rua=mailto:dmarc@apply.example"
        op.publish("apply.example")
        third = op.alice("apply", "--config", config)
        keys = op.keys("apply.example")
        check(third.returncode == 0 and {k: v["state"] for k, v in keys.items()} ==
              {"rsa1": "active", "ed1": "active"}, "once published, apply activates both: %s" % out(third).strip()[-160:])
        audit_before = op.audit_count()
        fourth = op.alice("apply", "--config", config)
        check(fourth.returncode == 0 and "nothing to change" in out(fourth) and op.keys("apply.example") == keys and
              op.audit_count() == audit_before,
              "a second apply changes nothing (same keys, no audit record): %s" % out(fourth).strip()[-100:])

        # The DMARC stage is policy too: apply names the record to publish, and changes nothing.
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write(text.replace('name = "apply.example"\n',
                                 'name = "apply.example"\ndmarc_policy = "quarantine"\ndmarc_pct = 25\n'))
        ramp = op.alice("apply", "--config", config)
        check(ramp.returncode == WAITING and "v=DMARC1; p=quarantine; pct=25; rua=mailto:dmarc@apply.example" in out(ramp)
              and op.keys("apply.example") == keys,
              "a new DMARC stage in the file: apply shows the record to publish: %s" % out(ramp).strip()[-160:])
        op.records["_dmarc.apply.example"] = "v=DMARC1; p=quarantine; pct=25; rua=mailto:dmarc@apply.example"
        op.dns.republish(op.records)
        done = op.alice("apply", "--config", config)
        check(done.returncode == 0 and "nothing to change" in out(done), "published: apply is satisfied")

        # Where TLS reports go is policy too (apply.example answered by the test's DNS alone).
        op.dns.locals.append("--local=/apply.example/")
        op.dns.republish(op.records)
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write('tlsrpt_rua = "mailto:tls@apply.example"\n' + text)
        tls = op.alice("apply", "--config", config)
        check(tls.returncode == WAITING and
              '_smtp._tls.apply.example. IN TXT ( "v=TLSRPTv1; rua=mailto:tls@apply.example" )' in out(tls),
              "tlsrpt_rua in the file: apply shows the TLS-RPT record to publish: %s" % out(tls).strip()[-200:])
        op.records["_smtp._tls.apply.example"] = "v=TLSRPTv1; rua=mailto:tls@apply.example"
        op.dns.republish(op.records)
        done = op.alice("apply", "--config", config)
        check(done.returncode == 0 and "nothing to change" in out(done), "TLS-RPT published: apply is satisfied")

        with open(config, "a") as f:
            f.write("colour = \"blue\"\n")
        bad = op.alice("apply", "--config", config)
        check(bad.returncode == 2 and "appliance.toml:" in out(bad) and "colour" in out(bad),
              "a configuration error names the file, line and key: %s" % out(bad).strip()[-120:])
    finally:
        op.stop()


def import_group(folder, cli, signerd, relayd, module):
    op = Operator(folder, cli, signerd, module)
    try:
        keydir = os.path.join(folder, "opendkim")
        os.makedirs(keydir)
        domains = ("import.example", "other.example")
        for domain in domains:
            subprocess.run(["opendkim-genkey", "-D", keydir, "-d", domain, "-s", "mig", "-b", "2048"], check=True)
            os.rename(os.path.join(keydir, "mig.private"), os.path.join(keydir, domain + ".private"))
            txt = open(os.path.join(keydir, "mig.txt")).read()
            op.records["mig._domainkey." + domain] = "".join(re.findall(r'"([^"]*)"', txt))
        op.dns.republish(op.records)
        key_table = os.path.join(keydir, "KeyTable")
        signing_table = os.path.join(keydir, "SigningTable")
        with open(key_table, "w") as f:
            f.write("# migrated\n")
            for domain in domains:
                f.write("mig.%s %s:mig:%s/%s.private\n" % (domain, domain, keydir, domain))
        with open(signing_table, "w") as f:
            for domain in domains:
                f.write("*@%s mig.%s\n" % (domain, domain))
        messages = os.path.join(folder, "test-messages")
        os.makedirs(messages)
        # Its opendkim.conf (Debian's, with the site's tables and hosts): the milter settings.
        trusted = os.path.join(keydir, "TrustedHosts")
        with open(trusted, "w") as f:
            f.write("127.0.0.1\n10.1.0.0/16\nmail.import.example\n")
        opendkim_conf = os.path.join(keydir, "opendkim.conf")
        with open(opendkim_conf, "w") as f:
            f.write("Syslog yes\nCanonicalization relaxed/simple\nMode sv\nOversignHeaders From\n"
                    "KeyTable refile:%s\nSigningTable refile:%s\nInternalHosts refile:%s\n"
                    "Socket local:/run/opendkim/opendkim.sock\n" % (key_table, signing_table, trusted))
        args = ["import", "opendkim", "--opendkim-conf", opendkim_conf,
                "--test-messages", messages, "--config-out", os.path.join(folder, "imported.toml")]

        refused = op.alice(*args)
        check(refused.returncode == 1 and "holds no active grant for key.generate" in out(refused),
              "import is refused without a key.generate grant: %s" % out(refused).strip()[-100:])

        bad_table = os.path.join(keydir, "BadTable")
        with open(bad_table, "w") as f:
            f.write("# fine\nmig.x import.example:mig\n")
        bad = op.alice("import", "opendkim", "--keytable", bad_table, "--signingtable", signing_table)
        check(bad.returncode == 1 and bad_table + ":2:" in out(bad),
              "a malformed KeyTable is refused naming file and line: %s" % out(bad).strip()[-100:])

        for domain in domains:
            op.grant("key.generate", "mig", domain=domain)
        imported = op.alice(*args)
        text = out(imported)
        check(imported.returncode == 0 and text.count("verified: the token's signature passes") == 2 and
              "shred -u " + keydir + "/import.example.private" in text,
              "both keys imported, verified with the published record, activated: %s" % text.strip()[-200:])
        for domain in domains:
            path = os.path.join(messages, "mig.%s.eml" % domain)
            message = open(path, "rb").read() if os.path.exists(path) else b""
            check(dkimpy_verifies(op.dns, message), "dkimpy verifies the test message the imported %s key signed"
                  % domain)
        config = open(os.path.join(folder, "imported.toml")).read() if os.path.exists(
            os.path.join(folder, "imported.toml")) else ""
        check('name = "import.example"' in config and 'selector = "mig"' in config and 'algorithm = "rsa-2048"' in config,
              "the equivalent appliance.toml is written")
        # The milter settings: a listener for dkim-relayd that it reads as it is, and main.cf's lines.
        milter = text.partition("# dkim-relayd.toml:")[2].partition("# Postfix's main.cf")[0]
        check('protocol = "milter"' in milter and 'role = "both"' in milter and
              'networks = ["127.0.0.1", "10.1.0.0/16"]' in milter and "mail.import.example" in milter and
              'name = "import.example"' in milter and 'name = "other.example"' in milter,
              "the import prints the milter listener for opendkim.conf's Socket, Mode and InternalHosts: %s"
              % milter[-600:])
        relayd_conf = os.path.join(folder, "milter-relayd.toml")
        with open(relayd_conf, "w") as f:
            f.write('signerd_socket = "%s"\n' % op.app.socket + milter.split("\n", 1)[1])
        checked = subprocess.run([relayd, "--config", relayd_conf, "--check-config"], capture_output=True, text=True)
        check(checked.returncode == 0, "dkim-relayd takes the printed listener as it is: %s"
              % (checked.stdout + checked.stderr).strip()[-300:])
        check("smtpd_milters = inet:127.0.0.1:8891" in text and "non_smtpd_milters = $smtpd_milters" in text and
              "milter_default_action = tempfail" in text and "milter_protocol = 6" in text,
              "and the lines of Postfix's main.cf to change")
        keys = op.keys("import.example")
        check(keys.get("mig", {}).get("state") == "active" and keys["mig"]["origin"] == "imported",
              "the imported key is active: %s" % keys.get("mig"))
        direct = op.app.cli("key", "list", "--module", module, "--token", "dkim", "--pin-file", op.app.pin)
        line = [x for x in out(direct).splitlines() if x.startswith("import.example")]
        check(line and "protected (imported" in line[0], "in the token it is sensitive and not extractable: %s" % line)

        op.grant("sign", domain="import.example")
        signed = subprocess.run(NOBODY + [cli, "sign", "--signerd", op.app.socket, "--domain", "import.example",
                                          "--selector", "mig", "--algorithm", "rsa-sha256"],
                                input=b"From: a@import.example\r\nTo: b@peer.example\r\nSubject: after\r\n\r\nx\r\n",
                                capture_output=True, env=op.app.env)
        check(signed.returncode == 0 and dkimpy_verifies(op.dns, signed.stdout),
              "the imported key signs through signerd, and dkimpy verifies it")
        again = op.alice(*args)
        check(again.returncode == 1 and "exists and is active" in out(again),
              "importing again is refused: the keys are active: %s" % out(again).strip()[-100:])
    finally:
        op.stop()


def main():
    if len(sys.argv) != 6:
        print(__doc__)
        return 2
    group, cli, signerd, relayd, module = sys.argv[1:]
    groups = {"rotation": rotation, "dnscheck": dnscheck, "apply": apply_group, "import": import_group}
    folder = tempfile.mkdtemp(prefix="dkim-provisioning-")
    os.chmod(folder, 0o755)
    try:
        groups[group](folder, cli, signerd, relayd, module)
    finally:
        if FAILURES:
            for log in sorted(glob.glob(os.path.join(folder, "*.log"))):
                print("--- %s\n%s" % (os.path.basename(log), open(log).read()[-4000:]))
        shutil.rmtree(folder, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
