#!/usr/bin/python3
"""A compromised dkim-webd against the real dkim-signerd (SoftHSM2 token, its Unix socket;
issue 18, finding 3, and the red team's F2).

The attacker runs as the web peer's uid (user daemon, setpriv) and speaks signerd's protocol
through the real operator CLI, holding what webd sees at every console login: a user's
password and a fresh TOTP code. It tries to re-enrol an approver's confirmed TOTP (the
finding), to enrol or mint API tokens for other users (even with an admin's login under an
admin grant), to act without credentials as the local operator would, and to sign as the
relay. Each is refused, the approver's TOTP secret in the store is unchanged and keeps
working, and the same reset from the root CLI by an admin under an admin grant succeeds (the
refusal is about the peer, not the request).

Then the red team's two ways to an approver webd owns:
  [A] with an admin's login under an admin grant, add an approver with a password webd chose
      (then enrol and confirm its TOTP, and approve alone after the grant ends); also disable
      or re-enable users: user management is refused to the web peer, whoever's login it uses;
  [B] after a TOTP reset at the root CLI (a lost phone), re-enrol the user before they confirm
      the secret they were handed, and a new user's first enrolment: TOTP enrolment is
      refused to the web peer altogether; confirming needs a code of the secret only the user
      has, and works (also through the console) for that user.
Each refusal is on the audit log, naming whose login webd used.

usage: attack_webd.py DKIM_APPLIANCE DKIM_SIGNERD SOFTHSM2_MODULE
"""

import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signerd_daemon import DOMAIN, MESSAGE, Appliance  # noqa: E402
from testlib import FAILURES, check, summary  # noqa: E402

WEB_UID = "daemon"


class Webd:
    """The attacker: the CLI as the web peer's uid, with copies of the credentials webd saw."""

    def __init__(self, app, cli):
        self.app, self.cli = app, cli
        self.secrets = os.path.join(app.folder, "webd-saw")
        os.makedirs(self.secrets)
        user = pwd.getpwnam(WEB_UID)
        os.chown(self.secrets, user.pw_uid, user.pw_gid)
        self.uid, self.gid = user.pw_uid, user.pw_gid

    def saw_password(self, name):
        path = os.path.join(self.secrets, "pw-" + name)
        shutil.copy(os.path.join(self.app.folder, "pw-" + name), path)
        os.chown(path, self.uid, self.gid)
        os.chmod(path, 0o600)
        return path

    def run(self, *args, user=None, totp=None, stdin=None):
        extra = ["--socket", self.app.socket]
        if user:
            extra += ["--user", user, "--password-file", self.saw_password(user)]
        if totp is not None:
            extra += ["--totp-stdin"]
            stdin = (totp + "\n").encode()
        return subprocess.run(["setpriv", "--reuid=" + WEB_UID, "--regid=nogroup", "--clear-groups", self.cli]
                              + list(args) + extra, input=stdin, capture_output=True, env=self.app.env)


def totp_secret_in_store(app, name):
    db = sqlite3.connect("file:%s?mode=ro" % app.db, uri=True)
    row = db.execute("SELECT totp_secret, totp_confirmed FROM users WHERE name = ?", (name,)).fetchone()
    db.close()
    return row


def user_in_store(app, name):
    """The user's disabled flag in the store, or None when there is no such user."""
    db = sqlite3.connect("file:%s?mode=ro" % app.db, uri=True)
    row = db.execute("SELECT disabled FROM users WHERE name = ?", (name,)).fetchone()
    db.close()
    return None if row is None else row[0]


def refused(result, code="forbidden"):
    return result.returncode != 0 and (code.encode() + b":") in result.stderr


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    cli, signerd, module = sys.argv[1:]
    folder = tempfile.mkdtemp(prefix="dkim-attack-webd-")
    app = Appliance(folder, cli, signerd, module, web_peer=WEB_UID)
    try:
        app.start()
        app.add_users()  # alice requester; bob and carol approvers with confirmed TOTP
        app.secret_file("pw-erin", "erin-correct-horse")
        app.op("user", "add", "--name", "erin", "--roles", "admin,requester", "--new-password-file",
               os.path.join(folder, "pw-erin"), check=True)
        out = app.op("totp", "enrol", user="erin", check=True).stdout.decode()
        app.totp_secrets["erin"] = re.search(r"secret=([A-Z2-7]+)", out).group(1)
        app.cli("totp", "confirm", "--code", "-", "--socket", app.socket, "--user", "erin", "--password-file",
                os.path.join(folder, "pw-erin"), stdin=(app.totp("erin") + "\n").encode(), check=True)
        webd = Webd(app, cli)
        bob_before = totp_secret_in_store(app, "bob")

        # The peer is what it claims: the web uid is let in (status), as the web peer.
        check(webd.run("signerd", "status").returncode == 0, "the attacker speaks to signerd as the web peer")

        # 1. The finding: bob logs in at the console; webd re-enrols his TOTP with what it saw.
        again = webd.run("totp", "enrol", user="bob", totp=app.totp("bob"))
        check(refused(again) and b"otpauth://" not in again.stdout,
              "re-enrolling bob's confirmed TOTP through the web peer is refused: %s" % again.stderr.strip())
        check(totp_secret_in_store(app, "bob") == bob_before, "bob's TOTP secret in the store is unchanged")
        other = webd.run("totp", "enrol", "--for", "carol", user="bob", totp=app.totp("bob"))
        check(refused(other), "enrolling another user's TOTP through the web peer is refused: %s" % other.stderr.strip())

        # 2. Without credentials, the web peer is nobody (the local operator is the admin peer).
        for args in (("totp", "enrol", "--for", "bob"), ("user", "add", "--name", "mallory", "--roles", "admin"),
                     ("apitoken", "create", "--for", "bob", "--label", "x"), ("user", "list")):
            r = webd.run(*args)
            check(refused(r, "unauthenticated"), "%s without credentials from the web peer is refused: %s" % (
                " ".join(args[:2]), r.stderr.strip()))

        # 3. An admin under an admin grant logs in at the console: webd holds erin's password and
        # a fresh code. Tokens and enrolments for other users are still refused through it.
        out = app.op("elevation", "request", "--operation", "admin", "--domain", "*", "--duration", "30m",
                     "--reason", "CHG-18 reset a lost phone", user="erin", check=True).stdout.decode()
        request_id = re.search(r"request (\d+)", out).group(1)
        for approver in ("bob", "carol"):
            app.op("elevation", "approve", "--id", request_id, user=approver, totp=True, check=True)
        token = webd.run("apitoken", "create", "--for", "bob", "--label", "stolen", user="erin",
                         totp=app.totp("erin"))
        check(refused(token) and b"dkt_" not in token.stdout,
              "an API token for another user through the web peer is refused, even for an admin under "
              "an admin grant: %s" % token.stderr.strip())
        reset = webd.run("totp", "enrol", "--for", "bob", user="erin", totp=app.totp("erin"))
        check(refused(reset), "an admin's TOTP reset through the web peer is refused: %s" % reset.stderr.strip())
        check(totp_secret_in_store(app, "bob") == bob_before, "bob's TOTP secret is still unchanged")

        # 5. [A] erin's login under her admin grant: webd adds an approver with a password it
        # chose, and disables or re-enables users. Refused: user management is the CLI's only.
        mallory_pw = os.path.join(webd.secrets, "pw-mallory")
        with open(mallory_pw, "w") as f:
            f.write("mallory-webd-chose-this\n")
        os.chown(mallory_pw, webd.uid, webd.gid)
        os.chmod(mallory_pw, 0o600)
        added = webd.run("user", "add", "--name", "mallory", "--roles", "approver", "--new-password-file",
                         mallory_pw, user="erin")
        check(refused(added), "[A] adding an approver through the web peer with an admin's login under an admin "
              "grant is refused: %s" % added.stderr.strip())
        check(user_in_store(app, "mallory") is None, "[A] there is no user mallory")
        enrol_mallory = webd.run("totp", "enrol", "--for", "mallory", user="erin", totp=app.totp("erin"))
        check(refused(enrol_mallory) and b"otpauth://" not in enrol_mallory.stdout,
              "[A] nor can it enrol a TOTP for one: %s" % enrol_mallory.stderr.strip())
        disabled = webd.run("user", "disable", "--name", "carol", user="erin")
        check(refused(disabled) and user_in_store(app, "carol") == 0,
              "[A] disabling an approver through the web peer is refused: %s" % disabled.stderr.strip())
        app.op("user", "disable", "--name", "carol", check=True)
        enabled = webd.run("user", "enable", "--name", "carol", user="erin")
        check(refused(enabled) and user_in_store(app, "carol") == 1,
              "[A] re-enabling a disabled user through the web peer is refused: %s" % enabled.stderr.strip())
        app.op("user", "enable", "--name", "carol", check=True)
        log = app.op("audit", "show", "--limit", "10000", check=True).stdout.decode()
        check(all(re.search(r"erin\s.*%s\s.*refused.*from peer web" % action, log)
                  for action in ("user\\.add", "user\\.disable", "user\\.enable")),
              "[A] each refusal is on the audit log, naming erin's login and the web peer")

        # bob's second factor is still his: his code approves.
        out = app.op("elevation", "request", "--operation", "sign", "--domain", DOMAIN, "--selector", "rsa",
                     "--duration", "5m", "--reason", "CHG-19", user="alice", check=True).stdout.decode()
        sign_request = re.search(r"request (\d+)", out).group(1)
        approved = app.op("elevation", "approve", "--id", sign_request, user="bob", totp=True)
        check(approved.returncode == 0, "bob's own TOTP still approves: %s" % approved.stderr.strip())

        # 4. The web peer cannot sign (only the relay can), whatever grant is active.
        signed = subprocess.run(["setpriv", "--reuid=" + WEB_UID, "--regid=nogroup", "--clear-groups", cli, "sign",
                                 "--signerd", app.socket, "--domain", DOMAIN, "--selector", "rsa", "--algorithm",
                                 "rsa-sha256"], input=MESSAGE, capture_output=True, env=app.env)
        check(signed.returncode != 0 and b"forbidden" in signed.stderr,
              "the web peer cannot sign: %s" % signed.stderr.strip()[-160:])

        # The control: the same reset from the root CLI (the admin peer) by erin under her grant.
        control = app.op("totp", "enrol", "--for", "bob", user="erin", totp=True)
        check(control.returncode == 0 and b"otpauth://" in control.stdout,
              "the same reset from the root CLI by an admin under an admin grant works: %s" % control.stderr.strip())
        after = totp_secret_in_store(app, "bob")
        check(after[0] != bob_before[0] and after[1] == 0, "and it is the only change to bob's TOTP (unconfirmed)")
        log = app.cli("audit", "show", "--socket", app.socket, "--limit", "10000", check=False).stdout.decode()
        check(re.search(r"erin\s+totp\.enrol.*replaces a confirmed TOTP", log) is not None or
              "replaces a confirmed TOTP" in log, "the reset is on the audit log")

        # 6. [B] bob has not yet confirmed the secret he was handed; webd saw his password at a
        # login and enrols a TOTP of its own for him. Refused: no enrolment through the web peer.
        handed = re.search(r"secret=([A-Z2-7]+)", control.stdout.decode()).group(1)
        again = webd.run("totp", "enrol", user="bob")
        check(refused(again) and b"otpauth://" not in again.stdout,
              "[B] re-enrolling bob's pending TOTP through the web peer is refused: %s" % again.stderr.strip())
        check(totp_secret_in_store(app, "bob") == after, "[B] bob's pending secret is still the one he was handed")
        guessed = webd.run("totp", "confirm", "--code", "-", user="bob", stdin=b"000000\n")
        check(refused(guessed, "unauthenticated"), "[B] webd cannot confirm it without the secret: %s" %
              guessed.stderr.strip())
        app.totp_secrets["bob"] = handed
        confirmed = webd.run("totp", "confirm", "--code", "-", user="bob", stdin=(app.totp("bob") + "\n").encode())
        check(confirmed.returncode == 0 and totp_secret_in_store(app, "bob") == (after[0], 1),
              "[B] bob confirms the secret he was handed, also through the web peer: %s" % confirmed.stderr.strip())
        out = app.op("elevation", "request", "--operation", "sign", "--domain", DOMAIN, "--selector", "ed",
                     "--duration", "5m", "--reason", "CHG-21", user="alice", check=True).stdout.decode()
        sign_request = re.search(r"request (\d+)", out).group(1)
        approved = app.op("elevation", "approve", "--id", sign_request, user="bob", totp=True)
        check(approved.returncode == 0, "[B] and his new TOTP approves: %s" % approved.stderr.strip())
        # A new user's first enrolment: webd sees dave's password at his first console login.
        app.secret_file("pw-dave", "dave-correct-horse")
        app.op("user", "add", "--name", "dave", "--roles", "approver", "--new-password-file",
               os.path.join(folder, "pw-dave"), check=True)
        first = webd.run("totp", "enrol", user="dave")
        check(refused(first) and not totp_secret_in_store(app, "dave")[0],
              "[B] a new user's first TOTP enrolment through the web peer is refused: %s" % first.stderr.strip())
        at_cli = app.op("totp", "enrol", user="dave")
        check(at_cli.returncode == 0 and b"otpauth://" in at_cli.stdout,
              "[B] dave enrols at the root CLI: %s" % at_cli.stderr.strip())
        log = app.op("audit", "show", "--limit", "10000", check=True).stdout.decode()
        check(re.search(r"bob\s.*totp\.enrol\s.*refused.*from peer web", log) is not None and
              re.search(r"dave\s.*totp\.enrol\s.*refused.*from peer web", log) is not None,
              "[B] the refusals are on the audit log, naming bob's and dave's logins")
    finally:
        app.stop()
        if FAILURES:
            path = os.path.join(folder, "signerd.log")
            if os.path.exists(path):
                print("--- signerd.log\n" + open(path, errors="replace").read()[-4000:])
        shutil.rmtree(folder, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
