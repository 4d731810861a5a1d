#!/usr/bin/python3
"""A network attacker before the next hop (and between a client and the relay), against the
real dkim-relayd daemon signing through a real signerd (SoftHSM2 token).

The next hop is a fake SMTP server written here (Python's ssl module, certificates from a
test CA made with openssl in the temporary folder), on 127.0.0.1 only. It plays what a man in
the middle can make of the path to the real next hop. Started by ctest, one group per run:

  next-hop    STARTTLS response injection: the 220 to STARTTLS followed, in the same TCP
              segment, by a forged 550 (the client would bounce its mail) or by forged
              250/354/250 replies (the client would hear 250 for a message the next hop
              refused), or by clear text a moment later; a stripped STARTTLS under
              tls = "required" (not advertised, refused with 454, EHLO refused so that only
              HELO is left); a wrong certificate under verified TLS (self-signed, another CA,
              another name, expired). Each time: 4xx to the client, which keeps the message,
              and no MAIL FROM, RCPT or DATA ever reaches the next hop, in clear or over TLS.
              The control: the right certificate, the message is delivered, signed, and the
              client hears 250 only after the next hop said 250.
  client-tls  The same class of bug on relayd's own listener (CVE-2011-0411): commands a man
              in the middle pipelines after the client's STARTTLS are never executed as if
              they came through TLS.

usage: attack_network.py GROUP DKIM_APPLIANCE DKIM_SIGNERD DKIM_RELAYD SOFTHSM2_MODULE
"""

import glob
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relayd_daemon import Raw, Relay, message, setup, swaks, last_reply  # noqa: E402
from signerd_daemon import DOMAIN  # noqa: E402
from testlib import check, free_port, run_module  # noqa: E402

HOP_NAME = "hop.test"


# --- certificates ----------------------------------------------------------------------------

def openssl(folder, *args):
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


class Pki:
    """A test CA and the certificates the scenarios need, all P-256, in `folder`/pki."""

    def __init__(self, folder):
        self.dir = os.path.join(folder, "pki")
        os.makedirs(self.dir)
        self.ca = self.make_ca("ca", "Test next-hop CA")
        self.other_ca = self.make_ca("other-ca", "Another CA")
        self.good = self.leaf("good", HOP_NAME, self.ca)
        self.other_issuer = self.leaf("other-issuer", HOP_NAME, self.other_ca)
        self.wrong_name = self.leaf("wrong-name", "other.test", self.ca)
        self.self_signed = self.make_self_signed("self-signed", HOP_NAME)
        self.expired = self.leaf("expired", HOP_NAME, self.ca, dates=("20200101000000Z", "20200201000000Z"))
        self.relay = self.leaf("relay", "relay.test", self.ca)
        for path in glob.glob(os.path.join(self.dir, "*")):
            os.chmod(path, 0o644)  # relayd runs as nobody (the keys are test keys)

    def path(self, name):
        return os.path.join(self.dir, name)

    def make_ca(self, name, cn):
        openssl(self.dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + cn,
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        # What `openssl ca` needs to issue with given dates (the expired certificate).
        os.makedirs(self.path(name + ".db"))
        open(self.path(name + ".db/index.txt"), "w").close()
        with open(self.path(name + ".db/serial"), "w") as f:
            f.write("1000\n")
        with open(self.path(name + ".cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = ca\n[ca]\ndatabase = %(d)s/index.txt\nnew_certs_dir = %(d)s\n"
                    "serial = %(d)s/serial\ncertificate = %(c)s.crt\nprivate_key = %(c)s.key\n"
                    "default_md = sha256\npolicy = any\ncopy_extensions = copy\nunique_subject = no\n"
                    "[any]\ncommonName = supplied\n" % {"d": self.path(name + ".db"), "c": self.path(name)})
        return name

    def leaf(self, name, dns_name, ca, dates=None):
        openssl(self.dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + dns_name,
                "-addext", "subjectAltName=DNS:" + dns_name, "-addext", "basicConstraints=CA:FALSE",
                "-addext", "extendedKeyUsage=serverAuth")
        start, end = dates or (time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() - 3600)),
                               time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() + 2 * 86400)))
        openssl(self.dir, "ca", "-batch", "-config", ca + ".cnf", "-in", name + ".csr", "-out", name + ".crt",
                "-startdate", start, "-enddate", end, "-notext")
        return (self.path(name + ".crt"), self.path(name + ".key"))

    def make_self_signed(self, name, dns_name):
        openssl(self.dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + dns_name,
                "-addext", "subjectAltName=DNS:" + dns_name)
        return (self.path(name + ".crt"), self.path(name + ".key"))


# --- the fake next hop -----------------------------------------------------------------------

class FakeHop:
    """An SMTP server on 127.0.0.1 that does what the man in the middle makes of the next hop.

    certificate   (cert, key) it shows after STARTTLS
    starttls      advertise STARTTLS in the EHLO reply
    ehlo_refused  answer EHLO with 502, so that the relay falls back to HELO (no extensions)
    starttls_reply  its reply to STARTTLS
    inject        clear text sent right after the 220 to STARTTLS, in the same write (one TCP
                  segment: TCP_NODELAY, one send)
    inject_later  clear text sent 100 ms after the 220, in a segment of its own
    at_dot        its reply to the end of data

    Every command line it receives is kept with whether it came over TLS; `messages` holds the
    messages it accepted."""

    def __init__(self, certificate, starttls=True, ehlo_refused=False, starttls_reply=b"220 2.0.0 Ready to start TLS",
                 inject=b"", inject_later=b"", at_dot=b"250 2.0.0 Ok: queued as FAKE1"):
        self.certificate, self.starttls, self.ehlo_refused = certificate, starttls, ehlo_refused
        self.starttls_reply, self.inject, self.inject_later, self.at_dot = starttls_reply, inject, inject_later, at_dot
        self.commands = []  # (tls, line)
        self.messages = []
        self.handshakes = []  # "ok" or the error of each TLS handshake
        self.connections = 0
        self.active = 0
        self.errors = []
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = free_port()
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def serve(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.active += 1
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        conn.settimeout(20)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state = {"sock": conn, "buffer": b"", "tls": False}
        try:
            self.converse(state)
        except (OSError, ssl.SSLError, ValueError) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            try:
                state["sock"].close()
            except OSError:
                pass
            with self.lock:
                self.active -= 1

    def converse(self, state):
        def send(data):
            state["sock"].sendall(data)

        def line():
            while b"\r\n" not in state["buffer"]:
                chunk = state["sock"].recv(65536)
                if not chunk:
                    raise ValueError("peer closed")
                state["buffer"] += chunk
            text, state["buffer"] = state["buffer"].split(b"\r\n", 1)
            return text

        send(b"220 %s ESMTP fake next hop\r\n" % HOP_NAME.encode())
        while True:
            command = line()
            with self.lock:
                self.commands.append((state["tls"], command.decode(errors="replace")))
            verb = command.split(b" ", 1)[0].upper()
            if verb == b"EHLO":
                if self.ehlo_refused and not state["tls"]:
                    send(b"502 5.5.1 EHLO not implemented\r\n")
                    continue
                lines = [HOP_NAME.encode(), b"PIPELINING", b"SIZE 10485760", b"8BITMIME"]
                if self.starttls and not state["tls"]:
                    lines.append(b"STARTTLS")
                send(b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) + b"250 " + lines[-1] + b"\r\n")
            elif verb == b"HELO":
                send(b"250 %s\r\n" % HOP_NAME.encode())
            elif verb == b"STARTTLS" and not state["tls"]:
                # The relay waits for this reply before its ClientHello: nothing of it is here.
                if state["buffer"]:
                    raise ValueError("bytes after STARTTLS before the reply")
                send(self.starttls_reply + b"\r\n" + self.inject)
                if not self.starttls_reply.startswith(b"220"):
                    continue
                if self.inject_later:
                    time.sleep(0.1)
                    send(self.inject_later)
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(*self.certificate)
                try:
                    state["sock"] = context.wrap_socket(state["sock"], server_side=True)
                except (OSError, ssl.SSLError) as e:
                    with self.lock:
                        self.handshakes.append(repr(e))
                    return
                with self.lock:
                    self.handshakes.append("ok")
                state["tls"] = True
            elif verb in (b"MAIL", b"RCPT"):
                send(b"250 2.1.0 Ok\r\n" if verb == b"MAIL" else b"250 2.1.5 Ok\r\n")
            elif verb == b"DATA":
                send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                data = []
                while True:
                    text = line()
                    if text == b".":
                        break
                    data.append(text[1:] if text.startswith(b".") else text)
                if self.at_dot.startswith(b"250"):
                    with self.lock:
                        self.messages.append(b"\r\n".join(data) + b"\r\n")
                send(self.at_dot + b"\r\n")
            elif verb == b"RSET" or verb == b"NOOP":
                send(b"250 2.0.0 Ok\r\n")
            elif verb == b"QUIT":
                send(b"221 2.0.0 Bye\r\n")
                return
            else:
                send(b"502 5.5.2 Unknown command\r\n")

    def settle(self, timeout=15):
        """Waits until every session it accepted has ended (the relay quit or hung up)."""
        deadline = time.monotonic() + timeout
        while self.active and time.monotonic() < deadline:
            time.sleep(0.05)

    def transaction_commands(self):
        """The MAIL, RCPT and DATA commands it received, in clear or over TLS."""
        with self.lock:
            return [(tls, c) for tls, c in self.commands if re.match(r"(?i)(MAIL|RCPT|DATA)\b", c)]

    def stop(self):
        self.stopping = True
        self.listener.close()
        self.thread.join(timeout=5)


# --- groups ----------------------------------------------------------------------------------

def relay_to(folder, relayd, app, hop, name, extra=""):
    """A relay whose next hop is `hop` with STARTTLS required and the certificate verified
    against the test CA for hop.test."""
    relay = Relay(folder, relayd, app, hop.url(), name=name,
                  next_hop_extra='tls = "required"\nca_file = "%s"\nserver_name = "%s"\n'
                                 'connect_timeout = "5s"\ncommand_timeout = "10s"\ndata_timeout = "10s"\n%s'
                                 % (os.path.join(folder, "pki", "ca.crt"), HOP_NAME, extra))
    relay.start()
    return relay


def client_replies(port, data):
    """An SMTP client by hand (each reply, so that a 4xx at MAIL is seen where it comes):
    EHLO, MAIL, RCPT, DATA and the message; the replies."""
    raw = Raw(port)
    replies = [raw.cmd(b"EHLO client.test"), raw.cmd(b"MAIL FROM:<alice@%s>" % DOMAIN.encode())]
    if replies[-1].startswith("250"):
        replies.append(raw.cmd(b"RCPT TO:<bob@peer.example>"))
        if replies[-1].startswith("250"):
            replies.append(raw.cmd(b"DATA"))
            if replies[-1].startswith("354"):
                replies.append(raw.message(data))
    raw.cmd(b"QUIT")
    raw.close()
    return replies


def temporary(replies):
    """The transaction ended in a 4xx (the client keeps the message and retries), and the
    client never heard a 5xx or a 250 to the end of data."""
    last = replies[-1]
    return re.match(r"^4\d\d ", last) is not None and not any(re.match(r"^5\d\d", r) for r in replies[1:])


def next_hop(folder, cli, signerd, relayd, module):
    app, dns_server = setup(folder, cli, signerd, module)
    pki = Pki(folder)
    hops, relays = [], []

    def scenario(name, **hop_options):
        for r in relays:
            r.stop()  # one relay at a time (a small machine)
        hop = FakeHop(hop_options.pop("certificate", pki.good), **hop_options)
        hops.append(hop)
        relay = relay_to(folder, relayd, app, hop, name)
        relays.append(relay)
        return hop, relay

    try:
        # 1. STARTTLS response injection, in the segment of the 220 to STARTTLS. A forged 550
        # for MAIL (the relay, fooled, would pass on a permanent refusal: the client bounces
        # its mail), then forged replies for EHLO, MAIL, RCPT and DATA and a forged 250 for the
        # end of data while the real next hop refuses the message (the client would hear 250
        # for a message nobody took).
        injections = [
            ("a forged 550", b"250 %s\r\n550 5.7.1 Injected refusal\r\n" % HOP_NAME.encode(), b"250 2.0.0 Ok", "550"),
            ("a forged 250", b"250 %s\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n"
                             b"250 2.0.0 Forged: queued\r\n" % HOP_NAME.encode(),
             b"554 5.7.1 The real next hop refuses this message", "Forged"),
            ("a bare forged 250", b"250 2.0.0 Forged\r\n", b"250 2.0.0 Ok", "Forged"),
            ("half a line", b"25", b"250 2.0.0 Ok", "25"),
        ]
        for what, injected, at_dot, marker in injections:
            hop, relay = scenario("inject-%d" % len(hops), inject=injected, at_dot=at_dot)
            status, out = swaks(relay.port, data=message("injection " + what))
            reply = last_reply(out)
            check(re.match(r"^4\d\d ", reply) is not None and "Injected" not in out and "Forged" not in out,
                  "STARTTLS injection (%s): swaks hears 4xx, never the injected reply: %s" % (what, reply))
            replies = client_replies(relay.port, message("injection by hand " + what))
            hop.settle()
            check(replies[1].startswith("451 4.7.5") and "clear text after its 220 to STARTTLS" in replies[1]
                  and temporary(replies),
                  "STARTTLS injection (%s): MAIL gets 451 4.7.5 naming the clear text: %s" % (what, replies[1]))
            check(hop.transaction_commands() == [] and hop.messages == [],
                  "STARTTLS injection (%s): no MAIL, RCPT or DATA reached the next hop: %r"
                  % (what, hop.transaction_commands()))
            check(hop.handshakes and "ok" not in hop.handshakes,
                  "STARTTLS injection (%s): the relay never started TLS over the tainted stream: %r"
                  % (what, hop.handshakes))
        # Clear text that comes a moment after the 220, in a segment of its own: either still
        # there when the 220 is read, or read by the TLS handshake, which it breaks.
        hop, relay = scenario("inject-later", inject_later=b"250 2.1.0 Ok\r\n550 5.7.1 Injected later\r\n")
        replies = client_replies(relay.port, message("injection later"))
        hop.settle()
        check(replies[1].startswith("451 4.7.5") and temporary(replies) and "Injected" not in "".join(replies),
              "clear text 100 ms after the 220 to STARTTLS: 451 4.7.5 at MAIL: " + replies[1])
        check(hop.transaction_commands() == [] and hop.messages == [], "... and nothing reached the next hop")

        # 2. A stripped STARTTLS under tls = "required".
        downgrades = [
            ("STARTTLS not advertised", {"starttls": False}),
            ("STARTTLS refused with 454", {"starttls_reply": b"454 4.7.0 TLS not available"}),
            ("EHLO refused, only HELO left", {"ehlo_refused": True}),
        ]
        for what, options in downgrades:
            hop, relay = scenario("strip-%d" % len(hops), **options)
            status, out = swaks(relay.port, data=message("stripped " + what))
            reply = last_reply(out)
            check(re.match(r"^4\d\d ", reply) is not None, "%s under tls = required: swaks hears 4xx: %s" % (what, reply))
            replies = client_replies(relay.port, message("stripped by hand " + what))
            hop.settle()
            check(re.match(r"^4\d\d 4\.", replies[1]) is not None and temporary(replies),
                  "%s under tls = required: MAIL gets 4xx: %s" % (what, replies[1]))
            check(hop.transaction_commands() == [] and hop.messages == [],
                  "%s: no MAIL FROM, RCPT or DATA was sent in clear: %r" % (what, hop.transaction_commands()))

        # 3. The wrong certificate under verified TLS.
        certificates = [
            ("a self-signed certificate", pki.self_signed),
            ("a certificate from another CA", pki.other_issuer),
            ("a certificate for another name", pki.wrong_name),
            ("an expired certificate", pki.expired),
        ]
        for what, certificate in certificates:
            hop, relay = scenario("cert-%d" % len(hops), certificate=certificate)
            status, out = swaks(relay.port, data=message("certificate " + what))
            reply = last_reply(out)
            check(re.match(r"^4\d\d ", reply) is not None, "%s: swaks hears 4xx: %s" % (what, reply))
            replies = client_replies(relay.port, message("certificate by hand " + what))
            hop.settle()
            check(replies[1].startswith("451 4.7.5") and "TLS with" in replies[1] and temporary(replies),
                  "%s: MAIL gets 451 4.7.5 (TLS failed): %s" % (what, replies[1]))
            check(hop.transaction_commands() == [] and hop.messages == [] and "ok" not in hop.handshakes,
                  "%s: no handshake completed and nothing reached the next hop: %r" % (what, hop.handshakes))

        # 4. The control: the right certificate. Delivered once, signed, over TLS only, and the
        # client's 250 is the next hop's.
        hop, relay = scenario("control")
        status, out = swaks(relay.port, data=message("control"))
        hop.settle()
        reply = last_reply(out)
        check(reply.startswith("250 2.0.0") and "queued as FAKE1" in reply,
              "the control: a verified TLS next hop takes the message and the client hears its 250: " + reply)
        got = hop.messages
        check(len(got) == 1 and re.search(rb"(?im)^DKIM-Signature:", got[0]) is not None
              and b"Subject: control" in got[0],
              "the control: the next hop got the message once, DKIM-signed (%d)" % len(got))
        check(hop.handshakes == ["ok"] and hop.transaction_commands()
              and all(tls for tls, _ in hop.transaction_commands()),
              "the control: MAIL, RCPT and DATA came over TLS only: %r" % hop.transaction_commands())
        ehlos = [(tls, c) for tls, c in hop.commands if c.upper().startswith("EHLO")]
        check([tls for tls, _ in ehlos] == [False, True],
              "the control: EHLO again after TLS (RFC 3207 section 4.2): %r" % ehlos)
        # A refusal by the real next hop stays a refusal: the client never hears 250 for it.
        hop, relay = scenario("control-refusal", at_dot=b"554 5.7.1 The next hop refuses this message")
        status, out = swaks(relay.port, data=message("control refusal"))
        hop.settle()
        check(last_reply(out).startswith("554") and hop.messages == [],
              "the control: the next hop's 554 at the dot reaches the client: " + last_reply(out))
    finally:
        for r in relays:
            r.stop()
        for h in hops:
            h.stop()
        app.stop()
        dns_server.stop()


def client_tls(folder, cli, signerd, relayd, module):
    """A man in the middle between a client and relayd: what it appends, in clear, to the
    client's STARTTLS must not be executed as commands that came through TLS."""
    app, dns_server = setup(folder, cli, signerd, module)
    pki = Pki(folder)
    maildir = os.path.join(folder, "maildir")
    os.makedirs(maildir)
    shutil.chown(maildir, "nobody", "nogroup")
    cert, key = pki.relay
    relay = Relay(folder, relayd, app, "maildir:" + maildir, name="tls-listener",
                  listen_extra='tls_certificate = "%s"\ntls_key = "%s"' % (cert, key))
    relay.start()
    tls_client = ssl.create_default_context(cafile=pki.path("ca.crt"))
    try:
        injected = (b"EHLO mitm.test\r\nMAIL FROM:<alice@%s>\r\nRCPT TO:<eve@peer.example>\r\n"
                    % DOMAIN.encode())
        # In the segment of STARTTLS itself.
        raw = Raw(relay.port)
        raw.cmd(b"EHLO client.test")
        raw.send(b"STARTTLS\r\n" + injected)
        ready = raw.reply()
        check(ready.startswith("220"), "STARTTLS with commands pipelined after it: 220: " + ready)
        check(raw.buffer == b"", "nothing but the 220 came before TLS: %r" % raw.buffer)
        raw.sock = tls_client.wrap_socket(raw.sock, server_hostname="relay.test")
        # Had the injected EHLO, MAIL and RCPT been executed, their replies would come now,
        # before the reply to this first command over TLS.
        first = raw.cmd(b"NOOP")
        check(first.startswith("250 2.0.0") and "relay.test" not in first,
              "the first reply over TLS is the one to NOOP, none to the injected commands: %r" % first)
        check(raw.cmd(b"RCPT TO:<bob@peer.example>").startswith("503"),
              "no transaction was opened by the injected MAIL FROM (RCPT gets 503)")
        ehlo = raw.cmd(b"EHLO client.test")
        check(ehlo.startswith("250") and "STARTTLS" not in ehlo, "EHLO again over TLS, no STARTTLS offered any more")
        check(raw.cmd(b"MAIL FROM:<alice@%s>" % DOMAIN.encode()).startswith("250")
              and raw.cmd(b"RCPT TO:<bob@peer.example>").startswith("250")
              and raw.cmd(b"DATA").startswith("354"), "the client's own transaction over TLS")
        final = raw.message(message("after injection"))
        check(final.startswith("250"), "the client's own message over TLS is taken: " + final)
        raw.cmd(b"QUIT")
        raw.close()
        delivered = [open(p, "rb").read() for p in glob.glob(os.path.join(maildir, "new", "*"))]
        check(len(delivered) == 1 and b"Delivered-To: bob@peer.example" in delivered[0]
              and b"eve@peer.example" not in delivered[0],
              "only the client's message, to its own recipient, was delivered (%d)" % len(delivered))

        # In a segment of its own after STARTTLS, before the client's ClientHello: the
        # handshake reads it and fails; the session ends, nothing executed.
        raw = Raw(relay.port)
        raw.cmd(b"EHLO client.test")
        raw.send(b"STARTTLS\r\n")
        ready = raw.reply()
        raw.send(injected)
        handshake = "ok"
        try:
            raw.sock = tls_client.wrap_socket(raw.sock, server_hostname="relay.test")
            raw.sock.settimeout(5)
            after = raw.cmd(b"NOOP")
        except (OSError, ssl.SSLError) as e:
            handshake, after = repr(e), "<closed>"
        check(ready.startswith("220") and (handshake != "ok" or after == "<closed>"),
              "clear text after STARTTLS in its own segment: the TLS handshake fails or the session ends: %s %s"
              % (handshake, after))
        raw.close()
        check(len(glob.glob(os.path.join(maildir, "new", "*"))) == 1, "nothing more was delivered")
    finally:
        relay.stop()
        app.stop()
        dns_server.stop()


def main():
    return run_module(__doc__, {"next-hop": next_hop, "client-tls": client_tls}, 4, "dkim-attack-network-",
                      mode=0o755)

if __name__ == "__main__":
    sys.exit(main())
