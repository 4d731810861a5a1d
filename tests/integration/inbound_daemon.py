#!/usr/bin/python3
"""dkim-relayd's inbound listener as a real daemon: swaks sends, dnsmasq answers, a maildir
receives.

Started by ctest (labels "dns;relayd;interop"), one group per run:

  verify   sender domains whose SPF passes, fails, softfails, times out (a DNS server that
           never answers) and exceeds the lookup limit; DMARC reject and quarantine domains;
           a message signed by dkimpy (an independent signer), intact and tampered; forged
           Authentication-Results; a recipient domain not received for; quarantine to a
           separate next hop; `dkim-appliance verify --ip` on the same message.

relayd runs as user nobody (setpriv). Mail goes only to 127.0.0.1.

usage: inbound_daemon.py GROUP DKIM_APPLIANCE DKIM_RELAYD
"""

import base64
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import dkim
import nacl.signing

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import DnsServer, check, free_port, summary, until  # noqa: E402

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
AUTHSERV = "mx.inbound.example"
RECIPIENT_DOMAIN = "inbound.example"
SENDERS = ["good.example", "bad.example", "soft.example", "slow.example", "many.example",
           "signed.example"]
DNS_TTL = 3  # seconds, of every answer dnsmasq gives (local-ttl)


def zone(blackhole_port, ed_public, query_log):
    txt = {
        "good.example": "v=spf1 ip4:127.0.0.1 -all",
        "_dmarc.good.example": "v=DMARC1; p=reject",
        "bad.example": "v=spf1 -all",
        "_dmarc.bad.example": "v=DMARC1; p=reject",
        "soft.example": "v=spf1 ~all",
        "_dmarc.soft.example": "v=DMARC1; p=quarantine",
        "slow.example": "v=spf1 include:x.slow.example -all",
        "_dmarc.slow.example": "v=DMARC1; p=reject",
        "many.example": "v=spf1 " + " ".join("a:h%d.many.example" % i for i in range(11)) + " -all",
        "_dmarc.many.example": "v=DMARC1; p=none",
        "signed.example": "v=spf1 -all",
        "_dmarc.signed.example": "v=DMARC1; p=reject; adkim=s",
        "ed._domainkey.signed.example": "v=DKIM1; k=ed25519; p=" + ed_public,
    }
    # Answers carry a TTL (dnsmasq's own records have none by default), and every query is
    # logged: the DNS cache check counts them.
    extra = ["server=/x.slow.example/127.0.0.1#%d" % blackhole_port, "local-ttl=%d" % DNS_TTL,
             "log-queries", "log-facility=" + query_log]
    extra += ["host-record=h%d.many.example,192.0.2.%d" % (i, 10 + i) for i in range(11)]
    return txt, extra


def message(sender, subject, extra=b"", body=b"Hello from outside.\r\n"):
    return (b"From: Sender <" + sender.encode() + b">\r\nTo: Bob <bob@" + RECIPIENT_DOMAIN.encode() + b">\r\n"
            b"Subject: " + subject.encode() + b"\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
            b"Message-ID: <" + subject.encode().replace(b" ", b"-") + b"@test>\r\n" + extra + b"\r\n" + body)


class InboundRelay:
    def __init__(self, folder, relayd, dns_address, maildir, quarantine="header", quarantine_dir=None):
        self.relayd = relayd
        self.port = free_port()
        self.config = os.path.join(folder, "inbound-%s.toml" % quarantine)
        self.logfile = os.path.join(folder, "inbound-%s.log" % quarantine)
        with open(self.config, "w") as f:
            f.write('hostname = "%s"\nsignerd_socket = "%s/none.sock"\n' % (AUTHSERV, folder))
            f.write('[[listen]]\naddress = "127.0.0.1:%d"\nrole = "inbound"\n' % self.port)
            f.write('[next_hop]\nurl = "maildir:%s"\n' % maildir)
            f.write('[metrics]\nlisten = "127.0.0.1:0"\n')
            f.write('[inbound]\ndomains = ["%s"]\ndns_server = "%s"\ndns_timeout = "1500ms"\n'
                    'quarantine = "%s"\n' % (RECIPIENT_DOMAIN, dns_address, quarantine))
            if quarantine_dir:
                f.write('[inbound.quarantine_next_hop]\nurl = "maildir:%s"\n' % quarantine_dir)

    def start(self):
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(NOBODY + [self.relayd, "--config", self.config], stdout=self.log,
                                     stderr=self.log)
        for _ in until():
            text = open(self.logfile).read()
            if "listening on" in text:
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
        return open(self.logfile).read()


def swaks(port, sender, data, to="bob@" + RECIPIENT_DOMAIN):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port, "--from", sender, "--to", to,
                        "--helo", "mta.good.example", "--timeout", "30", "--data", "-"],
                       input=data, capture_output=True, timeout=120)
    text = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    replies = re.findall(r"^<\S*\s+(\d{3}[ -].*)$", text, re.M)
    return text, replies


def final_reply(replies):
    """The reply to the final dot: the one before 221."""
    rest = [r for r in replies if not r.startswith("221")]
    return rest[-1] if rest else ""


def mailbox(path):
    out = []
    for name in sorted(os.listdir(os.path.join(path, "new")),
                       key=lambda n: os.path.getmtime(os.path.join(path, "new", n))):
        with open(os.path.join(path, "new", name), "rb") as f:
            out.append(f.read())
    return out


def header_fields(raw, name):
    head = raw.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    unfolded = re.sub(r"\r\n[ \t]+", " ", head)
    return [line.split(":", 1)[1].strip() for line in unfolded.split("\r\n")
            if line.lower().startswith(name.lower() + ":")]


def make_maildir(folder, name):
    path = os.path.join(folder, name)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub))
    for root, _, _ in os.walk(path):
        shutil.chown(root, "nobody", "nogroup")
    return path


def group_verify(cli, relayd):
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blackhole.bind(("127.0.0.1", 0))
    ed_key = nacl.signing.SigningKey.generate()
    ed_seed = base64.b64encode(bytes(ed_key))
    ed_public = base64.b64encode(bytes(ed_key.verify_key)).decode()
    with tempfile.TemporaryDirectory(prefix="inbound-") as folder:
        os.chmod(folder, 0o755)
        query_log = os.path.join(folder, "dnsmasq-queries.log")
        txt, extra = zone(blackhole.getsockname()[1], ed_public, query_log)
        server = DnsServer(folder, txt, SENDERS[0], extra=extra, local_zones=SENDERS[1:])
        inbox = make_maildir(folder, "inbox")
        quarantine_box = make_maildir(folder, "quarantine")
        relay = InboundRelay(folder, relayd, server.address(), inbox)
        relay.start()
        try:
            run_checks(cli, relay, server, inbox, ed_seed)
            cache_checks(relay, query_log)
            relay.stop()
            # quarantine = "next_hop": the message goes to its own maildir, the inbox gets nothing.
            before = len(mailbox(inbox))
            qrelay = InboundRelay(folder, relayd, server.address(), inbox, "next_hop", quarantine_box)
            qrelay.start()
            _, replies = swaks(qrelay.port, "x@soft.example", message("x@soft.example", "to quarantine"))
            check(final_reply(replies).startswith("250"), "quarantine next hop: 250 (%s)" % final_reply(replies))
            quarantined = mailbox(quarantine_box)
            check(len(quarantined) == 1 and len(mailbox(inbox)) == before,
                  "quarantine next hop: in the quarantine maildir only (%d, inbox %d -> %d)"
                  % (len(quarantined), before, len(mailbox(inbox))))
            if quarantined:
                ar = header_fields(quarantined[0], "Authentication-Results")
                check(len(ar) == 1 and "dmarc=fail" in ar[0], "quarantined message: dmarc=fail: %s" % ar)
            check(qrelay.stop() == 0, "quarantine relay stopped cleanly")
        finally:
            if relay.proc.poll() is None:
                relay.stop()
            server.stop()
            blackhole.close()


def run_checks(cli, relay, server, inbox, ed_seed):
    delivered = lambda: mailbox(inbox)  # noqa: E731

    # SPF pass, aligned: DMARC pass.
    _, replies = swaks(relay.port, "joe@good.example", message("joe@good.example", "good"))
    check(final_reply(replies).startswith("250"), "spf pass: 250 (%s)" % final_reply(replies))
    got = delivered()
    ar = header_fields(got[-1], "Authentication-Results") if got else []
    # The maildir next hop writes Return-Path and Delivered-To first, as a delivery agent does.
    first = re.sub(rb"^(Return-Path|Delivered-To): [^\r]*\r\n", b"", got[-1], flags=re.M) if got else b""
    check(len(got) == 1 and first.startswith(b"Authentication-Results: " + AUTHSERV.encode() + b";"),
          "spf pass: delivered, our Authentication-Results on top")
    check(len(ar) == 1 and "spf=pass" in ar[0] and "smtp.mailfrom=good.example" in ar[0]
          and "spf=none smtp.helo=mta.good.example" in ar[0]
          and "dmarc=pass" in ar[0] and "header.from=good.example" in ar[0] and "dkim=none" in ar[0],
          "spf pass: spf=pass dkim=none dmarc=pass: %s" % ar)

    # SPF fail, DMARC p=reject: refused at the final dot, nothing delivered.
    _, replies = swaks(relay.port, "joe@bad.example", message("joe@bad.example", "bad"))
    check(final_reply(replies).startswith("550 5.7.1"), "dmarc reject: 550 5.7.1 (%s)" % final_reply(replies))
    check(len(delivered()) == 1, "dmarc reject: nothing delivered")

    # Softfail, DMARC p=quarantine: delivered, marked.
    _, replies = swaks(relay.port, "joe@soft.example", message("joe@soft.example", "soft"))
    check(final_reply(replies).startswith("250"), "dmarc quarantine: 250 (%s)" % final_reply(replies))
    got = delivered()
    marks = header_fields(got[-1], "X-Dkim-Appliance-Quarantine") if len(got) == 2 else []
    ar = header_fields(got[-1], "Authentication-Results") if len(got) == 2 else []
    check(len(marks) == 1 and "soft.example" in marks[0], "dmarc quarantine: marked: %s" % marks)
    check(len(ar) == 1 and "spf=softfail" in ar[0] and "dmarc=fail" in ar[0],
          "dmarc quarantine: spf=softfail dmarc=fail: %s" % ar)

    # A DNS server that never answers: temperror, never pass or fail; delivered.
    started = time.monotonic()
    _, replies = swaks(relay.port, "joe@slow.example", message("joe@slow.example", "slow"))
    elapsed = time.monotonic() - started
    check(final_reply(replies).startswith("250"), "spf timeout: 250 (%s)" % final_reply(replies))
    got = delivered()
    ar = header_fields(got[-1], "Authentication-Results") if len(got) == 3 else []
    check(len(ar) == 1 and "spf=temperror" in ar[0] and "dmarc=temperror" in ar[0],
          "spf timeout: spf=temperror dmarc=temperror (no policy enforced): %s" % ar)
    check(elapsed < 20, "spf timeout: the transaction took %.1f s (dns_timeout 1.5 s)" % elapsed)

    # Eleven DNS-querying terms: permerror.
    _, replies = swaks(relay.port, "joe@many.example", message("joe@many.example", "many"))
    got = delivered()
    ar = header_fields(got[-1], "Authentication-Results") if len(got) == 4 else []
    check(final_reply(replies).startswith("250") and len(ar) == 1 and "spf=permerror" in ar[0],
          "too many lookups: spf=permerror, delivered (p=none): %s" % ar)

    # Signed by dkimpy (Ed25519), SPF -all, DMARC p=reject with strict DKIM alignment.
    wire = message("news@signed.example", "signed")
    signed = dkim.sign(wire, b"ed", b"signed.example", ed_seed, signature_algorithm=b"ed25519-sha256") + wire
    _, replies = swaks(relay.port, "news@signed.example", signed)
    check(final_reply(replies).startswith("250"), "dkimpy-signed: 250 (%s)" % final_reply(replies))
    got = delivered()
    ar = header_fields(got[-1], "Authentication-Results") if len(got) == 5 else []
    check(len(ar) == 1 and "dkim=pass" in ar[0] and "header.d=signed.example" in ar[0]
          and "header.s=ed" in ar[0] and "spf=fail" in ar[0] and "dmarc=pass" in ar[0],
          "dkimpy-signed: dkim=pass spf=fail dmarc=pass: %s" % ar)
    if len(got) == 5:
        d = dkim.DKIM(got[-1])
        check(d.verify(dnsfunc=server.dkimpy_dnsfunc()), "dkimpy-signed: still verifies with dkimpy after relaying")
    tampered = signed.replace(b"Hello from outside.", b"Hello from inside!!")
    _, replies = swaks(relay.port, "news@signed.example", tampered)
    check(final_reply(replies).startswith("550 5.7.1"), "tampered: 550 5.7.1 (%s)" % final_reply(replies))
    check(len(delivered()) == 5, "tampered: nothing delivered")

    # Forged results claiming our authserv-id are removed; others stay.
    forged = message("joe@good.example", "forged",
                     extra=b"Authentication-Results: " + AUTHSERV.encode() + b"; dkim=pass header.d=bank.example\r\n"
                           b"Authentication-Results: (x) MX.INBOUND.EXAMPLE.;\r\n dmarc=pass\r\n"
                           b"Authentication-Results: upstream.example.org; spf=pass\r\n")
    _, replies = swaks(relay.port, "joe@good.example", forged)
    got = delivered()
    ar = header_fields(got[-1], "Authentication-Results") if len(got) == 6 else []
    check(final_reply(replies).startswith("250") and len(ar) == 2 and ar[0].startswith(AUTHSERV + ";")
          and "bank.example" not in " ".join(ar) and ar[1].startswith("upstream.example.org;"),
          "forged Authentication-Results removed, ours on top, others kept: %s" % ar)

    # Not a domain received for: refused at RCPT (no open relay).
    _, replies = swaks(relay.port, "joe@good.example", message("joe@good.example", "relay"),
                       to="someone@elsewhere.example")
    check(any(r.startswith("550 5.7.1") for r in replies), "open relay attempt: 550 5.7.1 at RCPT")
    check(len(delivered()) == 6, "open relay attempt: nothing delivered")

    # The metrics: one count per checked message, by DMARC result and action.
    import urllib.request
    port = int(re.findall(r"metrics on port (\d+)", relay.text())[-1])
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        metrics = r.read().decode()
    for labels, count in (('dmarc="fail",action="reject"', 2), ('dmarc="fail",action="quarantine"', 1),
                          ('dmarc="pass",action="deliver"', 3), ('dmarc="temperror",action="deliver"', 1)):
        check(re.search(r"^dkim_relayd_inbound_messages_total\{%s\} %d$" % (re.escape(labels), count), metrics,
                        re.M) is not None, "metrics: %s %d" % (labels, count))

    # The log line of each transaction, and the same checks from the CLI.
    text = relay.text()
    check(re.search(r"inbound id=\S+ ip=127\.0\.0\.1 .*from_domain=bad\.example .*spf=fail dkim=none "
                    r"dmarc=fail action=reject", text) is not None, "the relay logs each inbound transaction")
    out = subprocess.run([cli, "verify", "--dns-server", server.address(), "--authserv-id", AUTHSERV, "--ip",
                          "127.0.0.1", "--helo", "mta.good.example", "--mail-from", "joe@bad.example"],
                         input=message("joe@bad.example", "cli"), capture_output=True, timeout=60)
    check(out.returncode == 1 and b"dmarc=fail" in out.stdout and b"action: reject" in out.stderr,
          "dkim-appliance verify --ip: the same verdict (exit %d, %s)" % (out.returncode, out.stderr.decode().strip()))


def expired_by(cached_at):
    """The wall time by which an answer that the relay cached at or before wall time CACHED_AT
    (time.time()) has certainly expired. libunbound's clock counts whole seconds: an answer
    stored during second S expires at S + TTL and is served until its clock is past that, so
    the next query goes out from second S + TTL + 1 on. An answer is thus kept up to a second
    longer than its TTL (services/cache/dns.c: `if(now > d->ttl) return NULL;`)."""
    return math.floor(cached_at) + DNS_TTL + 1


def wait_until(wall_time):
    while time.time() < wall_time:
        time.sleep(wall_time - time.time())


def cache_checks(relay, query_log):
    """libunbound's cache in the relay: repeated checks of one domain ask the server once per
    TTL (3 s here), and ask again once it ran out."""
    def queries():
        """The times dnsmasq logged of the queries for _dmarc.good.example."""
        with open(query_log, errors="replace") as f:
            return re.findall(r"^(.*?) dnsmasq\[\d+\]: query\[TXT\] _dmarc\.good\.example from",
                              f.read(), re.M)

    def logged(count):
        """The queries since `before`, once COUNT of them are in the log: dnsmasq writes its
        query log asynchronously, the line may trail the answer (seconds on a loaded machine)."""
        for _ in until(20):
            if len(queries()) - before >= count:
                break
            time.sleep(0.05)
        return queries()[before:]

    # What earlier checks cached was cached before they returned, so before now.
    wait_until(expired_by(time.time()))
    before = len(queries())
    started = time.time()
    for i in range(3):
        swaks(relay.port, "joe@good.example", message("joe@good.example", "cached %d" % i))
    # The answer was cached by the time the message that asked for it was answered.
    cached_by = time.time()
    first = logged(1)
    check(len(first) == 1, "DNS cache: three messages within the TTL (%.1f s), one query for "
          "_dmarc.good.example (%d, at %s)" % (cached_by - started, len(first), first))
    wait_until(expired_by(cached_by))
    swaks(relay.port, "joe@good.example", message("joe@good.example", "expired"))
    asked = logged(2)
    check(len(asked) == 2, "DNS cache: after the TTL, the record is asked for again (%d, at %s; "
          "cached by %s)" % (len(asked), asked, time.strftime("%b %d %H:%M:%S",
                                                             time.localtime(cached_by))))


def main():
    group, cli, relayd = sys.argv[1:4]
    {"verify": group_verify}[group](cli, relayd)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
