#!/usr/bin/python3
"""The resolver the daemons use (libunbound), against a real authoritative server.

Started by ctest (label "dns"):

  dnssec   NSD on 127.0.0.1 serves a zone signed with ldns-signzone (ECDSA P-256, NSEC3);
           `dkim-appliance dns query` with the zone's key as trust anchor says `secure` for
           its answers and for a proven NXDOMAIN, `insecure` without the anchor, and, once the
           zone's data is altered after signing, `bogus` with no records (a temporary failure:
           what SPF, DKIM and DMARC then report as temperror).

usage: dns_resolver.py GROUP DKIM_APPLIANCE
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import check, free_port, summary, until  # noqa: E402

ZONE = "dnssec.example"
ZONE_FILE = """$ORIGIN dnssec.example.
$TTL 300
@ IN SOA ns.dnssec.example. hostmaster.dnssec.example. 1 3600 900 604800 300
@ IN NS ns.dnssec.example.
ns IN A 127.0.0.1
@ IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
_dmarc IN TXT "v=DMARC1; p=reject"
"""


class Nsd:
    def __init__(self, folder, zone_file):
        self.folder, self.port = folder, free_port()
        self.conf = os.path.join(folder, "nsd.conf")
        with open(self.conf, "w") as f:
            f.write('server:\n  ip-address: 127.0.0.1\n  port: %d\n  do-ip6: no\n  zonesdir: "%s"\n'
                    '  database: ""\n  username: ""\n  pidfile: "%s/nsd.pid"\n  zonelistfile: "%s/zone.list"\n'
                    '  xfrdfile: "%s/xfrd.state"\n  logfile: "%s/nsd.log"\n  verbosity: 1\n'
                    'remote-control:\n  control-enable: no\nzone:\n  name: %s\n  zonefile: "%s"\n'
                    % (self.port, folder, folder, folder, folder, folder, ZONE, zone_file))
        self.proc = subprocess.Popen(["nsd", "-d", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in until():
            if "nsd started" in self.log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError("nsd exited: " + self.log())
            time.sleep(0.05)
        raise RuntimeError("nsd did not start: " + self.log())

    def log(self):
        try:
            return open(os.path.join(self.folder, "nsd.log")).read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


def query(cli, nsd, name, anchor=None):
    cmd = [cli, "dns", "query", "--name", name, "--dns-server", "127.0.0.1:%d" % nsd.port,
           "--dns-timeout-ms", "3000"]
    if anchor:
        cmd += ["--trust-anchor", anchor]
    out = subprocess.run(cmd, capture_output=True, timeout=60)
    lines = out.stdout.decode().splitlines()
    fields = dict(f.split("=", 1) for f in lines[0].split() if "=" in f) if lines else {}
    return out.returncode, fields.get("status"), fields.get("dnssec"), lines[1:]


def group_dnssec(cli):
    with tempfile.TemporaryDirectory(prefix="dnssec-") as folder:
        with open(os.path.join(folder, "zone.db"), "w") as f:
            f.write(ZONE_FILE)
        ksk = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", ZONE], cwd=folder, check=True,
                             capture_output=True).stdout.decode().strip()
        zsk = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", ZONE], cwd=folder, check=True,
                             capture_output=True).stdout.decode().strip()
        subprocess.run(["ldns-signzone", "-n", "zone.db", ksk, zsk], cwd=folder, check=True, capture_output=True)
        anchor = os.path.join(folder, ksk + ".key")

        nsd = Nsd(folder, "zone.db.signed")
        try:
            code, status, dnssec, records = query(cli, nsd, ZONE, anchor)
            check(code == 0 and status == "found" and dnssec == "secure" and records == ["v=spf1 ip4:192.0.2.0/24 -all"],
                  "signed zone, trust anchor: secure answer (%s %s %s)" % (status, dnssec, records))
            code, status, dnssec, _ = query(cli, nsd, "missing." + ZONE, anchor)
            check(status == "nxdomain" and dnssec == "secure", "signed zone: NXDOMAIN proven (%s %s)" % (status, dnssec))
            code, status, dnssec, _ = query(cli, nsd, ZONE)
            check(status == "found" and dnssec == "insecure", "no trust anchor: insecure (%s %s)" % (status, dnssec))
        finally:
            nsd.stop()

        # The zone's data changed after signing (as an on-path attacker would change it).
        with open(os.path.join(folder, "zone.db.signed")) as f:
            signed = f.read()
        with open(os.path.join(folder, "zone.db.signed"), "w") as f:
            f.write(signed.replace("ip4:192.0.2.0/24", "ip4:0.0.0.0/0"))
        nsd = Nsd(folder, "zone.db.signed")
        try:
            code, status, dnssec, records = query(cli, nsd, ZONE, anchor)
            check(code == 1 and status == "temporary-failure" and dnssec == "bogus" and records == [],
                  "altered signed data: bogus, a temporary failure, no records (%s %s %s)" % (status, dnssec, records))
            code, status, dnssec, records = query(cli, nsd, "_dmarc." + ZONE, anchor)
            check(status == "found" and dnssec == "secure", "the unaltered records still validate (%s %s)"
                  % (status, dnssec))
        finally:
            nsd.stop()


def main():
    group, cli = sys.argv[1], sys.argv[2]
    {"dnssec": group_dnssec}[group](cli)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
