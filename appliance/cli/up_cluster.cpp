#include "up_cluster.hpp"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <tuple>

#include "dkim/base/wipe.hpp"
#include "dkim/config/endpoint.hpp"

namespace dkim::cli::up {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRole = "dkim_signer";
constexpr const char* kDatabase = "dkim";

struct PgConnDeleter {
    void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgResultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// The first line of the server's message.
std::string first_line(const char* message) {
    std::string out = message != nullptr ? message : "";
    if (const auto nl = out.find('\n'); nl != std::string::npos) {
        out.resize(nl);
    }
    return out;
}

// One statement; its result (tuples or none), or the server's message.
Expected<PgResult, std::string> run(PGconn* c, const std::string& sql, const char* what) {
    PgResult r(PQexec(c, sql.c_str()));
    const auto status = PQresultStatus(r.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        return unexpected(std::string("PostgreSQL: ") + what + ": " +
                          first_line(PQresultErrorMessage(r.get())));
    }
    return r;
}

// The newest PostgreSQL of Debian's packages: /usr/lib/postgresql/<major>/bin.
fs::path find_postgres_bin() {
    fs::path best;
    int best_major = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
        const std::string name = entry.path().filename().string();
        const int major = std::atoi(name.c_str());  // NOLINT(cert-err34-c): 0 when not a number
        if (major > best_major &&
            ::access((entry.path() / "bin" / "postgres").c_str(), X_OK) == 0 &&
            ::access((entry.path() / "bin" / "initdb").c_str(), X_OK) == 0) {
            best_major = major;
            best = entry.path() / "bin";
        }
    }
    return best;
}

// Runs `argv` as uid/gid, its output appended to `log`; its exit status.
Expected<void, std::string> run_as(const std::vector<std::string>& argv, uid_t uid, gid_t gid,
                                   const fs::path& log) {
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (out < 0) {
        return unexpected("cannot open " + log.string() + ": " + errno_text());
    }
    std::vector<std::string> args = argv;
    std::vector<char*> raw;
    raw.reserve(args.size() + 1);
    for (auto& a : args) {
        raw.push_back(a.data());
    }
    raw.push_back(nullptr);
    std::string path_env = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    std::string lang_env = "LC_ALL=C.UTF-8";
    std::array<char*, 3> envp{path_env.data(), lang_env.data(), nullptr};
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int null = ::open("/dev/null", O_RDONLY);
        if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0 ||
            ::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0 ||
            ::chdir("/") != 0) {
            ::_exit(126);
        }
        ::execve(raw[0], raw.data(), envp.data());
        ::_exit(127);
    }
    ::close(out);
    if (pid < 0) {
        return unexpected("cannot start " + argv[0] + ": " + errno_text());
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return unexpected("waiting for " + argv[0] + ": " + errno_text());
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return unexpected(argv[0] + " " + describe_exit(status) + " (see " + log.string() + ")");
    }
    return {};
}

}  // namespace

std::string ClusterNode::signerd_config() const {
    return index == 1 ? "signerd.toml" : "signerd-" + name + ".toml";
}

std::string ClusterNode::relayd_config() const {
    return index == 1 ? "relayd.toml" : "relayd-" + name + ".toml";
}

std::vector<ClusterNode> cluster_nodes(const Settings& s, const StatePaths& p) {
    std::vector<ClusterNode> nodes;
    const auto smtp = config::parse_endpoint(s.smtp_listen);
    for (int k = 1; k <= std::max(s.cluster, 1); ++k) {
        ClusterNode n{k,
                      "node" + std::to_string(k),
                      kTokenLabel,
                      "",
                      s.smtp_listen,
                      p,
                      "dkim-signerd",
                      "dkim-relayd",
                      {}};
        if (k > 1) {
            const fs::path own = p.root / "nodes" / n.name;
            n.token_label = std::string(kTokenLabel) + "-" + n.name;
            n.selector_prefix = "n" + std::to_string(k) + "-";
            if (smtp) {
                config::Endpoint e = *smtp;
                e.port = static_cast<std::uint16_t>(e.port + k - 1);
                n.smtp_listen = e.to_string();
            }
            n.paths.signerd = own / "signerd";
            n.paths.secrets = own / "secrets";
            n.paths.socket = p.run / ("signerd-" + n.name + ".sock");
            n.signerd = "dkim-signerd-" + n.name;
            n.relayd = "dkim-relayd-" + n.name;
        }
        nodes.push_back(std::move(n));
    }
    return nodes;
}

Expected<void, std::string> prepare_node_folders(const std::vector<ClusterNode>& nodes,
                                                 const DaemonUsers& u) {
    for (const ClusterNode& n : nodes) {
        if (n.index == 1) {
            continue;  // the single appliance's folders (prepare_folders)
        }
        for (const auto& [path, mode, uid, gid] :
             {std::tuple{n.paths.signerd.parent_path().parent_path(), 0711, uid_t{0}, gid_t{0}},
              {n.paths.signerd.parent_path(), 0711, uid_t{0}, gid_t{0}},
              {n.paths.secrets, 0700, uid_t{0}, gid_t{0}},
              {n.paths.signerd, 0700, u.signer, u.signer_gid}}) {
            if (auto made = make_folder(path, static_cast<mode_t>(mode), uid, gid); !made) {
                return made;
            }
        }
        if (auto handed = hand_over(n.paths.signerd, u.signer, u.signer_gid); !handed) {
            return handed;
        }
    }
    return {};
}

std::string cluster_database(const Settings& s) {
    const auto e = config::parse_endpoint(s.postgres_listen);
    // On this machine's loopback only (settle() checks the address): no TLS to the server.
    return "host=" + (e ? e->host : std::string("127.0.0.1")) +
           " port=" + std::to_string(e ? e->port : 5433) + " dbname=" + kDatabase +
           " user=" + kRole + " sslmode=disable";
}

fs::path database_password_file(const ClusterNode& node) {
    return node.paths.signerd / "db.password";
}

Expected<std::string, std::string> keep_database_password(const StatePaths& p,
                                                          const std::vector<ClusterNode>& nodes,
                                                          const DaemonUsers& u) {
    const fs::path kept = p.secrets / "postgres.password";
    std::string password = read_text(kept);
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
        password.pop_back();
    }
    if (password.empty()) {
        password = random_text(24);
        if (auto written = write_file(kept, password + "\n", 0600); !written) {
            base::wipe(password);
            return unexpected(written.error());
        }
    }
    for (const ClusterNode& n : nodes) {
        if (auto written = write_file(database_password_file(n), password + "\n", 0600, u.signer,
                                      u.signer_gid);
            !written) {
            base::wipe(password);
            return unexpected(written.error());
        }
    }
    return password;
}

Expected<PostgresServer, std::string> prepare_postgres(const Settings& s, const StatePaths& p) {
    PostgresServer server;
    server.bin = find_postgres_bin();
    if (server.bin.empty()) {
        return unexpected(std::string(
            "--cluster needs PostgreSQL: apt-get install postgresql-15 (appliance/run.sh and "
            ".ci/install-deps.sh install it)"));
    }
    const struct passwd* pw = ::getpwnam("postgres");  // NOLINT(concurrency-mt-unsafe): one thread
    if (pw == nullptr) {
        return unexpected(
            std::string("--cluster: no postgres user (the postgresql package makes it)"));
    }
    server.uid = pw->pw_uid;
    server.gid = pw->pw_gid;
    const auto listen = config::parse_endpoint(s.postgres_listen);
    if (!listen) {
        return unexpected("postgres_listen: expected IP:PORT, got \"" + s.postgres_listen + "\"");
    }
    server.host = listen->host;
    server.port = listen->port;
    server.folder = p.root / "postgres";
    server.data = server.folder / "data";
    server.socket_dir = server.folder / "run";
    for (const fs::path& f : {server.folder, server.socket_dir}) {
        if (auto made = make_folder(f, 0700, server.uid, server.gid); !made) {
            return unexpected(made.error());
        }
    }
    std::error_code ec;
    if (!fs::exists(server.data / "PG_VERSION", ec)) {
        if (auto made = make_folder(server.data, 0700, server.uid, server.gid); !made) {
            return unexpected(made.error());
        }
        // Local connections (the socket in postgres/run, the postgres user's alone) are trusted:
        // up makes the role and the database through it; over TCP, passwords (SCRAM).
        if (auto initialised = run_as(
                {(server.bin / "initdb").string(), "-D", server.data.string(), "-U", "postgres",
                 "-E", "UTF8", "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256"},
                server.uid, server.gid, p.daemon_log("postgres-initdb"));
            !initialised) {
            return unexpected("initdb: " + initialised.error());
        }
        std::cerr << "up: initialised PostgreSQL in " << server.data.string() << "\n";
    }
    return server;
}

ChildSpec postgres_spec(const PostgresServer& server, const StatePaths& p, const DaemonUsers& u) {
    ChildSpec c;
    c.name = "postgres";
    c.exe = server.bin / "postgres";
    c.args = {"-D", server.data.string(),
              "-c", "listen_addresses=" + server.host,
              "-c", "port=" + std::to_string(server.port),
              "-c", "unix_socket_directories=" + server.socket_dir.string(),
              "-c", "max_connections=" + std::to_string(8 * kMaxClusterNodes + 20),
              "-c", "password_encryption=scram-sha-256",
              "-c", "authentication_timeout=5s"};
    // authentication_timeout: a local user who opens connections and never authenticates holds
    // a slot for 5 s each (60 s by default).
    c.uid = server.uid;
    c.gid = server.gid;
    c.groups = {server.gid, u.signer_gid};  // the notification socket is signerd's group's
    c.log = p.daemon_log("postgres");
    c.watchdog = false;
    c.stop_signal = SIGINT;  // fast shutdown: the nodes are gone by then
    return c;
}

Expected<void, std::string> ensure_cluster_database(const PostgresServer& server,
                                                    const std::string& password) {
    const std::string port = std::to_string(server.port);
    const std::array<const char*, 5> keys{"host", "port", "user", "dbname", nullptr};
    const std::array<const char*, 5> values{server.socket_dir.c_str(), port.c_str(), "postgres",
                                            "postgres", nullptr};
    PgConn c(PQconnectdbParams(keys.data(), values.data(), 0));
    if (!c || PQstatus(c.get()) != CONNECTION_OK) {
        return unexpected("cannot connect to the cluster's PostgreSQL in " +
                          server.socket_dir.string() + ": " +
                          first_line(c ? PQerrorMessage(c.get()) : "out of memory"));
    }
    auto role = run(c.get(), std::string("SELECT 1 FROM pg_roles WHERE rolname = '") + kRole + "'",
                    "look for the nodes' role");
    if (!role) {
        return unexpected(role.error());
    }
    if (PQntuples(role->get()) == 0) {
        if (auto made = run(c.get(), std::string("CREATE ROLE ") + kRole + " LOGIN",
                            "make the nodes' role");
            !made) {
            return unexpected(made.error());
        }
    }
    // The password travels as a SCRAM verifier, never in clear (nor in the server's log).
    char* verifier = PQencryptPasswordConn(c.get(), password.c_str(), kRole, "scram-sha-256");
    if (verifier == nullptr) {
        return unexpected("PostgreSQL: cannot make the password's verifier: " +
                          first_line(PQerrorMessage(c.get())));
    }
    char* literal = PQescapeLiteral(c.get(), verifier, std::strlen(verifier));
    PQfreemem(verifier);
    if (literal == nullptr) {
        return unexpected(std::string("PostgreSQL: cannot quote the password's verifier"));
    }
    const std::string alter = std::string("ALTER ROLE ") + kRole + " PASSWORD " + literal;
    PQfreemem(literal);
    if (auto set = run(c.get(), alter, "set the nodes' password"); !set) {
        return unexpected(set.error());
    }
    auto db =
        run(c.get(), std::string("SELECT 1 FROM pg_database WHERE datname = '") + kDatabase + "'",
            "look for the database");
    if (!db) {
        return unexpected(db.error());
    }
    if (PQntuples(db->get()) == 0) {
        if (auto made =
                run(c.get(), std::string("CREATE DATABASE ") + kDatabase + " OWNER " + kRole,
                    "make the database");
            !made) {
            return unexpected(made.error());
        }
        // Only its owner (and the superuser) may connect.
        if (auto revoked =
                run(c.get(), std::string("REVOKE ALL ON DATABASE ") + kDatabase + " FROM PUBLIC",
                    "close the database to other roles");
            !revoked) {
            return unexpected(revoked.error());
        }
        std::cerr << "up: made the database " << kDatabase << " for the nodes (role " << kRole
                  << ")\n";
    }
    return {};
}

}  // namespace dkim::cli::up
