#!/usr/bin/python3
"""The database writer: root with sqlite3 on signerd's state file tries to rewrite the audit log.

Started by ctest (labels "hsm;signerd"), one group per run:

  stopped   signerd has run several login sessions (periodic checkpoints, a revoke, an expiry,
            a clean stop) and is stopped. On copies of its database the attacker edits a
            record, deletes one, reorders two, inserts one, rewrites the whole chain with
            consistent hashes (with and without rewriting the checkpoints' heads), does what
            finding 4 of issue 18 did (a record removed, the chain recomputed, every
            checkpoint deleted), drops the logout checkpoint, cuts the tail back to a
            periodic checkpoint, and cuts it back to an earlier logout; forges a crash (the log
            cut right after a periodic checkpoint, a copy of a signerd.start appended: red-team
            finding F3 [A]) and the same with a token.login dated a year ahead ([B]). Each is
            reported by
            `dkim-appliance audit verify --token` with exit 1, naming the record and the rule
            (the cut to an earlier logout only with --against an earlier export: the limit
            SECURITY.md states). The untouched log verifies (exit 0).
  running   signerd is running with the token logged in: the untouched log verifies with its
            tail reported as "not yet covered" (and how many records); the attacker then cuts
            the live log's tail, and edits a live record: both reported while signerd runs.

The attacker drops the append-only triggers first (root can). The chain hash is recomputed
here from the encoding in appliance/include/dkim/jit/audit.hpp, as an attacker would.

usage: attack_database.py GROUP DKIM_APPLIANCE DKIM_SIGNERD SOFTHSM2_MODULE
"""

import hashlib
import os
import re
import shutil
import sqlite3
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signerd_daemon import Appliance  # noqa: E402
from testlib import check, run_module  # noqa: E402

COLUMNS = "seq, time, actor, action, scope, outcome, reason, request_id, grant_id, detail, hash"


def enc(value):
    data = value if isinstance(value, bytes) else str(value).encode()
    return struct.pack(">I", len(data)) + data


def chain_hash(previous, row):
    seq, t, actor, action, scope, outcome, reason, request_id, grant_id, detail = row[:10]
    h = hashlib.sha256(b"dkim-audit-v1" + previous)
    for field in (seq, t, actor, action, scope, outcome, reason, request_id, grant_id, detail):
        h.update(enc(field))
    return h.digest()


class Copy:
    """A copy of the state database for one attack, with the triggers dropped."""

    def __init__(self, app, name):
        self.path = os.path.join(app.folder, name + ".db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(app.db + suffix):
                shutil.copy(app.db + suffix, self.path + suffix)
        self.db = sqlite3.connect(self.path)
        self.db.executescript("DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;"
                              "DROP TRIGGER IF EXISTS checkpoints_no_update;"
                              "DROP TRIGGER IF EXISTS checkpoints_no_delete;")

    def rows(self):
        return [list(r) for r in self.db.execute("SELECT %s FROM audit ORDER BY seq" % COLUMNS)]

    def rewrite(self, rows):
        """Replaces the log by `rows`, renumbered and re-chained: a consistent chain."""
        previous = b"\0" * 32
        self.db.execute("DELETE FROM audit")
        for i, row in enumerate(rows):
            row = list(row)
            row[0] = i + 1
            row[10] = chain_hash(previous, row)
            previous = row[10]
            self.db.execute("INSERT INTO audit(%s) VALUES (?,?,?,?,?,?,?,?,?,?,?)" % COLUMNS, row)
        self.db.commit()

    def sql(self, script):
        self.db.executescript(script)
        self.db.commit()

    def close(self):
        self.db.close()


def verify(app, db, *extra):
    result = app.cli("audit", "verify", "--db", db, "--module", app.module, "--token", "dkim", *extra, check=False)
    return result.returncode, result.stdout.decode().strip() + result.stderr.decode().strip()


def expect_broken(app, copy, what, at, words, *extra):
    copy.close()
    code, out = verify(app, copy.path, *extra)
    check(code == 1 and out.startswith("BROKEN at record %d:" % at) and words in out,
          "%s: BROKEN at record %d (%s): %s" % (what, at, words, out))
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(copy.path + suffix):
            os.remove(copy.path + suffix)


def seqs(rows, action, **fields):
    out = []
    for r in rows:
        if r[3] == action and all(r[{"outcome": 5, "reason": 6}[k]] == v for k, v in fields.items()):
            out.append(r[0])
    return out


def kind_of(row):
    m = re.search(r"kind=(\w+)", row[9])
    return m.group(1) if m else None


def session(app, selector, duration, signatures):
    grant = app.approve(app.request(selector, duration))
    for _ in range(signatures):
        signed = app.relay_sign(selector, "ed25519-sha256" if selector != "rsa" else "rsa-sha256")
        check(signed.returncode == 0, "the relay signs inside grant %d" % grant)
    return grant


# --- groups -------------------------------------------------------------------------------

def stopped(folder, cli, signerd, module):
    app = Appliance(folder, cli, signerd, module)
    app.start()
    try:
        app.add_users()
        # Session 1: signatures, at least one periodic checkpoint (every 2 s), then a revoke.
        grant = session(app, "ed", "30m", 3)
        time.sleep(2.5)
        app.relay_sign("ed", "ed25519-sha256")
        app.op("elevation", "revoke", "--grant", str(grant), "--reason", "done", user="carol", totp=True)
        # Session 2: a short grant that expires by itself, with a periodic checkpoint inside.
        session(app, "short", "4s", 2)
        export = os.path.join(folder, "during-session-2.jsonl")  # the operator's safekeeping copy
        app.cli("audit", "export", "--db", app.db, "--out", export)
        time.sleep(5.5)
        # Session 3: a grant still active at the SIGTERM (logged out by the shutdown).
        session(app, "rsa", "30m", 1)
        check(app.stop() == 0, "signerd stops cleanly")
    finally:
        app.stop()

    code, out = verify(app, app.db)
    check(code == 0 and "chain intact" in out and "signatures valid" in out and "covered through" in out,
          "the untouched log verifies with the token: %s" % out)
    rows = Copy(app, "probe").rows()
    checkpoints = seqs(rows, "audit.checkpoint", outcome="ok")
    logouts = seqs(rows, "token.logout")
    periodic = [s for s in checkpoints if kind_of(rows[s - 1]) == "periodic"]
    signatures = seqs(rows, "sign")
    check(len(logouts) == 3 and all(rows[s - 2][3] == "audit.checkpoint" and kind_of(rows[s - 2]) == "logout"
                                    for s in logouts),
          "each of the 3 logouts directly follows a signed logout checkpoint in the chain: %s" % logouts)
    check(len(periodic) >= 2, "periodic checkpoints are records of the chain: %s" % periodic)
    empty_table = Copy(app, "table")
    check(empty_table.db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 0,
          "no checkpoint lives outside the chain any more (the table is only read for old logs)")
    empty_table.sql("DELETE FROM checkpoints")
    empty_table.close()
    code, out = verify(app, empty_table.path)
    check(code == 0, "so emptying the checkpoints table hides nothing and breaks nothing: %s" % out)

    # Record-level edits: the chain itself.
    c = Copy(app, "edit")
    c.sql("UPDATE audit SET actor = 'mallory' WHERE seq = %d" % signatures[0])
    expect_broken(app, c, "an edited record", signatures[0], "does not match its chain hash")
    c = Copy(app, "delete")
    c.sql("DELETE FROM audit WHERE seq = %d" % signatures[1])
    expect_broken(app, c, "a deleted record", signatures[1], "missing")
    c = Copy(app, "reorder")
    c.sql("UPDATE audit SET seq = -1 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 9;"
          "UPDATE audit SET seq = 9 WHERE seq = -1")
    expect_broken(app, c, "two reordered records", 4, "does not match its chain hash")
    c = Copy(app, "insert")
    victim = signatures[0]
    c.sql("UPDATE audit SET seq = -(seq + 1) WHERE seq >= %d; UPDATE audit SET seq = -seq WHERE seq < 0;"
          "INSERT INTO audit SELECT %d, time, 'service:relay', action, scope, outcome, reason, request_id,"
          " grant_id, detail, hash FROM audit WHERE seq = %d" % (victim, victim, victim + 1))
    expect_broken(app, c, "an inserted record", victim, "does not match its chain hash")

    # Whole-chain rewrites with consistent hashes.
    c = Copy(app, "rewrite")
    forged = c.rows()
    forged[signatures[0] - 1][9] = forged[signatures[0] - 1][9].replace("a=", "a=forged;")
    c.rewrite(forged)
    first_after = min(s for s in checkpoints if s > signatures[0])
    expect_broken(app, c, "a record rewritten and the chain recomputed", first_after, "is not the hash of record")
    c = Copy(app, "rewrite-heads")
    forged = c.rows()
    del forged[signatures[1] - 1]
    previous = b"\0" * 32
    for i, row in enumerate(forged):  # recompute hashes and every checkpoint's head
        row[0] = i + 1
        if row[3] == "audit.checkpoint":
            row[9] = re.sub(r"covers=\d+ head=[0-9a-f]{64}", "covers=%d head=%s" % (i, previous.hex()), row[9])
        row[10] = chain_hash(previous, row)
        previous = row[10]
    c.rewrite(forged)
    first_after = min(s for s in checkpoints if s > signatures[1]) - 1
    expect_broken(app, c, "a record removed, hashes and checkpoint heads recomputed", first_after,
                  "does not carry a valid signature of the audit key")
    c = Copy(app, "finding-4")
    forged = [r for r in c.rows() if r[3] != "audit.checkpoint" and r[0] != signatures[1]]
    c.rewrite(forged)
    c.sql("DELETE FROM checkpoints")
    first_logout = [r[0] for r in c.rows() if r[3] == "token.logout"][0]
    expect_broken(app, c, "finding 4: a record removed, the chain recomputed, the checkpoints deleted",
                  first_logout, "does not follow a signed checkpoint")

    # Dropping checkpoints from the chain.
    c = Copy(app, "drop-logout-checkpoint")
    forged = c.rows()
    del forged[logouts[0] - 2]
    c.rewrite(forged)
    expect_broken(app, c, "the logout checkpoint dropped from the chain", logouts[0] - 1,
                  "does not follow a signed checkpoint")
    c = Copy(app, "drop-periodic")
    forged = c.rows()
    del forged[periodic[0] - 1]
    c.rewrite(forged)
    next_checkpoint = min(s for s in checkpoints if s > periodic[0])
    expect_broken(app, c, "a periodic checkpoint dropped from the chain", next_checkpoint - 1,
                  "not the record before it")
    c = Copy(app, "drop-all-checkpoints")
    c.rewrite([r for r in c.rows() if r[3] != "audit.checkpoint"])
    expect_broken(app, c, "every checkpoint dropped from the chain", logouts[0] - len(
        [s for s in checkpoints if s < logouts[0]]), "does not follow a signed checkpoint")

    # Truncation.
    last_periodic = periodic[-1]
    wait = 13.0 - (time.time() - rows[last_periodic - 1][1] / 1000.0)
    if wait > 0:
        time.sleep(wait)  # past the declared interval (2 s) and the verifier's grace (10 s)
    c = Copy(app, "cut-to-periodic")
    c.sql("DELETE FROM audit WHERE seq > %d" % last_periodic)
    expect_broken(app, c, "the tail cut back to a periodic checkpoint", last_periodic,
                  "no checkpoint has covered")
    c = Copy(app, "cut-last-logout")
    c.sql("DELETE FROM audit WHERE seq >= %d" % logouts[-1])
    expect_broken(app, c, "the last token.logout and what follows cut", logouts[-1] - 1,
                  "no checkpoint has covered")
    c = Copy(app, "cut-forged-logout")
    c.sql("DELETE FROM audit WHERE seq > %d" % last_periodic)
    forged = c.rows()
    tail = list(forged[-1])
    tail[2], tail[3], tail[5], tail[6], tail[9] = "signerd", "token.logout", "ok", "no active grant", ""
    c.rewrite(forged + [tail])
    expect_broken(app, c, "the tail cut at a periodic checkpoint and a logout forged after it", last_periodic + 1,
                  "does not follow a signed checkpoint")
    c = Copy(app, "cut-to-logout")
    c.sql("DELETE FROM audit WHERE seq > %d" % logouts[0])
    c.close()
    code, out = verify(app, c.path)
    check(code == 0 and "not covered: written while the token was logged out" in out,
          "the documented limit: a cut right after a logout looks like a log that ends there: %s" % out)
    expect_broken(app, c, "the same cut, against an export taken during the next session", logouts[0] + 1,
                  "truncated after record %d" % logouts[0], "--against", export)
    code, out = verify(app, app.db, "--against", export)
    check(code == 0, "the untouched log verifies against the export: %s" % out)

    # A forged crash (red-team finding F3): cut right after a periodic checkpoint, hiding what
    # the later signed checkpoints of that session covered, and append a copy of a
    # signerd.start (dated after the cut, in chain order) as a crash would have left it. Only
    # a signed recovery checkpoint, which signerd writes at its next login after a real
    # crash, could cover it.
    cut = next((p for p in periodic if any(p < s < logouts[0] for s in signatures)), None)
    check(cut is not None, "a periodic checkpoint with covered signatures after it in session 1: %s" % periodic)
    start_row = next(r for r in rows if r[3] == "signerd.start")
    login_row = next(r for r in rows if r[3] == "token.login" and r[5] == "ok")
    if cut is not None:
        def forged_crash(name, extra):
            c = Copy(app, name)
            forged = [r for r in c.rows() if r[0] <= cut]
            t = forged[-1][1]
            for i, (row, ahead) in enumerate(extra):
                row = list(row)
                row[1] = t + 1 + i + ahead
                forged.append(row)
            c.rewrite(forged)
            return c
        c = forged_crash("forged-crash", [(start_row, 0)])
        expect_broken(app, c, "F3 [A]: cut after periodic checkpoint %d, a signerd.start appended" % cut, cut + 1,
                      "that has no token.logout: signerd stopped without logging out (a crash), or the log was cut "
                      "after record %d and a start appended; no signed checkpoint covers it" % cut)
        c = forged_crash("forged-crash-login", [(start_row, 0), (login_row, 0)])
        expect_broken(app, c, "F3 [A] with a token.login after the forged start", cut + 1,
                      "no signed checkpoint covers it")
        year_ms = 365 * 86400 * 1000
        c = forged_crash("forged-crash-future-login", [(start_row, 0), (login_row, year_ms)])
        expect_broken(app, c, "F3 [B]: the same with a token.login dated a year ahead", cut + 2,
                      "after the verifier's clock (more than the 300.0 s allowed for clock skew)")


def running(folder, cli, signerd, module):
    app = Appliance(folder, cli, signerd, module)
    app.start()
    try:
        app.add_users()
        session(app, "ed", "30m", 3)
        time.sleep(2.5)  # a periodic checkpoint
        session(app, "rsa", "30m", 1)
        code, out = verify(app, app.db)
        m = re.search(r"(\d+) records after record (\d+) not yet covered: the token is logged in", out)
        check(code == 0 and m is not None,
              "while signerd runs logged in, the log verifies and its tail is reported as not yet covered: %s" % out)
        total = re.search(r"ok: (\d+) records", out)
        if m and total:
            # The count against the records the report saw (signerd may write more meanwhile:
            # a heartbeat checkpoint), and those against the database read after it.
            rows = Copy(app, "probe").rows()
            check(int(m.group(1)) == int(total.group(1)) - int(m.group(2)) and int(m.group(1)) > 0 and
                  len(rows) >= int(total.group(1)),
                  "the report counts the uncovered tail (%s of %s records; %d stored now)"
                  % (m.group(1), total.group(1), len(rows)))
        time.sleep(2.5)
        code, out = verify(app, app.db)
        check(code == 0, "a heartbeat checkpoint every 2 s keeps an idle logged-in log verifiable: %s" % out)

        # The attacker cuts the live log's tail (back to its last checkpoint) while signerd runs.
        live = sqlite3.connect(app.db, timeout=10)
        live.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        rows = [list(r) for r in live.execute("SELECT seq, action FROM audit ORDER BY seq")]
        last_checkpoint = max(r[0] for r in rows if r[1] == "audit.checkpoint")
        live.execute("DELETE FROM audit WHERE seq >= %d" % last_checkpoint)
        live.commit()
        time.sleep(2.5)  # signerd writes its next checkpoint after the cut
        code, out = verify(app, app.db)
        check(code == 1 and ("BROKEN at record %d:" % last_checkpoint) in out and "missing" in out,
              "a cut of the live log is reported while signerd keeps writing: %s" % out)
        live.execute("UPDATE audit SET reason = 'nothing happened' WHERE seq = 3")
        live.commit()
        live.close()
        code, out = verify(app, app.db)
        check(code == 1 and out.startswith("BROKEN at record 3:"), "an edit of the live log is reported: %s" % out)
    finally:
        app.stop()


def main():
    return run_module(__doc__, {"stopped": stopped, "running": running}, 3, "dkim-attack-db-")

if __name__ == "__main__":
    sys.exit(main())
