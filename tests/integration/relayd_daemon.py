#!/usr/bin/python3
"""dkim-relayd as a real daemon between real SMTP peers.

(About 700 lines: the three groups share one start-up of signerd, dnsmasq and relayd; the
socket-free Transaction's cases are unit tests in tests/relayd/transaction_test.cpp.)

Started by ctest (labels "hsm;signerd;relayd"), one group per run:

  delivery   swaks as the client (plain, PIPELINING, 8-bit, large, empty and SMTPUTF8
             messages; STARTTLS + AUTH PLAIN/LOGIN), Postfix's smtp-sink and a maildir as
             next hops; every delivered message verifies with dkimpy over a real DNS server
             (RSA and Ed25519 selectors on one message); an SMTP next hop with STARTTLS
             (required and verified, a wrong certificate name, no STARTTLS offered,
             opportunistic); no grant: 451 with the request id,
             then, once approved, the retry is delivered once
  faults     next hop down, answering 4xx and 5xx to RCPT and to the final dot, stalling
             past the timeout; signerd stopped; a faulty token (signatures that do not verify
             with the public key are never sent); kill -9 of relayd in the middle of DATA; the
             client leaving mid-DATA. After each: nothing delivered that the client was not
             told 250 for, nothing delivered twice
  security   SMTP smuggling sequences, open-relay attempts, a From: domain the client may not
             use, AUTH before STARTTLS, oversized messages (declared and actual), too many
             recipients, an early talker, command timeouts, configuration errors

relayd runs as user nobody (setpriv), like signerd's relay peer; signerd, its token and
dnsmasq are set up as in signerd_daemon.py. smtp-sink runs as nobody too (-u).

usage: relayd_daemon.py GROUP DKIM_APPLIANCE DKIM_SIGNERD DKIM_RELAYD SOFTHSM2_MODULE FAULT_MODULE
"""

import base64
import glob
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

import dkim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signerd_daemon import DOMAIN, Appliance  # noqa: E402
from testlib import FAILURES, DnsServer, check, free_port, summary, until  # noqa: E402

FAULT_MODULE = [None]  # tests/support/fault_module.c, from the command line
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def message(subject="relayed", body=b"Signed by the relay.\r\n", sender="alice@" + DOMAIN, extra=b""):
    return (b"From: Alice <" + sender.encode() + b">\r\nTo: Bob <bob@peer.example>\r\n"
            b"Subject: " + subject.encode() + b"\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
            b"Message-ID: <" + subject.encode().replace(b" ", b"-") + b"@" + DOMAIN.encode() + b">\r\n" +
            extra + b"\r\n" + body)


class Sink:
    """Postfix's smtp-sink on a free port, dumping each accepted message into its own file."""

    def __init__(self, folder, *options):
        self.dir = os.path.join(folder, "sink-%d" % time.monotonic_ns())
        os.makedirs(self.dir)
        shutil.chown(self.dir, "nobody", "nogroup")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "nobody", "-d", self.dir + "/msg.", *options, "127.0.0.1:%d" % self.port, "64"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in until():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def messages(self):
        """The messages received whole (smtp-sink also dumps the envelope of transactions that
        never got to DATA, and the message of one it refused at the dot: see received())."""
        out = []
        for path in sorted(glob.glob(self.dir + "/msg.*"), key=os.path.getmtime):
            with open(path, "rb") as f:
                dumped = f.read()
            if b"\nDKIM-Signature:" in dumped:
                out.append(dumped)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def maildir_messages(path):
    out = []
    for name in sorted(glob.glob(os.path.join(path, "new", "*")), key=os.path.getmtime):
        with open(name, "rb") as f:
            out.append(f.read())
    return out


class Relay:
    def __init__(self, folder, relayd, app, next_hop, name="relay", limits="", listen_extra="", clients=None,
                 next_hop_extra="", selectors=("rsa", "ed")):
        self.folder, self.relayd, self.app = folder, relayd, app
        self.config = os.path.join(folder, name + ".toml")
        self.logfile = os.path.join(folder, name + ".log")
        self.port = free_port()
        clients = clients if clients is not None else [
            '[[client]]\nname = "apps"\nnetworks = ["127.0.0.0/8"]\ndomains = ["%s"]' % DOMAIN]
        with open(self.config, "w") as f:
            f.write('hostname = "relay.test"\nsignerd_socket = "%s"\n' % app.socket)
            f.write('[[listen]]\naddress = "127.0.0.1:%d"\n%s\n' % (self.port, listen_extra))
            f.write("[limits]\n%s\n" % limits)
            f.write('[next_hop]\nurl = "%s"\n%s\n' % (next_hop, next_hop_extra))
            f.write('[[domain]]\nname = "%s"\nselectors = [%s]\n' % (DOMAIN, ", ".join('"%s"' % x for x in selectors)))
            f.write('[metrics]\nlisten = "127.0.0.1:0"\n')
            f.write("\n".join(clients) + "\n")
        self.proc = None

    def start(self):
        self.log = open(self.logfile, "ab")
        starts = open(self.logfile).read().count("listening on") if os.path.exists(self.logfile) else 0
        wrapper = os.environ.get("DKIM_RELAYD_WRAPPER", "").split()  # e.g. "valgrind -q" when debugging
        self.proc = subprocess.Popen(NOBODY + wrapper + [self.relayd, "--config", self.config], stdout=self.log,
                                     stderr=self.log)
        for _ in until():
            text = open(self.logfile).read()
            if text.count("listening on") > starts:
                self.metrics_port = int(re.findall(r"metrics on port (\d+)", text)[-1])
                return
            if self.proc.poll() is not None:
                raise RuntimeError("dkim-relayd exited: " + text)
            time.sleep(0.05)
        raise RuntimeError("dkim-relayd did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        return self.proc.returncode if self.proc else 0

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def text(self):
        return open(self.logfile).read()

    def metrics(self):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5) as r:
            return r.read().decode()


def swaks(port, *args, data=None, timeout=60):
    """Runs swaks; returns (exit status, transcript)."""
    cmd = ["swaks", "--server", "127.0.0.1:%d" % port, "--from", "alice@" + DOMAIN, "--to", "bob@peer.example",
           "--helo", "client.test", "--timeout", "20"]
    if data is not None:
        cmd += ["--data", "-"]
    r = subprocess.run(cmd + list(args), input=data, capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def last_reply(transcript):
    """The server's reply to the final dot, or else its last reply before QUIT."""
    lines = transcript.splitlines()
    dots = [i for i, line in enumerate(lines) if re.match(r"^ *\S*> \.$", line)]
    replies = [(i, m.group(1)) for i, line in enumerate(lines)
               for m in [re.match(r"^<\S*\s+(\d{3}[ -].*)$", line)] if m]
    if dots:
        after = [r for i, r in replies if i > dots[-1]]
        if after:
            return after[0]
    before_quit = [r for _, r in replies if not r.startswith("221")]
    return before_quit[-1] if before_quit else ""


class Raw:
    """A hand-driven SMTP client, for what swaks will not send (bare LF, early talk)."""

    def __init__(self, port, greet=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        if greet:
            self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "\n".join(lines) or "<closed>"
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode(errors="replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def message(self, data):
        """The message after 354, and the end of data; the reply to it."""
        self.send(data + b".\r\n")
        return self.reply()

    def closed(self):
        try:
            self.sock.settimeout(5)
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.sock.close()


def eventually(condition, timeout=15):
    """Polls `condition` until true or `timeout` seconds passed (sanitizer builds are slow)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def dkimpy_verifies(dns_server, signed):
    """Every DKIM-Signature on the message verifies (dkimpy, keys from dnsmasq)."""
    try:
        sigs = len(re.findall(rb"^DKIM-Signature:", signed, re.M | re.I))
        if sigs == 0:
            return False
        d = dkim.DKIM(signed)
        return all(d.verify(idx=i, dnsfunc=dns_server.dkimpy_dnsfunc()) for i in range(sigs))
    except dkim.DKIMException as e:
        print("      dkimpy: %s" % e)
        return False


def strip_sink_headers(dumped):
    """smtp-sink puts X-Client-Addr, X-Helo-Args, ... on top; the message follows."""
    return dumped


def setup(folder, cli, signerd, module, grant=True):
    app = Appliance(folder, cli, signerd, module)
    dns_server = DnsServer(folder, app.records, DOMAIN)
    try:
        app.start()
        app.add_users()
        if grant:
            app.approve(app.request("*", "30m"))
    except BaseException:
        # The callers' try/finally starts after setup: a failure here left signerd and dnsmasq
        # running after the test (issue 19 found five such pairs after a day's runs).
        if getattr(app, "proc", None):
            app.stop()
        dns_server.stop()
        raise
    return app, dns_server


# --- groups ----------------------------------------------------------------------------------

def delivery(folder, cli, signerd, relayd, module):
    app, dns_server = setup(folder, cli, signerd, module, grant=False)
    sink = Sink(folder)
    relay = Relay(folder, relayd, app, "smtp://127.0.0.1:%d" % sink.port, next_hop_extra='tls = "off"')
    relay.start()
    try:
        # No grant yet: 451 naming the pending request; nothing reaches the next hop. Each
        # selector is its own scope, so the RSA and the Ed25519 key are approved one by one.
        status, out = swaks(relay.port, data=message("before approval"))
        reply = last_reply(out)
        request = re.search(r"elevation request (\d+)", reply)
        check(reply.startswith("451 4.7.0") and request is not None,
              "without a grant the final dot gets 451 4.7.0 with the pending request: " + reply)
        check(sink.messages() == [], "nothing reached the next hop without a grant")
        approved = 0
        while request and approved < 2:
            app.approve(int(request.group(1)))
            approved += 1
            status, out = swaks(relay.port, data=message("before approval"))
            request = re.search(r"elevation request (\d+)", last_reply(out))
        check(last_reply(out).startswith("250 2.0.0") and approved == 2,
              "once both selectors' requests are approved the retry is accepted: " + last_reply(out))
        got = sink.messages()
        check(len(got) == 1, "exactly one copy reached the next hop (%d)" % len(got))
        if got:
            check(len(re.findall(rb"^DKIM-Signature:", got[0], re.M)) == 2, "RSA and Ed25519 signatures on top")
            check(dkimpy_verifies(dns_server, got[0]), "dkimpy verifies both signatures of the relayed message")

        cases = [
            ("pipelined", ["--pipeline"], message("pipelined")),
            ("8-bit body", [], message("eight bit", body="Grüße aus Köln, naïve café.\r\n".encode())),
            ("large (1 MiB)", [], message("large", body=(b"x" * 998 + b"\r\n") * 1050)),
            ("empty body", [], message("empty", body=b"")),
            ("dot-stuffed lines", [], message("dots", body=b".leading dot\r\n..two\r\n.\r\nafter\r\n")),
        ]
        for name, args, data in cases:
            before = len(sink.messages())
            status, out = swaks(relay.port, *args, data=data)
            got = sink.messages()
            ok = last_reply(out).startswith("250") and len(got) == before + 1
            check(ok, "%s: accepted and delivered once: %s" % (name, last_reply(out)))
            if ok:
                check(dkimpy_verifies(dns_server, got[-1]), "%s: dkimpy verifies the delivered message" % name)
                if name == "dot-stuffed lines":
                    body = got[-1].replace(b"\r\n", b"\n")
                    check(b"\n\n.leading dot\n..two\n.\nafter\n" in body,
                          "dot-stuffing is undone and redone exactly: %r" % body[-60:])
        metrics = relay.metrics()
        check('dkim_relayd_transactions_total{outcome="delivered"} 6' in metrics and
              'dkim_relayd_transactions_total{outcome="deferred_grant"} 2' in metrics,
              "metrics count delivered and deferred transactions")
        check(re.search(r"txn id=\S+ client=apps ip=127\.0\.0\.1 from_domain=%s size=\d+ rcpts=1 selectors=rsa,ed "
                        r"sign=ok next_hop=\"250 [^\"]*\" reply=250 latency_ms=" % re.escape(DOMAIN), relay.text()),
              "one structured log line per transaction")
    finally:
        relay.stop()
        sink.stop()

    # A maildir next hop, STARTTLS and AUTH.
    maildir = os.path.join(folder, "maildir")
    os.makedirs(maildir)
    shutil.chown(maildir, "nobody", "nogroup")
    cert, key = os.path.join(folder, "relay.crt"), os.path.join(folder, "relay.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=relay.test"], check=True,
                   capture_output=True)
    for path in (cert, key):
        shutil.chown(path, "nobody", "nogroup")
    password_hash = subprocess.run([cli, "relay", "hash-password", "--password-file", app.secret_file(
        "relay-pw", "app-secret-pw"), "--cost", "minimal-for-tests"], capture_output=True, check=True
    ).stdout.decode().strip()
    relay = Relay(folder, relayd, app, "maildir:" + maildir, name="tls-relay",
                  listen_extra='tls_certificate = "%s"\ntls_key = "%s"' % (cert, key),
                  clients=['[[client]]\nname = "app1"\npassword_hash = "%s"\ndomains = ["%s"]' % (password_hash, DOMAIN)])
    relay.start()
    try:
        status, out = swaks(relay.port, data=message("no auth"))
        check(re.search(r"^<~?\*\* 530 5\.7\.0", out, re.M) is not None,
              "without STARTTLS and AUTH the sender is refused with 530")
        raw = Raw(relay.port)
        ehlo = raw.cmd(b"EHLO client.test")
        check("STARTTLS" in ehlo and "AUTH" not in ehlo, "before STARTTLS, EHLO offers STARTTLS and no AUTH")
        plain = base64.b64encode(b"\0app1\0app-secret-pw")
        check(raw.cmd(b"AUTH PLAIN " + plain).startswith("538 5.7.11"), "AUTH before STARTTLS gets 538 5.7.11")
        check(raw.cmd(b"MAIL FROM:<alice@%s>" % DOMAIN.encode()).startswith("530 5.7.0"),
              "MAIL without authentication gets 530 5.7.0")
        raw.close()
        for mechanism in ("PLAIN", "LOGIN"):
            status, out = swaks(relay.port, "--tls", "--auth", mechanism, "--auth-user", "app1",
                                "--auth-password", "app-secret-pw", data=message("tls " + mechanism))
            check(last_reply(out).startswith("250 2.0.0"), "STARTTLS + AUTH %s: accepted: %s" % (mechanism, last_reply(out)))
        status, out = swaks(relay.port, "--tls", "--auth", "PLAIN", "--auth-user", "app1",
                            "--auth-password", "wrong", data=message("bad password"))
        check(re.search(r"535 5\.7\.8", out) is not None, "a wrong password gets 535 5.7.8")
        check("app-secret-pw" not in relay.text() and "wrong" not in relay.text(), "passwords are never logged")
        # SMTPUTF8 and BODY=8BITMIME, by hand (swaks sends neither parameter).
        raw = Raw(relay.port)
        raw.cmd(b"EHLO client.test")
        raw.cmd(b"STARTTLS")
        raw.sock = ssl.create_default_context(cafile=cert).wrap_socket(raw.sock, server_hostname="relay.test")
        ehlo = raw.cmd(b"EHLO client.test")
        check("SMTPUTF8" in ehlo and "8BITMIME" in ehlo and "AUTH PLAIN LOGIN" in ehlo,
              "after STARTTLS, EHLO offers AUTH, SMTPUTF8 and 8BITMIME")
        check(raw.cmd(b"AUTH PLAIN " + plain).startswith("235 2.7.0"), "AUTH PLAIN with an initial response")
        check(raw.cmd("RCPT TO:<jörg@peer.example>".encode()).startswith("503"), "RCPT before MAIL gets 503")
        check(raw.cmd(b"MAIL FROM:<alice@%s> BODY=8BITMIME" % DOMAIN.encode()).startswith("250"), "MAIL BODY=8BITMIME")
        check(raw.cmd("RCPT TO:<jörg@peer.example>".encode()).startswith("553 5.6.7"),
              "a UTF-8 address without SMTPUTF8 gets 553 5.6.7")
        raw.cmd(b"RSET")
        check(raw.cmd(b"MAIL FROM:<alice@%s> BODY=8BITMIME SMTPUTF8" % DOMAIN.encode()).startswith("250"),
              "MAIL with SMTPUTF8")
        check(raw.cmd("RCPT TO:<jörg@peer.example>".encode()).startswith("250"), "a UTF-8 recipient with SMTPUTF8")
        check(raw.cmd(b"DATA").startswith("354"), "DATA")
        utf8 = message("utf8", body="Jörg grüßt.\r\n".encode(), extra="To: Jörg <jörg@peer.example>\r\n".encode())
        final = raw.message(utf8)
        check(final.startswith("250 2.0.0"), "an SMTPUTF8 message is signed and delivered: " + final)
        raw.cmd(b"QUIT")
        raw.close()
        got = maildir_messages(maildir)
        check(len(got) == 3, "the maildir holds exactly the three accepted messages (%d)" % len(got))
        check(all(dkimpy_verifies(dns_server, m) for m in got), "dkimpy verifies the maildir copies")
        check(not os.listdir(os.path.join(maildir, "tmp")) if os.path.isdir(os.path.join(maildir, "tmp")) else False,
              "nothing is left in the maildir's tmp/")
    finally:
        relay.stop()

    # An SMTP next hop with STARTTLS: another relay (certificate for relay.test) in front of a
    # maildir. tls = "required" with the certificate checked, a wrong name, and a next hop
    # without STARTTLS.
    second = os.path.join(folder, "maildir2")
    os.makedirs(second)
    shutil.chown(second, "nobody", "nogroup")
    hop = Relay(folder, relayd, app, "maildir:" + second, name="tls-hop",
                listen_extra='tls_certificate = "%s"\ntls_key = "%s"' % (cert, key))
    hop.start()
    plain_sink = Sink(folder)
    relays = []
    try:
        def front(name, url, extra):
            r = Relay(folder, relayd, app, url, name=name, next_hop_extra=extra)
            r.start()
            relays.append(r)
            return r
        verified = front("front-verify", "smtp://127.0.0.1:%d" % hop.port,
                         'tls = "required"\nca_file = "%s"\nserver_name = "relay.test"' % cert)
        replies = transaction(verified.port, message("over tls"))
        check(replies[-1].startswith("250 2.0.0"), "a STARTTLS next hop with a verified certificate: " + replies[-1])
        got = maildir_messages(second)
        check(len(got) == 1 and dkimpy_verifies(dns_server, got[0]), "the message arrived once and verifies")
        wrong = front("front-wrong", "smtp://127.0.0.1:%d" % hop.port,
                      'tls = "required"\nca_file = "%s"\nserver_name = "other.test"' % cert)
        replies = transaction(wrong.port, message("wrong name"))
        check(replies[1].startswith("451 4.7.5"), "a certificate for another name: 451 4.7.5 at MAIL: " + replies[1])
        required = front("front-required", "smtp://127.0.0.1:%d" % plain_sink.port, 'tls = "required"')
        replies = transaction(required.port, message("no starttls"))
        check(replies[1].startswith("451 4.7.5") and "STARTTLS" in replies[1],
              "tls = required and a next hop without STARTTLS: 451 4.7.5: " + replies[1])
        opportunistic = front("front-opportunistic", "smtp://127.0.0.1:%d" % plain_sink.port, 'tls = "opportunistic"')
        check(transaction(opportunistic.port, message("opportunistic"))[-1].startswith("250"),
              "tls = opportunistic and a next hop without STARTTLS: delivered in clear")
        check(len(maildir_messages(second)) == 1 and len(plain_sink.messages()) == 1,
              "nothing else was delivered anywhere")
    finally:
        for r in relays:
            r.stop()
        hop.stop()
        plain_sink.stop()
        app.stop()
        dns_server.stop()


def transaction(port, data, sender="alice@" + DOMAIN, rcpts=("bob@peer.example",)):
    """MAIL, RCPT, DATA and the message by hand; returns the replies."""
    raw = Raw(port)
    replies = [raw.cmd(b"EHLO client.test"), raw.cmd(b"MAIL FROM:<%s>" % sender.encode())]
    for r in rcpts:
        replies.append(raw.cmd(b"RCPT TO:<%s>" % r.encode()))
    replies.append(raw.cmd(b"DATA"))
    if replies[-1].startswith("354"):
        replies.append(raw.message(data))
    raw.cmd(b"QUIT")
    raw.close()
    return replies


def start_data(port):
    """A session up to DATA's 354, for tests that send the message (or part of it) by hand."""
    raw = Raw(port)
    for line in (b"EHLO client.test", b"MAIL FROM:<alice@%s>" % DOMAIN.encode(), b"RCPT TO:<bob@peer.example>",
                 b"DATA"):
        raw.cmd(line)
    return raw


def faults(folder, cli, signerd, relayd, module):
    app, dns_server = setup(folder, cli, signerd, module)  # with its grant for every selector
    try:
        # The next hop is down: 451 at MAIL, the client keeps the message.
        dead = free_port()
        relay = Relay(folder, relayd, app, "smtp://127.0.0.1:%d" % dead, name="down", next_hop_extra='tls = "off"')
        relay.start()
        replies = transaction(relay.port, message("hop down"))
        check(replies[1].startswith("451 4.4.1") and "127.0.0.1:%d" % dead in replies[1],
              "next hop down: MAIL gets 451 4.4.1 naming it: " + replies[1])
        relay.stop()

        # (A refusal at the dot means the next hop has the bytes but did not take the message:
        # smtp-sink dumps them anyway, so only the reply is checked there.)
        cases = [
            ("4xx to RCPT", ["-r", "RCPT"], 2, "450", True),
            ("5xx to RCPT", ["-f", "RCPT"], 2, "500", True),
            ("4xx to the final dot", ["-r", "."], 4, "450", False),
            ("5xx to the final dot", ["-f", "."], 4, "500", False),
            ("stall before answering DATA", ["-w", "4"], 4, "451 4.4.2", True),
            ("stall before answering RCPT", ["-W", "RCPT:4"], 2, "451 4.4.2", True),
        ]
        for name, options, index, expected, sent_nothing in cases:
            sink = Sink(folder, *options)
            relay = Relay(folder, relayd, app, "smtp://127.0.0.1:%d" % sink.port, name="hop",
                          next_hop_extra='tls = "off"\ncommand_timeout = "1s"\ndata_timeout = "1s"')
            relay.start()
            replies = transaction(relay.port, message(name))
            got = replies[index] if len(replies) > index else "<none>"
            check(got.startswith(expected), "next hop %s: the client gets %s: %s" % (name, expected, got))
            time.sleep(0.2)
            if sent_nothing:
                check(sink.messages() == [], "next hop %s: the message was never sent" % name)
            relay.stop()
            sink.stop()

        # The next hop closes the kept session while the client is idle (smtp-sink -t 3): the
        # client's second transaction gets a fresh next-hop session.
        sink = Sink(folder, "-t", "3")
        relay = Relay(folder, relayd, app, "smtp://127.0.0.1:%d" % sink.port, name="idle", next_hop_extra='tls = "off"')
        relay.start()
        raw = Raw(relay.port)
        raw.cmd(b"EHLO client.test")
        outcomes = []
        for n in range(2):
            outcomes.append(raw.cmd(b"MAIL FROM:<alice@%s>" % DOMAIN.encode()))
            outcomes.append(raw.cmd(b"RCPT TO:<bob@peer.example>"))
            outcomes.append(raw.cmd(b"DATA"))
            outcomes.append(raw.message(message("idle %d" % n)))
            time.sleep(5 if n == 0 else 0)
        raw.close()
        check(outcomes[-1].startswith("250") and outcomes[3].startswith("250") and
              eventually(lambda: len(sink.messages()) == 2),
              "a next-hop session closed while idle is replaced: %s (%d delivered)" % (outcomes[4:], len(sink.messages())))
        relay.stop()
        sink.stop()

        # signerd stopped, then back: 451 4.3.0, then one delivery.
        sink = Sink(folder)
        relay = Relay(folder, relayd, app, "smtp://127.0.0.1:%d" % sink.port, name="signer",
                      next_hop_extra='tls = "off"')
        relay.start()
        check(transaction(relay.port, message("warm up"))[-1].startswith("250"), "a first message is delivered")
        app.stop()
        replies = transaction(relay.port, message("signerd down"))
        check(replies[-1].startswith("451 4.3.0"), "signerd stopped: the final dot gets 451 4.3.0: " + replies[-1])
        check(len(sink.messages()) == 1, "signerd stopped: nothing more was delivered")
        app.start()
        replies = transaction(relay.port, message("signerd down"))
        check(replies[-1].startswith("250"), "signerd back: the retry is delivered: " + replies[-1])
        check(len(sink.messages()) == 2, "signerd back: exactly one copy of the retried message")

        # kill -9 of relayd in the middle of DATA: the client sees the connection drop, the next
        # hop never saw DATA; after a restart the retry is delivered once.
        raw = start_data(relay.port)
        raw.send(message("killed")[:60])
        time.sleep(0.2)
        relay.kill9()
        check(raw.closed(), "kill -9 mid-DATA: the client's connection drops (it keeps the message)")
        raw.close()
        check(len(sink.messages()) == 2, "kill -9 mid-DATA: nothing reached the next hop")
        relay.start()
        check(transaction(relay.port, message("killed"))[-1].startswith("250"), "after a restart the retry is accepted")
        check(len(sink.messages()) == 3, "kill -9 mid-DATA: exactly one copy after the retry")

        # The client leaves in the middle of DATA.
        raw = start_data(relay.port)
        raw.send(message("abandoned")[:80])
        raw.close()
        check(eventually(lambda: 'dkim_relayd_transactions_total{outcome="aborted"} 1' in relay.metrics()),
              "client gone mid-DATA: counted as aborted")
        check(len(sink.messages()) == 3, "client gone mid-DATA: nothing reached the next hop")
        check(all(dkimpy_verifies(dns_server, m) for m in sink.messages()), "every delivered message verifies")

        # A faulty token: signerd on a module that flips a bit of every signature. The relay's
        # check with the public key refuses to send them.
        app.stop()
        with open(app.config) as f:
            config = f.read()
        with open(app.config, "w") as f:
            f.write(config.replace('module = "%s"' % module, 'module = "%s"' % FAULT_MODULE[0]))
        app.start(env=dict(app.env, DKIM_FAULT_MODULE_TARGET=module, DKIM_FAULT_CORRUPT_SIGNATURES="1"))
        replies = transaction(relay.port, message("faulty token"))
        check(replies[-1].startswith("451 4.3.0") and "does not verify" in replies[-1],
              "a faulty token: 451 4.3.0, the signature is never sent: " + replies[-1])
        check(len(sink.messages()) == 3, "a faulty token: nothing reached the next hop")
        check("sign=self-check-failed" in relay.text(), "the log says the self-check failed")
        relay.stop()
        sink.stop()
    finally:
        app.stop()
        dns_server.stop()


def security(folder, cli, signerd, relayd, module):
    app, dns_server = setup(folder, cli, signerd, module)  # with its grant for every selector
    sink = Sink(folder)
    relay = Relay(folder, relayd, app, "smtp://127.0.0.1:%d" % sink.port, next_hop_extra='tls = "off"',
                  limits='message_size = "64KiB"\nrecipients = 2\ncommand_timeout = "1s"\nerrors = 4\n'
                         'connections_per_client = 3\ngreeting_delay = "200ms"')
    relay.start()
    try:
        # SMTP smuggling: every end-of-data look-alike with a bare CR or LF ends the session.
        smuggled = b"\r\nMAIL FROM:<alice@signerd.example>\r\nRCPT TO:<eve@peer.example>\r\nDATA\r\n" \
                   b"From: alice@signerd.example\r\n\r\nsmuggled\r\n"
        for name, sequence in (("LF.CRLF", b"\n.\r\n"), ("CRLF.LF", b"\r\n.\n"), ("LF.LF", b"\n.\n"),
                               ("CR.CRLF", b"\r.\r\n"), ("CRLF.CR", b"\r\n.\r"), ("bare LF", b"\n")):
            raw = start_data(relay.port)
            raw.send(message("smuggle " + name, body=b"text" + sequence + smuggled) + b".\r\n")
            reply = raw.reply()
            check(reply.startswith("521 5.5.2") and raw.closed(), "smuggling %s: 521 and the session ends: %s" % (name, reply))
            raw.close()
        raw = Raw(relay.port)
        check(raw.cmd(b"NOOP\nNOOP").startswith("521 5.5.2"), "a bare LF in a command line: 521")
        raw.close()
        time.sleep(0.3)
        check(sink.messages() == [], "nothing smuggled reached the next hop")

        # Open relay attempts and foreign domains.
        replies = transaction(relay.port, message("foreign envelope"), sender="mallory@other.example")
        check(replies[1].startswith("550 5.7.1"), "MAIL FROM a domain the client may not use: 550 5.7.1: " + replies[1])
        replies = transaction(relay.port, message("foreign header", sender="ceo@other.example"))
        check(replies[-1].startswith("550 5.7.1") and "other.example" in replies[-1],
              "a From: header domain the client may not use: 550 5.7.1 at the dot: " + replies[-1])
        two_from = b"From: a@signerd.example\r\n" + message("two from")
        check(transaction(relay.port, two_from)[-1].startswith("554 5.6.0"), "two From: fields: 554 5.6.0")

        raw = Raw(relay.port)
        check(raw.cmd(b"VRFY root").startswith("252 2.5.0") and raw.cmd(b"EXPN staff").startswith("502"),
              "VRFY and EXPN disclose nothing (252, 502)")
        raw.close()

        # Size and recipient limits.
        raw = Raw(relay.port)
        raw.cmd(b"EHLO client.test")
        check(raw.cmd(b"MAIL FROM:<alice@%s> SIZE=10000000" % DOMAIN.encode()).startswith("552 5.3.4"),
              "a declared SIZE over the limit: 552 5.3.4 at MAIL")
        raw.close()
        big = message("too big", body=(b"y" * 900 + b"\r\n") * 100)
        check(transaction(relay.port, big)[-1].startswith("552 5.3.4"), "an actual size over the limit: 552 5.3.4")
        replies = transaction(relay.port, message("many"), rcpts=("a@peer.example", "b@peer.example", "c@peer.example"))
        check(replies[4].startswith("452 4.5.3") and replies[-1].startswith("250"),
              "the third recipient gets 452 4.5.3, the first two get the message: %s / %s" % (replies[4], replies[-1]))
        long_line = message("long line", body=b"z" * 1200 + b"\r\n")
        check(transaction(relay.port, long_line)[-1].startswith("550 5.6.0"), "a line over 998 octets: 550 5.6.0")
        raw = Raw(relay.port)
        check(raw.cmd(b"NOOP " + b"x" * 600).startswith("500 5.5.6") and raw.closed(), "a command line over 512: 500 5.5.6")
        raw.close()

        # Early talkers, idle clients, errors and connection counts.
        raw = Raw(relay.port, greet=False)
        raw.send(b"EHLO early.test\r\n")
        check(raw.reply().startswith("554 5.5.1") and raw.closed(), "an early talker gets 554 and is disconnected")
        raw.close()
        raw = Raw(relay.port)
        started = time.monotonic()
        reply = raw.reply()
        check(reply.startswith("421 4.4.2") and raw.closed() and time.monotonic() - started < 5,
              "an idle client gets 421 4.4.2 after the command timeout: " + reply)
        raw.close()
        raw = Raw(relay.port)
        replies = [raw.cmd(b"BOGUS") for _ in range(4)]
        check(replies[-1].startswith("421 4.7.0") and raw.closed(), "too many errors: 421 and disconnected")
        raw.close()
        held = [Raw(relay.port) for _ in range(3)]
        extra = Raw(relay.port)
        check(extra.greeting.startswith("421 4.7.0"), "a fourth connection from one address: 421 4.7.0")
        for r in held + [extra]:
            r.close()
        check(sink.messages() and len(sink.messages()) == 1, "only the one legitimate message was delivered")
    finally:
        relay.stop()
        sink.stop()

    # An address that is not a configured client network, and no AUTH offered: no open relay.
    closed = Relay(folder, relayd, app, "smtp://127.0.0.1:%d" % sink.port, name="closed", next_hop_extra='tls = "off"',
                   clients=['[[client]]\nname = "lan"\nnetworks = ["10.0.0.0/8"]\ndomains = ["%s"]' % DOMAIN])
    closed.start()
    replies = transaction(closed.port, message("open relay"))
    check(replies[1].startswith("554 5.7.1"), "a client outside the configured networks: 554 5.7.1: " + replies[1])
    closed.stop()

    # Configuration errors name the file, line, column and key.
    bad = os.path.join(folder, "bad.toml")
    with open(bad, "w") as f:
        f.write('hostname = "relay.test"\n[[listen]]\naddress = "127.0.0.1:25"\nplain_auth = true\n'
                '[next_hop]\nurl = "maildir:/tmp/x"\n[limits]\nmessage_sise = 10\n')
    r = subprocess.run([relayd, "--config", bad, "--check-config"], capture_output=True)
    check(r.returncode == 2 and re.search(rb"bad\.toml:8:\d+: key 'limits\.message_sise'", r.stderr),
          "an unknown key is an error naming file:line:column and the key: %s" % r.stderr.strip())
    with open(bad, "w") as f:
        f.write('[[listen]]\naddress = "0.0.0.0:25"\nplain_auth = true\n[next_hop]\nurl = "maildir:/tmp/x"\n')
    r = subprocess.run([relayd, "--config", bad, "--check-config"], capture_output=True)
    check(r.returncode == 2 and b"plain_auth'" in r.stderr and b"loopback" in r.stderr,
          "AUTH without TLS on a public address is refused: %s" % r.stderr.strip())
    app.stop()
    dns_server.stop()


def main():
    if len(sys.argv) != 7:
        print(__doc__)
        return 2
    group, cli, signerd, relayd, module, FAULT_MODULE[0] = sys.argv[1:]
    groups = {"delivery": delivery, "faults": faults, "security": security}
    folder = tempfile.mkdtemp(prefix="dkim-relayd-")
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
