#pragma once
// The daemons' configurations that `up` writes into etc/ at every start, from up.toml's
// settings: dkim-signerd, dkim-relayd, dkim-webd and dkim-reportd read the same keys as on the
// packaged appliance (/etc/dkim-appliance/), with this folder's paths. Built as TOML tables (toml++
// quotes and escapes every value) with comments for the reader.

#include <string>
#include <vector>

#include "dkim/expected.hpp"
#include "up_cluster.hpp"  // ClusterNode: complete, for the default argument below
#include "up_settings.hpp"
#include "up_state_folder.hpp"

namespace dkim::cli::up {

// With `node` (up_cluster.hpp): that node's token, and in a cluster its [cluster] table, which
// pins the audit keys of the other nodes in `nodes` whose key is known; `paths` are the node's.
std::string signerd_config(const Settings& settings, const StatePaths& paths,
                           const ClusterNode* node = nullptr,
                           const std::vector<ClusterNode>& nodes = {});
// With `node` other than node 1: its relay, outbound only, on its port, to its signerd.
std::string relayd_config(const Settings& settings, const StatePaths& paths,
                          const ClusterNode* node = nullptr);
// webd.toml, with [dns]: the demo's outbound addresses and up.toml's [reports] as report URIs.
std::string webd_config(const Settings& settings, const StatePaths& paths);
// reportd.toml: the report store in the folder, its socket in run/reportd/, signerd's socket
// (reportd is signerd's reports peer), the demo's outbound addresses, and who may do what:
// dkim-relay submits, dkim-web reads, root (the CLI) does everything.
std::string reportd_config(const Settings& settings, const StatePaths& paths);
// dkim-appliance.toml: the CLI's defaults for this folder (signerd's and reportd's sockets; the
// report URIs for dns records and dns check).
std::string cli_defaults_config(const Settings& settings, const StatePaths& paths);

// etc/signerd.toml, etc/relayd.toml, etc/webd.toml, etc/reportd.toml and dkim-appliance.toml.
// With `nodes`: signerd.toml and relayd.toml are node 1's, signerd-nodeK.toml and
// relayd-nodeK.toml the others'.
Expected<void, std::string> write_daemon_configs(const Settings& settings, const StatePaths& paths,
                                                 const std::vector<ClusterNode>& nodes = {});

}  // namespace dkim::cli::up
