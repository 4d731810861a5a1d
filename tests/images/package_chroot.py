"""The Debian package, installed the way an operator installs it, into a Debian 12 folder made
by debootstrap (tests/images/prepare-chroot), under chroot:

  - cpack builds dkim-appliance_VERSION_amd64.deb from this build folder: its control fields
    and its files (binaries, units, sysusers/tmpfiles, templates, first-boot scripts, man pages)
  - dpkg -i installs it with no network: the dependencies are satisfied by the folder, the
    maintainer scripts create the users and folders, and nothing is started or enabled
  - the binaries run there: --help, their man pages, the first-boot step (a SoftHSM2 token,
    the PIN sealed with systemd-creds, a certificate), each daemon's --check-config on the
    packaged configuration, then dkim-signerd itself with the credential systemd would pass,
    answering the CLI, and the welcome step making the first admin
  - dpkg -r and --purge: the binaries and /etc/dkim-appliance go, the token and audit log stay

usage: package_chroot.py BUILD_DIR CHROOT_BASE
"""

import glob
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from testlib import check, summary  # noqa: E402


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


class Chroot:
    def __init__(self, base, root):
        self.root = root
        # A copy of the prepared folder, so that every run starts from the same one.
        subprocess.run(["cp", "-a", "--reflink=auto", base, root], check=True)
        os.makedirs(os.path.join(root, "proc"), exist_ok=True)
        subprocess.run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")], check=True)
        self.mounted = True

    def __call__(self, *cmd, env=None):
        full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        full_env.update(env or {})
        return subprocess.run(["chroot", self.root, *cmd], capture_output=True, text=True, env=full_env)

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def processes(self):
        """pids of processes whose root is this folder."""
        out = []
        for link in glob.glob("/proc/[0-9]*/root"):
            try:
                if os.path.realpath(link) == os.path.realpath(self.root):
                    out.append(int(link.split("/")[2]))
            except OSError:
                pass
        return out

    def close(self):
        for pid in self.processes():
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        if self.mounted:
            subprocess.run(["umount", "-l", self.path("/proc")])
        shutil.rmtree(self.root, ignore_errors=True)


def build_package(build, out):
    made = run("cpack", "--config", os.path.join(build, "CPackConfig.cmake"), "-G", "DEB", "-B", out)
    debs = glob.glob(os.path.join(out, "dkim-appliance_*_amd64.deb"))
    check(made.returncode == 0 and len(debs) == 1,
          "cpack makes dkim-appliance_VERSION_amd64.deb (%s)" % (made.stderr.strip()[-300:] or os.path.basename(debs[0])))
    if not debs:
        print(made.stdout[-2000:])
        return None
    deb = debs[0]
    fields = run("dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends").stdout
    check("Architecture: amd64" in fields and "systemd" in fields and "libssl3" in fields and "softhsm2" in fields,
          "its control file: amd64, Depends on systemd, libssl3 and a token module")
    files = run("dpkg-deb", "-c", deb).stdout
    for f in ("./usr/sbin/dkim-appliance", "./usr/sbin/dkim-signerd", "./usr/sbin/dkim-relayd", "./usr/sbin/dkim-webd",
              "./usr/sbin/dkim-reportd", "./usr/lib/systemd/system/dkim-reportd.service",
              "./usr/share/dkim-appliance/config/reportd.toml", "./usr/share/man/man8/dkim-reportd.8.gz",
              "./usr/lib/systemd/system/dkim-signerd.service", "./usr/lib/systemd/system/dkim-webd.socket",
              "./usr/lib/systemd/system/dkim-appliance.target", "./usr/lib/sysusers.d/dkim-appliance.conf",
              "./usr/lib/tmpfiles.d/dkim-appliance.conf", "./usr/share/dkim-appliance/config/signerd.toml",
              "./usr/share/dkim-appliance/nftables/dkim-appliance.nft",
              "./usr/libexec/dkim-appliance/dkim-appliance-firstboot",
              "./usr/share/man/man8/dkim-signerd.8.gz"):
        check(f in files, "the package holds %s" % f[1:])
    control = run("dpkg-deb", "-I", deb).stdout
    check(all(s in control for s in ("postinst", "prerm", "postrm")), "with its maintainer scripts")
    return deb


def main():
    build, base = sys.argv[1], sys.argv[2]
    if not os.path.exists(os.path.join(base, ".complete")):
        check(False, "a prepared Debian 12 folder at %s (tests/images/prepare-chroot %s)" % (base, base))
        return summary()
    scratch = tempfile.mkdtemp(prefix="package-chroot-")
    chroot = None
    try:
        deb = build_package(build, scratch)
        if deb is None:
            return summary()
        chroot = Chroot(base, os.path.join(scratch, "root"))
        shutil.copy(deb, chroot.path("/tmp/dkim-appliance.deb"))
        installed = chroot("dpkg", "-i", "/tmp/dkim-appliance.deb")
        check(installed.returncode == 0, "dpkg -i installs it with the folder's packages alone (%s)" %
              (installed.stderr.strip()[-500:]))
        print(installed.stdout[-1500:])
        passwd = {l.split(":")[0]: l.strip().split(":") for l in open(chroot.path("/etc/passwd"))}
        for user in ("dkim-signer", "dkim-relay", "dkim-web", "dkim-report"):
            check(user in passwd and passwd[user][6] == "/usr/sbin/nologin", "postinst made the system user %s" % user)
        for path, mode, user in (("/var/lib/dkim-signerd", 0o700, "dkim-signer"),
                                 ("/var/lib/dkim-reports", 0o700, "dkim-report"),
                                 ("/etc/dkim-appliance/credentials", 0o700, "root")):
            st = os.stat(chroot.path(path)) if os.path.exists(chroot.path(path)) else None
            uid = int(passwd.get(user, ["", "", "0"])[2]) if user != "root" else 0
            check(st is not None and stat.S_IMODE(st.st_mode) == mode and st.st_uid == uid,
                  "postinst made %s (%o, %s)" % (path, mode, user))
        wants = glob.glob(chroot.path("/etc/systemd/system/*.wants/dkim-*"))
        check(not wants, "nothing is enabled by the package (%s)" % wants)
        check(not chroot.processes(), "nothing is started by the package")
        check("systemctl enable --now dkim-appliance.target" in installed.stdout,
              "postinst says how to make the machine an appliance")

        for exe in ("dkim-appliance", "dkim-signerd", "dkim-relayd", "dkim-webd", "dkim-reportd"):
            helped = chroot(exe, "--help")
            check(helped.returncode == 0 and "--config" in helped.stdout + helped.stderr or exe == "dkim-appliance" and helped.returncode == 0,
                  "%s --help runs in the Debian 12 folder" % exe)
            page = chroot("man", "-P", "cat", exe)
            check(page.returncode == 0 and exe in page.stdout, "man %s shows its page" % exe)

        first = chroot("/usr/libexec/dkim-appliance/dkim-appliance-firstboot")
        check(first.returncode == 0, "the first-boot step runs (%s)" % (first.stdout + first.stderr).strip()[-600:])
        for f, mode in (("/etc/dkim-appliance/credentials/signerd-pin.cred", 0o600),
                        ("/etc/dkim-appliance/tls/webd.key", 0o600), ("/etc/dkim-appliance/signerd.toml", 0o644)):
            ok = os.path.exists(chroot.path(f)) and stat.S_IMODE(os.stat(chroot.path(f)).st_mode) == mode
            check(ok, "first boot made %s (%o)" % (f, mode))
        cred = open(chroot.path("/etc/dkim-appliance/credentials/signerd-pin.cred"), "rb").read() \
            if os.path.exists(chroot.path("/etc/dkim-appliance/credentials/signerd-pin.cred")) else b""
        check(len(cred) > 0 and not cred.strip().isalnum(), "the PIN credential is sealed, not the PIN in clear")
        again = chroot("/usr/libexec/dkim-appliance/dkim-appliance-firstboot")
        check(again.returncode == 0 and "initialised" not in again.stdout,
              "running the first-boot step again changes nothing")
        for daemon in ("signerd", "relayd", "webd", "reportd"):
            checked = chroot("dkim-" + daemon, "--config", "/etc/dkim-appliance/%s.toml" % daemon, "--check-config")
            check(checked.returncode == 0, "dkim-%s --check-config accepts the packaged configuration (%s)" %
                  (daemon, (checked.stdout + checked.stderr).strip()))

        # dkim-signerd as its unit would run it: as dkim-signer, the PIN from the credential
        # that systemd decrypts into $CREDENTIALS_DIRECTORY.
        creds = "/run/credentials/dkim-signerd.service"
        os.makedirs(chroot.path(creds), exist_ok=True)
        decrypted = chroot("systemd-creds", "decrypt", "--name=pin",
                           "/etc/dkim-appliance/credentials/signerd-pin.cred", creds + "/pin")
        check(decrypted.returncode == 0, "systemd-creds decrypts the PIN credential (%s)" % decrypted.stderr.strip())
        signer = passwd["dkim-signer"]
        os.chown(chroot.path(creds + "/pin"), int(signer[2]), int(signer[3]))
        os.chmod(chroot.path(creds + "/pin"), 0o400)
        os.makedirs(chroot.path("/run/dkim-signerd"), exist_ok=True)
        os.chown(chroot.path("/run/dkim-signerd"), int(signer[2]), int(signer[3]))
        log = open(os.path.join(scratch, "signerd.log"), "w")
        daemon = subprocess.Popen(
            ["chroot", "--userspec=dkim-signer:dkim-signer", chroot.root, "dkim-signerd", "--config",
             "/etc/dkim-appliance/signerd.toml"], stdout=log, stderr=log,
            env={"PATH": "/usr/sbin:/usr/bin", "CREDENTIALS_DIRECTORY": creds,
                 "SOFTHSM2_CONF": "/etc/dkim-appliance/softhsm2.conf"})
        for _ in range(100):
            if os.path.exists(chroot.path("/run/dkim-signerd/signerd.sock")) or daemon.poll() is not None:
                break
            time.sleep(0.1)
        status = chroot("dkim-appliance", "signerd", "status")
        check(status.returncode == 0, "the packaged dkim-signerd serves the CLI (%s)" %
              (status.stdout + status.stderr + open(log.name).read()).strip()[-500:])
        welcome = chroot("/usr/libexec/dkim-appliance/dkim-appliance-welcome")
        users = chroot("dkim-appliance", "user", "list")
        admin_file = chroot.path("/root/dkim-appliance-admin.txt")
        check(welcome.returncode == 0 and users.stdout.startswith("admin\t") and
              os.path.exists(admin_file) and stat.S_IMODE(os.stat(admin_file).st_mode) == 0o600,
              "the welcome step makes the first admin, its password in a root-only file (%s)" %
              (welcome.stdout + welcome.stderr).strip()[-300:])
        check("password" not in welcome.stdout.lower().replace("password in", ""),
              "and prints where the password is, not the password")
        daemon.terminate()
        check(daemon.wait(timeout=30) == 0, "dkim-signerd stops cleanly on SIGTERM")

        removed = chroot("dpkg", "-r", "dkim-appliance")
        check(removed.returncode == 0 and not os.path.exists(chroot.path("/usr/sbin/dkim-signerd")),
              "dpkg -r removes the binaries (%s)" % removed.stderr.strip()[-300:])
        purged = chroot("dpkg", "--purge", "dkim-appliance")
        check(purged.returncode == 0 and not os.path.exists(chroot.path("/etc/dkim-appliance")),
              "dpkg --purge removes /etc/dkim-appliance")
        check(os.path.exists(chroot.path("/var/lib/dkim-signerd/signerd.db")) and
              os.listdir(chroot.path("/var/lib/dkim-signerd/tokens")),
              "and keeps the token and the audit log")
    finally:
        if chroot is not None:
            chroot.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
