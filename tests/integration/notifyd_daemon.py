#!/usr/bin/python3
"""The break-glass webhook on the appliance (issue 18, finding 6): dkim-signerd runs without a
network (its own network namespace, as PrivateNetwork=yes gives it: only a loopback of its
own), writes each event durably to the outbox, and dkim-notifyd, another user holding the
HMAC key, delivers the events to a webhook on the host's 127.0.0.1.

  - the receiver is down first: the break-glass event waits in the outbox (0640, the
    notifier's group), the notifier logs the failure and backs off, and once the receiver is
    up the event arrives with a valid v1 HMAC over a fresh timestamp and the file is deleted
  - an answer of 500 is retried
  - the notifier stopped: events wait in the outbox across its restart and arrive after it
  - junk in the outbox (a symbolic link, a bad name) is never read, never sent
  - signerd itself cannot reach the receiver (it has no route to the host's loopback)
  - neither log holds the key

usage: notifyd_daemon.py DKIM_APPLIANCE DKIM_SIGNERD DKIM_NOTIFYD SOFTHSM2_MODULE
"""

import grp
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signerd_daemon import DOMAIN, Appliance  # noqa: E402
from testlib import FAILURES, check, free_port, summary  # noqa: E402

KEY = b"notifyd-hmac-key-0123456789"


class Receiver(http.server.BaseHTTPRequestHandler):
    events = []
    bad = []
    refused_once = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not Receiver.refused_once:  # the first delivery that arrives gets a 500
            Receiver.refused_once.append(body)
            self.send_response(500)
            self.end_headers()
            return
        stamp = self.headers.get("X-DKIM-Signerd-Timestamp", "")
        expected = "v1=" + hmac.new(KEY, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
        if hmac.compare_digest(expected, self.headers.get("X-DKIM-Signerd-Signature", "")) and fresh:
            Receiver.events.append(json.loads(body))
        else:
            Receiver.bad.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def outbox_files(outbox):
    return sorted(n for n in os.listdir(outbox) if re.fullmatch(r"[0-9]{20}-[0-9]{10}-[0-9a-f]{16}\.json", n))


class Notifyd:
    def __init__(self, folder, notifyd, outbox, port):
        self.config = os.path.join(folder, "notifyd.toml")
        key = os.path.join(folder, "notifyd-key")
        with open(key, "wb") as f:
            f.write(KEY + b"\n")
        os.chmod(key, 0o600)
        shutil.chown(key, "daemon", "nogroup")
        with open(self.config, "w") as f:
            f.write('outbox = "%s"\nurl = "http://127.0.0.1:%d/hook"\nsecret_file = "%s"\n'
                    'timeout = "2s"\npoll_interval = "100ms"\nfirst_backoff = "200ms"\nmax_backoff = "1s"\n'
                    % (outbox, port, key))
        self.notifyd = notifyd
        self.log_path = os.path.join(folder, "notifyd.log")
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        # Its own user (daemon) in the outbox's group (nogroup), as dkim-notify on the appliance.
        self.proc = subprocess.Popen(["setpriv", "--reuid=daemon", "--regid=nogroup", "--clear-groups",
                                      self.notifyd, "--config", self.config], stdout=self.log, stderr=self.log)
        check(wait_for(lambda: "delivering" in open(self.log_path).read(), 10), "dkim-notifyd starts")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            return self.proc.wait(timeout=10)
        return self.proc.returncode if self.proc else 0

    def text(self):
        return open(self.log_path).read()


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    cli, signerd, notifyd_path, module = sys.argv[1:]
    folder = tempfile.mkdtemp(prefix="dkim-notifyd-")
    os.chmod(folder, 0o755)
    outbox = os.path.join(folder, "outbox")
    os.makedirs(outbox)
    # As tmpfiles.d makes it on the appliance: the writer owns it, the notifier's group may
    # read and delete, new files take that group (setgid).
    shutil.chown(outbox, "root", "nogroup")
    os.chmod(outbox, 0o2770)
    # signerd in a network namespace of its own, with only its own loopback (PrivateNetwork=yes).
    wrapper = os.path.join(folder, "signerd-no-network")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nexec unshare --net -- sh -c \'ip link set lo up && exec "$0" "$@"\' %s "$@"\n' % signerd)
    os.chmod(wrapper, 0o755)
    port = free_port()
    app = Appliance(folder, cli, wrapper, module, webhook_outbox=outbox)
    notifier = Notifyd(folder, notifyd_path, outbox, port)
    receiver = None
    try:
        app.start()
        app.add_users()
        app.secret_file("pw-dora", "dora-correct-horse")
        app.op("user", "add", "--name", "dora", "--roles", "admin", "--new-password-file",
               os.path.join(folder, "pw-dora"), check=True)
        out = app.op("totp", "enrol", user="dora", check=True).stdout.decode()
        app.totp_secrets["dora"] = re.search(r"secret=([A-Z2-7]+)", out).group(1)
        app.cli("totp", "confirm", "--code", "-", "--socket", app.socket, "--user", "dora",
                "--password-file", os.path.join(folder, "pw-dora"), stdin=(app.totp("dora") + "\n").encode(),
                check=True)

        # signerd cannot reach the host's loopback (where the receiver will listen).
        pid = app.proc.pid
        listener = http.server.HTTPServer(("127.0.0.1", port), Receiver)  # bound, not yet serving
        reach = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % pid, "/usr/bin/python3", "-c",
                                "import socket\ns=socket.socket();s.settimeout(1)\n"
                                "try:\n s.connect(('127.0.0.1',%d));print('yes')\nexcept Exception:\n print('no')"
                                % port], capture_output=True, text=True)
        check(reach.stdout.strip() == "no",
              "from signerd's network namespace the host's 127.0.0.1:%d cannot be reached (%s)"
              % (port, reach.stdout.strip() or reach.stderr.strip()))
        listener.server_close()  # the receiver is down while the event is made

        notifier.start()
        bg = app.op("elevation", "request", "--break-glass", "--operation", "sign", "--domain", DOMAIN,
                    "--duration", "10m", "--reason", "CHG-911 outage", user="dora", totp=True)
        check(bg.returncode == 0 and b"BREAK-GLASS" in bg.stdout + bg.stderr,
              "dora's break-glass grant is active at once: %s" % (bg.stdout + bg.stderr).decode().strip()[-160:])
        spooled = outbox_files(outbox)
        check(any(json.load(open(os.path.join(outbox, n)))["type"] == "break_glass" for n in spooled),
              "the break-glass event is in the outbox when the request is answered: %s" % spooled)
        for n in spooled:
            st = os.stat(os.path.join(outbox, n))
            check(stat.S_IMODE(st.st_mode) == 0o640 and grp.getgrgid(st.st_gid).gr_name == "nogroup",
                  "%s is 0640 with the notifier's group (%o %d)" % (n, stat.S_IMODE(st.st_mode), st.st_gid))
        # Junk the notifier must not follow, read or send.
        link = os.path.join(outbox, "%020d-0000000000-0123456789abcdef.json" % (int(time.time() * 1000) - 60000))
        os.symlink("/etc/shadow", link)
        with open(os.path.join(outbox, "not-an-event.json"), "w") as f:
            f.write('{"type":"forged"}')
        check(wait_for(lambda: "not delivered" in notifier.text(), 10),
              "with the receiver down, the notifier says the delivery failed and backs off")
        check(outbox_files(outbox) and any(n in outbox_files(outbox) for n in spooled),
              "and the event stays in the outbox")

        receiver = http.server.HTTPServer(("127.0.0.1", port), Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        check(wait_for(lambda: "break_glass" in [e["type"] for e in Receiver.events], 20),
              "once the receiver is up the break-glass event arrives, HMAC-signed: %s"
              % [e["type"] for e in Receiver.events])
        check(Receiver.refused_once and json.loads(Receiver.refused_once[0]) in Receiver.events,
              "the delivery answered with 500 was retried and arrived")
        bg_event = [e for e in Receiver.events if e["type"] == "break_glass"]
        check(bg_event and bg_event[0]["actor"] == "dora" and bg_event[0]["reason"] == "CHG-911 outage"
              and bg_event[0]["grant_id"] > 0, "the event names dora, her reason and the grant: %s" % bg_event[:1])
        check(wait_for(lambda: not any(n in outbox_files(outbox) for n in spooled), 10),
              "delivered events are deleted from the outbox")
        check(not Receiver.bad and "forged" not in json.dumps(Receiver.events),
              "nothing unsigned and no file of another name was sent")
        check(not os.path.lexists(link) and "not a regular file" in notifier.text(),
              "a symbolic link in the outbox is dropped unread")

        # The notifier stopped: events wait durably and arrive after its restart.
        check(notifier.stop() == 0 and "stopped" in notifier.text(), "SIGTERM stops dkim-notifyd cleanly")
        grant = re.search(r"grant (\d+)", bg.stdout.decode() + bg.stderr.decode()).group(1)
        revoked = app.op("elevation", "revoke", "--grant", grant, "--reason", "outage over", user="carol", totp=True)
        check(revoked.returncode == 0, "carol revokes the break-glass grant: %s" % revoked.stderr.decode().strip())
        waiting = outbox_files(outbox)
        check(len(waiting) >= 1, "with the notifier stopped the revoke waits in the outbox: %s" % waiting)
        notifier.start()
        check(wait_for(lambda: "grant.revoked" in [e["type"] for e in Receiver.events], 15),
              "after the notifier's restart the waiting event is delivered")
        check(wait_for(lambda: not outbox_files(outbox), 10), "and the outbox is empty")

        # signerd's metrics listen on its own loopback: read them from inside its namespace.
        metrics = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % pid, "/usr/bin/python3", "-c",
                                  "import urllib.request\nprint(urllib.request.urlopen("
                                  "'http://127.0.0.1:%d/metrics', timeout=5).read().decode())" % app.metrics_port],
                                 capture_output=True, text=True).stdout
        check(re.search(r'dkim_signerd_webhook_deliveries_total\{result="spooled"\} [2-9]', metrics) is not None
              and re.search(r'result="spool_failed"\} 0', metrics) is not None,
              "signerd counts the spooled events")
        notifier.stop()
        for name, path in (("notifyd", notifier.log_path), ("signerd", os.path.join(folder, "signerd.log"))):
            check(KEY.decode() not in open(path).read(), "the HMAC key is not in %s's log" % name)
    finally:
        notifier.stop()
        app.stop()
        if receiver:
            receiver.shutdown()
        if FAILURES:
            for name in ("notifyd.log", "signerd.log"):
                path = os.path.join(folder, name)
                if os.path.exists(path):
                    print("--- %s\n%s" % (name, open(path).read()[-3000:]))
        shutil.rmtree(folder, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
