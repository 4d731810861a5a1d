#!/usr/bin/python3
"""A compromised dkim-reportd against the real dkim-signerd (SoftHSM2 token, its Unix socket;
issue 21). dkim-reportd parses reports that anyone on the internet can send, so assume it is
owned: it speaks signerd's protocol as the reports peer's uid (user daemon here, setpriv), with
frames it builds itself, holding an approver's password.

  - every request type but the four it may ask (the signing summary, signing keys, public keys,
    status) is refused as forbidden, whatever credentials it carries: no signature, no request
    filed, no decision, no user, no audit log read, and nothing written to the log;
  - what it may read, it reads: the summary counts what the relay signed and what was refused
    (per domain, selector and hour), the grant's interval, the signature lifetime; a range over
    400 days is refused; the counts are the same after signerd restarts;
  - the relay's uid is refused the summary.

usage: attack_reports.py DKIM_APPLIANCE DKIM_SIGNERD SOFTHSM2_MODULE
"""

import os
import sqlite3
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signerd_daemon import DOMAIN, Appliance  # noqa: E402
from testlib import check, run_module  # noqa: E402

REPORTS_UID = "daemon"

# --- signerd's protocol, as the attacker writes it (appliance/include/dkim/ipc/protocol.hpp) --
# A frame: u32 BE payload length, u16 BE version 1, u16 0; the payload a cereal binary archive
# of the Request variant: i32 index, then the members in their serialize() order: strings as u64
# LE length + bytes, integers as 8 bytes LE, bools as one byte, optionals as a bool "nullopt"
# and then, when it is false, the value.
# "C" is Credentials (user, password, token, totp, token_kind, and the passkey assertion's five
# strings: credential_id, client_data_json, authenticator_data, signature, user_handle).
LAYOUTS = [
    "sssss",      # 0 SignRequest
    "",           # 1 StatusRequest
    "Cq",         # 2 SessionCreate
    "Csss",       # 3 UserAdd
    "C",          # 4 UserList
    "Csb",        # 5 UserSetDisabled
    "Cssq",       # 6 ApiTokenCreate
    "Cq",         # 7 ApiTokenRevoke
    "Cs",         # 8 TotpEnrol
    "Css",        # 9 TotpConfirm
    "Cssssqosb",  # 10 ElevationRequest
    "Cb",         # 11 ElevationList
    "Csqsss",     # 12 ElevationDecide (the PIN envelope: key id, text)
    "Cqs",        # 13 GrantRevoke
    "Cb",         # 14 GrantList
    "Cqq",        # 15 AuditShow
    "ss",         # 16 PublicKeyRequest
    "C",          # 17 WhoAmI
    "C",          # 18 SessionEnd
    "C",          # 19 KeyList
    "Csssb",      # 20 KeyGenerate
    "C",          # 21 AuditVerify
    "Cssq",       # 22 KeyActivate
    "Cssb",       # 23 KeyRetire
    "Cssss",      # 24 KeyImport
    "s",          # 25 SigningKeysRequest
    "qqs",        # 26 SigningSummaryRequest
    "",           # 27 PasskeyLoginChallenge
    "Csqsssssssqo",  # 28 PasskeyChallenge
    "Csss",       # 29 PasskeyRegister
    "Cs",         # 30 PasskeyList
    "Css",        # 31 PasskeyRename
    "Css",        # 32 PasskeyRemove
    "Css",        # 33 PasskeyConfirm
    "Css",        # 34 PinKeyOffer
    "Css",        # 35 PinShareSubmit (the envelope: key id, text)
    "Csiv",       # 36 PinSplit (pin, threshold, custodians)
    "C",          # 37 PinStatusRequest
    "Cs",         # 38 PinLock
    "C",          # 39 ClusterStatusRequest
]
MAY_ASK = {1, 16, 25, 26}


def cereal_string(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("<Q", len(b)) + b


def frame(index, values):
    payload = struct.pack("<i", index)
    for kind, value in values:
        if kind == "s":
            payload += cereal_string(value)
        elif kind == "q":
            payload += struct.pack("<q", value)
        elif kind == "b":
            payload += struct.pack("<B", 1 if value else 0)
        elif kind == "o":
            payload += struct.pack("<B", 1)  # cereal writes "nullopt": true for an empty optional
        elif kind == "i":
            payload += struct.pack("<I", value)  # a uint32
        elif kind == "v":
            payload += struct.pack("<Q", len(value)) + b"".join(cereal_string(v) for v in value)
    return struct.pack(">IHH", len(payload), 1, 0) + payload


def request_frame(index, password):
    """Request `index` with plausible values: bob's password and a TOTP-like code, the domain in
    every other string, 1 in every number."""
    values = []
    for kind in LAYOUTS[index]:
        if kind == "C":
            values += [("s", "bob"), ("s", password), ("s", ""), ("s", "123456"), ("s", "")]
            values += [("s", "")] * 5  # no passkey assertion
        elif kind == "s":
            values.append(("s", DOMAIN))
        elif kind == "q":
            values.append(("q", 1))
        elif kind == "i":
            values.append(("i", 2))
        elif kind == "v":
            values.append(("v", ["bob", "alice"]))
        else:
            values.append((kind, True))
    return frame(index, values)


def summary_frame(start, end, domain=""):
    return frame(26, [("q", start), ("q", end), ("s", domain)])


# Run as a peer's uid: a child python under setpriv that sends each frame on its own connection
# and prints each reply frame in hex, one per line.
CLIENT = r"""
import socket, struct, sys
path = sys.argv[1]
for line in sys.stdin:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    s.sendall(bytes.fromhex(line.strip()))
    head = b""
    while len(head) < 8:
        chunk = s.recv(8 - len(head))
        if not chunk:
            break
        head += chunk
    body = b""
    if len(head) == 8:
        size = struct.unpack(">I", head[:4])[0]
        while len(body) < size:
            chunk = s.recv(size - len(body))
            if not chunk:
                break
            body += chunk
    s.close()
    print((head + body).hex(), flush=True)
"""


def exchange(app, uid, frames):
    out = subprocess.run(
        ["setpriv", "--reuid=" + uid, "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", CLIENT,
         app.socket], input="".join(f.hex() + "\n" for f in frames).encode(), capture_output=True, check=True)
    return [decode_reply(bytes.fromhex(line)) for line in out.stdout.decode().split()]


class Reader:
    def __init__(self, payload):
        self.payload, self.pos = payload, 0

    def take(self, fmt):
        value = struct.unpack_from(fmt, self.payload, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self):
        n = self.take("<Q")
        value = self.payload[self.pos:self.pos + n].decode()
        self.pos += n
        return value


def decode_reply(raw):
    """ErrorReply (0), StatusReply (2) and SigningSummaryReply (13) as dicts; others by index."""
    r = Reader(raw[8:])
    index = r.take("<i")
    if index == 0:
        return {"error": r.string(), "message": r.string()}
    if index == 2:
        logged_in, grants, records = r.take("<B"), r.take("<I"), r.take("<q")
        return {"status": True, "logged_in": logged_in, "audit_records": records}
    if index == 13:
        hours = [{"domain": r.string(), "selector": r.string(), "hour": r.take("<q"),
                  "signatures": r.take("<q"), "refusals": r.take("<q")} for _ in range(r.take("<Q"))]
        grants = [{"grant_id": r.take("<q"), "domain": r.string(), "selector": r.string(),
                   "start": r.take("<q"), "end": r.take("<q")} for _ in range(r.take("<Q"))]
        return {"hours": hours, "grants": grants, "signature_lifetime": r.take("<q"),
                "counted_since": r.take("<q")}
    return {"reply": index}


def totals(summary):
    """(signatures, refusals) of DOMAIN's rsa selector over the summary's hours."""
    rows = [h for h in summary["hours"] if h["domain"] == DOMAIN and h["selector"] == "rsa"]
    return sum(h["signatures"] for h in rows), sum(h["refusals"] for h in rows)


def run(folder, cli, signerd, module):
    app = Appliance(folder, cli, signerd, module, reports_peer=REPORTS_UID)
    try:
        app.start()
        app.add_users()
        password = open(os.path.join(folder, "pw-bob")).read().strip()
        start = int(time.time()) - 3600

        print("- what the relay did: one locked signature, then two inside a grant")
        check(app.relay_sign("rsa", "rsa-sha256").returncode == 3, "locked without a grant (exit 3)")
        grant = app.approve(app.request("rsa", "1h"))
        for _ in range(2):
            check(app.relay_sign("rsa", "rsa-sha256").returncode == 0, "the relay signs inside the grant")

        print("- the reports peer reads the summary, keys and status")
        end = int(time.time()) + 3600
        summary, status, keys, public = exchange(app, REPORTS_UID, [
            summary_frame(start, end), frame(1, []), frame(25, [("s", DOMAIN)]),
            frame(16, [("s", DOMAIN), ("s", "rsa")])])
        check(totals(summary) == (2, 1), "two signatures and one refusal of %s/rsa: %s" % (DOMAIN, summary))
        # Whole seconds: the start rounded down, the end up.
        check([g["grant_id"] for g in summary.get("grants", [])] == [grant]
              and summary["grants"][0]["end"] - summary["grants"][0]["start"] in (3600, 3601),
              "the grant's interval: %s" % summary.get("grants"))
        check(summary.get("signature_lifetime") == 7 * 86400, "the signature lifetime is the profile's 7 days")
        check(status.get("status") is True, "status: %s" % status)
        check(keys.get("reply") == 12 and public.get("reply") == 8, "signing keys and the public key: %s %s"
              % (keys, public))
        too_long = exchange(app, REPORTS_UID, [summary_frame(start, start + 401 * 86400)])[0]
        check(too_long.get("error") == "invalid", "a range over 400 days is refused: %s" % too_long)

        print("- everything else is refused to the reports peer, whatever it carries")
        before = exchange(app, REPORTS_UID, [frame(1, [])])[0]["audit_records"]
        others = [i for i in range(len(LAYOUTS)) if i not in MAY_ASK]
        replies = exchange(app, REPORTS_UID, [request_frame(i, password) for i in others])
        for index, reply in zip(others, replies):
            check(reply.get("error") == "forbidden", "request type #%d is forbidden: %s" % (index, reply))
        check(len(replies) == len(others) == 36, "36 request types tried")
        db = sqlite3.connect("file:%s?mode=ro" % app.db, uri=True)
        written = [row[0] for row in db.execute("SELECT action FROM audit WHERE seq > ?", (before,))]
        db.close()
        check(all(action == "audit.checkpoint" for action in written),
              "nothing but the periodic checkpoints was written to the audit log: %s" % written)
        again = exchange(app, REPORTS_UID, [summary_frame(start, end)])[0]
        check(totals(again) == (2, 1), "no signature came of it: %s" % again)
        pending = app.op("elevation", "list", "--pending", check=True).stdout.decode().strip()
        check(pending == "", "no request was filed: %r" % pending)

        print("- the relay's uid is refused the summary")
        relay = exchange(app, "nobody", [summary_frame(start, end)])[0]
        check(relay.get("error") == "forbidden", "the relay may not read the summary: %s" % relay)

        print("- the counts survive a restart")
        app.stop()
        app.start()
        restarted = exchange(app, REPORTS_UID, [summary_frame(start, end)])[0]
        check(totals(restarted) == (2, 1) and restarted["grants"] == summary["grants"],
              "the same summary after a restart: %s" % restarted)
    finally:
        app.stop()


def main():
    return run_module(__doc__, run, 3, "dkim-attack-reports-")


if __name__ == "__main__":
    sys.exit(main())
