"""A private PostgreSQL server for the cluster's tests: Debian's postgresql-15 binaries, its own
initdb in a folder of the test, run as an unprivileged user (initdb and postgres refuse root:
the package's `postgres` user when the tests run as root), listening on 127.0.0.1 and a free
port only, with TLS (a CA and a server certificate made here) and password authentication
(scram-sha-256) for the nodes' role. Nothing of the machine's own PostgreSQL is touched.

  server = PgServer(folder)            # initdb, certificates, configuration
  server.start()                       # pg_ctl start -w
  server.conninfo(database)            # the nodes' connection string (TLS verified)
  server.sql("SELECT 1", database)     # psql as the superuser, over the socket in the folder
  server.restart() / stop() / kill9()

Also a command for ctest fixtures: `pg_server.py start FOLDER` (writes FOLDER/conninfo and
FOLDER/password) and `pg_server.py stop FOLDER`.
"""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import free_port  # noqa: E402

BIN = "/usr/lib/postgresql/15/bin"
ROLE = "signerd"
PASSWORD = "db-secret-horse-battery"


def _owner():
    """The user the server runs as: ourselves, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        return "nobody"


class PgServer:
    def __init__(self, folder, port=None):
        self.folder = os.path.join(folder, "postgres")
        self.data = os.path.join(self.folder, "data")
        self.owner = _owner()
        self.port = port or free_port()
        self.log = os.path.join(folder, "postgres.log")
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._init()

    def _as_owner(self):
        if self.owner is None:
            return []
        return ["setpriv", "--reuid=" + self.owner, "--regid=" + self.owner, "--init-groups"]

    def _run(self, args, **kw):
        return subprocess.run(self._as_owner() + args, check=True, capture_output=True, **kw)

    def _init(self):
        os.makedirs(self.folder, exist_ok=True)
        os.chmod(os.path.dirname(self.folder), 0o755)
        os.chmod(self.folder, 0o755)
        pwfile = os.path.join(self.folder, "superuser-password")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "-superuser\n")
        if self.owner:
            shutil.chown(self.folder, self.owner, self.owner)
            shutil.chown(pwfile, self.owner, self.owner)
        os.chmod(pwfile, 0o600)
        self._run([BIN + "/initdb", "-D", self.data, "-U", "postgres", "--pwfile", pwfile,
                   "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"])
        os.unlink(pwfile)
        self._certificates()
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '127.0.0.1'\nport = %d\n" % self.port)
            f.write("unix_socket_directories = '%s'\n" % self.folder)
            f.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
            f.write("max_connections = 60\nshared_buffers = 32MB\nfsync = on\n")
            f.write("log_min_messages = warning\n")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\n")
            f.write("hostssl all all 127.0.0.1/32 scram-sha-256\n")
            f.write("hostnossl all all 127.0.0.1/32 reject\n")

    def _certificates(self):
        """A CA and a server certificate for 127.0.0.1 and localhost (the nodes verify it:
        sslmode=verify-full)."""
        d = self.folder
        self.ca = os.path.join(d, "ca.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", os.path.join(d, "ca.key"), "-out", self.ca, "-days", "2",
                        "-subj", "/CN=dkim test database CA"], check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", os.path.join(self.data, "server.key"), "-out", os.path.join(d, "server.csr"),
                        "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
        ext = os.path.join(d, "san.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
        subprocess.run(["openssl", "x509", "-req", "-in", os.path.join(d, "server.csr"), "-CA", self.ca,
                        "-CAkey", os.path.join(d, "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", ext,
                        "-out", os.path.join(self.data, "server.crt")], check=True, capture_output=True)
        os.chmod(self.ca, 0o644)
        if self.owner:
            for name in ("server.key", "server.crt"):
                shutil.chown(os.path.join(self.data, name), self.owner, self.owner)
        os.chmod(os.path.join(self.data, "server.key"), 0o600)

    def start(self):
        if not os.path.exists(self.log):
            open(self.log, "a").close()
        if self.owner:
            shutil.chown(self.log, self.owner, self.owner)
        self._run([BIN + "/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start"])
        if not getattr(self, "_created", False):
            self.sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                     "CREATE ROLE %s LOGIN PASSWORD '%s'; END IF; END $$" % (ROLE, ROLE, PASSWORD))
            self._created = True
        return self

    def create_database(self, name):
        self.sql("CREATE DATABASE %s OWNER %s" % (name, ROLE))
        return name

    def stop(self, mode="fast"):
        subprocess.run(self._as_owner() + [BIN + "/pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"],
                       capture_output=True)

    def pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def kill9(self):
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.05)

    def processes(self):
        """The postmaster and its children (backends, checkpointer, WAL writer...)."""
        pid = self.pid()
        if not pid:
            return []
        pids = [pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            pids.append(int(entry))
                except (OSError, ValueError, IndexError):
                    pass
        return pids

    def freeze(self):
        """Stops every process of the server (SIGSTOP): alive, its sockets open, answering
        nothing, as a server on a stuck disk. The kernel still acknowledges the packets, so the
        clients' keepalives and TCP user timeout see nothing wrong."""
        frozen = self.processes()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        return frozen

    def thaw(self, frozen):
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass

    def restart(self):
        self.stop()
        return self.start()

    def conninfo(self, database):
        return ("host=127.0.0.1 port=%d dbname=%s user=%s sslmode=verify-full sslrootcert=%s"
                % (self.port, database, ROLE, os.path.join(self.folder, "ca.crt")))

    def sql(self, statement, database="postgres", check=True):
        """Runs `statement` as the superuser over the folder's socket; returns psql's output
        (unaligned, tuples only)."""
        out = subprocess.run(self._as_owner() + [BIN + "/psql", "-h", self.folder, "-p", str(self.port), "-U",
                                                 "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-At",
                                                 "-c", statement],
                             capture_output=True, check=False)
        if check and out.returncode != 0:
            raise RuntimeError("psql: %s" % out.stderr.decode())
        return out.stdout.decode()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        print("usage: pg_server.py start|stop FOLDER")
        return 2
    folder = sys.argv[2]
    if sys.argv[1] == "start":
        stop_server(folder)
        os.makedirs(folder)
        # The server's own folder under /tmp: the build tree's parents may be closed to the
        # server's user (a clone under /root).
        import tempfile
        root = tempfile.mkdtemp(prefix="dkim-pg-fixture-")
        with open(os.path.join(folder, "root"), "w") as f:
            f.write(root + "\n")
        server = PgServer(root).start()
        with open(os.path.join(folder, "conninfo"), "w") as f:
            f.write(server.conninfo("postgres") + "\n")
        with open(os.path.join(folder, "password"), "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(os.path.join(folder, "password"), 0o600)
        # The role may create the tests' databases.
        server.sql("ALTER ROLE %s CREATEDB" % ROLE)
        return 0
    stop_server(folder)
    return 0


def stop_server(folder):
    """Stops the fixture's server (if one runs) and removes its folders."""
    try:
        with open(os.path.join(folder, "root")) as f:
            root = f.read().strip()
    except OSError:
        root = None
    if root:
        server = PgServer.__new__(PgServer)
        server.folder = os.path.join(root, "postgres")
        server.data = os.path.join(server.folder, "data")
        server.owner = _owner()
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
