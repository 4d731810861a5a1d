#!/usr/bin/python3
"""Red-team checks of the cluster (issue 24) with real daemons: two dkim-signerd nodes with their
SoftHSM2 tokens on a private PostgreSQL (cluster_daemons.Cluster), a database writer working
within what SECURITY.md grants it (every row, the audit table with its triggers disabled, the
chain's end row), and `dkim-appliance audit verify --database` with every node's audit key.

  rewrite   (1) with the nodes stopped, the log cut inside the nodes' login sessions is
            reported; the same cut with a forged "fenced" token.logout per node appended must be
            reported too (the log is saved before and restored after). (2) while both nodes
            run, the writer erases a signature record of node-a that a signed checkpoint covers
            (and every checkpoint after it), rechains the rest and moves cluster_state's end: no
            node may sign a checkpoint over the rewritten chain or sign mail on it, and audit
            verify must report it. (3) five wrong passwords spread over both nodes lock the
            user on both.

Registered with ctest as attack_cluster.rewrite (label postgres):

  attack_cluster.py rewrite DKIM_APPLIANCE DKIM_SIGNERD DKIM_RELAYD SOFTHSM2_MODULE

A FAIL line is a finding (exit status 1).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_daemons import Cluster, logged_in, sign  # noqa: E402
from signerd_daemon import DOMAIN  # noqa: E402
from testlib import DnsServer, check, run_module, until  # noqa: E402

# The writer's rechaining, in one transaction under the chain's end row (so that no node commits
# in between): records from FIRST on that DROP does not match are kept, EXTRA rows are appended,
# everything from FIRST on is renumbered and rehashed exactly as jit::chain_hash does
# ("dkim-audit-v1" || previous || each field with a 4-byte big-endian length; the node only when
# not empty), and cluster_state's end is moved to the new last record.
RECHAIN = """
BEGIN;
SELECT seq FROM cluster_state WHERE id = 1 FOR UPDATE;
ALTER TABLE audit DISABLE TRIGGER USER;
CREATE TEMP TABLE kept ON COMMIT DROP AS SELECT * FROM audit WHERE seq >= {first} AND NOT ({drop});
DELETE FROM audit WHERE seq >= {first};
{extra}
CREATE FUNCTION pg_temp.put(t text) RETURNS bytea LANGUAGE sql AS
  $f$ SELECT int4send(octet_length(convert_to(t, 'UTF8'))) || convert_to(t, 'UTF8') $f$;
DO $$ DECLARE prev bytea; n bigint; t bigint; r record; BEGIN
  SELECT hash, seq, time INTO prev, n, t FROM audit WHERE seq = {first} - 1;
  FOR r IN SELECT * FROM kept ORDER BY seq LOOP
    n := n + 1;
    t := GREATEST(t, r.time);
    prev := sha256(convert_to('dkim-audit-v1', 'UTF8') || prev || pg_temp.put(n::text) ||
                   pg_temp.put(t::text) || pg_temp.put(r.actor) || pg_temp.put(r.action) ||
                   pg_temp.put(r.scope) || pg_temp.put(r.outcome) || pg_temp.put(r.reason) ||
                   pg_temp.put(r.request_id::text) || pg_temp.put(r.grant_id::text) ||
                   pg_temp.put(r.detail) ||
                   CASE WHEN r.node = '' THEN ''::bytea ELSE pg_temp.put(r.node) END);
    INSERT INTO audit(seq, time, actor, action, scope, outcome, reason, request_id, grant_id,
                      detail, node, hash)
      VALUES (n, t, r.actor, r.action, r.scope, r.outcome, r.reason, r.request_id, r.grant_id,
              r.detail, r.node, prev);
  END LOOP;
  UPDATE cluster_state SET seq = n, head = prev, time = t WHERE id = 1;
END $$;
ALTER TABLE audit ENABLE TRIGGER USER;
COMMIT;
"""

FENCED = ("INSERT INTO kept(seq, time, actor, action, scope, outcome, reason, request_id, grant_id, "
          "detail, node, hash) VALUES ({seq}, (SELECT max(time) FROM audit), 'signerd', 'token.logout', '', "
          "'ok', 'cut off from the cluster''s shared store for longer than the lease at ' || "
          "(SELECT max(time) FROM audit) || ' (unix ms): logged out without a checkpoint', 0, 0, '', "
          "'{node}', ''::bytea);")


# The log as the nodes left it, saved and put back between the attacks.
SAVE = ("DROP TABLE IF EXISTS saved_audit, saved_state; CREATE TABLE saved_audit AS SELECT * FROM audit; "
        "CREATE TABLE saved_state AS SELECT * FROM cluster_state;")
RESTORE = """
BEGIN;
SELECT seq FROM cluster_state WHERE id = 1 FOR UPDATE;
ALTER TABLE audit DISABLE TRIGGER USER;
DELETE FROM audit;
INSERT INTO audit SELECT * FROM saved_audit;
UPDATE cluster_state SET seq = s.seq, head = s.head, time = s.time FROM saved_state s WHERE cluster_state.id = 1;
ALTER TABLE audit ENABLE TRIGGER USER;
COMMIT;
"""


def rechain(cluster, first, drop="false", extra=""):
    cluster.sql(RECHAIN.format(first=first, drop=drop, extra=extra))


def value(cluster, statement):
    out = cluster.sql(statement).strip()
    return int(out) if out else None


def rewrite(folder, cli, signerd, relayd, module):
    cluster = Cluster(folder, cli, signerd, module)
    dns_server = DnsServer(folder, cluster.records, DOMAIN)
    try:
        cluster.start()
        a, b = cluster.a, cluster.b
        a.approve(a.request("*", "30m"))
        for _ in until(20):
            if logged_in(a) and logged_in(b):
                break
            time.sleep(0.05)
        check(logged_in(a) and logged_in(b), "both tokens are logged in for the grant")
        # Signatures on both nodes across a few checkpoint intervals (2 s).
        end = time.monotonic() + 5
        while time.monotonic() < end:
            sign(a, "a-rsa")
            sign(b, "b-rsa")
            time.sleep(0.2)

        # (1) The cut inside the sessions, with the nodes stopped: right after the first signed
        # checkpoint that follows both nodes' logins (and before their logout checkpoints). The
        # log is saved first and restored after, for (2).
        b.stop()
        a.stop()
        cluster.sql(SAVE)
        cut_at = value(cluster, "SELECT min(seq) FROM audit WHERE action = 'audit.checkpoint' AND outcome = 'ok' "
                                "AND seq > (SELECT max(seq) FROM audit WHERE action = 'token.login' "
                                "AND outcome = 'ok')")
        check(cut_at is not None and value(cluster, "SELECT count(*) FROM audit WHERE seq > %d AND "
                                                    "action = 'token.logout'" % cut_at) == 2,
              "the cut after the signed checkpoint at record %s lies inside both nodes' sessions" % cut_at)
        p_time = value(cluster, "SELECT time FROM audit WHERE seq = %d" % cut_at)
        wait = p_time / 1000.0 + 13 - time.time()  # the checkpoint interval (2 s) + grace (10 s)
        if wait > 0:
            time.sleep(wait)
        total = value(cluster, "SELECT max(seq) FROM audit")
        rechain(cluster, cut_at + 1, drop="true")
        plain = cluster.verify()
        check(plain.returncode != 0, "a log cut after record %d of %d (inside both sessions) is reported: %s"
              % (cut_at, total, plain.stdout.decode().strip()[:200]))
        cluster.sql(RESTORE)
        rechain(cluster, cut_at + 1, drop="true",
                extra=FENCED.format(seq=10**12, node="node-a") + FENCED.format(seq=10**12 + 1, node="node-b"))
        forged = cluster.verify()
        check(forged.returncode != 0,
              "the same cut with a forged 'cut off from the cluster' token.logout per node is reported: %s"
              % forged.stdout.decode().strip()[:300])
        cluster.sql(RESTORE)
        restored = cluster.verify()
        check(restored.returncode == 0, "the saved log verifies again once restored: %s"
              % restored.stdout.decode().strip()[:200])

        # (2) The erasure, while both nodes run (they log in again for the grant on start).
        a.start()
        b.start()
        for _ in until(20):
            if logged_in(a) and logged_in(b):
                break
            time.sleep(0.05)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            sign(a, "a-rsa")
            sign(b, "b-rsa")
            time.sleep(0.2)
        target = value(cluster, "SELECT max(seq) FROM audit WHERE node = 'node-a' AND action = 'sign' "
                                "AND outcome = 'issued'")
        covering = None
        for _ in until(10):
            covering = value(cluster, "SELECT min(seq) FROM audit WHERE action = 'audit.checkpoint' "
                                      "AND outcome = 'ok' AND seq > %d" % target)
            if covering:
                break
            time.sleep(0.1)
        check(covering is not None, "node-a's signature at record %d is covered by the signed checkpoint at %s"
              % (target, covering))
        erased_detail = cluster.sql("SELECT detail FROM audit WHERE seq = %d" % target).strip()
        dropped = value(cluster, "SELECT count(*) FROM audit WHERE seq > %d AND action = 'audit.checkpoint'" % target)
        rechain(cluster, target, drop="seq = %d OR action = 'audit.checkpoint'" % target)
        new_end = value(cluster, "SELECT seq FROM cluster_state")
        countersigned = None
        for _ in until(6):
            countersigned = value(cluster, "SELECT min(seq) FROM audit WHERE action = 'audit.checkpoint' "
                                           "AND outcome = 'ok' AND seq > %d" % new_end)
            if countersigned:
                break
            time.sleep(0.1)
        node = cluster.sql("SELECT node FROM audit WHERE seq = %d" % countersigned).strip() if countersigned else ""
        check(countersigned is None,
              "no node's checkpoint signs the rewritten chain (erased record %d (%s) and %d checkpoints after "
              "it; %s's checkpoint at %s)" % (target, erased_detail[:60], dropped, node or "no node", countersigned))
        signed_a, _ = sign(a, "a-rsa")
        signed_b, _ = sign(b, "b-rsa")
        check(not signed_a and not signed_b, "neither node signs on the rewritten chain (fails closed): a %s, b %s"
              % (signed_a, signed_b))
        check(value(cluster, "SELECT count(*) FROM audit WHERE seq > %d" % new_end) == 0,
              "nor writes anything after the rewritten chain's end")
        b.stop()
        a.stop()
        # Until the checkpoint interval and its grace have passed, the rewritten log looks like
        # sessions whose next checkpoint is not yet due (audit verify says so); after them it
        # is a log cut inside logged-in sessions.
        last = value(cluster, "SELECT max(time) FROM audit")
        wait = last / 1000.0 + 13 - time.time()
        if wait > 0:
            time.sleep(wait)
        verified = cluster.verify()
        text = (verified.stdout + verified.stderr).decode().strip()
        check(verified.returncode != 0,
              "audit verify reports a signature record erased from under a signed checkpoint while the "
              "nodes ran: %s" % text[:300])
        cluster.sql(RESTORE)

        # (3) Refused: five wrong passwords spread over both nodes lock the user on both.
        a.start()
        b.start()
        wrong = a.secret_file("pw-wrong", "not-carols-password")
        for i in range(5):
            node = (a, b)[i % 2]
            node.cli("elevation", "list", "--socket", node.socket, "--user", "carol", "--password-file", wrong,
                     check=False)
        right = os.path.join(a.folder, "pw-carol")
        on_a = a.cli("elevation", "list", "--socket", a.socket, "--user", "carol", "--password-file", right,
                     check=False)
        on_b = b.cli("elevation", "list", "--socket", b.socket, "--user", "carol", "--password-file", right,
                     check=False)
        check(on_a.returncode != 0 and on_b.returncode != 0,
              "five failures spread over both nodes lock carol on both (the right password is refused: "
              "a %d, b %d)" % (on_a.returncode, on_b.returncode))
    finally:
        cluster.stop()
        dns_server.stop()


if __name__ == "__main__":
    sys.exit(run_module(__doc__, {"rewrite": rewrite}, 4, "dkim-attack-cluster-"))
