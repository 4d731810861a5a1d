#pragma once
// The DKIM keys as dkim-signerd reports them, for the commands that look at or change them (key
// list | generate | activate | retire | rotate, dns records | check, apply, import opendkim):
// fetched, narrowed to one domain in the provisioning library's terms, printed.

#include <string>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/provisioning/dns_check.hpp"
#include "dkim/provisioning/rotation.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {

// Every key signerd holds (KeyList, under the credentials `c` names).
Expected<std::vector<ipc::KeyView>, std::string> fetch_keys(const Common& c);
// The cluster's nodes, keys and rotations (cluster = false on a single appliance).
Expected<ipc::ClusterStatusReply, std::string> cluster_status(const Common& c);

// `domain`'s keys as the DNS checks see them.
std::vector<provisioning::DomainKey> domain_keys(const std::vector<ipc::KeyView>& keys,
                                                 const std::string& domain);

// `domain`'s keys as the rotation and apply see them.
std::vector<provisioning::KeyStatus> key_statuses(const std::vector<ipc::KeyView>& keys,
                                                  const std::string& domain);

// Prints a KeysReply's message and keys (a table, or JSON); returns 0, or kFailed after
// printing why for any other reply.
int print_keys_reply(const ipc::Reply& reply, bool json);

}  // namespace dkim::cli
