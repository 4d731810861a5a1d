#pragma once
// `dkim-appliance up --cluster N`: N appliance nodes on one machine sharing one grant state and
// one audit log in a PostgreSQL server that up initialises under the state folder and runs,
// under its supervisor, as the postgres user (a loopback port; stopped with the rest).
//
// Node 1 is the single appliance's layout (its signerd folder and socket, the token "dkim", the
// selectors rsa2048 and ed25519, its relay on smtp_listen with the inbound listener). Node k
// (k >= 2) has nodes/nodeK/ (its signerd folder with its PIN and the database password, its
// secrets with its token's SO PIN), run/signerd-nodeK.sock, its own token "dkim-nodeK" in the
// same SoftHSM2 folder (its own PINs and keys: selectors nK-rsa2048 and nK-ed25519), and its
// relay on the k-th port from smtp_listen's (outbound only). One dkim-webd and one dkim-reportd
// talk to node 1's signerd; the console's Cluster panel shows every node.
//
// The server: postgres/data (initdb once, local connections trusted: postgres/ is the postgres
// user's, 0700, and its socket folder postgres/run with it), TCP on postgres_listen with SCRAM
// passwords. The nodes connect as dkim_signer to the database dkim; its password is made once
// in secrets/postgres.password and each node's signerd folder holds a copy (db.password).

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "dkim/expected.hpp"
#include "up_settings.hpp"
#include "up_state_folder.hpp"
#include "up_supervisor.hpp"

namespace dkim::cli::up {

struct ClusterNode {
    int index = 1;
    std::string name;             // "node1"
    std::string token_label;      // "dkim", "dkim-node2"
    std::string selector_prefix;  // "", "n2-"
    std::string smtp_listen;      // smtp_listen's port + index - 1
    StatePaths paths;             // its signerd folder, secrets and socket
    std::string signerd;          // the supervisor's names: "dkim-signerd", "dkim-signerd-node2"
    std::string relayd;
    // Its audit key's public half (raw Ed25519; made in its token by prepare_demo_token): the
    // other nodes pin it ([cluster] node_keys) to check its registry row.
    std::string audit_key;
    std::string signerd_config() const;  // etc/signerd.toml, etc/signerd-node2.toml
    std::string relayd_config() const;
};

// The nodes of `settings.cluster` (one, node 1, for a single appliance).
std::vector<ClusterNode> cluster_nodes(const Settings& settings, const StatePaths& paths);
// The nodes' own folders (nodes/nodeK/, its signerd/ and secrets/).
Expected<void, std::string> prepare_node_folders(const std::vector<ClusterNode>& nodes,
                                                 const DaemonUsers& users);

// The shared store's connection string for the nodes (the password apart: password_file).
std::string cluster_database(const Settings& settings);
// The database password: secrets/postgres.password (made once), copied into each node's
// signerd/db.password for its signerd. Returns the password.
Expected<std::string, std::string> keep_database_password(const StatePaths& paths,
                                                          const std::vector<ClusterNode>& nodes,
                                                          const DaemonUsers& users);
std::filesystem::path database_password_file(const ClusterNode& node);

struct PostgresServer {
    std::filesystem::path bin;     // /usr/lib/postgresql/15/bin
    std::filesystem::path folder;  // STATE/postgres
    std::filesystem::path data;    // STATE/postgres/data
    std::filesystem::path socket_dir;
    std::string host;
    std::uint16_t port = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};
// Finds Debian's PostgreSQL and its postgres user, makes postgres/ and runs initdb once (as the
// postgres user; its output in log/postgres-initdb.log).
Expected<PostgresServer, std::string> prepare_postgres(const Settings& settings,
                                                       const StatePaths& paths);
// The server as the supervisor starts it: `postgres -D data -c ...` as the postgres user (in
// signerd's group for the notification socket); PostgreSQL says READY=1 itself, and sends no
// watchdog pings.
ChildSpec postgres_spec(const PostgresServer& server, const StatePaths& paths,
                        const DaemonUsers& users);
// Once the server is ready: the role dkim_signer with `password` (sent as a SCRAM verifier) and
// the database dkim it owns, made when missing.
Expected<void, std::string> ensure_cluster_database(const PostgresServer& server,
                                                    const std::string& password);

}  // namespace dkim::cli::up
