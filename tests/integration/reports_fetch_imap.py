"""`dkim-appliance reports fetch-imap` against a real IMAP server and a real dkim-reportd
(issue 21). The test starts a private Dovecot on 127.0.0.1 (its own configuration in a temporary
folder: imaps and imap with STARTTLS, a certificate from a CA the test makes with openssl, a
maildir of report mails from tests/data/dmarc-reports) and dkim-reportd (its own store, a
1 MiB submission cap so that one message is refused as invalid). Between the CLI and reportd
sits a relay of the test's, which looks at each message's flags in Dovecot (doveadm) when its
submission arrives, and which can stop answering, as a reportd that went down would.

Checked: a wrong CA is refused with a clear error and nothing is fetched; reportd unreachable
stops the run (exit 1) and marks nothing; reportd going down mid-run leaves every message after
the last stored one unmarked; a run stores the reports, each message still unseen when its
submission arrived and \\Seen after, the refused one left unseen and named (exit 2), a mail with
no report stored and marked; a second run fetches only the refused one; imap:// with STARTTLS,
move:FOLDER and delete; a server without STARTTLS gets no login; a hostile server of the test's
(TLS with the test CA, login accepted: a literal over 64 MiB, a line over 1 MiB, escape sequences
in its answer) stops the run with the reason, nothing submitted or marked, nothing but printable
text on the terminal; the password never appears in anything the CLI prints.

usage: reports_fetch_imap.py DKIM_APPLIANCE DKIM_REPORTD   (root: Dovecot's mail user is nobody)
"""

import json
import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import check, reportd_call, summary, until  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "dmarc-reports")
PASSWORD = "Imap-Pa55-7f3c9e21"
USER = "reports"
SKIP = 77


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def make_pki(d):
    def ossl(*args):
        r = run("openssl", *args)
        if r.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (args[0], r.stderr))
    for ca in ("ca", "wrong-ca"):
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", os.path.join(d, ca + ".key"), "-out", os.path.join(d, ca + ".pem"),
             "-days", "2", "-subj", "/CN=fetch-imap test " + ca)
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", os.path.join(d, "server.key"), "-out", os.path.join(d, "server.csr"),
         "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", os.path.join(d, "server.csr"), "-CA", os.path.join(d, "ca.pem"),
         "-CAkey", os.path.join(d, "ca.key"), "-CAcreateserial", "-days", "2",
         "-out", os.path.join(d, "server.pem"), "-extfile", os.path.join(d, "ext.cnf"))


class Dovecot:
    def __init__(self, d):
        self.d = d
        self.conf = os.path.join(d, "dovecot.conf")
        self.imaps = free_port()
        self.imap = free_port()
        nobody = pwd.getpwnam("nobody")
        self.uid, self.gid = nobody.pw_uid, nobody.pw_gid
        for sub in ("run", "state", "home", "mail"):
            os.makedirs(os.path.join(d, sub))
        with open(os.path.join(d, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s\n" % (USER, PASSWORD))
        with open(self.conf, "w") as f:
            f.write("""base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{d}/server.pem
ssl_key = <{d}/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain
first_valid_uid = {uid}
last_valid_uid = {uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u mail=maildir:{d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
""".format(d=d, uid=self.uid, gid=self.gid, imap=self.imap, imaps=self.imaps))
        self.maildir = os.path.join(d, "mail", USER)
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub))
        self.proc = None
        self.count = 0

    def deliver(self, name, data, seen=False):
        self.count += 1
        if seen:
            path = os.path.join(self.maildir, "cur", "%d.%s.test:2,S" % (self.count, name))
        else:
            path = os.path.join(self.maildir, "new", "%d.%s.test" % (self.count, name))
        with open(path, "wb") as f:
            f.write(data)
        self.chown()
        # Dovecot gives it the next UID now (UIDs in the order of delivery).
        self.doveadm("mailbox", "status", "-u", USER, "messages", "INBOX")

    def chown(self):
        for root, dirs, files in os.walk(os.path.join(self.d, "mail")):
            for n in dirs + files:
                os.chown(os.path.join(root, n), self.uid, self.gid)
        os.chown(os.path.join(self.d, "mail"), self.uid, self.gid)
        os.chown(os.path.join(self.d, "home"), self.uid, self.gid)

    def start(self):
        self.chown()
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in until(30):
            try:
                socket.create_connection(("127.0.0.1", self.imaps), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def doveadm(self, *args):
        return run("doveadm", "-c", self.conf, *args)

    def messages(self, mailbox="INBOX"):
        """{uid: set of flags} in the mailbox."""
        r = self.doveadm("-f", "flow", "fetch", "-u", USER, "uid flags", "mailbox", mailbox, "ALL")
        out = {}
        for line in r.stdout.splitlines():  # "uid=3 flags=\Seen \Recent"
            if line.startswith("uid="):
                uid_part, _, flags_part = line.partition(" flags=")
                out[int(uid_part[4:])] = set(flags_part.split())
        return out

    def unseen(self, mailbox="INBOX"):
        return sorted(u for u, f in self.messages(mailbox).items() if "\\Seen" not in f)

    def seen(self, mailbox="INBOX"):
        return sorted(u for u, f in self.messages(mailbox).items() if "\\Seen" in f)


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_frame(conn):
    header = read_exact(conn, 8)
    (length,) = struct.unpack(">I", header[:4])
    return header, read_exact(conn, length)


channel_call = reportd_call


class Relay:
    """A Unix socket between the CLI and dkim-reportd. For each submission it records the
    message's UID and whether Dovecot had it \\Seen at that moment, then forwards it. After
    `answer` submissions it stops answering (closes the connection and its socket)."""

    def __init__(self, path, reportd_socket, dovecot, answer=None):
        self.path = path
        self.reportd = reportd_socket
        self.dovecot = dovecot
        self.answer = answer
        self.submitted = []  # (uid, seen at submission)
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(4)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                try:
                    while True:
                        header, payload = read_frame(conn)
                        (jl,) = struct.unpack(">I", payload[:4])
                        request = json.loads(payload[4:4 + jl])
                        uid = int(request.get("origin", "uid 0").rsplit(" ", 1)[1])
                        if self.answer is not None and len(self.submitted) >= self.answer:
                            self.submitted.append((uid, None))
                            self.server.close()
                            return
                        self.submitted.append((uid, "\\Seen" in
                                               self.dovecot.messages().get(uid, set())))
                        with socket.socket(socket.AF_UNIX) as up:
                            up.connect(self.reportd)
                            up.sendall(header + payload)
                            h, p = read_frame(up)
                        conn.sendall(h + p)
                except (EOFError, OSError):
                    continue

    def close(self):
        try:
            self.server.close()
        except OSError:
            pass


def fake_server_without_starttls(port, heard):
    """An IMAP server on 127.0.0.1 that offers no STARTTLS: whatever a client sends is kept."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)

    def serve():
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            conn.sendall(b"* OK IMAP4rev1 no TLS here\r\n")
            buf = b""
            try:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    heard.append(data)
                    buf += data
                    while b"\r\n" in buf:
                        line, buf = buf.split(b"\r\n", 1)
                        tag = line.split(b" ", 1)[0]
                        if b"CAPABILITY" in line.upper():
                            conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag +
                                         b" OK done\r\n")
                        else:
                            conn.sendall(tag + b" BAD no\r\n")
            except OSError:
                pass
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t, srv


def hostile_imaps_server(d, port, mode, heard):
    """An IMAP server over TLS (the test CA's certificate) that logs the fetcher in, offers one
    message, and then misbehaves when the message is fetched: `literal` announces one of 64 MiB
    and a byte; `line` sends 2 MiB without a line end; `escape` refuses SELECT with terminal
    escape sequences in its text. Every line the client sends is kept in `heard`."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)

    def serve():
        try:
            raw, _ = srv.accept()
        except OSError:
            return
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            srv.close()
            return
        conn.settimeout(20)
        try:
            conn.sendall(b"* OK IMAP4rev1 hostile\r\n")
            buf = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    heard.append(line)
                    tag, _, rest = line.partition(b" ")
                    cmd = rest.upper()
                    if cmd.startswith(b"CAPABILITY"):
                        out = b"* CAPABILITY IMAP4rev1 UIDPLUS MOVE\r\n" + tag + b" OK\r\n"
                    elif cmd.startswith(b"LOGIN"):
                        out = tag + b" OK logged in\r\n"
                    elif cmd.startswith(b"SELECT"):
                        out = (tag + b" NO \x1b]0;owned\x07\x1b[31mno such mailbox\r\n" if mode == "escape"
                               else b"* 1 EXISTS\r\n" + tag + b" OK [READ-WRITE] done\r\n")
                    elif cmd.startswith(b"UID SEARCH"):
                        out = b"* SEARCH 1\r\n" + tag + b" OK\r\n"
                    elif cmd.startswith(b"UID FETCH") and b"RFC822.SIZE" in cmd:
                        out = b"* 1 FETCH (UID 1 RFC822.SIZE 100)\r\n" + tag + b" OK\r\n"
                    elif cmd.startswith(b"UID FETCH"):
                        out = (b"* 1 FETCH (UID 1 BODY[] {67108865}\r\n" + b"x" * 65536 if mode == "literal"
                               else b"* 1 FETCH (UID 1 BODY[] " + b"a" * (2 << 20))
                    elif cmd.startswith(b"LOGOUT"):
                        out = b"* BYE\r\n" + tag + b" OK\r\n"
                    else:
                        out = tag + b" OK\r\n"
                    conn.sendall(out)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()
            srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t, srv


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    cli, reportd_bin = sys.argv[1], sys.argv[2]
    if os.getuid() != 0 or shutil.which("dovecot") is None or shutil.which("doveadm") is None:
        print("skipped: needs root and dovecot-imapd (.ci/install-deps.sh)")
        return SKIP
    d = tempfile.mkdtemp(prefix="fetch-imap-")
    os.chmod(d, 0o755)  # Dovecot's mail processes run as nobody
    dovecot = None
    reportd = None
    relays = []
    printed = []  # everything the CLI printed, to look for the password in
    try:
        make_pki(d)
        dovecot = Dovecot(d)
        # The mailbox: two aggregate/failure report mails, another failure report, one mail with
        # no report, one over reportd's 1 MiB cap, and one already \Seen (never fetched).
        with open(os.path.join(DATA, "aggregate", "google.com-borschow.com-report.eml"), "rb") as f:
            dovecot.deliver("aggregate", f.read())
        with open(os.path.join(DATA, "failure", "domain.de-failure-report.eml"), "rb") as f:
            dovecot.deliver("failure", f.read())
        with open(os.path.join(DATA, "failure", "dmarc_ruf_report_linkedin.eml"), "rb") as f:
            dovecot.deliver("linkedin", f.read())
        dovecot.deliver("plain", b"From: a@example.net\nTo: dmarc@example.com\nSubject: hello\n"
                        b"Message-ID: <x1@example.net>\n\nNot a report.\n")
        dovecot.deliver("big", b"From: a@example.net\nTo: dmarc@example.com\nSubject: big\n\n" +
                        (b"x" * 76 + b"\n") * 20000)
        dovecot.deliver("old", b"From: a@example.net\nSubject: read already\n\nold\n", seen=True)
        check(dovecot.start(), "a private Dovecot listens on 127.0.0.1 (imaps and imap)")
        inbox = dovecot.messages()
        check(len(inbox) == 6 and len(dovecot.unseen()) == 5,
              "the mailbox holds 6 messages, 5 unseen (%s)" % inbox)

        user = pwd.getpwuid(os.getuid()).pw_name
        reportd_socket = os.path.join(d, "reportd.sock")
        with open(os.path.join(d, "reportd.toml"), "w") as f:
            f.write('socket = "%s"\nstore = "%s"\nsignerd_socket = "%s"\n[peers]\nadmin = ["%s"]\n'
                    '[limits]\nmax_input = "1MiB"\n' % (reportd_socket, os.path.join(d, "reports.db"),
                                                       os.path.join(d, "no-signerd.sock"), user))
        reportd = subprocess.Popen([reportd_bin, "--config", os.path.join(d, "reportd.toml")],
                                   stdout=open(os.path.join(d, "reportd.log"), "w"),
                                   stderr=subprocess.STDOUT)
        for _ in until(30):
            if os.path.exists(reportd_socket):
                break
            time.sleep(0.1)
        check(os.path.exists(reportd_socket), "dkim-reportd listens on its socket")

        password_file = os.path.join(d, "imap-password")
        with open(password_file, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(password_file, 0o600)
        url = "imaps://127.0.0.1:%d/INBOX" % dovecot.imaps

        def fetch(*extra, socket_path=reportd_socket, ca="ca.pem", target=url):
            # --no-verify: the mailbox's real report mails would have their reporters' DKIM keys
            # looked up on the internet (relayd_reports.reporter tests the reporter, hermetically).
            cmd = [cli, "reports", "fetch-imap", "--url", target, "--user", USER,
                   "--password-file", password_file, "--reportd-socket", socket_path, "--no-verify"]
            if ca:
                cmd += ["--ca-file", os.path.join(d, ca)]
            r = run(*(cmd + list(extra)), timeout=120)
            printed.append(r.stdout + r.stderr)
            return r

        def submissions():
            return channel_call(reportd_socket, {"op": "status"}).get("submissions")

        unseen_before = dovecot.unseen()

        # A certificate from another CA: refused, clearly, before anything is fetched.
        r = fetch(ca="wrong-ca.pem")
        check(r.returncode == 1 and "certificate was not accepted" in r.stderr and
              "nothing was fetched" in r.stderr,
              "a wrong CA: exit 1, the certificate named as refused (%s)" % r.stderr.strip())
        r = fetch(ca=None)
        check(r.returncode == 1 and "certificate was not accepted" in r.stderr and
              "--ca-file" in r.stderr, "no --ca-file for a private CA: refused, --ca-file suggested")
        r = fetch(target="imaps://localhost:%d/INBOX" % dovecot.imaps)
        check(r.returncode == 1 and "certificate was not accepted" in r.stderr,
              "a name the certificate does not hold (localhost): refused")
        check(dovecot.unseen() == unseen_before and submissions() == 0,
              "after them nothing is marked and nothing reached reportd")

        # reportd unreachable: the run stops at the first message, nothing is marked.
        r = fetch(socket_path=os.path.join(d, "no-reportd.sock"))
        check(r.returncode == 1 and "dkim-reportd" in r.stderr and "left unmarked" in r.stderr,
              "reportd unreachable: exit 1, said so (%s)" % r.stderr.strip())
        check(dovecot.unseen() == unseen_before, "reportd unreachable: nothing marked")

        # reportd answers once, then goes down: the one stored is marked, no other.
        relay = Relay(os.path.join(d, "relay-once.sock"), reportd_socket, dovecot, answer=1)
        relays.append(relay)
        r = fetch(socket_path=relay.path)
        first = unseen_before[0]
        check(r.returncode == 1 and "stopped" in r.stderr,
              "reportd down after one submission: exit 1 (%s)" % r.stderr.strip())
        check(dovecot.seen() == sorted([first] + [u for u in inbox if u not in unseen_before]) and
              dovecot.unseen() == unseen_before[1:],
              "only the message reportd stored is \\Seen; the rest stay unseen")
        check(submissions() == 1, "reportd holds that one submission")

        # A whole run, through a relay that looks at the flags as each submission arrives.
        relay = Relay(os.path.join(d, "relay.sock"), reportd_socket, dovecot)
        relays.append(relay)
        r = fetch("--json", socket_path=relay.path)
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        stored = [l for l in lines if "submission" in l]
        refused = [l for l in lines if "refused" in l]
        plain_uid = unseen_before[3]
        big_uid = unseen_before[4]
        check(r.returncode == 2, "a run with a refused message exits 2 (%d: %s)" %
              (r.returncode, r.stderr.strip()))
        check(sorted(l["uid"] for l in stored) == [u for u in unseen_before[1:] if u != big_uid],
              "each other unseen message was stored (%s)" % stored)
        check(sum(l["reports"] for l in stored) == 2 and all(l["marked"] == "seen" for l in stored),
              "the two report mails gave their reports; each marked seen")
        check([l["uid"] for l in refused] == [big_uid] and
              "larger than 1 MiB" in refused[0]["refused"],
              "the message over reportd's cap is refused by reportd (%s)" % refused)
        check(("uid %d" % big_uid) in r.stderr and "left unmarked" in r.stderr,
              "the refused message is named on stderr")
        check(("uid %d" % plain_uid) in r.stderr and "no report" in r.stderr,
              "the mail without a report is stored, and what reportd found is said")
        check(relay.submitted and all(seen is False for _, seen in relay.submitted),
              "every message was still unseen when its submission reached reportd "
              "(BODY.PEEK, marked after) (%s)" % relay.submitted)
        check(dovecot.unseen() == [big_uid],
              "after the run only the refused message is unseen (%s)" % dovecot.messages())
        old = [u for u in inbox if u not in unseen_before]
        check(all(u not in [s for s, _ in relay.submitted] for u in old),
              "a message \\Seen before the run is not fetched")
        total = submissions()
        check(total == 1 + len(stored), "reportd holds one submission per stored message (%s)" % total)

        # Again: only the refused one is fetched, and refused again.
        relay.submitted.clear()
        r = fetch(socket_path=relay.path)
        check(r.returncode == 2 and [u for u, _ in relay.submitted] == [big_uid] and
              dovecot.unseen() == [big_uid], "a second run fetches only the refused message")
        check(" 0 messages stored" in r.stdout and "1 refused" in r.stdout,
              "and says so (%s)" % r.stdout.strip().splitlines()[-1:])

        # imap:// with STARTTLS, and move:FOLDER.
        dovecot.doveadm("expunge", "-u", USER, "mailbox", "INBOX", "uid", str(big_uid))
        dovecot.doveadm("mailbox", "create", "-u", USER, "Processed")
        with open(os.path.join(DATA, "aggregate", "google.com-borschow.com-report.eml"), "rb") as f:
            dovecot.deliver("again", f.read())
        dovecot.chown()
        r = fetch("--after-store", "move:Processed",
                  target="imap://127.0.0.1:%d/INBOX" % dovecot.imap)
        check(r.returncode == 0 and "moved to Processed" in r.stdout and
              "1 already stored" in r.stdout,
              "imap:// with STARTTLS: stored (a duplicate report), moved (%s%s)" %
              (r.stdout.strip(), r.stderr.strip()))
        moved = dovecot.messages("Processed")
        check(len(moved) == 1 and all("\\Seen" in f for f in moved.values()) and
              not dovecot.unseen(), "the message is in Processed, \\Seen, and not in INBOX")

        # delete: stored, then expunged.
        before = set(dovecot.messages())
        dovecot.deliver("delete-me", b"From: a@example.net\nSubject: x\nMessage-ID: <d@x>\n\nx\n")
        r = fetch("--after-store", "delete")
        check(r.returncode == 0 and "deleted" in r.stdout and set(dovecot.messages()) == before,
              "delete: stored, then expunged (%s)" % r.stdout.strip())

        # A server that offers no STARTTLS on imap:// never sees a login.
        heard = []
        port = free_port()
        thread, srv = fake_server_without_starttls(port, heard)
        r = fetch(target="imap://127.0.0.1:%d/INBOX" % port)
        srv.close()
        thread.join(5)
        said = b"".join(heard)
        check(r.returncode == 1 and "STARTTLS" in r.stderr,
              "imap:// to a server without STARTTLS: refused (%s)" % r.stderr.strip())
        check(PASSWORD.encode() not in said and b"LOGIN" not in said.upper() and
              b"AUTHENTICATE" not in said.upper(),
              "that server heard no login and no password (%r)" % said[:200])

        # A hostile server (TLS verified, login accepted) is read under the caps: the run stops
        # with the reason, nothing is submitted and nothing marked.
        for mode, said in (("literal", "a literal of 67108865 bytes"),
                           ("line", "a response line longer than"),
                           ("escape", "no such mailbox")):
            heard = []
            port = free_port()
            thread, srv = hostile_imaps_server(d, port, mode, heard)
            before = submissions()
            r = fetch(target="imaps://127.0.0.1:%d/INBOX" % port)
            srv.close()
            thread.join(10)
            commands = [l.split(b" ", 2)[1:] for l in heard]
            check(r.returncode == 1 and said in r.stderr and submissions() == before and
                  not any(c and c[0].upper() == b"UID" and b"STORE" in b" ".join(c).upper()
                          for c in commands),
                  "a hostile server (%s): exit 1, '%s', nothing submitted or marked (%s)" %
                  (mode, said, r.stderr.strip()[:200]))
            check("\x1b" not in r.stderr and "\x07" not in r.stderr,
                  "a hostile server (%s): its text reaches the terminal without control bytes" % mode)

        # Bad options never echo the password or a URL with one in it.
        r = run(cli, "reports", "fetch-imap", "--url", "imaps://u:%s@127.0.0.1/INBOX" % PASSWORD,
                "--user", USER, "--password-file", password_file)
        printed.append(r.stdout + r.stderr)
        check(r.returncode == 1 and "--password-file" in r.stderr,
              "a password in the URL is refused without quoting it")
        os.chmod(password_file, 0o644)
        r = fetch()
        check(r.returncode == 1 and "mode 0644" in r.stderr,
              "a password file others may read is refused (%s)" % r.stderr.strip())
        os.chmod(password_file, 0o600)
        check(all(PASSWORD not in p for p in printed),
              "the password appears in nothing the CLI printed (%d runs)" % len(printed))
        with open(os.path.join(d, "reportd.log")) as f:
            check(PASSWORD not in f.read(), "nor in reportd's log")
    finally:
        for relay in relays:
            relay.close()
        if reportd is not None:
            reportd.terminate()
            reportd.wait(timeout=15)
        if dovecot is not None:
            dovecot.stop()
        if "KEEP_TMP" not in os.environ:
            shutil.rmtree(d, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
