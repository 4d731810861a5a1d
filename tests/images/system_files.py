"""The appliance's system integration files under images/, checked with the tools that will
read them on the appliance:

  units     systemd-analyze security --offline=yes scores every unit (dkim-signerd and
            dkim-reportd at most 0.5, dkim-relayd, dkim-webd, dkim-notifyd and dkim-reports-fetch
            at most 1.5) and
            systemd-analyze verify reads them
  users     systemd-sysusers and systemd-tmpfiles create the users, groups and folders in an
            empty root folder
  firewall  nft -c -f accepts the ruleset, and loaded into a network namespace of the test's
            own it drops by default: a client namespace reaches 25, 587 and 443 and nothing else;
            out, SMTP reaches only the next hop, HTTPS only the webhook, from dkim-notifyd's uid,
            and IMAP only the report mailbox's host, from dkim-fetch's uid

usage: system_files.py GROUP IMAGES_DIR
"""

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from testlib import check, summary  # noqa: E402

LIMITS = {"dkim-signerd.service": 0.5, "dkim-relayd.service": 1.5, "dkim-webd.service": 1.5,
          "dkim-notifyd.service": 1.5, "dkim-reportd.service": 0.5,
          "dkim-reports-fetch.service": 1.5}


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def units(images):
    folder = os.path.join(images, "systemd")
    for unit, limit in sorted(LIMITS.items()):
        path = os.path.join(folder, unit)
        shown = run("systemd-analyze", "security", "--offline=yes", "--no-pager", path)
        m = re.search(r"Overall exposure level for %s: ([0-9.]+)" % re.escape(unit), shown.stdout)
        score = float(m.group(1)) if m else None
        print("  %s: exposure %s (limit %.1f)" % (unit, score, limit))
        # The tool's own comparison, on its 0-100 scale (exit status 1 above the threshold).
        within = run("systemd-analyze", "security", "--offline=yes", "--no-pager",
                     "--threshold=%d" % round(limit * 10), path)
        check(score is not None and score <= limit and within.returncode == 0,
              "%s scores %s, at most %.1f" % (unit, score, limit))
        if score is None or within.returncode != 0:
            print(shown.stdout[-3000:] + shown.stderr[-1000:])
        # A unit's weaker settings would show here: a unit that dropped them must not pass.
        weaker = os.path.join(tempfile.mkdtemp(), unit)
        with open(path) as f:
            text = f.read()
        with open(weaker, "w") as f:
            f.write(re.sub(r"^(ProtectSystem|NoNewPrivileges|SystemCallFilter|CapabilityBoundingSet)=.*\n",
                           "", text, flags=re.M))
        worse = run("systemd-analyze", "security", "--offline=yes", "--no-pager",
                    "--threshold=%d" % round(limit * 10), weaker)
        check(worse.returncode != 0, "%s without its hardening lines fails the same threshold" % unit)
    text = open(os.path.join(folder, "dkim-signerd.service")).read()
    for line in ("PrivateNetwork=yes", "RestrictAddressFamilies=AF_UNIX", "IPAddressDeny=any",
                 "CapabilityBoundingSet=\n", "Type=notify", "WatchdogSec=",
                 "LoadCredentialEncrypted=pin:", "UMask=0077"):
        check(line in text, "dkim-signerd.service has %s" % line.strip())
    check("ReadWritePaths=-/var/spool/dkim-notify\n" in text and "AF_INET" not in text,
          "dkim-signerd may write the webhook outbox and still has no network family")
    notifyd = open(os.path.join(folder, "dkim-notifyd.service")).read()
    check("User=dkim-notify\n" in notifyd and "SupplementaryGroups" not in notifyd and
          "LoadCredential=webhook-key:" in notifyd and "ReadWritePaths=/var/spool/dkim-notify\n" in notifyd
          and "CapabilityBoundingSet=\n" in notifyd,
          "dkim-notifyd: its own user, no group of signerd's, the HMAC key as a credential, the outbox")
    # dkim-reportd parses what anyone may send: no network, its own user, signerd's group only to
    # read the signing summary, a store of bounded size, ordered after signerd (stopped before it).
    reportd = open(os.path.join(folder, "dkim-reportd.service")).read()
    for line in ("PrivateNetwork=yes\n", "RestrictAddressFamilies=AF_UNIX\n", "IPAddressDeny=any\n",
                 "CapabilityBoundingSet=\n", "Type=notify\n", "WatchdogSec=", "User=dkim-report\n",
                 "SupplementaryGroups=dkim-signer\n", "StateDirectory=dkim-reports\n",
                 "RuntimeDirectory=dkim-appliance\n", "After=dkim-signerd.service\n", "MemoryMax=",
                 "TasksMax=", "LimitFSIZE=", "NoNewPrivileges=yes\n", "ProtectSystem=strict\n",
                 "SystemCallFilter=@system-service\n", "UMask=0077\n"):
        check(line in reportd, "dkim-reportd.service has %s" % line.strip())
    settings = "".join(l for l in reportd.splitlines(True) if not l.startswith("#"))
    check("AF_INET" not in settings and "PrivateUsers" not in settings and "ReadWritePaths" not in settings,
          "dkim-reportd has no network family, keeps the peers' uids (no PrivateUsers=) and writes only its own folders")
    target = open(os.path.join(folder, "dkim-appliance.target")).read()
    check("dkim-reportd.service" in target, "dkim-appliance.target wants dkim-reportd")
    fetch = open(os.path.join(folder, "dkim-reports-fetch.service")).read()
    check("User=dkim-fetch\n" in fetch and "SupplementaryGroups=dkim-report\n" in fetch and
          "dkim-signer" not in fetch and
          "LoadCredential=imap-password:/etc/dkim-appliance/credentials/imap-password\n" in fetch and
          "--password-file %d/imap-password" in fetch and "[Install]" not in fetch,
          "dkim-reports-fetch: its own user, reportd's group only, the password as a credential, "
          "enabled only through its timer")
    timer = open(os.path.join(folder, "dkim-reports-fetch.timer")).read()
    check("WantedBy=timers.target" in timer and "dkim-appliance.target" not in timer,
          "dkim-reports-fetch.timer is not part of dkim-appliance.target (disabled by default)")
    relayd = open(os.path.join(folder, "dkim-relayd.service")).read()
    check("CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in relayd,
          "dkim-relayd keeps only CAP_NET_BIND_SERVICE")
    check(all("SupplementaryGroups=dkim-signer dkim-report\n" in open(os.path.join(folder, u)).read()
              for u in ("dkim-relayd.service", "dkim-webd.service")),
          "dkim-relayd and dkim-webd reach reportd's socket through the dkim-report group")
    webd = open(os.path.join(folder, "dkim-webd.service")).read()
    check("CapabilityBoundingSet=\n" in webd and "ListenStream=443" in
          open(os.path.join(folder, "dkim-webd.socket")).read(),
          "dkim-webd has no capability; dkim-webd.socket binds 443 for it")
    # systemd-analyze verify: the syntax and references of every unit, with stand-in
    # executables at the ExecStart= paths (the real ones are checked in the package test).
    root = tempfile.mkdtemp()
    try:
        for d in ("usr/sbin", "etc/systemd/system"):
            os.makedirs(os.path.join(root, d))
        os.makedirs(os.path.join(root, "usr/libexec/dkim-appliance"))
        for daemon in ("usr/sbin/dkim-signerd", "usr/sbin/dkim-relayd", "usr/sbin/dkim-webd",
                       "usr/sbin/dkim-notifyd", "usr/sbin/dkim-reportd", "usr/sbin/dkim-appliance",
                       "usr/libexec/dkim-appliance/dkim-appliance-firstboot",
                       "usr/libexec/dkim-appliance/dkim-appliance-welcome"):
            exe = os.path.join(root, daemon)
            with open(exe, "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(exe, 0o755)
        for name in os.listdir(folder):
            shutil.copy(os.path.join(folder, name), os.path.join(root, "etc/systemd/system", name))
        verified = run("systemd-analyze", "verify", "--man=no", "--root=" + root,
                       *sorted("/etc/systemd/system/" + n for n in os.listdir(folder)))
        # Complaints about a file name a file and line; the stand-in root has no sysinit.target,
        # which verify also reports, without one.
        problems = [l for l in (verified.stdout + verified.stderr).splitlines()
                    if re.search(r"\.(service|socket|target|timer):\d+:", l)]
        check(not problems, "systemd-analyze verify finds nothing in the units%s" %
              ("" if not problems else ": " + "; ".join(problems[:5])))
    finally:
        shutil.rmtree(root)


def users(images):
    root = tempfile.mkdtemp()
    try:
        os.makedirs(os.path.join(root, "etc"))
        for name in ("passwd", "group", "shadow", "gshadow"):
            open(os.path.join(root, "etc", name), "w").close()
        made = run("systemd-sysusers", "--root=" + root,
                   os.path.join(images, "sysusers.d", "dkim-appliance.conf"))
        check(made.returncode == 0, "systemd-sysusers reads sysusers.d/dkim-appliance.conf")
        passwd = {l.split(":")[0]: l.split(":") for l in open(os.path.join(root, "etc/passwd"))}
        for user in ("dkim-signer", "dkim-relay", "dkim-web", "dkim-notify", "dkim-report",
                     "dkim-fetch"):
            check(user in passwd and passwd[user][6].strip() == "/usr/sbin/nologin" and
                  int(passwd[user][2]) < 1000, "system user %s, no login shell" % user)
        check(len({passwd[u][2] for u in passwd}) == len(passwd), "one uid per daemon")
        made = run("systemd-tmpfiles", "--create", "--root=" + root,
                   os.path.join(images, "tmpfiles.d", "dkim-appliance.conf"))
        check(made.returncode == 0, "systemd-tmpfiles creates the folders (%s)" % made.stderr.strip())
        signer_uid = int(passwd["dkim-signer"][2])
        for path, mode, uid in (("etc/dkim-appliance/credentials", 0o700, 0),
                                ("var/lib/dkim-signerd", 0o700, signer_uid),
                                ("var/lib/dkim-signerd/tokens", 0o700, signer_uid),
                                ("var/lib/dkim-reports", 0o700, int(passwd["dkim-report"][2])),
                                ("var/spool/dkim-notify", 0o2770, signer_uid)):
            st = os.stat(os.path.join(root, path))
            check(stat.S_IMODE(st.st_mode) == mode and st.st_uid == uid,
                  "/%s is %o, owned by uid %d" % (path, mode, uid))
        groups = {l.split(":")[0]: l.split(":") for l in open(os.path.join(root, "etc/group"))}
        outbox = os.stat(os.path.join(root, "var/spool/dkim-notify"))
        check(outbox.st_gid == int(groups["dkim-notify"][2]) and
              "dkim-notify" not in groups["dkim-signer"][3] and "dkim-signer" not in groups["dkim-notify"][3],
              "the webhook outbox's group is dkim-notify; neither daemon is in the other's group")
    finally:
        shutil.rmtree(root)


def in_netns(name, *cmd, **kw):
    return run("ip", "netns", "exec", name, *cmd, **kw)


def firewall(images):
    ruleset = os.path.join(images, "nftables", "dkim-appliance.nft")
    checked = run("unshare", "-n", "nft", "-c", "-f", ruleset)
    check(checked.returncode == 0, "nft -c -f accepts the ruleset (%s)" % checked.stderr.strip())
    broken = tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False)
    broken.write(open(ruleset).read().replace("policy drop;", "policy dropp;", 1))
    broken.close()
    check(run("unshare", "-n", "nft", "-c", "-f", broken.name).returncode != 0,
          "nft -c -f refuses a broken copy (the check can fail)")
    os.unlink(broken.name)

    # Two namespaces of the test's own joined by a veth pair: "appliance" with the ruleset,
    # "client" connecting to it.
    tag = "dkfw%d" % os.getpid()
    app, client = tag + "a", tag + "c"
    try:
        for ns in (app, client):
            run("ip", "netns", "add", ns)
        run("ip", "link", "add", tag + "x", "netns", app, "type", "veth", "peer", "name",
            tag + "y", "netns", client)
        in_netns(app, "ip", "addr", "add", "10.231.0.1/24", "dev", tag + "x")
        in_netns(client, "ip", "addr", "add", "10.231.0.2/24", "dev", tag + "y")
        for ns, dev in ((app, tag + "x"), (client, tag + "y")):
            in_netns(ns, "ip", "link", "set", dev, "up")
            in_netns(ns, "ip", "link", "set", "lo", "up")
        loaded = in_netns(app, "nft", "-f", ruleset)
        check(loaded.returncode == 0, "the ruleset loads in a network namespace (%s)" % loaded.stderr.strip())
        listed = in_netns(app, "nft", "list", "table", "inet", "dkim_appliance").stdout
        check(listed.count("policy drop;") == 3, "input, forward and output chains drop by default")
        # Loading it again replaces the table rather than adding a second copy of the rules.
        in_netns(app, "nft", "-f", ruleset)
        again = in_netns(app, "nft", "list", "table", "inet", "dkim_appliance").stdout
        check(again == listed, "loading the ruleset twice gives the same rules")

        ports = (25, 587, 443, 8443, 22, 2525, 8891)
        servers = [subprocess.Popen(
            ["ip", "netns", "exec", app, "/usr/bin/python3", "-c",
             "import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
             "s.bind(('10.231.0.1',%d));s.listen(8)\nprint('up',flush=True)\n"
             "while True:\n c,_=s.accept();c.close()" % p], stdout=subprocess.PIPE, text=True)
            for p in ports]
        for s in servers:
            s.stdout.readline()
        probe = ("import socket,sys\nr=[]\nfor p in %r:\n s=socket.socket();s.settimeout(1.5)\n"
                 " try:\n  s.connect(('10.231.0.1',p));r.append(str(p))\n except Exception:\n  pass\n"
                 "print(' '.join(r))" % (ports,))
        reached = in_netns(client, "/usr/bin/python3", "-c", probe).stdout.split()
        check(reached == ["25", "587", "443"], "from outside only 25, 587 and 443 answer (%s)" % reached)
        # The milter port (8891) answers only the MTAs the operator lists (mta_v4).
        in_netns(app, "nft", "add", "element", "inet", "dkim_appliance", "mta_v4", "{ 10.231.0.2 }")
        reached = in_netns(client, "/usr/bin/python3", "-c", probe).stdout.split()
        check(reached == ["25", "587", "443", "8891"], "a listed MTA reaches the milter port too (%s)" % reached)
        # Out: SMTP to an address outside next_hop_v4 is dropped; once the operator lists it,
        # it goes through (the client namespace plays the next hop, on port 25).
        out = ("import socket\ns=socket.socket();s.settimeout(1.5)\ntry:\n s.connect(('10.231.0.2',25));print('yes')\n"
               "except Exception:\n print('no')")
        sink = subprocess.Popen(
            ["ip", "netns", "exec", client, "/usr/bin/python3", "-c",
             "import socket\ns=socket.socket();s.bind(('10.231.0.2',25));s.listen(8)\nprint('up',flush=True)\n"
             "while True:\n c,_=s.accept();c.close()"], stdout=subprocess.PIPE, text=True)
        sink.stdout.readline()
        check(in_netns(app, "/usr/bin/python3", "-c", out).stdout.strip() == "no",
              "SMTP out to a host that is not the next hop is dropped")
        in_netns(app, "nft", "add", "element", "inet", "dkim_appliance", "next_hop_v4", "{ 10.231.0.2 }")
        check(in_netns(app, "/usr/bin/python3", "-c", out).stdout.strip() == "yes",
              "SMTP out to the listed next hop goes through")
        # Out: HTTPS to the webhook only from dkim-notifyd's uid (notifier_uid, here daemon's)
        # and only to a listed address (the client namespace plays the webhook on 443).
        hook = subprocess.Popen(
            ["ip", "netns", "exec", client, "/usr/bin/python3", "-c",
             "import socket\ns=socket.socket();s.bind(('10.231.0.2',443));s.listen(8)\nprint('up',flush=True)\n"
             "while True:\n c,_=s.accept();c.close()"], stdout=subprocess.PIPE, text=True)
        hook.stdout.readline()
        https = out.replace("25", "443")

        def https_as(user):
            return run("ip", "netns", "exec", app, "setpriv", "--reuid=" + user, "--regid=nogroup",
                       "--clear-groups", "/usr/bin/python3", "-c", https).stdout.strip()
        check(https_as("daemon") == "no", "HTTPS out to an unlisted host is dropped")
        in_netns(app, "nft", "add", "element", "inet", "dkim_appliance", "webhook_v4", "{ 10.231.0.2 }")
        check(https_as("daemon") == "no", "HTTPS to the webhook's host from another uid is dropped")
        daemon_uid = run("id", "-u", "daemon").stdout.strip()
        in_netns(app, "nft", "add", "element", "inet", "dkim_appliance", "notifier_uid", "{ %s }" % daemon_uid)
        check(https_as("daemon") == "yes", "HTTPS to the webhook's host from the notifier's uid goes through")
        check(https_as("nobody") == "no", "and from any other uid (nobody) it is still dropped")
        # Out: IMAP (993) to the report mailbox's host only from dkim-fetch's uid (fetcher_uid,
        # here bin's) and only to a listed address (the client namespace plays the IMAP host).
        imap = subprocess.Popen(
            ["ip", "netns", "exec", client, "/usr/bin/python3", "-c",
             "import socket\ns=socket.socket();s.bind(('10.231.0.2',993));s.listen(8)\nprint('up',flush=True)\n"
             "while True:\n c,_=s.accept();c.close()"], stdout=subprocess.PIPE, text=True)
        imap.stdout.readline()
        imaps = out.replace("25", "993")

        def imap_as(user):
            return run("ip", "netns", "exec", app, "setpriv", "--reuid=" + user, "--regid=nogroup",
                       "--clear-groups", "/usr/bin/python3", "-c", imaps).stdout.strip()
        bin_uid = run("id", "-u", "bin").stdout.strip()
        in_netns(app, "nft", "add", "element", "inet", "dkim_appliance", "fetcher_uid", "{ %s }" % bin_uid)
        check(imap_as("bin") == "no", "IMAP out to an unlisted host is dropped, also for the fetcher")
        in_netns(app, "nft", "add", "element", "inet", "dkim_appliance", "imap_v4", "{ 10.231.0.2 }")
        check(imap_as("bin") == "yes", "IMAP to the listed mailbox host from the fetcher's uid goes through")
        check(imap_as("daemon") == "no" and imap_as("nobody") == "no",
              "and from any other uid (the notifier's, nobody) it is dropped")
        check(https_as("bin") == "no", "the fetcher's uid does not reach the webhook's host")
        for s in servers + [sink, hook, imap]:
            s.kill()
            s.wait()
    finally:
        for ns in (app, client):
            run("ip", "netns", "del", ns)


def socket_activation(images, webd):
    """dkim-webd.socket's way: the port is bound by the service manager (here
    systemd-socket-activate, the same LISTEN_FDS protocol) and webd serves on it without
    binding anything itself."""
    from testlib import free_port
    folder = tempfile.mkdtemp()
    try:
        config = os.path.join(folder, "webd.toml")
        with open(config, "w") as f:
            # An address webd could not bind (port 1, not root below): only the passed socket works.
            f.write('listen = "127.0.0.1:1"\nself_signed = true\nstate_dir = "%s"\n'
                    'signerd_socket = "%s/none.sock"\n' % (folder, folder))
        port = free_port()
        log = open(os.path.join(folder, "log"), "w+")
        os.chmod(folder, 0o777)
        proc = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                 "systemd-socket-activate", "-l", "127.0.0.1:%d" % port, webd, "--config", config],
                                stdout=log, stderr=log)
        answer = b""
        for _ in range(50):
            try:
                import ssl
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
                    tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    while True:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        answer += chunk
                break
            except OSError:
                time.sleep(0.2)
        proc.terminate()
        proc.wait(timeout=10)
        log.seek(0)
        text = log.read()
        check(answer.startswith(b"HTTP/1.1 ") and b"signerd" in answer,
              "webd, as nobody, answers HTTPS on the socket it was passed (%r)" % answer[:40])
        check("listening on https://127.0.0.1:%d/" % port in text, "and reports that port as its own")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    group, images = sys.argv[1], os.path.abspath(sys.argv[2])
    if group == "socket-activation":
        socket_activation(images, sys.argv[3])
        return summary()
    {"units": units, "users": users, "firewall": firewall}[group](images)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
