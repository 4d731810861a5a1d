"""A private Postfix instance for tests and benchmarks: its own main.cf and master.cf, queue and
data folders under a folder of the caller's, started and stopped here. It never touches the
system's Postfix (/etc/postfix is only read for its shared tables' defaults), listens on
127.0.0.1 only and relays everything to `relayhost` (an smtp-sink). Needs root (Postfix starts
as root and drops to the postfix user).

  PostfixInstance(folder, relayhost_port, milters="inet:127.0.0.1:8891")
      smtpd on a free port (.port) and sendmail(1) submissions (.sendmail()) both through the
      milters; .log() is its maillog; .stop().
"""

import os
import shutil
import socket
import subprocess
import time

from testlib import free_port


def wait_port(port, proc=None, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError("process exited before listening on %d" % port)
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


class PostfixInstance:
    def __init__(self, folder, relayhost_port, milters=None, non_smtpd_milters=None, extra=(),
                 name="postfix", retry_seconds=None):
        """`milters`: smtpd_milters (and non_smtpd_milters unless given apart); `extra`: more
        main.cf lines; `retry_seconds`: how soon deferred mail and the maildrop are tried again
        (tests of mail Postfix keeps), else Postfix's defaults."""
        self.folder = folder
        self.port = free_port()
        self.config = os.path.join(folder, name)
        os.makedirs(self.config)
        queue = os.path.join(folder, name + "-queue")
        os.makedirs(queue)
        data = os.path.join(folder, name + "-data")
        os.makedirs(data)
        shutil.chown(data, "postfix", "postfix")
        self.maillog = os.path.join(folder, name + ".log")
        lines = [
            "compatibility_level = 3.6", "queue_directory = " + queue, "data_directory = " + data,
            "mail_owner = postfix", "setgid_group = postdrop", "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4", "myhostname = postfix.test", "mydomain = postfix.test", "mydestination =",
            "relayhost = [127.0.0.1]:%d" % relayhost_port, "mynetworks = 127.0.0.0/8",
            "smtpd_relay_restrictions = permit_mynetworks, reject", "alias_maps =", "alias_database =",
            "local_recipient_maps =", "maillog_file = " + self.maillog,
            # Postfix writes a maillog_file only below these (default: /var, /dev/stdout).
            "maillog_file_prefixes = " + folder,
            "default_process_limit = 200", "smtp_destination_concurrency_limit = 100",
            "default_destination_concurrency_limit = 100", "smtp_tls_security_level = none",
            "smtpd_tls_security_level = none", "smtpd_client_connection_count_limit = 0",
            "smtpd_client_connection_rate_limit = 0", "smtpd_client_message_rate_limit = 0",
            "biff = no", "shlib_directory = /usr/lib/postfix", "daemon_directory = /usr/lib/postfix/sbin",
            "command_directory = /usr/sbin", "meta_directory = /etc/postfix",
        ]
        if milters:
            lines += ["smtpd_milters = " + milters,
                      "non_smtpd_milters = " + (non_smtpd_milters if non_smtpd_milters is not None else milters),
                      "milter_default_action = tempfail", "milter_protocol = 6"]
        if retry_seconds:
            lines += ["queue_run_delay = %ds" % retry_seconds, "minimal_backoff_time = %ds" % retry_seconds,
                      "maximal_backoff_time = %ds" % retry_seconds]
        lines += list(extra)
        with open(os.path.join(self.config, "main.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        # pickup looks at the maildrop every `retry_seconds` (mail a milter deferred stays there).
        pickup_wakeup = str(retry_seconds) if retry_seconds else "60"
        services = [
            ("127.0.0.1:%d" % self.port, "inet", "n", "-", "-", "smtpd"),
            ("pickup", "unix", "n", pickup_wakeup, "1", "pickup"), ("cleanup", "unix", "n", "-", "0", "cleanup"),
            ("qmgr", "unix", "n", "300", "1", "qmgr"), ("rewrite", "unix", "-", "-", "-", "trivial-rewrite"),
            ("bounce", "unix", "-", "-", "0", "bounce"), ("defer", "unix", "-", "-", "0", "bounce"),
            ("trace", "unix", "-", "-", "0", "bounce"), ("verify", "unix", "-", "-", "1", "verify"),
            ("flush", "unix", "n", "-", "0", "flush"), ("proxymap", "unix", "-", "-", "-", "proxymap"),
            ("smtp", "unix", "-", "-", "-", "smtp"), ("relay", "unix", "-", "-", "-", "smtp"),
            ("showq", "unix", "n", "-", "-", "showq"), ("error", "unix", "-", "-", "-", "error"),
            ("retry", "unix", "-", "-", "-", "error"), ("discard", "unix", "-", "-", "-", "discard"),
            ("anvil", "unix", "-", "-", "1", "anvil"), ("scache", "unix", "-", "-", "1", "scache"),
            ("postlog", "unix-dgram", "n", "-", "1", "postlogd"),
        ]
        with open(os.path.join(self.config, "master.cf"), "w") as f:
            for service, kind, private, wakeup, limit, command in services:
                f.write("%s %s %s - n %s %s %s\n" % (service, kind, private, wakeup, limit, command))
        started = subprocess.run(["postfix", "-c", self.config, "start"], capture_output=True)
        if started.returncode != 0:
            raise RuntimeError("postfix start: %s" % (started.stdout + started.stderr).decode()[-1500:])
        wait_port(self.port)

    def sendmail(self, message, sender, recipient):
        """A submission through sendmail(1) (non_smtpd_milters): the exit status."""
        return subprocess.run(["sendmail", "-C", self.config, "-f", sender, "-i", recipient], input=message,
                              capture_output=True, timeout=60).returncode

    def kick_pickup(self):
        """Makes pickup look at the maildrop now."""
        subprocess.run(["postkick", "-c", self.config, "public", "pickup", "W"], capture_output=True)

    def flush(self):
        """Tries deferred mail again now."""
        subprocess.run(["postqueue", "-c", self.config, "-f"], capture_output=True)

    def queued(self):
        """Messages Postfix holds: in its queues and in the maildrop."""
        out = subprocess.run(["postqueue", "-c", self.config, "-j"], capture_output=True, text=True).stdout
        maildrop = os.path.join(self.folder, os.path.basename(self.config) + "-queue", "maildrop")
        return len([line for line in out.splitlines() if line.strip()]) + \
            (len(os.listdir(maildrop)) if os.path.isdir(maildrop) else 0)

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        subprocess.run(["postfix", "-c", self.config, "stop"], capture_output=True)


class OpenDkimMilter:
    """OpenDKIM's milter signing `domain` with an RSA-2048 key file (the stack sites run today),
    on a free loopback port. `folder` must not be below a world-writable folder (OpenDKIM
    refuses its key file there): the benchmarks use /var/lib."""

    def __init__(self, folder, domain, selector="bench"):
        self.key = os.path.join(folder, "opendkim.key")
        subprocess.run(["openssl", "genrsa", "-out", self.key, "2048"], check=True, capture_output=True)
        shutil.chown(self.key, "opendkim", "opendkim")
        os.chmod(self.key, 0o600)
        conf = os.path.join(folder, "opendkim.conf")
        # A free port can be taken meanwhile as the source port of a connection (thousands of
        # them are in TIME_WAIT after a run): try a few.
        for attempt in range(5):
            self.port = free_port()
            with open(conf, "w") as f:
                f.write("Syslog no\nMode s\nDomain %s\nSelector %s\nKeyFile %s\nSocket inet:%d@127.0.0.1\n"
                        "Canonicalization relaxed/relaxed\nSignatureAlgorithm rsa-sha256\nUserID opendkim\n"
                        "PidFile %s/opendkim.pid\n" % (domain, selector, self.key, self.port, folder))
            self.proc = subprocess.Popen(["opendkim", "-f", "-x", conf], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            try:
                wait_port(self.port, self.proc)
                return
            except RuntimeError:
                if attempt == 4:
                    raise

    def socket(self):
        return "inet:127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
