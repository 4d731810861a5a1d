// dkim-appliance signerd status: dkim-signerd's state, through its socket; and relay
// hash-password, the Argon2id hash of a relay client's password for dkim-relayd (computed here,
// no daemon involved). The other commands of signerd's workflow have files by subject:
// user_commands (users, API tokens, TOTP), elevation_commands (elevations and grants),
// audit_commands (the audit log).
//
// Credentials come from files or the terminal, never from the command line: --user with
// --password-file, or --token-file.

#include <iostream>
#include <memory>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/jit/credentials.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {

void add_signerd_commands(CLI::App& app, int& exit_code) {
    auto c = std::make_shared<Common>();

    // For dkim-relayd's [[client]] password_hash: the relay verifies, it never stores.
    CLI::App* relay = app.add_subcommand("relay", "dkim-relayd helpers")->require_subcommand(1);
    CLI::App* hash = relay->add_subcommand(
        "hash-password",
        "print the Argon2id hash of a relay client's password (for password_hash)");
    auto password_file = std::make_shared<std::string>();
    auto cost_name = std::make_shared<std::string>("interactive");
    hash->add_option("--password-file", *password_file, "file holding the password")->required();
    hash->add_option("--cost", *cost_name, "interactive (default), moderate, minimal-for-tests");
    hash->callback([&exit_code, password_file, cost_name] {
        const auto cost = jit::parse_password_cost(*cost_name);
        if (!cost) {
            exit_code = fail("--cost: expected interactive, moderate or minimal-for-tests");
            return;
        }
        std::string error;
        std::string password = read_secret(*password_file, error);
        if (!error.empty()) {
            exit_code = fail(error);
            return;
        }
        const auto hashed = jit::hash_password(password, *cost);
        base::wipe(password);
        if (!hashed) {
            exit_code = fail("cannot hash the password (out of memory)");
            return;
        }
        std::cout << *hashed << "\n";
        exit_code = 0;
    });

    CLI::App* status = app.add_subcommand("signerd", "dkim-signerd's state")->require_subcommand(1);
    CLI::App* st = status->add_subcommand("status", "login state, active grants, audit log head");
    add_common(st, *c);
    st->callback([&exit_code, c] {
        exit_code = call(*c, ipc::StatusRequest{}, [](const ipc::Reply& reply) {
            if (const auto* s = std::get_if<ipc::StatusReply>(&reply)) {
                std::cout << "token: " << (s->logged_in ? "logged in" : "logged out") << "\n"
                          << "active grants: " << s->active_grants << "\n"
                          << "PIN source: " << s->pin_source << "\n"
                          << "audit log: " << s->audit_records << " records, head " << s->audit_head
                          << "\n";
                if (!s->audit_failure.empty()) {
                    std::cout << "AUDIT LOG FAILING (signing stopped): " << s->audit_failure
                              << "\n";
                }
            }
        });
    });

    // cluster status: the nodes sharing the grant state, and each node's keys.
    CLI::App* cluster = app.add_subcommand("cluster", "the nodes that share the grant state")
                            ->require_subcommand(1);
    CLI::App* cs = cluster->add_subcommand(
        "status", "each node (token, last seen, grants, selectors; gone when silent) and its keys");
    add_common(cs, *c);
    cs->callback([&exit_code, c] {
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        exit_code = call(*c, ipc::ClusterStatusRequest{*auth}, [](const ipc::Reply& reply) {
            const auto* s = std::get_if<ipc::ClusterStatusReply>(&reply);
            if (s == nullptr) {
                return;
            }
            if (!s->cluster) {
                std::cout << "a single appliance (no [cluster] in signerd.toml)\n";
            } else {
                std::cout << "node " << s->node
                          << (s->fenced ? " (FENCED: cut off from the shared "
                                          "store, signing nothing)"
                                        : "")
                          << "; lease " << s->lease_ms << " ms\n";
                for (const ipc::ClusterNodeView& n : s->nodes) {
                    std::cout << "node\t" << n.name << "\t" << (n.gone ? "gone" : "up") << "\t"
                              << n.token << "\tlast seen " << (s->now_ms - n.last_seen_ms) / 1000
                              << " s ago\t" << n.grants << " grants\t";
                    for (std::size_t i = 0; i < n.selectors.size(); ++i) {
                        std::cout << (i == 0 ? "" : " ") << n.selectors[i];
                    }
                    std::cout << "\t" << n.version << (n.self ? "\t(this one)" : "")
                              << (n.records_verified
                                      ? ""
                                      : "\t(records not shown: its row is not signed with the "
                                        "audit key [cluster] node_keys pins for it)")
                              << "\n";
                }
            }
            for (const ipc::ClusterKeyView& k : s->keys) {
                std::cout << "key\t" << (k.node.empty() ? "-" : k.node) << "\t" << k.domain << "\t"
                          << k.selector << "\t" << k.algorithm << "\t" << k.state << "\t"
                          << k.dns_record << "\n";
            }
            for (const ipc::ClusterRotationView& r : s->rotations) {
                std::cout << "rotation\t" << r.domain << "\t" << r.kind << "\t" << r.selector
                          << "\t" << r.algorithm << "\t" << r.phase << "\tby " << r.requested_by
                          << "\n";
            }
        });
    });
}

}  // namespace dkim::cli
