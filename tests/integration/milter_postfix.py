#!/usr/bin/python3
"""dkim-relayd's milter listener behind a real Postfix (a private instance started here, never
the system's: tests/integration/postfix_instance.py), signing through a real signerd and
SoftHSM2, with Postfix's smtp-sink as the next hop and dnsmasq serving the keys.

Started by ctest (labels "hsm;signerd;relayd;milter"), one group per run:

  sign     smtp-source -> Postfix (smtpd_milters) -> the milter signs -> smtp-sink: every
           message verifies with dkimpy (RSA-2048 and Ed25519 on each) and with Mail::DKIM
           (RSA: Debian 12's does not know Ed25519),
           the signatures are the message's first fields and nothing else of it changed (the
           same message straight to the sink); a field Postfix adds after signing
           (smtp_header_checks) fails the signature, as it is oversigned; a sendmail(1)
           submission (non_smtpd_milters) is signed too; mail from a From: domain the client may not sign for passes unsigned
  keep     no grant: an SMTP client is told 451 4.7.0 with the request id; a sendmail(1)
           submission stays in Postfix's maildrop, and once the request is approved it is
           delivered once, signed. signerd stopped: deferred the same way, delivered once
           signerd is back. kill -9 of dkim-relayd under load (sendmail submissions): nothing is
           lost, nothing delivered twice, every delivered message verifies
  inbound  the milter on a Unix socket (allowed_users = ["postfix"]: root's connection is
           closed unanswered); mail from a client that is no [[client]] (swaks from
           127.0.0.5) is verified: one Authentication-Results field of ours on top, a forged
           one claiming our authserv-id removed, another host's kept

usage: milter_postfix.py GROUP DKIM_APPLIANCE DKIM_SIGNERD DKIM_RELAYD SOFTHSM2_MODULE
"""

import glob
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dkim_interop import dkimpy_results, mail_dkim_verify, to_crlf  # noqa: E402
from postfix_instance import PostfixInstance  # noqa: E402
from relayd_daemon import NOBODY, Sink, eventually, last_reply, swaks  # noqa: E402
from signerd_daemon import DOMAIN, Appliance  # noqa: E402
from testlib import DnsServer, check, free_port, run_module, until  # noqa: E402

AUTHSERV_ID = "relay.test"


def message(subject, sender="alice@" + DOMAIN, extra=b"", body=b"Signed by the milter.\r\n"):
    return (b"From: Alice <" + sender.encode() + b">\r\nTo: Bob <bob@peer.example>\r\nSubject: " + subject.encode() +
            b"\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <" + subject.encode().replace(b" ", b"-") +
            b"@" + DOMAIN.encode() + b">\r\n" + extra + b"\r\n" + body)


class Milter:
    """dkim-relayd with one milter listener (role both: 127.0.0.1 is the client "apps")."""

    def __init__(self, folder, relayd, app, dns_server, unix_socket=False):
        """`unix_socket`: listen on a Unix socket that only the postfix user may use."""
        self.port = free_port()
        self.relayd = relayd
        self.config = os.path.join(folder, "milter.toml")
        self.logfile = os.path.join(folder, "milter.log")
        self.socket_path = None
        if unix_socket:
            sockets = os.path.join(folder, "milter-socket")
            os.makedirs(sockets)
            shutil.chown(sockets, "nobody", "nogroup")
            self.socket_path = os.path.join(sockets, "milter.sock")
        with open(self.config, "w") as f:
            f.write('hostname = "relay.test"\nsignerd_socket = "%s"\n' % app.socket)
            if self.socket_path:
                f.write('[[listen]]\naddress = "unix:%s"\nprotocol = "milter"\nrole = "both"\n'
                        'allowed_users = ["postfix"]\n' % self.socket_path)
            else:
                f.write('[[listen]]\naddress = "127.0.0.1:%d"\nprotocol = "milter"\nrole = "both"\n' % self.port)
            # Short SMTP deadlines: the milter's own (the MTA silent while its client is slow)
            # must not follow them (`slow client` below).
            f.write('[limits]\ncommand_timeout = "2s"\ndata_timeout = "2s"\nsession_timeout = "4s"\n')
            f.write('[[domain]]\nname = "%s"\nselectors = ["rsa", "ed"]\n' % DOMAIN)
            f.write('[[client]]\nname = "apps"\nnetworks = ["127.0.0.1/32"]\ndomains = ["%s"]\n' % DOMAIN)
            f.write('[inbound]\ndomains = ["peer.example"]\nauthserv_id = "%s"\norg_domain = "tree-walk"\n'
                    'dns_server = "%s"\ndns_timeout = "2s"\n' % (AUTHSERV_ID, dns_server.address()))
        self.proc = None

    def start(self):
        starts = self.text().count("listening on")
        self.proc = subprocess.Popen(NOBODY + [self.relayd, "--config", self.config], stdout=subprocess.DEVNULL,
                                     stderr=open(self.logfile, "ab"))
        for _ in until():
            if self.text().count("listening on") > starts:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("dkim-relayd exited: " + self.text())
            time.sleep(0.05)
        raise RuntimeError("dkim-relayd did not start")

    def text(self):
        return open(self.logfile, errors="replace").read() if os.path.exists(self.logfile) else ""

    def postfix_address(self):
        return "unix:" + self.socket_path if self.socket_path else "inet:127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def dumped(sink):
    """Every message the sink took whole, as (file, bytes without smtp-sink's X- lines)."""
    out = []
    for path in sorted(glob.glob(sink.dir + "/msg.*"), key=os.path.getmtime):
        with open(path, "rb") as f:
            text = f.read()
        if b"\n\n" not in text.replace(b"\r\n", b"\n"):
            continue
        lines = text.split(b"\n")
        while lines and re.match(rb"^X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args|Rcpt-Orig):", lines[0]):
            lines.pop(0)
        out.append((path, to_crlf(b"\n".join(lines))))
    return out


def verifies_both_ways(dns_server, msg):
    """dkimpy verifies both signatures (RSA and Ed25519), Mail::DKIM the RSA one (Debian 12's
    Mail::DKIM 1.20230212 reports Ed25519 as "invalid (unsupported algorithm)")."""
    ours = dkimpy_results(dns_server, msg)
    theirs = {r[1]: r[0] for r in mail_dkim_verify(dns_server, msg)}
    return len(ours) == 2 and all(ours) and theirs.get("rsa-sha256") == "pass", (ours, theirs)


def fields_of(msg):
    """The header fields, without the Received: smtp-sink's dump puts on top."""
    fields = re.split(rb"\r\n(?![ \t])", msg.partition(b"\r\n\r\n")[0])
    while fields and re.match(rb"(?i)^Received: from postfix\.test \(\[", fields[0]):
        fields.pop(0)
    return fields


def subjects(sink):
    return [re.search(rb"^Subject: (.*)$", m, re.M | re.I).group(1).strip().decode(errors="replace")
            for _, m in dumped(sink) if re.search(rb"^Subject: ", m, re.M | re.I)]


def setup(folder, cli, signerd, relayd, module, grant=True, retry_seconds=None, unix_socket=False):
    app = Appliance(folder, cli, signerd, module)
    dns_server = DnsServer(folder, app.records, DOMAIN)
    parts = {"app": app, "dns": dns_server}
    try:
        app.start()
        app.add_users()
        if grant:
            app.approve(app.request("*", "30m"))
        parts["sink"] = Sink(folder)
        parts["milter"] = Milter(folder, relayd, app, dns_server, unix_socket=unix_socket)
        parts["milter"].start()
        # On the way out Postfix adds a Reply-To: to one test message (after the milter signed):
        # the oversigned Reply-To in h= must make that signature fail.
        checks = os.path.join(folder, "smtp_header_checks")
        with open(checks, "w") as f:
            f.write("/^Subject: added on the way/ PREPEND Reply-To: <attacker@evil.example>\n")
        parts["postfix"] = PostfixInstance(folder, parts["sink"].port,
                                           milters=parts["milter"].postfix_address(),
                                           retry_seconds=retry_seconds,
                                           extra=["smtp_header_checks = regexp:" + checks])
    except BaseException:
        teardown(parts)
        raise
    return parts


def teardown(parts):
    for name in ("postfix", "milter", "sink", "app", "dns"):
        part = parts.get(name)
        if part is not None:
            try:
                part.stop()
            except Exception as e:  # noqa: BLE001 - the rest must stop too
                print("      stopping %s: %s" % (name, e))


# --- groups ----------------------------------------------------------------------------------

def sign(folder, cli, signerd, relayd, module):
    parts = setup(folder, cli, signerd, relayd, module)
    postfix, sink, dns_server, milter = parts["postfix"], parts["sink"], parts["dns"], parts["milter"]
    try:
        # smtp-source: 20 messages over 4 sessions, each with From:, To:, Date:, Message-Id:.
        source = subprocess.run(["smtp-source", "-s", "4", "-m", "20", "-l", "2048", "-f", "alice@" + DOMAIN,
                                 "-t", "bob@peer.example", "-S", "smtp-source", "127.0.0.1:%d" % postfix.port],
                                capture_output=True, timeout=120)
        check(source.returncode == 0, "smtp-source hands 20 messages to Postfix: %s" % source.stderr[-300:])
        check(eventually(lambda: len(dumped(sink)) >= 20, 60), "the sink took 20 messages (%d)" % len(dumped(sink)))
        results = [verifies_both_ways(dns_server, m) for _, m in dumped(sink)]
        check(len(results) == 20 and all(ok for ok, _ in results),
              "every message verifies with dkimpy (RSA and Ed25519) and Mail::DKIM (RSA): %s"
              % [detail for ok, detail in results if not ok][:2])

        # One message of ours, through smtpd: the signatures are on top; nothing else changed.
        before = len(dumped(sink))
        original = message("as it was")
        status, out = swaks(postfix.port, data=original)
        check(status == 0 and last_reply(out).startswith("250"), "swaks through Postfix: " + last_reply(out))
        check(eventually(lambda: len(dumped(sink)) > before, 30), "it reached the sink")
        got = dumped(sink)[-1][1]
        body = got.partition(b"\r\n\r\n")[2]
        fields = fields_of(got)
        check([f.split(b":")[0].lower() for f in fields[:2]] == [b"dkim-signature", b"dkim-signature"],
              "the two DKIM-Signature fields are the first fields: %s" % [f[:30] for f in fields[:3]])
        received = [f for f in fields if f.lower().startswith(b"received:")]
        check(len(received) == 1 and fields.index(received[0]) == 2,
              "Postfix's own Received: comes right after them (one Received)")
        ours = [f for f in fields[3:] if not f.lower().startswith(b"received:")]
        orig_header, _, orig_body = original.partition(b"\r\n\r\n")
        check(ours == re.split(rb"\r\n(?![ \t])", orig_header) and body.rstrip(b"\r\n") == orig_body.rstrip(b"\r\n"),
              "nothing else of the message changed")
        check(verifies_both_ways(dns_server, got)[0], "and it verifies both ways")

        # sendmail(1): non_smtpd_milters, the client is "localhost" 127.0.0.1.
        before = len(dumped(sink))
        check(postfix.sendmail(message("by sendmail"), "alice@" + DOMAIN, "bob@peer.example") == 0,
              "sendmail(1) takes a message")
        check(eventually(lambda: len(dumped(sink)) > before, 30), "the submission reached the sink")
        got = dumped(sink)[-1][1]
        check(b"by sendmail" in got and verifies_both_ways(dns_server, got)[0],
              "the sendmail(1) submission is signed and verifies")

        # A field Postfix adds after signing (smtp_header_checks PREPEND): oversigned, so the
        # signature breaks instead of vouching for it.
        before = len(dumped(sink))
        status, out = swaks(postfix.port, data=message("added on the way"))
        check(eventually(lambda: len(dumped(sink)) > before, 30), "the message with a field added later arrived")
        got = dumped(sink)[-1][1]
        ok, detail = verifies_both_ways(dns_server, got)
        check(b"attacker@evil.example" in got and detail[0] == [False, False] and
              detail[1].get("rsa-sha256") == "fail",
              "a Reply-To: added after signing fails both signatures (Reply-To is oversigned): %s" % (detail,))

        # A slow client: Postfix says nothing to the milter while it waits, longer than the
        # relay's SMTP deadlines (2 s a command, 4 s a session); the milter must still be there.
        before = len(dumped(sink))
        client = smtplib.SMTP("127.0.0.1", postfix.port, timeout=30)
        client.ehlo("slow.test")
        client.mail("alice@" + DOMAIN)
        time.sleep(3)
        client.noop()
        time.sleep(3)
        client.rcpt("bob@peer.example")
        time.sleep(2.5)
        code, reply = client.data(message("slowly"))
        client.quit()
        check(code == 250, "a client silent for 8.5 s between its commands is answered 250: %d %s" % (code, reply))
        check(eventually(lambda: len(dumped(sink)) > before, 30), "its message reached the sink")
        got = dumped(sink)[-1][1]
        check(b"slowly" in got and verifies_both_ways(dns_server, got)[0], "signed, and it verifies")

        # A From: domain apps may not sign for: accepted, unsigned (the milter lets it pass).
        before = len(dumped(sink))
        status, out = swaks(postfix.port, "--from", "alice@elsewhere.example",
                            data=message("not ours", sender="alice@elsewhere.example"))
        check(last_reply(out).startswith("250"), "mail from elsewhere.example is accepted: " + last_reply(out))
        check(eventually(lambda: len(dumped(sink)) > before, 30), "and delivered")
        got = dumped(sink)[-1][1]
        check(b"DKIM-Signature" not in got and b"Authentication-Results" not in got,
              "unsigned and untouched")
        check("outcome=untouched" in milter.text(), "the milter's log says it let it pass")
    finally:
        teardown(parts)


def keep(folder, cli, signerd, relayd, module):
    parts = setup(folder, cli, signerd, relayd, module, grant=False, retry_seconds=1)
    postfix, sink, dns_server, milter, app = (parts["postfix"], parts["sink"], parts["dns"], parts["milter"],
                                              parts["app"])
    try:
        # An SMTP client: 451 with the request (the client keeps the mail).
        status, out = swaks(postfix.port, data=message("over smtp"))
        reply = last_reply(out)
        requests = re.findall(r"elevation request (\d+)", reply)
        check(reply.startswith("451 4.7.0") and requests, "no grant: the SMTP client gets 451 4.7.0 with the "
              "request: " + reply)
        # sendmail(1): the message stays in the maildrop while the milter says 451.
        check(postfix.sendmail(message("kept by postfix"), "alice@" + DOMAIN, "bob@peer.example") == 0,
              "sendmail(1) takes a message")
        check(eventually(lambda: "awaiting approval" in postfix.log(), 30),
              "Postfix's log shows the milter's 451 with the request")
        time.sleep(3)  # three pickup rounds: still kept, not bounced, not delivered
        check(subjects(sink) == [] and postfix.queued() >= 1, "nothing delivered; Postfix keeps the message")
        # Both selectors are their own scopes: approve each request as it comes.
        for _ in range(4):
            pending = set(int(r) for r in re.findall(r"elevation request (\d+)", postfix.log() + milter.text()))
            for request in sorted(pending):
                app.op("elevation", "approve", "--id", str(request), user="bob", totp=True)
            postfix.kick_pickup()
            if eventually(lambda: "kept by postfix" in subjects(sink), 8):
                break
        got = subjects(sink)
        check(got.count("kept by postfix") == 1, "after approval it is delivered exactly once: %s" % got)
        kept = [m for _, m in dumped(sink) if b"kept by postfix" in m]
        check(kept and verifies_both_ways(dns_server, kept[0])[0], "signed, and it verifies")
        time.sleep(2)
        check(subjects(sink).count("kept by postfix") == 1, "and only once, after more pickup rounds")

        # signerd stopped: deferred the same way, delivered once it is back.
        app.stop()
        check(postfix.sendmail(message("signerd away"), "alice@" + DOMAIN, "bob@peer.example") == 0,
              "sendmail(1) takes a message while signerd is stopped")
        check(eventually(lambda: "Signing is unavailable" in postfix.log() or "Signing failed" in postfix.log(), 30),
              "Postfix's log shows the milter's 451 (signerd unavailable)")
        time.sleep(2)
        check("signerd away" not in subjects(sink), "nothing delivered while signerd is away")
        app.start()
        postfix.kick_pickup()
        check(eventually(lambda: "signerd away" in subjects(sink), 60), "delivered once signerd is back")
        check(subjects(sink).count("signerd away") == 1, "exactly once")

        # kill -9 of dkim-relayd under load: 40 submissions, the milter killed after 10 reached
        # the sink and started again; every message is delivered once and verifies.
        before = len(subjects(sink))
        for i in range(40):
            postfix.sendmail(message("load %02d" % i), "alice@" + DOMAIN, "bob@peer.example")
        check(eventually(lambda: len(subjects(sink)) >= before + 10, 60), "ten of the load were delivered")
        milter.kill9()
        time.sleep(2)
        milter.start()
        postfix.kick_pickup()
        postfix.flush()
        check(eventually(lambda: len([s for s in subjects(sink) if s.startswith("load ")]) >= 40, 120),
              "all 40 delivered after the restart (%d)" % len([s for s in subjects(sink) if s.startswith("load ")]))
        load = [s for s in subjects(sink) if s.startswith("load ")]
        check(sorted(set(load)) == ["load %02d" % i for i in range(40)] and len(load) == 40,
              "each exactly once: %d deliveries of %d messages" % (len(load), len(set(load))))
        bad = [p for p, m in dumped(sink) if b"Subject: load" in m and not verifies_both_ways(dns_server, m)[0]]
        check(bad == [], "every one verifies: %s" % bad[:3])
    finally:
        teardown(parts)


def inbound(folder, cli, signerd, relayd, module):
    # This time the milter listens on a Unix socket that only Postfix's user may use.
    parts = setup(folder, cli, signerd, relayd, module, unix_socket=True)
    postfix, sink, milter = parts["postfix"], parts["sink"], parts["milter"]
    try:
        # root is not the postfix user: its connection is closed before a word.
        intruder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        intruder.settimeout(10)
        intruder.connect(milter.socket_path)
        intruder.sendall(b"\x00\x00\x00\x0dO\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff")
        try:
            answer = intruder.recv(64)
        except ConnectionResetError:  # closed with our packet unread
            answer = b""
        check(answer == b"", "another user's process is closed on at the Unix socket, unanswered")
        intruder.close()
        check(eventually(lambda: "is not one of the listener's allowed_users" in milter.text(), 10),
              "and the milter's log says why")
        forged = (b"Authentication-Results: " + AUTHSERV_ID.encode() + b"; dkim=pass header.d=peer.example\r\n"
                  b"Authentication-Results: other.example; spf=pass smtp.mailfrom=peer.example\r\n")
        original = message("from outside", sender="carol@peer.example", extra=forged)
        status, out = swaks(postfix.port, "--local-interface", "127.0.0.5", "--from", "carol@peer.example",
                            "--to", "alice@" + DOMAIN, data=original)
        check(last_reply(out).startswith("250"), "mail from a stranger is accepted: " + last_reply(out))
        check(eventually(lambda: len(dumped(sink)) >= 1, 30), "and delivered")
        got = dumped(sink)[-1][1] if dumped(sink) else b""
        fields = fields_of(got)
        results = [f for f in fields if f.lower().startswith(b"authentication-results:")]
        ours = [f for f in results if re.match(rb"(?i)authentication-results:\s*" + re.escape(AUTHSERV_ID.encode()) + rb";",
                                               f)]
        check(len(ours) == 1 and fields.index(ours[0]) == 0,
              "one Authentication-Results of ours, on top: %s" % [f[:60] for f in results])
        check(b"dkim=pass header.d=peer.example" not in got, "the forged one claiming our authserv-id is gone")
        check(any(b"other.example" in f for f in results), "another host's is kept")
        check(b"DKIM-Signature" not in got, "a stranger's mail is not signed")
    finally:
        teardown(parts)


def main():
    return run_module(__doc__, {"sign": sign, "keep": keep, "inbound": inbound}, 4, "dkim-milter-")


if __name__ == "__main__":
    sys.exit(main())
