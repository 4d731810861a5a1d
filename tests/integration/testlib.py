"""Shared pieces of the integration tests: check() bookkeeping and a real DNS server
(dnsmasq on 127.0.0.1, a free port) serving TXT records for one zone."""

import glob
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import dns.resolver

FAILURES = []


def check(condition, what):
    print(("ok    " if condition else "FAIL  ") + what, flush=True)
    if not condition:
        FAILURES.append(what)


def until(seconds=60.0):
    """Iterations until SECONDS of wall time have passed: for loops that wait for an event (a
    daemon's "listening on", a port, a log line) and sleep briefly between looks. The deadline
    is generous because it costs nothing when the event comes early: a count of iterations was
    too short for a daemon starting under ASan on a loaded machine (issue 19)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield


def summary():
    """Prints the outcome of all checks; the process's exit status."""
    if FAILURES:
        print("\n%d check(s) failed" % len(FAILURES))
        return 1
    print("\nall checks passed")
    return 0


def run_module(doc, groups, nargs, prefix, mode=None):
    """The main of a test module: `module.py [GROUP] ARG...` with `nargs` ARGs. `groups` maps
    group names to functions, or is one function (no GROUP argument); each is called with a new
    temporary folder (made `mode` if given) and the ARGs. When a check failed, the tail of each
    *.log in the folder is printed; the folder is removed. Returns the exit status."""
    argv = sys.argv[1:]
    grouped = isinstance(groups, dict)
    if len(argv) != nargs + (1 if grouped else 0) or (grouped and argv[0] not in groups):
        print(doc)
        return 2
    run = groups[argv.pop(0)] if grouped else groups
    folder = tempfile.mkdtemp(prefix=prefix)
    if mode is not None:
        os.chmod(folder, mode)
    try:
        run(folder, *argv)
    finally:
        if FAILURES:
            for log in sorted(glob.glob(os.path.join(folder, "*.log"))):
                print("--- %s\n%s" % (os.path.basename(log), open(log, errors="replace").read()[-4000:]))
        shutil.rmtree(folder, ignore_errors=True)
    return summary()


def txt_record_line(name, text):
    """A dnsmasq txt-record line: the text in character-strings of at most 255 octets."""
    parts = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return "txt-record=%s,%s\n" % (name, ",".join('"%s"' % p.replace('"', '\\"') for p in parts))


class DnsServer:
    """dnsmasq on 127.0.0.1, answering TXT records (`records`: name -> text, or name -> list
    of texts) for `zone` and NXDOMAIN for the rest of it. `extra` holds more dnsmasq lines
    (host-record, mx-host, ptr-record, server=/.../ for names that must time out);
    `local_zones` more zones it answers alone (reverse zones for PTR records)."""

    def __init__(self, folder, records, zone, extra=(), local_zones=()):
        self.zone = zone
        self.conf = os.path.join(folder, "dnsmasq.conf")
        self.locals = ["--local=/%s/" % z for z in [zone] + list(local_zones)]
        self.write(records, extra)
        for attempt in range(20):
            self.port = free_port()
            if self.launch():
                return
            self.stop()
        raise RuntimeError("dnsmasq did not start")

    def write(self, records, extra=()):
        with open(self.conf, "w") as f:
            for name, texts in records.items():
                for text in ([texts] if isinstance(texts, str) else texts):
                    f.write(txt_record_line(name, text))
            for line in extra:
                f.write(line + "\n")

    def launch(self):
        self.proc = subprocess.Popen(
            ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
             "--bind-interfaces", "--listen-address=127.0.0.1", "--port=%d" % self.port,
             "--pid-file=", "--user=root", "--conf-file=" + self.conf] + self.locals,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self.wait_ready()

    def republish(self, records, extra=()):
        """Serves `records` from now on, on the same port (an operator's zone change)."""
        self.stop()
        self.write(records, extra)
        for attempt in range(50):
            if self.launch():
                return
            self.stop()
            time.sleep(0.1)
        raise RuntimeError("dnsmasq did not restart on port %d" % self.port)

    def wait_ready(self):
        resolver = self.resolver()
        for _ in until():
            if self.proc.poll() is not None:
                return False
            try:
                resolver.resolve("nothing." + self.zone, "TXT", lifetime=0.2)
                return True
            except dns.resolver.NXDOMAIN:
                return True
            except Exception:
                time.sleep(0.05)
        return False

    def resolver(self):
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = self.port
        return r

    def dkimpy_dnsfunc(self):
        resolver = self.resolver()

        def lookup(name, timeout=5):
            try:
                answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                return None
            return b"".join(answer[0].strings)
        return lookup

    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


def free_port():
    """A TCP and UDP port free on 127.0.0.1, below the kernel's ephemeral range: a port from
    that range can be taken as the source port of some connection before the server that was
    meant to get it binds it (and stays taken while that connection is in TIME_WAIT)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError):
        low = 32768
    for _ in range(200):
        port = random.randrange(10000, max(10001, low))
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind(("127.0.0.1", port))
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port below %d" % low)


REPORTD_CHANNEL_VERSION = 0x5201


def reportd_call(path, request, body=b"", timeout=30):
    """One request on dkim-reportd's socket (appliance/reports/include/dkim/reports/channel.hpp):
    the 8-byte header (u32 BE payload length, u16 BE version, u16 0), then the payload (u32 BE
    JSON length, the JSON, the body). Returns the answer's JSON."""
    text = json.dumps(request).encode()
    payload = struct.pack(">I", len(text)) + text + body
    frame = struct.pack(">IHH", len(payload), REPORTD_CHANNEL_VERSION, 0) + payload
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(frame)

        def exact(n):
            out = b""
            while len(out) < n:
                chunk = s.recv(n - len(out))
                if not chunk:
                    raise RuntimeError("dkim-reportd closed the connection")
                out += chunk
            return out
        size, version, _ = struct.unpack(">IHH", exact(8))
        if version != REPORTD_CHANNEL_VERSION:
            raise RuntimeError("dkim-reportd answered version %#x" % version)
        answer = exact(size)
        (length,) = struct.unpack(">I", answer[:4])
        return json.loads(answer[4:4 + length])
