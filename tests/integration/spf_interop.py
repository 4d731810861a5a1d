#!/usr/bin/python3
"""SPF (and the inbound checks) against pyspf, over a real DNS server.

Started by ctest (label "dns"):

  pyspf   dnsmasq on 127.0.0.1 serves a zone of SPF scenarios (every mechanism and
          modifier, macros, explanations, the processing limits, a name whose server never
          answers); for each (client, MAIL FROM, HELO) `dkim-appliance verify --ip` and
          pyspf (python3-spf, Debian's /usr/bin/python3) must give the same result, and the
          same explanation for fails.

usage: spf_interop.py GROUP DKIM_APPLIANCE
"""

import os
import re
import socket
import subprocess
import sys
import tempfile

import dns.resolver
import spf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import DnsServer, check, summary  # noqa: E402

# Not under .test, and no PTR data in the RFC 5737 documentation networks: libunbound answers
# those itself (its default local zones), as a production resolver should.
ZONE = "spf.example"
MESSAGE = (b"From: Joe <joe@spf.example>\r\nTo: you@example.net\r\nSubject: spf\r\n"
           b"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <s1@spf.example>\r\n\r\nhi\r\n")


def zone(blackhole_port):
    """(TXT records, extra dnsmasq lines) of the scenarios."""
    d = lambda name: name + "." + ZONE  # noqa: E731
    txt = {
        d("pass"): "v=spf1 ip4:192.0.2.0/25 ip6:2001:db8:1::/48 -all",
        d("a"): "v=spf1 a -all",
        d("a-cidr"): "v=spf1 a:a.spf.example/28 -all",
        d("mx"): "v=spf1 mx/30 -all",
        d("inc"): "v=spf1 include:pass.spf.example ~all",
        d("inc-none"): "v=spf1 include:nospf.spf.example -all",
        d("redir"): "v=spf1 ?ip4:198.51.100.1 redirect=pass.spf.example",
        d("exists"): "v=spf1 exists:%{i}.ok.spf.example -all",
        d("ptr"): "v=spf1 ptr -all",
        d("soft"): "v=spf1 ?ip4:192.0.2.50 ~all",
        d("neutral"): "v=spf1 ?all",
        d("two"): ["v=spf1 -all", "v=spf1 +all"],
        d("syntax"): "v=spf1 ip4:192.0.2.300 -all",
        d("unknown"): "v=spf1 foo:bar -all",
        d("toomany"): "v=spf1 " + " ".join("a:n%d.spf.example" % i for i in range(11)) + " -all",
        d("tenok"): "v=spf1 " + " ".join("a:n%d.spf.example" % i for i in range(10)) + " -all",
        d("void"): "v=spf1 a:v1.spf.example a:v2.spf.example a:v3.spf.example -all",
        d("macro"): "v=spf1 exists:%{l}.%{d2}.users.spf.example -all",
        d("exp"): "v=spf1 ip4:192.0.2.1 -all exp=why.spf.example",
        d("why"): "%{i} is not one of %{d}'s senders (%{l} via %{h})",
        d("timeout"): "v=spf1 include:x.slow.spf.example -all",
        d("loop"): "v=spf1 include:loop.spf.example -all",
        d("mixed-case"): "V=SPF1 IP4:192.0.2.0/24 -ALL",
        d("nospf"): "some-verification=123",
    }
    extra = [
        "host-record=a.spf.example,192.0.2.10,2001:db8::10",
        "host-record=nospf.spf.example,192.0.2.11",
        "mx-host=mx.spf.example,mail.spf.example,10",
        "mx-host=mx.spf.example,mail2.spf.example,20",
        "host-record=mail.spf.example,192.0.2.21",
        "host-record=mail2.spf.example,203.0.113.9",
        "host-record=192.0.2.30.ok.spf.example,127.0.0.2",
        "host-record=joe.spf.example.users.spf.example,127.0.0.2",
        "ptr-record=40.2.0.45.in-addr.arpa,host.ptr.spf.example",
        "host-record=host.ptr.spf.example,45.0.2.40",
        "ptr-record=41.2.0.45.in-addr.arpa,liar.ptr.spf.example",
        "host-record=liar.ptr.spf.example,192.0.2.99",
        # A name whose server never answers: lookups time out.
        "server=/slow.spf.example/127.0.0.1#%d" % blackhole_port,
    ]
    extra += ["host-record=n%d.spf.example,198.51.100.%d" % (i, 100 + i) for i in range(11)]
    return txt, extra


def queries():
    """(client IP, MAIL FROM, HELO)."""
    q = []
    for name, ips in [
            ("pass", ["192.0.2.5", "192.0.2.200", "2001:db8:1::5", "2001:db8:2::5"]),
            ("a", ["192.0.2.10", "192.0.2.11", "2001:db8::10"]),
            ("a-cidr", ["192.0.2.14", "192.0.2.17"]),
            ("mx", ["192.0.2.22", "192.0.2.25", "203.0.113.9"]),
            ("inc", ["192.0.2.5", "198.51.100.7"]),
            ("inc-none", ["192.0.2.5"]),
            ("redir", ["192.0.2.5", "198.51.100.1", "198.51.100.2"]),
            ("exists", ["192.0.2.30", "192.0.2.31"]),
            ("ptr", ["45.0.2.40", "45.0.2.41"]),
            ("soft", ["192.0.2.50", "192.0.2.51"]),
            ("neutral", ["192.0.2.1"]),
            ("two", ["192.0.2.1"]),
            ("syntax", ["192.0.2.1"]),
            ("unknown", ["192.0.2.1"]),
            ("toomany", ["192.0.2.1"]),
            ("tenok", ["198.51.100.109", "192.0.2.1"]),
            ("void", ["192.0.2.1"]),
            ("exp", ["192.0.2.1", "192.0.2.2"]),
            ("timeout", ["192.0.2.1"]),
            ("loop", ["192.0.2.1"]),
            ("mixed-case", ["192.0.2.9"]),
            ("nospf", ["192.0.2.1"]),
            ("nx", ["192.0.2.1"])]:
        for ip in ips:
            q.append((ip, "joe@%s.%s" % (name, ZONE), "mail.spf.example"))
    q.append(("192.0.2.30", "joe@macro.spf.example", "mail.spf.example"))
    q.append(("192.0.2.31", "jane@macro.spf.example", "mail.spf.example"))
    q.append(("192.0.2.5", "", "pass.spf.example"))       # null reverse-path: the HELO identity
    q.append(("192.0.2.250", "", "pass.spf.example"))
    q.append(("192.0.2.5", "@pass.spf.example", "x.spf.example"))  # no local part: postmaster
    return q


def ours(cli, server, ip, mail_from, helo):
    out = subprocess.run([cli, "verify", "--dns-server", server.address(), "--dns-timeout-ms", "1500",
                          "--authserv-id", "mx.test", "--ip", ip, "--helo", helo, "--mail-from",
                          mail_from, "--now", "1764500000"],
                         input=MESSAGE, capture_output=True, timeout=60)
    text = out.stdout.decode()
    m = re.search(r"spf=(\w+)(?: \(([^)]*)\))?(?: reason=\"([^\"]*)\")? smtp\.mailfrom", text)
    if not m:
        return None, text + out.stderr.decode()
    return m.group(1), text


def theirs(server, ip, mail_from, helo):
    resolver = server.resolver()
    resolver.lifetime = 3
    dns.resolver.default_resolver = resolver
    result, explanation = spf.check2(i=ip, s=mail_from, h=helo, timeout=3)
    return result, explanation


def group_pyspf(cli):
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blackhole.bind(("127.0.0.1", 0))
    with tempfile.TemporaryDirectory(prefix="spf-interop-") as folder:
        txt, extra = zone(blackhole.getsockname()[1])
        server = DnsServer(folder, txt, ZONE, extra=extra, local_zones=["2.0.45.in-addr.arpa"])
        try:
            results = {}
            for ip, mail_from, helo in queries():
                mine, text = ours(cli, server, ip, mail_from, helo)
                peer, explanation = theirs(server, ip, mail_from, helo)
                results[peer] = results.get(peer, 0) + 1
                check(mine == peer, "%-14s from %-28s helo %-16s ours %-9s pyspf %s%s" % (
                    ip, mail_from or "<>", helo, mine, peer, "" if mine == peer else "\n" + text))
                if peer == "fail" and mail_from.endswith("@exp.spf.example"):
                    check(explanation in text.replace("\r\n\t", " "),
                          "explanation '%s' in our Authentication-Results" % explanation)
            # The scenarios must cover every result, or the comparison proves less than it says.
            for r in ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"):
                check(results.get(r, 0) > 0, "pyspf gave %s at least once (%d)" % (r, results.get(r, 0)))
        finally:
            server.stop()
            blackhole.close()


def main():
    group, cli = sys.argv[1], sys.argv[2]
    {"pyspf": group_pyspf}[group](cli)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
