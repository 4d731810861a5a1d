#!/usr/bin/python3
"""Report mail through dkim-relayd's inbound listener into a real dkim-reportd (issue 21):
swaks sends to the report addresses of [inbound.reports], dnsmasq answers the SPF lookups of
MAIL FROM, and a tiny client of reportd's channel (the frames of dkim/reports/channel.hpp) asks
reportd what it stored.

Started by ctest (labels "relayd;reportd"), one group per run:

  store    a real aggregate report mail (tests/data/dmarc-reports), generated ones in gzip and in
           zip, one sent twice: 250 only with reportd's submission number, each stored (reportd's
           "reports" answer), the duplicate counted; ordinary mail still reaches the maildir next
           hop and report mail never does; relayd's log lines and metrics.
  outage   reportd stopped: 451 at the final dot, nothing stored or forwarded, the same mail
           stored once reportd is back (the sender's retry); a reportd that does not know relayd's
           user: 451 (forbidden is never a bounce); a reportd that refuses the message as invalid:
           554 5.6.0 with its reason.
  reporter the authenticated reporter: a report mail DKIM-signed by dkimpy (an independent
           signer) with the key published in dnsmasq reaches reportd with reporter=reporter.test
           (relayd's log line, and reportd's own record of it when it keeps one); an unsigned one
           and one whose signature no longer verifies with none, and all three are stored.
           `dkim-appliance reports import` does the same for a signed .eml (LF line endings),
           not for a bare .xml.gz, and not with --no-verify.

As root, relayd runs as nobody and reportd as daemon (setpriv), each a peer of the other by its
own uid ([peers] relay = ["nobody"]; the test asks reportd as root, its admin peer); otherwise both
run as the caller, and what reportd stored is read from its SQLite store instead.

usage: relayd_reports.py GROUP DKIM_RELAYD DKIM_REPORTD DKIM_APPLIANCE
"""

import base64

import email.mime.application
import email.mime.multipart
import email.mime.text
import email.policy
import email.utils
import gzip
import io
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import DnsServer, check, free_port, reportd_call, run_module, until  # noqa: E402

import dkim  # noqa: E402  (python3-dkim: dkimpy, an independent signer)

ROOT = os.geteuid() == 0
RELAY_USER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if ROOT else []
REPORT_USER = ["setpriv", "--reuid=daemon", "--regid=nogroup", "--clear-groups"] if ROOT else []
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "dmarc-reports")
GOOGLE_REPORT = os.path.join(DATA, "aggregate", "google.com-borschow.com-report.eml")
REPORT_ADDRESS = "dmarc-reports@example.net"


# --- dkim-reportd ------------------------------------------------------------------------------

channel_call = reportd_call


class Reportd:
    def __init__(self, folder, reportd, relay_peer=None, max_input=None):
        self.reportd = reportd
        self.run_dir = os.path.join(folder, "run")
        self.store_dir = os.path.join(folder, "store")
        for d, mode in ((self.run_dir, 0o755), (self.store_dir, 0o700)):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, mode)
            if ROOT:
                shutil.chown(d, "daemon", "nogroup")
        self.socket = os.path.join(self.run_dir, "reportd.sock")
        self.store = os.path.join(self.store_dir, "reports.db")
        self.config = os.path.join(folder, "reportd.toml")
        self.logfile = os.path.join(folder, "reportd.log")
        with open(self.config, "w") as f:
            f.write('socket = "%s"\nsocket_mode = 0o660\n' % self.socket)
            if ROOT:
                f.write('socket_group = "nogroup"\n')
            f.write('store = "%s"\nsignerd_socket = "%s"\noutbound = ["127.0.0.1"]\n'
                    % (self.store, os.path.join(folder, "no-signerd.sock")))
            relay = relay_peer or ("nobody" if ROOT else str(os.getuid()))
            f.write('[peers]\nrelay = ["%s"]\n' % relay)
            if ROOT:
                f.write('admin = ["root"]\n')
            if max_input:
                f.write('[limits]\nmax_input = "%s"\n' % max_input)

    def start(self):
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(REPORT_USER + [self.reportd, "--config", self.config],
                                     stdout=self.log, stderr=self.log)
        for _ in until():
            if "listening on" in open(self.logfile).read() and os.path.exists(self.socket):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("dkim-reportd exited: " + open(self.logfile).read())
            time.sleep(0.05)
        raise RuntimeError("dkim-reportd did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        return self.proc.returncode

    def reports(self, domain):
        """The reports reportd stored for `domain`: (org_name, report_id) pairs."""
        if ROOT:
            answer = channel_call(self.socket, {"op": "reports", "domain": domain, "from": 0,
                                                "until": int(time.time()) + 86400, "limit": 1000})
            if not answer.get("ok"):
                raise RuntimeError("dkim-reportd: %s" % answer)
            return [(r["org_name"], r["report_id"]) for r in answer["reports"]]
        with sqlite3.connect("file:%s?mode=ro" % self.store, uri=True) as db:
            return db.execute("SELECT org_name, report_id FROM reports WHERE domain = ?",
                              (domain,)).fetchall()

    def reporters(self, domain):
        """report_id -> the reporter reportd keeps for it, or None when this reportd keeps none."""
        if ROOT:
            answer = channel_call(self.socket, {"op": "reports", "domain": domain, "from": 0,
                                                "until": int(time.time()) + 86400, "limit": 1000})
            if not answer.get("ok"):
                raise RuntimeError("dkim-reportd: %s" % answer)
            if any("reporter" not in r for r in answer["reports"]):
                return None
            return {r["report_id"]: r["reporter"] for r in answer["reports"]}
        with sqlite3.connect("file:%s?mode=ro" % self.store, uri=True) as db:
            columns = [row[1] for row in db.execute("PRAGMA table_info(reports)")]
            if "reporter" not in columns:
                return None
            return dict(db.execute("SELECT report_id, reporter FROM reports WHERE domain = ?",
                                   (domain,)).fetchall())

    def submissions(self):
        if ROOT:
            answer = channel_call(self.socket, {"op": "status"})
            return answer.get("submissions")
        with sqlite3.connect("file:%s?mode=ro" % self.store, uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]


# --- dkim-relayd -------------------------------------------------------------------------------

class InboundRelay:
    def __init__(self, folder, relayd, dns_address, maildir, reportd_socket):
        self.relayd = relayd
        self.port = free_port()
        self.config = os.path.join(folder, "relayd.toml")
        self.logfile = os.path.join(folder, "relayd.log")
        with open(self.config, "w") as f:
            f.write('hostname = "mx.example.net"\nsignerd_socket = "%s/no-signerd.sock"\n' % folder)
            f.write('[[listen]]\naddress = "127.0.0.1:%d"\nrole = "inbound"\n' % self.port)
            f.write('[next_hop]\nurl = "maildir:%s"\n' % maildir)
            f.write('[metrics]\nlisten = "127.0.0.1:0"\n')
            f.write('[inbound]\ndomains = ["example.net"]\ndns_server = "%s"\ndns_timeout = "1500ms"\n'
                    'org_domain = "tree-walk"\n' % dns_address)
            f.write('[inbound.reports]\naddresses = ["%s", "TLS-Reports@example.net"]\n'
                    'socket = "%s"\nmax_size = "1MiB"\n' % (REPORT_ADDRESS, reportd_socket))

    def start(self):
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(RELAY_USER + [self.relayd, "--config", self.config],
                                     stdout=self.log, stderr=self.log)
        for _ in until():
            text = self.text()
            if "listening on" in text and "metrics on port" in text:
                self.metrics_port = int(re.findall(r"metrics on port (\d+)", text)[-1])
                return
            if self.proc.poll() is not None:
                raise RuntimeError("dkim-relayd exited: " + text)
            time.sleep(0.05)
        raise RuntimeError("dkim-relayd did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        return self.proc.returncode

    def text(self):
        return open(self.logfile, errors="replace").read()

    def metric(self, name):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5) as r:
            text = r.read().decode()
        found = re.findall(r"^%s (\d+)$" % re.escape(name), text, re.M)
        return int(found[0]) if found else None


def swaks(port, sender, data, to=REPORT_ADDRESS, helo="mx.reporter.test"):
    """Sends `data` (bytes); returns every reply line swaks saw and its exit status."""
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port, "--from", sender, "--to", to,
                        "--helo", helo, "--timeout", "60", "--data", "-"],
                       input=data, capture_output=True, timeout=180)
    text = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    return re.findall(r"^<\S*\s+(\d{3}[ -].*)$", text, re.M), r.returncode


def final_reply(replies):
    """The reply to the final dot: the one before 221."""
    rest = [r for r in replies if not r.startswith("221")]
    return rest[-1] if rest else ""


def make_maildir(folder):
    path = os.path.join(folder, "inbox")
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub))
    if ROOT:
        for root, _, _ in os.walk(path):
            shutil.chown(root, "nobody", "nogroup")
    return path


def delivered(maildir):
    return sorted(os.listdir(os.path.join(maildir, "new")))


# --- report mail -------------------------------------------------------------------------------

def aggregate_xml(report_id, domain="example.net"):
    end = int(time.time()) // 86400 * 86400
    begin = end - 86400
    return ("""<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata>
    <org_name>reporter.test</org_name>
    <email>dmarc@reporter.test</email>
    <report_id>%s</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>%s</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.25</source_ip>
      <count>3</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>
    </row>
    <identifiers><header_from>%s</header_from></identifiers>
    <auth_results>
      <dkim><domain>%s</domain><selector>s2026</selector><result>pass</result></dkim>
      <spf><domain>%s</domain><result>pass</result></spf>
    </auth_results>
  </record>
</feedback>
""" % (report_id, begin, end, domain, domain, domain, domain)).encode(), begin, end


def report_mail(kind, report_id):
    """A DMARC aggregate report mail as reporters send them: the XML gzip'd or zip'd, attached."""
    xml, begin, end = aggregate_xml(report_id)
    name = "reporter.test!example.net!%d!%d" % (begin, end)
    if kind == "gzip":
        content, subtype, filename = gzip.compress(xml), "gzip", name + ".xml.gz"
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(name + ".xml", xml)
        content, subtype, filename = buffer.getvalue(), "zip", name + ".zip"
    msg = email.mime.multipart.MIMEMultipart()
    msg["From"] = "dmarc@reporter.test"
    msg["To"] = REPORT_ADDRESS
    msg["Subject"] = "Report Domain: example.net Submitter: reporter.test Report-ID: <%s>" % report_id
    msg["Message-ID"] = "<%s@reporter.test>" % report_id
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg.attach(email.mime.text.MIMEText("This is an aggregate report from reporter.test.\n"))
    attachment = email.mime.application.MIMEApplication(content, subtype)
    attachment.add_header("Content-Disposition", "attachment", filename=filename)
    msg.attach(attachment)
    return msg.as_bytes(policy=email.policy.SMTP)


def plain_mail(subject):
    return ("From: joe@reporter.test\r\nTo: bob@example.net\r\nSubject: %s\r\n"
            "Message-ID: <%s@reporter.test>\r\n\r\nHello.\r\n" % (subject, uuid.uuid4().hex)).encode()


def start_all(folder, relayd, reportd_binary, records=None, **reportd_options):
    os.chmod(folder, 0o755)
    dns = DnsServer(folder, dict({"reporter.test": "v=spf1 ip4:127.0.0.1 -all"}, **(records or {})),
                    "reporter.test")
    maildir = make_maildir(folder)
    reportd = Reportd(folder, reportd_binary, **reportd_options)
    reportd.start()
    relay = InboundRelay(folder, relayd, dns.address(), maildir, reportd.socket)
    relay.start()
    return dns, maildir, reportd, relay


# --- groups ------------------------------------------------------------------------------------

def group_store(folder, relayd, reportd_binary, cli=None):
    dns, maildir, reportd, relay = start_all(folder, relayd, reportd_binary)
    try:
        # A real report mail (Google's, relayed through Outlook), from Google's reverse-path.
        with open(GOOGLE_REPORT, "rb") as f:
            google = f.read()
        replies, _ = swaks(relay.port, "noreply-dmarc-support@google.com", google,
                           helo="mail-sor-f69.google.com")
        final = final_reply(replies)
        check(re.match(r"250 2\.0\.0 Ok: report stored \(submission \d+\)", final) is not None,
              "google.com's report: 250 with reportd's submission (%s)" % final)
        stored = reportd.reports("borschow.com")
        check(any("google" in org for org, _ in stored), "google.com's report is in reportd's store: %s" % stored)

        # Generated reports, gzip'd and zip'd, from a reporter whose SPF passes.
        ids = {kind: "relayd-%s-%s" % (kind, uuid.uuid4().hex[:12]) for kind in ("gzip", "zip")}
        for kind, report_id in ids.items():
            replies, _ = swaks(relay.port, "dmarc@reporter.test", report_mail(kind, report_id))
            check(final_reply(replies).startswith("250 2.0.0 Ok: report stored"),
                  "%s report: 250 (%s)" % (kind, final_reply(replies)))
        stored_ids = [report_id for _, report_id in reportd.reports("example.net")]
        for kind, report_id in ids.items():
            check(report_id in stored_ids, "%s report %s is in reportd's store: %s" % (kind, report_id, stored_ids))

        # The same report again (a reporter's retry): stored as a submission, counted a duplicate.
        replies, _ = swaks(relay.port, "dmarc@reporter.test", report_mail("gzip", ids["gzip"]),
                           to="tls-reports@EXAMPLE.net")
        check(final_reply(replies).startswith("250"), "the second address, in another case: 250 (%s)"
              % final_reply(replies))
        check(re.search(r"dkim-relayd: report id=\S+ ip=127\.0\.0\.1 .*submission=\d+ reports=0 "
                        r"duplicates=1 errors=0 reportd=\"stored\" reply=250", relay.text()) is not None,
              "relayd logs the resend with duplicates=1")
        check([r for r in reportd.reports("example.net")].count(("reporter.test", ids["gzip"])) == 1,
              "the report is stored once")
        check(len(re.findall(r"dkim-relayd: report id=\S+ .*reply=250", relay.text())) == 4,
              "one log line per report transaction")

        # Report mail never reaches the next hop; ordinary mail still does.
        check(delivered(maildir) == [], "no report mail in the next hop's maildir")
        replies, _ = swaks(relay.port, "joe@reporter.test", plain_mail("hello"), to="bob@example.net")
        check(final_reply(replies).startswith("250 2.0.0 Ok: verified"),
              "ordinary mail: verified and delivered (%s)" % final_reply(replies))
        check(len(delivered(maildir)) == 1, "ordinary mail: in the maildir")

        # A transaction for both: the report address first, the other recipient waits.
        replies, _ = swaks(relay.port, "dmarc@reporter.test", report_mail("zip", "mixed-" + ids["zip"]),
                           to=REPORT_ADDRESS + ",bob@example.net")
        check(any(r.startswith("452 4.5.3") for r in replies), "mixed recipients: 452 4.5.3 for the other one")
        check(len(delivered(maildir)) == 1, "mixed recipients: nothing for the maildir")

        check(relay.metric('dkim_relayd_report_submissions_total{outcome="stored"}') == 5,
              "metrics: 5 report submissions stored")
        if ROOT:
            check(os.stat(reportd.store).st_uid == pwd.getpwnam("daemon").pw_uid,
                  "reportd's store belongs to its own user (daemon)")
    finally:
        relay.stop()
        reportd.stop()
        dns.stop()


def dkim_key(folder):
    """A fresh RSA key: its PEM, and its DKIM key record."""
    pem = subprocess.run(["openssl", "genrsa", "2048"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem,
                         capture_output=True, check=True).stdout
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def signed(mail, pem, domain="reporter.test", selector="sel"):
    signature = dkim.sign(mail, selector.encode(), domain.encode(), pem, linesep=b"\r\n",
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return signature + mail


def group_reporter(folder, relayd, reportd_binary, cli):
    pem, record = dkim_key(folder)
    dns, maildir, reportd, relay = start_all(folder, relayd, reportd_binary,
                                             records={"sel._domainkey.reporter.test": record})
    try:
        ids = {kind: "reporter-%s-%s" % (kind, uuid.uuid4().hex[:12])
               for kind in ("signed", "unsigned", "forged", "import", "imported-bare", "no-verify")}
        genuine = signed(report_mail("gzip", ids["signed"]), pem)
        check(dkim.verify(genuine, dnsfunc=lambda name, timeout=5: record.encode()),
              "dkimpy verifies its own signature (the test's premise)")
        forged = signed(report_mail("gzip", ids["forged"]), pem)
        # Another report in the signed bytes' place: the body hash no longer matches.
        forged = forged.replace(b"This is an aggregate report", b"This is an aggregate rep0rt")
        for mail in (genuine, report_mail("zip", ids["unsigned"]), forged):
            replies, _ = swaks(relay.port, "dmarc@reporter.test", mail)
            check(final_reply(replies).startswith("250 2.0.0 Ok: report stored"),
                  "a report mail is stored whatever its signature (%s)" % final_reply(replies))
        lines = re.findall(r"dkim-relayd: report id=\S+ .*", relay.text())
        check(len(lines) == 3, "one log line per report: %s" % lines)
        said = [re.search(r" reporter=(\S+) ", line).group(1) if " reporter=" in line else None
                for line in lines]
        check(said == ["reporter.test", "-", "-"],
              "relayd names the reporter of the signed report only: %s" % said)

        # The CLI: a signed .eml with LF line endings, a bare .xml.gz (no reporter), and a signed
        # one with --no-verify (no lookup, no reporter).
        eml = os.path.join(folder, "signed.eml")
        with open(eml, "wb") as f:
            f.write(signed(report_mail("zip", ids["import"]), pem).replace(b"\r\n", b"\n"))
        bare = os.path.join(folder, "reporter.test!example.net!1!2.xml.gz")
        with open(bare, "wb") as f:
            f.write(gzip.compress(aggregate_xml(ids["imported-bare"])[0]))
        unverified = os.path.join(folder, "unverified.eml")
        with open(unverified, "wb") as f:
            f.write(signed(report_mail("zip", ids["no-verify"]), pem))
        base = [cli, "reports", "import", "--reportd-socket", reportd.socket]
        r = subprocess.run(base + ["--dns-server", dns.address(), "--org-domain", "tree-walk",
                                   "--json", eml, bare], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, "reports import: exit 0 (%d, %s)" % (r.returncode, r.stderr))
        results = {}
        for line in r.stdout.splitlines():
            o = json.loads(line)
            results[o.get("file")] = o
        check(results.get(eml, {}).get("reporter") == "reporter.test",
              "reports import names the signed message's reporter: %s" % r.stdout)
        check(bare in results and "reporter" not in results[bare],
              "reports import names no reporter for a bare report file: %s" % r.stdout)
        r = subprocess.run(base + ["--no-verify", unverified], capture_output=True, text=True,
                           timeout=120)
        check(r.returncode == 0 and "1 reports stored" in r.stdout and "reporter=" not in r.stdout,
              "reports import --no-verify: stored, no reporter (%s%s)" % (r.stdout, r.stderr))

        kept = reportd.reporters("example.net")
        if kept is None:
            print("note: this dkim-reportd keeps no reporter; checked relayd's and the CLI's side")
        else:
            expected = {"signed": "reporter.test", "unsigned": "", "forged": "",
                        "import": "reporter.test", "imported-bare": "", "no-verify": ""}
            got = {kind: kept.get(ids[kind]) for kind in expected}
            check(got == expected, "reportd keeps the reporters: %s" % got)
    finally:
        relay.stop()
        reportd.stop()
        dns.stop()


def group_outage(folder, relayd, reportd_binary, cli=None):
    dns, maildir, reportd, relay = start_all(folder, relayd, reportd_binary)
    try:
        first = "outage-%s" % uuid.uuid4().hex[:12]
        replies, _ = swaks(relay.port, "dmarc@reporter.test", report_mail("gzip", first))
        check(final_reply(replies).startswith("250"), "reportd up: 250 (%s)" % final_reply(replies))
        before = reportd.submissions()

        # reportd is down: 451 at the final dot, the client keeps the mail.
        check(reportd.stop() == 0, "reportd stopped cleanly")
        retried = "outage-%s" % uuid.uuid4().hex[:12]
        mail = report_mail("zip", retried)
        replies, status = swaks(relay.port, "dmarc@reporter.test", mail)
        final = final_reply(replies)
        check(final.startswith("451 4.3.0"), "reportd down: 451 4.3.0 at the final dot (%s)" % final)
        check(status != 0, "reportd down: swaks sees the failure (exit %d)" % status)
        check(delivered(maildir) == [], "reportd down: nothing went to the next hop instead")
        check("/run/" not in final and reportd.socket not in final, "the 451 names no local path")
        check(re.search(r"reportd=\"dkim-reportd could not be asked: [^\"]*\" reply=451", relay.text())
              is not None, "relayd logs why reportd could not be asked")

        # The sender tries again once reportd is back: stored, once.
        reportd.start()
        check(reportd.submissions() == before, "nothing was stored while reportd was down")
        replies, _ = swaks(relay.port, "dmarc@reporter.test", mail)
        check(final_reply(replies).startswith("250"), "the retry: 250 (%s)" % final_reply(replies))
        stored_ids = [report_id for _, report_id in reportd.reports("example.net")]
        check(first in stored_ids and retried in stored_ids, "both reports stored: %s" % stored_ids)
        check(reportd.submissions() == before + 1, "one submission for the retried mail")
        reportd.stop()

        if ROOT:
            # A reportd that does not know relayd's user: forbidden is a 451, never a bounce.
            stranger = Reportd(folder, reportd_binary, relay_peer="www-data")
            stranger.start()
            replies, _ = swaks(relay.port, "dmarc@reporter.test", report_mail("gzip", "forbidden-" + first))
            check(final_reply(replies).startswith("451 4.3.0"),
                  "relayd not a peer of reportd: 451 4.3.0 (%s)" % final_reply(replies))
            # (reportd answers "forbidden" and closes at once: relayd may read that answer, or find
            # the connection closed while it still writes.)
            check(re.search(r"reportd=\"(forbidden: |dkim-reportd could not be asked: )[^\"]*\" "
                            r"reply=451", relay.text()) is not None,
                  "relayd logs reportd's refusal")
            stranger.stop()

        # A reportd that refuses the message as invalid (over its own max_input): 554 5.6.0 with
        # its reason on one line.
        small = Reportd(folder, reportd_binary, max_input="4KiB")
        small.start()
        big = report_mail("gzip", "big-" + first) + b"".join(b"X-Padding-%d: %s\r\n" % (i, b"p" * 70)
                                                             for i in range(200))
        replies, _ = swaks(relay.port, "dmarc@reporter.test", big)
        final = final_reply(replies)
        check(final.startswith("554 5.6.0 Report refused: submission larger than"),
              "reportd refuses as invalid: 554 5.6.0 with its reason (%s)" % final)
        small.stop()
        check(relay.metric('dkim_relayd_report_submissions_total{outcome="unavailable"}') == (2 if ROOT else 1),
              "metrics: the 451s counted as unavailable")
        check(relay.metric('dkim_relayd_report_submissions_total{outcome="invalid"}') == 1,
              "metrics: the 554 counted as invalid")
        check(delivered(maildir) == [], "no report mail ever reached the next hop")
    finally:
        relay.stop()
        if reportd.proc.poll() is None:
            reportd.stop()
        dns.stop()


if __name__ == "__main__":
    sys.exit(run_module(__doc__, {"store": group_store, "outage": group_outage,
                                  "reporter": group_reporter}, 3, "relayd-reports-", mode=0o755))
