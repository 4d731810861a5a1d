#!/usr/bin/python3
"""The attacker: a compromised dkim-relayd. It speaks signerd's protocol as the relay's uid
(user nobody here), with frames it builds itself, and tries to get signatures that outlive or
exceed the grant it has, or any signature without one.

Started by ctest (labels "hsm;signerd;attack"). One real dkim-signerd on a SoftHSM2 token, a
real DNS server (dnsmasq) for the key records, dkimpy as the independent verifier:

  - the finding that filed issue 18: l=0, no x=, h=from, signed under a grant of budget one
    and then replayed on other messages after the revoke: refused now (body_length), and every
    other rule of the signing profile refused by name, counted in the metrics, in the audit log;
  - what the profile lets through verifies with dkimpy, and stops verifying when a body is
    appended, a Subject or To is added, or x= has passed;
  - the audit key, keys the token does not hold, other domains: refused, no request filed;
  - replayed frames (a stale t=) refused; the same frame after the revoke: locked;
  - a request flood over selectors and domains files at most what the key list allows.

usage: attack_relay.py DKIM_APPLIANCE DKIM_SIGNERD SOFTHSM2_MODULE
"""

import base64
import hashlib
import os
import re
import struct
import subprocess
import sys
import time

import dkim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signerd_daemon import DOMAIN, Appliance  # noqa: E402
from testlib import DnsServer, check, run_module  # noqa: E402

# --- signerd's protocol, as the attacker writes it (appliance/include/dkim/ipc) --------------
# A frame: u32 BE payload length, u16 BE version 1, u16 0; the payload a cereal binary archive
# of the Request variant: i32 index, then the members (strings: u64 LE length + bytes).


def cereal_string(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("<Q", len(b)) + b


def sign_frame(domain, selector, algorithm, block, smtp_client=""):
    payload = struct.pack("<i", 0) + b"".join(
        cereal_string(x) for x in (domain, selector, algorithm, block, smtp_client))
    return struct.pack(">IHH", len(payload), 1, 0) + payload


# Run as the relay's uid: a child python under setpriv that sends each frame on its own
# connection and prints each reply frame in hex, one per line.
CLIENT = r"""
import socket, struct, sys
path = sys.argv[1]
for line in sys.stdin:
    frame = bytes.fromhex(line.strip())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    s.sendall(frame)
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


def as_relay(app, frames):
    out = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", CLIENT,
         app.socket], input="".join(f.hex() + "\n" for f in frames).encode(), capture_output=True, check=True)
    return [decode_reply(bytes.fromhex(line)) for line in out.stdout.decode().split()]


def decode_reply(frame):
    """ErrorReply (0) or SignReply (1) as a dict; anything else as its variant index."""
    payload = frame[8:]
    index = struct.unpack("<i", payload[:4])[0]
    pos = 4

    def string():
        nonlocal pos
        n = struct.unpack("<Q", payload[pos:pos + 8])[0]
        value = payload[pos + 8:pos + 8 + n]
        pos += 8 + n
        return value

    if index == 0:
        code, message = string().decode(), string().decode()
        request_id = struct.unpack("<q", payload[pos:pos + 8])[0]
        pos += 8
        return {"error": code, "message": message, "request_id": request_id, "rule": string().decode()}
    if index == 1:
        signature = string()
        return {"signature": signature, "grant": struct.unpack("<q", payload[pos:pos + 8])[0]}
    return {"reply": index}


# --- blocks ------------------------------------------------------------------------------------

BODY = b"Signed inside a grant, and only this body.\r\n"
FIELDS = [("From", "Alice <alice@%s>" % DOMAIN), ("To", "Bob <bob@peer.example>"),
          ("Subject", "the profile"), ("Date", "Tue, 01 Dec 2026 10:00:00 +0000"),
          ("Message-ID", "<attack@%s>" % DOMAIN)]
OVERSIGNED = "from:to:subject:date:message-id:from:to:cc:subject:date:reply-to:message-id"


def relaxed_body_hash(body):
    lines = body.split(b"\r\n")
    out = []
    for line in lines:
        line = re.sub(rb"[ \t]+", b" ", line).rstrip(b" ")
        out.append(line)
    text = b"\r\n".join(out)
    text = re.sub(rb"(\r\n)*$", b"", text)
    text = text + b"\r\n" if text else b""
    return base64.b64encode(hashlib.sha256(text).digest()).decode()


def tags(t, x=None, h=OVERSIGNED, a="ed25519-sha256", selector="ed", extra="", domain=DOMAIN):
    out = "v=1; a=%s; c=relaxed/relaxed; d=%s; s=%s; t=%d;" % (a, domain, selector, t)
    if x is not None:
        out += " x=%d;" % x
    out += " h=%s;%s bh=%s; b=" % (h, extra, relaxed_body_hash(BODY))
    return out


def block(signature_tags, fields=FIELDS):
    text = "".join("%s:%s\r\n" % (name.lower(), value) for name, value in fields)
    return (text + "dkim-signature:" + signature_tags).encode()


def message(signature_tags, signature, fields=FIELDS, body=BODY):
    head = "DKIM-Signature: %s%s\r\n" % (signature_tags, base64.b64encode(signature).decode())
    head += "".join("%s: %s\r\n" % (name, value) for name, value in fields)
    return head.encode() + b"\r\n" + body


def verifies(dns_server, msg):
    try:
        return bool(dkim.verify(msg, dnsfunc=dns_server.dkimpy_dnsfunc()))
    except dkim.DKIMException as e:
        print("      dkimpy: %s" % e)
        return False


def metric(app, name, label):
    m = re.search(r'^%s\{%s\} (\d+)' % (re.escape(name), re.escape(label)), app.metrics(), re.M)
    return int(m.group(1)) if m else -1


def pending_requests(app):
    out = app.op("elevation", "list", check=True).stdout.decode()
    return [line for line in out.splitlines() if "pending" in line]


def run(folder, cli, signerd, module):
    app = Appliance(folder, cli, signerd, module)
    dns_server = DnsServer(folder, app.records, DOMAIN)
    app.start()
    try:
        app.add_users()
        now = int(time.time())

        print("- the finding: l=0, no x=, h=from, under a grant with a budget of two")
        out = app.op("elevation", "request", "--operation", "sign", "--domain", DOMAIN, "--selector", "ed",
                     "--duration", "10m", "--budget", "2", "--reason", "CHG-7 two signatures", user="alice",
                     check=True).stdout.decode()
        app.approve(int(re.search(r"request (\d+)", out).group(1)))
        finding = tags(now, x=None, h="from", extra=" l=0;")
        reply = as_relay(app, [sign_frame(DOMAIN, "ed", "ed25519-sha256",
                                          block(finding, FIELDS[:1]))])[0]
        check(reply.get("error") == "forbidden" and "signing profile: body_length" in reply.get("message", ""),
              "the finding's block (l=0, no x=, h=from) is refused by rule body_length: %s" % reply)
        check(reply.get("rule") == "profile:body_length", "the reply names the rule: %r" % reply.get("rule"))

        print("- every rule of the profile, refused by name")
        ed = ("ed", "ed25519-sha256")
        cases = [
            ("body_length", ed, block(tags(now, now + 3600, extra=" l=%d;" % len(BODY)))),
            ("expiration", ed, block(tags(now, None))),                          # no x=
            ("expiration", ed, block(tags(now, now + 8 * 86400))),              # beyond 7 days
            ("timestamp", ed, block(tags(now - 400, now + 3600))),              # a stale, replayed block
            ("timestamp", ed, block(tags(now + 400, now + 3600))),              # from the future
            ("oversigning", ed, block(tags(now, now + 3600, h="from:to:subject:date:message-id"))),
            ("from", ed, block(tags(now, now + 3600, h="from:from:" + OVERSIGNED),
                               [("From", "evil@attacker.example")] + FIELDS)),
            ("signature_field", ed, b"dkim-signature:v=1; a=rsa-sha256; d=x.example; s=a; b=AAAA\r\n"
             + block(tags(now, now + 3600))),
            ("field_order", ed, b"x-injected:not in h=\r\n" + block(tags(now, now + 3600))),
            ("canonical_form", ed, block(tags(now, now + 3600)).replace(b"subject:the profile",
                                                                          b"Subject: the profile")),
            ("b_tag", ed, block(tags(now, now + 3600)) + b"AAAA"),
            ("structure", ed, block(tags(now, now + 3600)).replace(b"\r\n", b"\n", 1)),
            # The review's finding: white space inside h= names, read as the real names by a
            # splitter that removes it, as names of no field by dkimpy and Mail::DKIM.
            ("syntax", ed, block(tags(now, now + 3600, h="from:to:subject:date:message-id:fr om:t o:c c:"
                                      "sub ject:da te:reply-t o:message-i d"))),
            ("algorithm", ("ed", "rsa-sha256"), block(tags(now, now + 3600, a="rsa-sha256"))),
        ]
        before = {rule: metric(app, "dkim_signerd_profile_refusals_total", 'rule="%s"' % rule)
                  for rule in {c[0] for c in cases}}
        replies = as_relay(app, [sign_frame(DOMAIN, sel, alg, data) for _, (sel, alg), data in cases])
        for (rule, _, _), reply in zip(cases, replies):
            check("signature" not in reply and ("signing profile: %s:" % rule) in reply.get("message", ""),
                  "rule %s refuses: %s" % (rule, reply.get("message", reply)))
        for rule in before:
            count = sum(1 for c in cases if c[0] == rule)
            after = metric(app, "dkim_signerd_profile_refusals_total", 'rule="%s"' % rule)
            check(after == before[rule] + count, "metrics count %d %s refusals (%d -> %d)"
                  % (count, rule, before[rule], after))
        audit = app.op("audit", "show", "--limit", "10000", check=True).stdout.decode()
        check("signing profile: oversigning" in audit and "signing profile: timestamp" in audit,
              "the audit log records each refusal with its rule")

        print("- what the profile lets through verifies, and only for this message")
        good = tags(now, now + 3600)
        reply = as_relay(app, [sign_frame(DOMAIN, "ed", "ed25519-sha256", block(good))])[0]
        check("signature" in reply, "a block within the profile is signed: %s" % reply.get("message", "ok"))
        if "signature" in reply:
            sig = reply["signature"]
            check(verifies(dns_server, message(good, sig)), "dkimpy verifies the signed message")
            check(not verifies(dns_server, message(good, sig, body=BODY + b"Appended by the attacker.\r\n")),
                  "a body appended later does not verify (no l=)")
            check(not verifies(dns_server, message(good, sig, FIELDS + [("Subject", "urgent: pay now")])),
                  "a second Subject added later does not verify (oversigned)")
            check(not verifies(dns_server, message(good, sig, FIELDS + [("Cc", "victim@peer.example")])),
                  "a Cc added later does not verify (oversigned though absent)")
            real_time = time.time
            # dkimpy reads x= against time.time(), with 10 hours of slop for skewed clocks.
            time.time = lambda: now + 3600 + 36000 + 60
            try:
                expired = verifies(dns_server, message(good, sig))
            finally:
                time.time = real_time
            check(not expired, "after x= the signature no longer verifies (dkimpy, its clock past x= and its slop)")

        print("- the audit key, keys the token does not hold, other domains: no request filed")
        pending_before = len(pending_requests(app))
        replies = as_relay(app, [
            sign_frame("signerd.invalid", "audit", "ed25519-sha256",
                       block(tags(now, now + 3600, domain="signerd.invalid", selector="audit"))),
            sign_frame(DOMAIN, "nokey", "ed25519-sha256", block(tags(now, now + 3600, selector="nokey"))),
            sign_frame("other.example", "ed", "ed25519-sha256",
                       block(tags(now, now + 3600, domain="other.example"))),
        ])
        check(replies[0].get("error") == "forbidden" and "audit key" in replies[0].get("message", ""),
              "the audit key never signs mail: %s" % replies[0])
        check(replies[1].get("error") == "not_found", "a key the token lacks: not_found: %s" % replies[1])
        check(replies[2].get("error") == "not_found", "another domain's key: not_found: %s" % replies[2])
        check(len(pending_requests(app)) == pending_before, "no request was filed for any of them")
        refused = app.op("elevation", "request", "--operation", "sign", "--domain", "signerd.invalid",
                         "--selector", "audit", "--duration", "10m", "--reason", "CHG-1 audit key",
                         user="alice")
        check(refused.returncode != 0, "an operator cannot request a grant for the audit key either")

        print("- a request flood over selectors: nothing filed beyond the keys that exist")
        flood = [sign_frame(DOMAIN, "s%d" % i, "ed25519-sha256", block(tags(now, now + 3600, selector="s%d" % i)))
                 for i in range(60)]
        replies = as_relay(app, flood)
        check(all(r.get("error") == "not_found" for r in replies), "60 unknown selectors: all not_found")
        check(len(pending_requests(app)) == pending_before, "still no new pending request")

        print("- replayed frames: the same frame after the revoke")
        replay = sign_frame(DOMAIN, "ed", "ed25519-sha256", block(good))
        grants = app.op("grant", "list", check=True).stdout.decode()
        for line in grants.splitlines():
            if line.split("\t")[1:2] == ["active"]:
                app.op("elevation", "revoke", "--grant", line.split("\t")[0], "--reason", "CHG-2 done",
                       user="carol", totp=True, check=True)
        reply = as_relay(app, [replay])[0]
        check(reply.get("error") == "locked" and "signature" not in reply,
              "the replayed frame after the revoke is locked: %s" % reply)
    finally:
        app.stop()
        dns_server.stop()


def main():
    return run_module(__doc__, run, 3, "dkim-attack-relay-")

if __name__ == "__main__":
    sys.exit(main())
