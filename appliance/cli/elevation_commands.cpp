// dkim-appliance elevation | grant: just-in-time elevations (request, list, approve, deny,
// cancel, revoke) and the grants they become, through dkim-signerd's socket, where credentials
// and the policy are checked.
//
// Credentials come from files or the terminal, never from the command line: --user with
// --password-file, or --token-file; --totp is a one-time code (approve, deny, revoke).

#include <chrono>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/jit/policy.hpp"
#include "pin_envelope.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {

void add_elevation_commands(CLI::App& app, int& exit_code) {
    auto c = std::make_shared<Common>();

    // elevation request | list | approve | deny | cancel | revoke
    CLI::App* elevation =
        app.add_subcommand("elevation", "just-in-time elevations")->require_subcommand(1);
    auto req = std::make_shared<ipc::ElevationRequest>();
    auto duration = std::make_shared<std::string>();
    auto budget = std::make_shared<std::uint64_t>(0);
    auto id = std::make_shared<std::int64_t>(0);
    CLI::App* request = elevation->add_subcommand("request", "ask for an elevation");
    add_common(request, *c);
    request
        ->add_option("--operation", req->operation,
                     "sign, key.generate, key.rotate, key.retire, admin")
        ->required();
    request->add_option("--domain", req->domain, "domain ('*' for admin)");
    request->add_option("--selector", req->selector, "selector or '*'")->capture_default_str();
    request->add_option("--client", req->client, "relay client (service identity) or '*'")
        ->capture_default_str();
    request->add_option("--duration", *duration, "how long, such as 30m or 8h")->required();
    request->add_option("--budget", *budget, "at most this many signatures");
    request->add_option("--reason", req->reason, "why (required; policy may require a ticket)")
        ->required();
    request->add_flag("--break-glass", req->break_glass,
                      "admins only: active at once without approval, capped short, flagged loudly");
    request->callback([&exit_code, c, req, duration, budget] {
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        const auto d = jit::parse_duration(*duration);
        if (!d) {
            exit_code = fail("--duration: expected a duration such as 30m or 8h");
            return;
        }
        ipc::ElevationRequest r = *req;
        r.auth = *auth;
        r.duration_seconds = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
        if (*budget > 0) {
            r.budget = *budget;
        }
        exit_code = call(*c, r);
    });
    auto pending_only = std::make_shared<bool>(false);
    CLI::App* elist = elevation->add_subcommand("list", "list elevation requests");
    add_common(elist, *c);
    elist->add_flag("--pending", *pending_only, "pending requests only");
    elist->callback([&exit_code, c, pending_only] {
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        exit_code = call(*c, ipc::ElevationList{*auth, *pending_only}, [](const ipc::Reply& reply) {
            if (const auto* r = std::get_if<ipc::RequestsReply>(&reply)) {
                for (const auto& v : r->requests) {
                    std::cout << v.id << "\t" << v.state << "\t" << v.scope << "\t" << v.requester
                              << "\t" << jit::format_duration(Duration(v.duration_ms)) << "\t"
                              << v.approvals.size() << "/" << v.quorum << "\t"
                              << (v.break_glass ? "BREAK-GLASS " : "")
                              << (v.renews != 0
                                      ? "RENEWAL of grant " + std::to_string(v.renews) + " (ends " +
                                            time_text(v.renews_expires_ms) + ") "
                                      : "")
                              << v.reason
                              << (v.superseded_by != 0 ? " (superseded by grant " +
                                                             std::to_string(v.superseded_by) + ")"
                                                       : "")
                              << "\n";
                }
            }
        });
    });
    auto reason = std::make_shared<std::string>();
    auto pin_file = std::make_shared<std::string>();
    auto identity = std::make_shared<std::string>();
    for (const char* action : {"approve", "deny", "cancel"}) {
        CLI::App* cmd =
            elevation->add_subcommand(action, std::string(action) + " a pending request");
        add_common(cmd, *c);
        cmd->add_option("--id", *id, "request id")->required();
        if (std::string(action) == "deny") {
            cmd->add_option("--reason", *reason, "why (required)")->required();
        }
        if (std::string(action) == "approve") {
            cmd->add_option("--pin-file", *pin_file,
                            "the token PIN (PIN custody \"approver\" only), sealed to a key "
                            "signerd offers for this request");
            cmd->add_option("--signerd-identity", *identity,
                            "refuse unless signerd's identity key has this fingerprint "
                            "(SHA256:..., as dkim-appliance pin status prints it)");
        }
        cmd->callback([&exit_code, c, id, reason, pin_file, identity, action] {
            auto auth = credentials(*c);
            if (!auth) {
                exit_code = kUsage;
                return;
            }
            ipc::PinEnvelope envelope;
            if (!pin_file->empty()) {
                // PIN custody "approver": sealed to a key signerd offers for this request.
                auto pin = hsm::Secret::from_file(*pin_file);
                if (!pin) {
                    auth->wipe();
                    exit_code = fail(pin.error().to_string());
                    return;
                }
                auto sealed =
                    seal_to_signerd(*c, *auth, "approve", std::to_string(*id), *pin, *identity);
                pin->wipe();
                if (!sealed) {
                    auth->wipe();
                    exit_code = fail(sealed.error());
                    return;
                }
                envelope = std::move(*sealed);
            }
            exit_code = call(*c, ipc::ElevationDecide{*auth, action, *id, *reason, envelope});
        });
    }
    CLI::App* revoke =
        elevation->add_subcommand("revoke", "revoke an active grant (durable before the answer)");
    add_common(revoke, *c);
    revoke->add_option("--grant", *id, "grant id")->required();
    revoke->add_option("--reason", *reason, "why (required)")->required();
    revoke->callback([&exit_code, c, id, reason] {
        auto auth = credentials(*c);
        exit_code = auth ? call(*c, ipc::GrantRevoke{*auth, *id, *reason}) : kUsage;
    });

    // grant list
    CLI::App* grant = app.add_subcommand("grant", "grants")->require_subcommand(1);
    auto active_only = std::make_shared<bool>(false);
    CLI::App* glist = grant->add_subcommand("list", "list grants");
    add_common(glist, *c);
    glist->add_flag("--active", *active_only, "active grants only");
    glist->callback([&exit_code, c, active_only] {
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        exit_code = call(*c, ipc::GrantList{*auth, *active_only}, [](const ipc::Reply& reply) {
            if (const auto* g = std::get_if<ipc::GrantsReply>(&reply)) {
                for (const auto& v : g->grants) {
                    std::cout << v.id << "\t" << v.state << "\t" << v.scope << "\t" << v.holder;
                    if (v.state == "scheduled") {
                        std::cout << "\tfrom " << time_text(v.starts_ms);
                    }
                    std::cout << "\tuntil " << time_text(v.expires_ms) << "\tuses " << v.uses;
                    if (v.budget) {
                        std::cout << "/" << *v.budget;
                    }
                    std::cout << (v.break_glass ? "\tBREAK-GLASS" : "")
                              << (v.renews != 0 ? "\trenews grant " + std::to_string(v.renews) : "")
                              << "\n";
                }
            }
        });
    });
}

}  // namespace dkim::cli
