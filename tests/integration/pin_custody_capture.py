#!/usr/bin/python3
"""webd never holds the token PIN or a PIN share in clear (issue 23): everything webd receives
and sends during an unlock, and webd's whole memory after it, searched for them.

Started by ctest (labels "hsm;signerd;webd"), one group per run, each with a real dkim-signerd on
SoftHSM2 and a real dkim-webd whose signerd socket is a recording proxy: a process of webd's own
user (so that signerd still sees its web peer) that forwards each connection to signerd's socket
and writes both directions to files. The test speaks HTTPS to webd and records every body it sent
and received; the sealing is the test's own, with python3-cryptography (X25519, HKDF-SHA256,
AES-256-GCM, Ed25519), as dkim/custody/envelope.hpp says, after it checked the key offer's
statement and signature and compared the identity's fingerprint with `dkim-appliance pin status`.

  approver  [pin] source = "approver": alice requests (over webd), bob approves with TOTP and
            the PIN sealed to the key signerd offered for that request; the grant is active, the
            token logged in, a signature works.
  shares    [pin] source = "shares": the PIN split 3 of 5 at the CLI, a grant approved over webd,
            and carol, dave and erin submit their shares sealed over webd; at the third the token
            logs in and a signature works.

After the unlock, three places are searched: the proxy's capture of webd <-> signerd, the HTTP
bodies the test exchanged with webd, and webd's memory (every readable region of
/proc/PID/maps, read through /proc/PID/mem; the tests run as root). The PIN and each share (its
text, its base32 data with and without the grouping dashes, in both cases, and the data's bytes)
must occur in none of them; as a control that the search can fail, a marker the test sent to
webd in clear (the request's reason; for the memory also a header of a request whose connection
stays open while the memory is read) must be found in all three, and the sealed envelopes in the
capture. The byte counts searched are printed.

usage: pin_custody_capture.py GROUP DKIM_APPLIANCE DKIM_SIGNERD DKIM_WEBD SOFTHSM2_MODULE
       pin_custody_capture.py proxy LISTEN_SOCKET SIGNERD_SOCKET CAPTURE_FOLDER   (internal)
"""

import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import check, run_module  # noqa: E402
from webd_daemon import Client, Webd, start_appliance  # noqa: E402

PIN = "user-pin-1234"  # signerd_daemon.Appliance's token PIN
HKDF_INFO = b"dkim-appliance pin envelope v1"
# Regions this large are an AddressSanitizer's shadow (reserved, never data of webd's): listed,
# not read.
LARGEST_REGION = 1 << 30


# --- the recording proxy (a process of webd's user) -------------------------------------------

def proxy(listen, target, folder):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(listen)
    server.listen(64)
    count = [0]

    def pump(source, sink, path):
        with open(path, "ab", buffering=0) as out:
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                out.write(data)
                try:
                    sink.sendall(data)
                except OSError:
                    break
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    print("recording", flush=True)
    while True:
        client, _ = server.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(target)
        except OSError:
            client.close()
            continue
        count[0] += 1
        base = os.path.join(folder, "%05d" % count[0])
        threading.Thread(target=pump, args=(client, upstream, base + ".up"), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, base + ".down"), daemon=True).start()


class Recorder:
    """The proxy, started as webd's user (daemon:nogroup), between webd and signerd."""

    def __init__(self, folder, target):
        self.folder = os.path.join(folder, "capture")  # the proxy's: its socket and the streams
        os.makedirs(self.folder)
        shutil.chown(self.folder, "daemon", "nogroup")
        self.socket = os.path.join(self.folder, "recorder.sock")
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=daemon", "--regid=nogroup", "--clear-groups", sys.executable,
             os.path.abspath(__file__), "proxy", self.socket, target, self.folder],
            stdout=subprocess.PIPE)
        if self.proc.stdout.readline().strip() != b"recording":
            raise RuntimeError("the recording proxy did not start")

    def streams(self):
        """Each connection's bytes, one direction at a time, as they crossed."""
        out = []
        for name in sorted(n for n in os.listdir(self.folder) if n.endswith((".up", ".down"))):
            with open(os.path.join(self.folder, name), "rb") as f:
                out.append(f.read())
        return out

    def stop(self):
        self.proc.kill()
        self.proc.wait()


# --- HTTP, recorded ---------------------------------------------------------------------------

class RecordingClient(Client):
    """webd_daemon.Client that keeps every body it sent and received."""

    def __init__(self, webd, exchanged):
        super().__init__(webd)
        self.exchanged = exchanged

    def request(self, method, path, body=None, headers=None, raw=None, csrf=True):
        status, h, doc, text = super().request(method, path, body, headers, raw, csrf)
        self.exchanged.append(json.dumps(body).encode() if body is not None else (raw or b""))
        self.exchanged.append(text)
        return status, h, doc, text


# --- sealing, as the console does it ----------------------------------------------------------

def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(identity):
    return "SHA256:" + base64.b64encode(hashlib.sha256(identity).digest()).decode().rstrip("=")


def sealed_to_signerd(client, user, purpose, subject, plaintext, trusted):
    """A key offer for (purpose, subject), checked (statement, signature, fingerprint against
    `trusted`, associated data), and `plaintext` sealed to it: {key_id, envelope}."""
    status, _, o, _ = client.request("POST", "/api/v1/pin/key", {"purpose": purpose, "subject": subject})
    if status != 200:
        raise RuntimeError("POST /api/v1/pin/key: %d %s" % (status, o))
    identity, public = from_b64u(o["identity"]), from_b64u(o["public_key"])
    statement = ("dkim-appliance pin envelope key v1\npurpose=%s\nsubject=%s\nuser=%s\nkey=%s\npublic=%s\n"
                 "expires=%d\n" % (purpose, subject, user, o["key_id"], b64u(public), o["expires_ms"]))
    try:
        Ed25519PublicKey.from_public_bytes(identity).verify(from_b64u(o["signature"]), statement.encode())
        signed = True
    except InvalidSignature:
        signed = False
    associated = "dkim-appliance pin envelope v1\npurpose=%s\nsubject=%s\nkey=%s\n" % (purpose, subject, o["key_id"])
    check(o["statement"] == statement and signed and fingerprint(identity) == o["fingerprint"] == trusted and
          o["associated_data"] == associated,
          "%s's key offer (%s %s): the statement rebuilt, signed by signerd's identity %s" % (user, purpose, subject,
                                                                                               o["fingerprint"]))
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + public, info=HKDF_INFO).derive(shared)
    iv = os.urandom(12)
    box = AESGCM(key).encrypt(iv, plaintext.encode(), associated.encode())
    return {"key_id": o["key_id"], "envelope": "v1.%s.%s.%s" % (b64u(ephemeral_public), b64u(iv), b64u(box))}


# --- webd's memory ----------------------------------------------------------------------------

def memory_of(pid):
    """webd's readable memory, region by region, and the regions left out (too large)."""
    regions, skipped = [], []
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else ""
            if "r" not in fields[1] or name in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            if end - start > LARGEST_REGION:
                skipped.append(line.strip())
                continue
            try:
                mem.seek(start)
                regions.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                skipped.append(line.strip())
    return regions, skipped


def needles_of_share(text):
    """A share's text and its data: base32 with and without the grouping dashes, both cases, and
    the bytes."""
    parts = text.split("-")
    data = parts[4:-1]
    grouped, plain = "-".join(data), "".join(data)
    raw = base64.b32decode(plain.upper() + "=" * (-len(plain) % 8))
    return [text.encode(), text.upper().encode(), grouped.encode(), grouped.upper().encode(), plain.encode(),
            plain.upper().encode(), raw]


def search(where, blobs, secret_needles, controls):
    """Whether any secret occurs in `blobs` (a list of byte strings); each control must."""
    size = sum(len(b) for b in blobs)
    found = [n for n in secret_needles if any(n in b for b in blobs)]
    missing = [c for c in controls if not any(c in b for b in blobs)]
    check(not found, "%s: %d bytes searched, none of the %d forms of the secrets in them%s"
          % (where, size, len(secret_needles), (": FOUND %d" % len(found)) if found else ""))
    check(not missing, "%s: the control%s sent in clear %s found there (the search can fail)%s"
          % (where, "s" if len(controls) > 1 else "", "are" if len(controls) > 1 else "is",
             (": missing %r" % missing) if missing else ""))
    return size


def scan_everything(phase, web, client, recorder, exchanged, secret_needles, marker, envelopes):
    time.sleep(0.5)  # webd's answers written, its buffers as they will stay
    # The control in webd's memory: the marker went in clear as the request's reason, long
    # before (its copies may have been reused since), and goes again now, in a header of a
    # request on a connection kept open while the memory is read (webd's session holds it).
    held = http.client.HTTPSConnection("127.0.0.1", web.port, context=web.context, timeout=30)
    held.request("GET", "/api/v1/me", headers={"Cookie": client.cookie, "X-Capture-Marker": marker.decode()})
    answer = held.getresponse()
    answer.read()
    check(answer.status == 200, "%s: a request with the marker in a header, its connection kept open" % phase)
    regions, skipped = memory_of(web.proc.pid)
    held.close()
    capture = recorder.streams()
    counts = {
        "capture": search(phase + ": webd <-> signerd (the proxy's capture, %d streams)" % len(capture), capture,
                          secret_needles, [marker] + [e.encode() for e in envelopes]),
        "http": search(phase + ": the HTTP bodies exchanged with webd (%d)" % len(exchanged), exchanged,
                       secret_needles, [marker]),
        "memory": search(phase + ": webd's memory (pid %d, %d regions)" % (web.proc.pid, len(regions)), regions,
                         secret_needles, [marker]),
    }
    if skipped:
        print("      left out of the memory scan (larger than 1 GiB or unreadable): %s" % skipped)
    print("      %s: bytes searched: capture %d, HTTP %d, webd memory %d" % (phase, counts["capture"], counts["http"],
                                                                            counts["memory"]))
    return counts


# --- the groups -------------------------------------------------------------------------------

def start(folder, cli, signerd, webd_path, module, source):
    """signerd, the recorder on its socket, webd on the recorder's, and the fingerprint of
    signerd's identity key, read from its file in signerd's state folder (root reads it; webd
    cannot) and compared with what `dkim-appliance pin status` prints."""
    app = start_appliance(folder, cli, signerd, module, pin_source=source)
    recorder = Recorder(folder, app.socket)
    web = Webd(folder, webd_path, recorder.socket)
    with open(os.path.join(folder, "state", "pin-identity.pem"), "rb") as f:
        identity = load_pem_private_key(f.read(), None).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    trusted = fingerprint(identity)
    status = app.op("pin", "status").stdout.decode()
    check("signerd identity: %s\n" % trusted in status,
          "signerd's identity key is %s, as pin status at the appliance says" % trusted)
    return app, recorder, web, trusted


def logged_in(app):
    return "token: logged in" in app.status()


def request_elevation(web, exchanged, marker):
    alice = RecordingClient(web, exchanged)
    alice.login("alice", "alice-correct-horse")
    status, _, doc, _ = alice.request("POST", "/api/v1/elevations", {
        "operation": "sign", "domain": "signerd.example", "selector": "rsa", "duration_seconds": 600,
        "reason": marker})
    check(status == 201, "alice requests a sign grant over webd, the marker as its reason: %d" % status)
    return doc["elevation"]["id"]


def approver(folder, cli, signerd, webd_path, module):
    app, recorder, web, trusted = start(folder, cli, signerd, webd_path, module, "approver")
    exchanged = []
    marker = "CAPTURE-MARKER-" + secrets.token_hex(8)
    try:
        request_id = request_elevation(web, exchanged, marker)
        bob = RecordingClient(web, exchanged)
        bob.login("bob", "bob-correct-horse", app.totp("bob"))
        status, _, doc, _ = bob.request("GET", "/api/v1/pin")
        check(status == 200 and doc["pin"]["mode"] == "approver" and not doc["pin"]["logged_in"] and
              doc["pin"]["identity_fingerprint"] == trusted,
              "GET /api/v1/pin: approver, logged out, signerd's identity: %s" % (doc or {}).get("pin"))
        sealed = sealed_to_signerd(bob, "bob", "approve", str(request_id), PIN, trusted)
        status, _, doc, _ = bob.request("POST", "/api/v1/elevations/%d/approve" % request_id,
                                        {"totp": app.totp("bob"), "pin_envelope": sealed})
        grant = ((doc or {}).get("elevation") or {}).get("grant") or {}
        check(status == 200 and grant.get("state") == "active",
              "bob approves with the sealed PIN: the grant is active (%d %s)" % (status, (doc or {}).get("message")))
        check(logged_in(app), "signerd status: the token is logged in")
        signed = app.relay_sign("rsa", "rsa-sha256")
        check(signed.returncode == 0, "a signature through signerd: %s" % signed.stderr.decode().strip())
        scan_everything("approver", web, bob, recorder, exchanged, [PIN.encode()], marker.encode(),
                        [sealed["envelope"]])
        web.stop()
        check(PIN not in open(web.log_path).read(), "approver: the PIN is not in webd's log")
    finally:
        web.stop()
        recorder.stop()
        app.stop()


def shares(folder, cli, signerd, webd_path, module):
    app, recorder, web, trusted = start(folder, cli, signerd, webd_path, module, "shares")
    exchanged = []
    marker = "CAPTURE-MARKER-" + secrets.token_hex(8)
    try:
        custodians = ["bob", "carol", "dave", "erin", "frank"]
        out = app.op("pin", "split", "--custodians", ",".join(custodians), "--threshold", "3",
                     "--pin-file", app.pin, check=True).stdout.decode()
        given = dict(re.findall(r"^([a-z]+): share \d+ of \d+ .*\n(dkimpin1-\S+)$", out, re.M))
        check(sorted(given) == custodians, "pin split (3 of 5) hands each custodian a share: %s" % sorted(given))
        request_id = request_elevation(web, exchanged, marker)
        bob = RecordingClient(web, exchanged)
        bob.login("bob", "bob-correct-horse", app.totp("bob"))
        status, _, doc, _ = bob.request("POST", "/api/v1/elevations/%d/approve" % request_id, {"totp": app.totp("bob")})
        check(status == 200, "bob approves over webd: %d %s" % (status, (doc or {}).get("message")))
        check(app.relay_sign("rsa", "rsa-sha256").returncode != 0, "without the quorum nothing is signed")
        envelopes = []
        for i, name in enumerate(["carol", "dave", "erin"]):
            client = RecordingClient(web, exchanged)
            client.login(name, name + "-correct-horse", app.totp(name) if name in app.totp_secrets else None)
            status, _, doc, _ = client.request("GET", "/api/v1/pin")
            pin = (doc or {}).get("pin") or {}
            check(status == 200 and pin.get("mode") == "shares" and pin.get("threshold") == 3 and
                  sum(c["submitted"] for c in pin.get("custodians", [])) == i,
                  "%s: GET /api/v1/pin says shares, 3 of 5, %d submitted" % (name, i))
            sealed = sealed_to_signerd(client, name, "share", pin.get("set_id", ""), given[name].strip(), trusted)
            envelopes.append(sealed["envelope"])
            status, _, doc, _ = client.request("POST", "/api/v1/pin/shares", {"share": sealed})
            check(status == 200, "%s submits a sealed share over webd: %s" % (name, (doc or {}).get("message")))
        for _ in range(50):
            if logged_in(app):
                break
            time.sleep(0.1)
        check(logged_in(app), "signerd status: the token logged in at the quorum")
        signed = app.relay_sign("rsa", "rsa-sha256")
        check(signed.returncode == 0, "a signature through signerd: %s" % signed.stderr.decode().strip())
        needles = [PIN.encode()] + [n for text in given.values() for n in needles_of_share(text)]
        scan_everything("shares", web, client, recorder, exchanged, needles, marker.encode(), envelopes)
        web.stop()
        log = open(web.log_path).read()
        check(not any(n.decode(errors="ignore") in log for n in needles if n.isascii()),
              "shares: no share and no PIN in webd's log")
    finally:
        web.stop()
        recorder.stop()
        app.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["proxy"]:
        proxy(*sys.argv[2:5])
    sys.exit(run_module(__doc__, {"approver": approver, "shares": shares}, 4, "dkim-capture-", mode=0o755))
