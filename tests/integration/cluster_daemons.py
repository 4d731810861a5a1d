#!/usr/bin/python3
"""Two dkim-signerd nodes (and their relays) sharing one PostgreSQL: the cluster of issue 24.

Each node has its own SoftHSM2 token with its own selectors (a-rsa on node-a, b-rsa on node-b,
both published in the test's DNS server); both keep their grant state and one audit chain in a
private PostgreSQL that the test initdb's and starts (tests/integration/pg_server.py: TLS
verified, a password role). Started by ctest (labels "postgres;hsm;signerd"), one group per run:

  decisions  approved on node-a, signed on node-b (how long B takes to see it); revoked on
             node-a: node-b's next signature is refused, none is issued after the revoke's
             answer, and both tokens log out within 1 s of it; a budget of 100 spent by both
             nodes at once (8 clients) gives exactly 100 signatures; a grant's expiry logs both
             tokens out within 1 s; `audit verify --database` checks the whole cluster's log
             (each node's checkpoints with its own audit key) and finds an edited, a deleted and
             a reordered record of either node
  faults     relays in front of both nodes, smtp-sink behind, 250 messages from clients that
             fail over to the other relay on 4xx or a dead connection: kill -9 of node-a's
             signerd and relayd in the middle; then PostgreSQL stopped and started again under
             load (both nodes refuse, fence after their lease, log out, and resume by
             themselves); every message the clients were told 250 for is delivered, none twice;
             then PostgreSQL frozen (SIGSTOP) under load: both log out within the lease and
             resume when it answers; the audit chain verifies afterwards

usage: cluster_daemons.py GROUP DKIM_APPLIANCE DKIM_SIGNERD DKIM_RELAYD SOFTHSM2_MODULE
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_server import PASSWORD, PgServer  # noqa: E402
from signerd_daemon import DOMAIN, MESSAGE, Appliance  # noqa: E402
from testlib import DnsServer, check, run_module, until  # noqa: E402

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


class Cluster:
    """PostgreSQL, node-a and node-b (tokens, configurations, daemons), users on the shared store."""

    def __init__(self, folder, cli, signerd, module, lease="3s"):
        self.folder = folder
        os.chmod(folder, 0o755)
        self.pg = PgServer(folder).start()
        self.database = self.pg.create_database("dkim")
        self.password_file = os.path.join(folder, "db-password")
        with open(self.password_file, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(self.password_file, 0o600)
        self.nodes = {}
        for name in ("a", "b"):
            sub = os.path.join(folder, name)
            os.makedirs(sub)
            self.nodes[name] = Appliance(
                sub, cli, signerd, module, selectors=((name + "-rsa", "rsa-2048"),),
                cluster={"node": "node-" + name, "database": self.pg.conninfo(self.database),
                         "password_file": self.password_file, "lease": lease})
        self.a, self.b = self.nodes["a"], self.nodes["b"]
        # Each node pins the other's audit key: it lists the other's DNS records only from a
        # registry row signed with it.
        self.a.pin_node_keys({"node-b": self.b.audit_key})
        self.b.pin_node_keys({"node-a": self.a.audit_key})
        records = dict(self.a.records)
        records.update(self.b.records)
        self.records = records

    def start(self):
        self.a.start()
        self.b.start()
        self.a.add_users()
        # Node-b's CLI speaks for the same users: the same password files and TOTP secrets.
        for name in ("alice", "bob", "carol"):
            shutil.copy(os.path.join(self.a.folder, "pw-" + name), os.path.join(self.b.folder, "pw-" + name))
        self.b.totp_secrets = self.a.totp_secrets
        self.b.totp_last = self.a.totp_last

    def stop(self):
        for node in self.nodes.values():
            if node.proc:
                node.stop()
        self.pg.stop()

    def sql(self, statement):
        return self.pg.sql(statement, self.database)

    def verify(self, *extra):
        """audit verify over the cluster's log, node-a's checkpoints with node-a's token, node-b's
        with the public key node-b's `audit key` prints."""
        key_b = self.b.cli("audit", "key", "--module", self.a.module, "--token", "dkim").stdout.decode().strip()
        return self.a.cli("audit", "verify", "--database", self.pg.conninfo(self.database), "--password-file",
                          self.password_file, "--module", self.a.module, "--token", "dkim", "--node", "node-a",
                          "--node-key", "node-b=" + key_b, *extra, check=False)


def sign(node, selector):
    """One signature through `node` as the relay client (user nobody); (ok, stderr)."""
    out = node.relay_sign(selector, "rsa-sha256")
    return out.returncode == 0, out.stderr.decode()


def logged_in(node):
    """The node's token state from its /metrics (a request of a few milliseconds: a status
    command takes a second under a sanitizer on a loaded machine, too coarse for a 1 s bound)."""
    return "\ndkim_signerd_token_logged_in 1\n" in node.metrics()


def wait_logged_out(nodes, since, seconds=5.0):
    """Seconds from `since` until each node's status says logged out (None: not within)."""
    out = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(out) < len(nodes):
        for name, node in nodes.items():
            if name not in out and not logged_in(node):
                out[name] = time.monotonic() - since
        time.sleep(0.02)
    return out


def logged_out_in_log(cluster, since_ms, after_seq):
    """Milliseconds from `since_ms` (unix ms) to each node's first token.logout record after record
    `after_seq`, by the record's time: when the node logged out, which the status polls above see
    only as late as a status command answers (a second or more, under a sanitizer and a loaded
    machine)."""
    rows = cluster.sql("SELECT node || '=' || min(time) FROM audit WHERE action = 'token.logout' "
                       "AND seq > %d GROUP BY node ORDER BY node" % after_seq).split()
    return {row.split("=")[0][len("node-"):]: int(row.split("=")[1]) - since_ms for row in rows}


def grant_id_of(approved_stdout):
    return int(re.search(r"grant (\d+)", approved_stdout).group(1))


# --- groups ----------------------------------------------------------------------------------

def decisions(folder, cli, signerd, relayd, module):
    cluster = Cluster(folder, cli, signerd, module)
    dns_server = DnsServer(folder, cluster.records, DOMAIN)
    try:
        cluster.start()
        a, b = cluster.a, cluster.b

        # Approved on A, signed on B.
        request = a.request("*", "30m")
        approved_at = time.monotonic()
        grant = a.approve(request)
        seen = None
        for _ in until(10):
            ok, err = sign(b, "b-rsa")
            if ok:
                seen = time.monotonic() - approved_at
                break
            time.sleep(0.01)
        check(seen is not None, "a grant approved on node-a signs on node-b (after %.0f ms)" % ((seen or 0) * 1000))
        ok, _ = sign(a, "a-rsa")
        check(ok, "and on node-a, with node-a's own selector")
        check(logged_in(a) and logged_in(b), "both tokens are logged in for the cluster's grant")
        selectors = cluster.sql("SELECT string_agg(node || ':' || selector, ' ' ORDER BY node) FROM "
                                "(SELECT DISTINCT node, substring(detail from 's=([a-z0-9-]+)') AS selector "
                                "FROM audit WHERE action = 'sign' AND outcome = 'issued') s").strip()
        check(selectors == "node-a:a-rsa node-b:b-rsa",
              "each node signed with its own key, and its records say which node: %s" % selectors)

        # The registry: each node sees both, their tokens and keys (the console's Cluster panel and
        # /metrics read the same).
        for _ in until(10):
            status = a.op("cluster", "status", user="alice").stdout.decode()
            if "node-b\tup\tlogged-in" in status:
                break
            time.sleep(0.1)
        check(re.search(r"^node\tnode-a\tup\tlogged-in\t.*signerd.example/a-rsa:rsa-2048.*\(this one\)$", status, re.M)
              and re.search(r"^node\tnode-b\tup\tlogged-in\t.*signerd.example/b-rsa:rsa-2048", status, re.M)
              and re.search(r"^key\tnode-b\tsignerd.example\tb-rsa\trsa-2048\tunmanaged\tv=DKIM1; k=rsa; p=\S+$", status, re.M),
              "cluster status on node-a lists both nodes, logged in, and node-b's key: %s" % status.strip())
        wanted = ('dkim_signerd_cluster_node_up{node="node-b"} 1', 'dkim_signerd_cluster_fenced{node="node-a"} 0',
                  'dkim_signerd_cluster_node_logged_in{node="node-b"} 1')
        for _ in until(10):  # the registry as node-a's listener last read it (every second)
            metrics = a.metrics()
            if all(w in metrics for w in wanted):
                break
            time.sleep(0.2)
        check(all(w in metrics for w in wanted), "node-a's /metrics shows the cluster")

        # Revoked on A: B refuses its next signature; none issued after the answer.
        stop = threading.Event()
        b_results = []

        def sign_on_b():
            while not stop.is_set():
                ok, err = sign(b, "b-rsa")
                b_results.append((time.monotonic(), ok))

        signer = threading.Thread(target=sign_on_b)
        signer.start()
        time.sleep(0.5)
        revoked = a.op("elevation", "revoke", "--grant", str(grant), "--reason", "INC-24 drill", user="bob", totp=True)
        answered = time.monotonic()
        check(revoked.returncode == 0, "the revoke on node-a is answered: %s" % (revoked.stdout + revoked.stderr).decode().strip())
        outs = wait_logged_out({"a": a, "b": b}, answered)
        time.sleep(0.3)
        stop.set()
        signer.join()
        after = [(t, ok) for t, ok in b_results if t > answered]
        first_refusal = next((t for t, ok in after if not ok), None)
        check(after and not any(ok for _, ok in after) and first_refusal is not None,
              "every signature node-b answered after the revoke's answer was refused (%d; the first %.0f ms after it)"
              % (len(after), ((first_refusal or answered) - answered) * 1000))
        revoke_seq = int(cluster.sql("SELECT max(seq) FROM audit WHERE action = 'grant.revoke'"))
        issued_after = int(cluster.sql("SELECT count(*) FROM audit WHERE action = 'sign' AND outcome = 'issued' "
                                       "AND seq > %d" % revoke_seq))
        check(issued_after == 0, "the shared log holds no signature after the revoke (%d)" % issued_after)
        revoked_ms = int(cluster.sql("SELECT time FROM audit WHERE seq = %d" % revoke_seq))
        logged = logged_out_in_log(cluster, revoked_ms, revoke_seq)
        check(len(outs) == 2 and len(logged) == 2 and max(logged.values()) <= 1000,
              "both tokens logged out within 1 s of the revoke (by their token.logout records: %s; "
              "their status said so %s after the revoke's answer)"
              % ({k: "%d ms" % v for k, v in logged.items()}, {k: "%.0f ms" % (v * 1000) for k, v in outs.items()}))

        # A budget of 100 spent by both nodes at once.
        out = a.op("elevation", "request", "--operation", "sign", "--domain", DOMAIN, "--selector", "*",
                   "--duration", "30m", "--budget", "100", "--reason", "CHG-24 budget", user="alice", check=True)
        budget_grant = a.approve(int(re.search(r"request (\d+)", out.stdout.decode()).group(1)))
        for _ in until(10):
            if logged_in(b):
                break
            time.sleep(0.02)
        counts = {"ok": 0, "refused": 0}
        lock = threading.Lock()

        def spend(node, selector):
            for _ in range(40):
                ok, _ = sign(node, selector)
                with lock:
                    counts["ok" if ok else "refused"] += 1

        workers = [threading.Thread(target=spend, args=(n, s)) for n, s in ((a, "a-rsa"), (b, "b-rsa")) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        uses = cluster.sql("SELECT uses FROM grants WHERE id = %d" % budget_grant).strip()
        issued = int(cluster.sql("SELECT count(*) FROM audit WHERE action = 'sign' AND outcome = 'issued' "
                                 "AND grant_id = %d" % budget_grant))
        by_node = cluster.sql("SELECT string_agg(node || '=' || n, ' ' ORDER BY node) FROM (SELECT node, count(*) n "
                              "FROM audit WHERE action = 'sign' AND outcome = 'issued' AND grant_id = %d "
                              "GROUP BY node) s" % budget_grant).strip()
        check(counts["ok"] == 100 and issued == 100 and uses == "100",
              "a budget of 100 spent by two nodes at once: %d signatures, %d records (%s), uses %s, %d refused"
              % (counts["ok"], issued, by_node, uses, counts["refused"]))
        outs = wait_logged_out({"a": a, "b": b}, time.monotonic())
        check(len(outs) == 2, "the spent budget logs both tokens out")

        # The last grant's expiry: both tokens out within 1 s of it.
        request = a.request("*", "20s")
        short = a.approve(request)
        for _ in until(10):
            if logged_in(a) and logged_in(b):
                break
            time.sleep(0.02)
        expires_ms = int(cluster.sql("SELECT expires FROM grants WHERE id = %d" % short))
        before_end = int(cluster.sql("SELECT max(seq) FROM audit"))
        wait = expires_ms / 1000.0 - time.time()
        time.sleep(max(0.0, wait - 0.5))
        outs = wait_logged_out({"a": a, "b": b}, time.monotonic() + (expires_ms / 1000.0 - time.time()), 10)
        logged = logged_out_in_log(cluster, expires_ms, before_end)
        check(len(outs) == 2 and len(logged) == 2 and 0 <= min(logged.values()) and max(logged.values()) <= 1000,
              "the last grant's expiry logs both tokens out within 1 s of it (by their token.logout records: "
              "%s; their status said so %s after it)"
              % ({k: "%d ms" % v for k, v in logged.items()}, {k: "%.0f ms" % (v * 1000) for k, v in outs.items()}))

        # audit verify over the whole cluster's log; then an edit, a deletion and a reordering,
        # of a record of either node, each found at its record.
        # A node that stops is marked gone once it has been silent for 10 s.
        b.stop()
        gone = None
        for _ in until(30):
            status = a.op("cluster", "status", user="alice").stdout.decode()
            if "node-b\tgone" in status:
                gone = status
                break
            time.sleep(0.5)
        check(gone is not None and 'dkim_signerd_cluster_node_up{node="node-b"} 0' in a.metrics(),
              "a node that stopped is marked gone in cluster status and /metrics")
        a.stop()
        verified = cluster.verify()
        text = verified.stdout.decode() + verified.stderr.decode()
        check(verified.returncode == 0 and "chain intact" in text,
              "audit verify --database checks the cluster's log, every node's checkpoints with its key: %s"
              % text.strip()[:300])
        # Without node-b's key its checkpoints do not pass: a log rewritten with the checkpoints
        # of a node of the writer's own would otherwise.
        partial = a.cli("audit", "verify", "--database", cluster.pg.conninfo(cluster.database), "--password-file",
                        cluster.password_file, "--module", a.module, "--token", "dkim", "--node", "node-a",
                        check=False).stdout.decode()
        check(partial.startswith("BROKEN") and "no audit key was given for node node-b" in partial,
              "a checkpoint of a node without a key is refused and named: %s" % partial.strip()[:200])
        cluster.sql("ALTER TABLE audit DISABLE TRIGGER USER")
        for node in ("node-a", "node-b"):
            seq = int(cluster.sql("SELECT min(seq) FROM audit WHERE node = '%s' AND action = 'sign'" % node))
            detail = cluster.sql("SELECT detail FROM audit WHERE seq = %d" % seq).rstrip("\n")
            cluster.sql("UPDATE audit SET detail = detail || ' x' WHERE seq = %d" % seq)
            out = cluster.verify().stdout.decode()
            check(out.startswith("BROKEN at record %d" % seq), "an edited record of %s is found: %s" % (node, out.strip()[:160]))
            cluster.sql("UPDATE audit SET detail = $q$%s$q$ WHERE seq = %d" % (detail, seq))
            cluster.sql("DROP TABLE IF EXISTS saved; CREATE TABLE saved AS SELECT * FROM audit WHERE seq = %d; "
                        "DELETE FROM audit WHERE seq = %d" % (seq, seq))
            out = cluster.verify().stdout.decode()
            check(out.startswith("BROKEN"), "a deleted record of %s is found: %s" % (node, out.strip()[:160]))
            cluster.sql("INSERT INTO audit SELECT * FROM saved; DROP TABLE saved")
            other = int(cluster.sql("SELECT min(seq) FROM audit WHERE seq > %d AND node <> '%s'" % (seq, node)))
            cluster.sql("UPDATE audit SET seq = -1 WHERE seq = %d; UPDATE audit SET seq = %d WHERE seq = %d; "
                        "UPDATE audit SET seq = %d WHERE seq = -1" % (seq, seq, other, other))
            out = cluster.verify().stdout.decode()
            check(out.startswith("BROKEN at record %d" % seq),
                  "records %d (%s) and %d swapped are found: %s" % (seq, node, other, out.strip()[:160]))
            cluster.sql("UPDATE audit SET seq = -1 WHERE seq = %d; UPDATE audit SET seq = %d WHERE seq = %d; "
                        "UPDATE audit SET seq = %d WHERE seq = -1" % (seq, seq, other, other))
        cluster.sql("ALTER TABLE audit ENABLE TRIGGER USER")
        final = cluster.verify()
        check(final.returncode == 0, "restored, the log verifies again: %s" % final.stdout.decode().strip()[:120])

        # A database writer's own grant (SECURITY.md: the database is a trust boundary): a row
        # written by hand, announced, and the nodes sign under it (what the database's writers
        # can do); the log holds every such signature and audit verify names the first.
        a.start()
        b.start()
        now_ms = int(time.time() * 1000)
        cluster.sql("INSERT INTO grants(id, request_id, holder, operation, domain, selector, client, starts, "
                    "expires, budget, uses, revoked_at, revoked_by, revoke_reason, break_glass, end_recorded, "
                    "exhausted_at) VALUES (999, 0, 'mallory', 'sign', '%s', '*', '*', %d, %d, NULL, 0, NULL, '', "
                    "'', false, false, NULL); UPDATE cluster_state SET version = version + 1; "
                    "SELECT pg_notify('dkim_state', 'mallory')" % (DOMAIN, now_ms - 1000, now_ms + 600000))
        forged = None
        for _ in until(10):
            ok, _ = sign(b, "b-rsa")
            if ok:
                forged = int(cluster.sql("SELECT max(seq) FROM audit WHERE action = 'sign' AND grant_id = 999"))
                break
            time.sleep(0.05)
        check(forged is not None, "a grant row written into the database by hand signs (the database is trusted)")
        a.stop()
        b.stop()
        out = cluster.verify().stdout.decode()
        first = cluster.sql("SELECT min(seq) FROM audit WHERE action = 'sign' AND grant_id = 999").strip()
        check(out.startswith("BROKEN at record %s: a signature under a grant that no approval" % first),
              "audit verify names the first signature under it: %s" % out.strip()[:200])
    finally:
        cluster.stop()
        dns_server.stop()


class Clients:
    """Mail clients that send numbered messages to one relay and fail over to the other on a 4xx,
    a refused or a dead connection, as an MTA with two smarthosts does; each message until one
    relay answers 250 (or a minute passes). Records, per message, whether it got its 250 and
    whether an attempt ended without an answer (then a second copy is allowed: RFC 5321 6.1)."""

    def __init__(self, relays, count, threads=5, hold_at=None, first=0):
        self.relays, self.count = relays, count
        self.first = first  # the messages are numbered first + 1 .. first + count
        # Messages past hold_at wait for release(): the load goes on through a fault that the
        # test starts there, however fast the first ones went.
        self.hold_at = hold_at
        self.released = threading.Event()
        self.next = 0
        self.lock = threading.Lock()
        self.accepted = set()
        self.unanswered = set()
        self.refusals = 0
        self.sent = 0
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join()

    def release(self):
        self.released.set()

    def take(self):
        while True:
            with self.lock:
                if self.next >= self.count:
                    return None
                if self.hold_at is None or self.next < self.hold_at or self.released.is_set():
                    self.next += 1
                    return self.first + self.next
            self.released.wait(0.05)

    def run(self, index):
        import smtplib
        while True:
            n = self.take()
            if n is None:
                return
            msg = (b"From: Alice <alice@" + DOMAIN.encode() + b">\r\nTo: Bob <bob@peer.example>\r\n"
                   b"Subject: cluster %d\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
                   b"Message-ID: <cluster-%d@" % (n, n) + DOMAIN.encode() + b">\r\n\r\nLoad through two nodes.\r\n")
            deadline = time.monotonic() + 60
            attempt = n % len(self.relays)
            while time.monotonic() < deadline:
                relay = self.relays[attempt % len(self.relays)]
                attempt += 1
                answered = False
                try:
                    with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as smtp:
                        smtp.ehlo("client.test")
                        answered = True  # from here on, an answer or a dead connection
                        smtp.sendmail("alice@" + DOMAIN, ["bob@peer.example"], msg)
                    with self.lock:
                        self.accepted.add(n)
                        self.sent += 1
                    break
                except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused,
                        smtplib.SMTPSenderRefused):
                    with self.lock:
                        self.refusals += 1
                except (OSError, smtplib.SMTPException):
                    if answered:
                        with self.lock:
                            self.unanswered.add(n)
                time.sleep(0.1)


def faults(folder, cli, signerd, relayd, module):
    from relayd_daemon import Relay, Sink
    cluster = Cluster(folder, cli, signerd, module, lease="3s")
    dns_server = DnsServer(folder, cluster.records, DOMAIN)
    sink = None
    relays = {}
    try:
        cluster.start()
        a, b = cluster.a, cluster.b
        a.approve(a.request("*", "30m"))
        sink = Sink(folder)
        for name, node in cluster.nodes.items():
            relays[name] = Relay(node.folder, relayd, node, "smtp://127.0.0.1:%d" % sink.port, name="relay",
                                 next_hop_extra='tls = "off"', selectors=(name + "-rsa",))
            relays[name].start()
        for _ in until(10):
            if logged_in(b):
                break
            time.sleep(0.05)

        clients = Clients([relays["a"], relays["b"]], 250, hold_at=200)
        clients.start()
        # kill -9 of node-a (signerd and its relay) once a fifth of the mail went through.
        for _ in until(120):
            if clients.sent >= 50:
                break
            time.sleep(0.02)
        relays["a"].kill9()
        a.kill9()
        killed_at = clients.sent
        for _ in until(120):
            if clients.sent >= killed_at + 50:
                break
            time.sleep(0.02)
        check(clients.sent >= killed_at + 50, "node-b carries on after node-a's kill -9 (%d more accepted)"
              % (clients.sent - killed_at))
        a.start()
        relays["a"].start()

        # PostgreSQL stopped under load for longer than the lease, then started again.
        for _ in until(120):
            if clients.sent >= 150:
                break
            time.sleep(0.02)
        stopped = time.monotonic()
        cluster.pg.stop("fast")
        clients.release()  # the last 50 go on under the outage
        out = wait_logged_out({"a": a, "b": b}, stopped, seconds=10)
        check(len(out) == 2 and max(out.values()) <= 3.0 + 1.5,
              "without the database both nodes log out within their lease of 3 s (+ a tick): %s"
              % {k: "%.1f s" % v for k, v in out.items()})
        during = clients.sent
        time.sleep(1.0)
        check(clients.sent == during, "nothing is accepted while the database is away (%d)" % (clients.sent - during))
        cluster.pg.start()
        resumed = None
        for _ in until(60):
            if clients.sent > during:
                resumed = time.monotonic() - stopped
                break
            time.sleep(0.05)
        check(resumed is not None, "the nodes resume by themselves when it is back (%.1f s after the stop)"
              % (resumed or 0))
        clients.join()

        check(len(clients.accepted) == 250, "every one of the 250 messages was accepted once the clients retried "
              "(%d; %d refusals on the way)" % (len(clients.accepted), clients.refusals))
        got = {}
        for m in sink.messages():
            ident = re.search(rb"Message-ID: <cluster-(\d+)@", m)
            if ident:
                got[int(ident.group(1))] = got.get(int(ident.group(1)), 0) + 1
        missing = sorted(clients.accepted - set(got))
        twice = sorted(n for n, c in got.items() if c > 1 and n not in clients.unanswered)
        check(not missing, "every message told 250 reached the next hop (missing: %s)" % missing[:10])
        check(not twice, "none twice, but for an attempt that died without an answer (%s; %d such attempts)"
              % (twice[:10], len(clients.unanswered)))

        # PostgreSQL frozen under load (SIGSTOP: alive, answering nothing, which no keepalive
        # sees): both nodes stop signing and log out within the lease all the same (their
        # statements are bounded on their side), and resume once it answers again.
        frozen_clients = Clients([relays["a"], relays["b"]], 40, first=1000)
        frozen_clients.start()
        for _ in until(60):
            if frozen_clients.sent >= 10:
                break
            time.sleep(0.02)
        frozen = cluster.pg.freeze()
        hung = time.monotonic()
        try:
            out = wait_logged_out({"a": a, "b": b}, hung, seconds=15)
            check(len(out) == 2 and max(out.values()) <= 3.0 + 1.5,
                  "with the database frozen both nodes log out within their lease of 3 s (+ a tick): %s"
                  % {k: "%.1f s" % v for k, v in out.items()})
            during = frozen_clients.sent
            time.sleep(1.0)
            check(frozen_clients.sent == during,
                  "nothing is accepted while the database answers nothing (%d)" % (frozen_clients.sent - during))
        finally:
            cluster.pg.thaw(frozen)
        frozen_clients.join()
        check(len(frozen_clients.accepted) == 40,
              "once it answers again, every one of the 40 messages is accepted (%d)" % len(frozen_clients.accepted))
        got_after = {}
        for m in sink.messages():
            ident = re.search(rb"Message-ID: <cluster-(\d+)@", m)
            if ident and int(ident.group(1)) > 1000:
                got_after[int(ident.group(1))] = got_after.get(int(ident.group(1)), 0) + 1
        check(not (frozen_clients.accepted - set(got_after)),
              "and reaches the next hop: %s" % sorted(frozen_clients.accepted - set(got_after))[:10])
        got.update(got_after)
        for name, relay in relays.items():
            relay.stop()
        a.stop()
        b.stop()
        verified = cluster.verify()
        text = verified.stdout.decode() + verified.stderr.decode()
        check(verified.returncode == 0 and "chain intact" in text,
              "after the kill -9 and the database's restart the cluster's audit chain verifies: %s" % text.strip()[:400])
        # The nodes that logged out for want of the database are named so, apart from the kill -9.
        check(re.search(r"\d+ unclean logouts? \(the record says its node was cut off from the shared store .*\) "
                        r"covered by a later signed checkpoint, at token\.logout records? \d+", text) is not None,
              "audit verify reports the outage's logouts as nodes cut off from the database: %s" % text.strip()[-400:])
        signed = int(cluster.sql("SELECT count(*) FROM audit WHERE action = 'sign' AND outcome = 'issued'"))
        check(signed >= len(got), "the log holds a signature record for every delivered message (%d >= %d)"
              % (signed, len(got)))
    finally:
        for relay in relays.values():
            relay.stop()
        if sink:
            sink.stop()
        cluster.stop()
        dns_server.stop()


if __name__ == "__main__":
    sys.exit(run_module(__doc__, {"decisions": decisions, "faults": faults}, 4, "dkim-cluster-"))
