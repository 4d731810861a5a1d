#pragma once
// `dkim-appliance up`'s state folder: where each part lives, the system users that own the
// daemons' parts (the packaged sysusers.d users), whether those users can reach the folder at
// all, and files written whole (a temporary file, fsync, rename).
//
// Layout of the folder (mode 0711, root):
//   up.toml                 the settings of this folder; options given to `up` are saved here
//   dkim-appliance.toml     defaults for the CLI (signerd's socket)
//   etc/{signerd,relayd,webd,reportd}.toml   written from up.toml at every start
//   softhsm2.conf, tokens/  the token (tokens/: dkim-signer, 0700)
//   secrets/                root only: the SO PIN, the users' initial passwords and TOTP seeds;
//                           the user PIN (custody approver, shares) and the host key (sealed)
//   credentials/            root only: the sealed user PIN (custody sealed; up_pin_custody.hpp)
//   signerd/                dkim-signer, 0700: the user PIN (custody file) and signerd.db
//   webd/                   dkim-web, 0700: the self-signed certificate and its key
//   reportd/                dkim-report, 0700: the report store (reports.db)
//   maildir/                dkim-relay, 0700: the default next hop
//   dns/                    dnsmasq.conf: the demo domain's records
//   run/                    signerd's socket and up's notification socket
//   run/reportd/            dkim-report, 0750: reportd's socket (relayd and webd in its group)
//   log/                    one log per daemon
//   nodes/nodeK/, postgres/ a cluster's other nodes and its PostgreSQL server (up_cluster.hpp)

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>

#include "dkim/expected.hpp"
#include "up_unique_fd.hpp"

namespace dkim::cli::up {

struct StatePaths {
    std::filesystem::path root, settings, cli_defaults, etc, softhsm_conf, tokens, secrets, signerd,
        webd, reportd, maildir, dns, dnsmasq_conf, run, reportd_run, log, socket, reportd_socket,
        notify, certificate, lock, credentials;
    explicit StatePaths(const std::filesystem::path& dir);
    // log/<daemon>.log
    std::filesystem::path daemon_log(const std::string& daemon) const;
};

// The daemons' system users and their primary groups.
struct DaemonUsers {
    uid_t signer = 0, relay = 0, web = 0, report = 0;
    gid_t signer_gid = 0, relay_gid = 0, web_gid = 0, report_gid = 0;
};

// strerror(errno), thread-safe.
std::string errno_text();

// `bytes` random bytes as lower-case base32 (PINs, initial passwords).
std::string random_text(std::size_t bytes);

// Writes `content` to a temporary file beside `path` with the mode and owner, syncs it and
// renames it over `path`.
Expected<void, std::string> write_file(const std::filesystem::path& path,
                                       const std::string& content, mode_t mode, uid_t uid = 0,
                                       gid_t gid = 0);
// The file's content ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);
// Makes the folder (and its parents) and sets its mode and owner.
Expected<void, std::string> make_folder(const std::filesystem::path& path, mode_t mode, uid_t uid,
                                        gid_t gid);
// Everything below `folder` to its daemon's user (files made by root, or by an earlier layout).
Expected<void, std::string> hand_over(const std::filesystem::path& folder, uid_t uid, gid_t gid);

// Whether the daemons' users can reach `root`: they open their configuration, state and sockets
// under it, so every folder above it must let them search it (a `mktemp -d` folder, mode 0700,
// does not). Checked before anything is made or started; the error names the folder that
// blocks them, its mode and the fix.
Expected<void, std::string> daemons_can_reach(const std::filesystem::path& root);

// The packaged system users (images/sysusers.d/dkim-appliance.conf), made with
// systemd-sysusers when the package is not installed.
Expected<DaemonUsers, std::string> system_users();

// Takes the folder's lock (one `up` per folder: two signerds on one token and one database
// would fight); held while the returned descriptor is open.
Expected<UniqueFd, std::string> lock_state_folder(const StatePaths& paths);

// The folders of the layout above with their modes and owners; the daemons' own folders are
// handed over whole (an earlier layout ran the daemons as other users).
Expected<void, std::string> prepare_folders(const StatePaths& paths, const DaemonUsers& users);

}  // namespace dkim::cli::up
