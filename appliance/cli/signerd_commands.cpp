// dkim-appliance user | apitoken | totp | elevation | grant | audit | signerd: the operator's
// side of dkim-signerd. Everything but `audit export` and `audit verify` goes through
// signerd's socket, where credentials are checked; those two read the state store directly
// (read-only), so that the log can be checked without trusting the daemon that wrote it.
//
// Credentials come from files or the terminal, never from the command line: --user with
// --password-file, or --token-file. --totp is a one-time code (approve, deny, revoke).

#include <charconv>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/crypto/base64.hpp"
#include "dkim/crypto/public_key.hpp"
#include "dkim/crypto/sha256.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/ipc/client.hpp"
#include "dkim/jit/audit.hpp"
#include "dkim/jit/credentials.hpp"
#include "dkim/jit/policy.hpp"
#include "dkim/jit/store.hpp"
#include "dkim/provisioning/keys.hpp"
#include "dkim/text/json.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {
namespace {

// --- audit verify / export, on the store itself ---------------------------------------------

struct AuditFileArgs {
    std::string db;
    std::string out;
    std::string against;
    provisioning::TokenLocation where;
};

Expected<std::pair<std::vector<jit::AuditRecord>, std::vector<jit::Checkpoint>>, std::string>
read_store(const std::string& db) {
    jit::SqliteOptions options;
    options.read_only = true;
    options.create = false;
    auto store = jit::open_sqlite_store(db, options);
    if (!store) {
        return unexpected(store.error());
    }
    std::vector<jit::AuditRecord> all;
    for (std::int64_t from = 1;;) {
        // By position, not by seq: a gap or a duplicate must reach verify_chain as it is.
        auto page = (*store)->audit_records(from, 50'000);
        if (!page) {
            return unexpected(page.error());
        }
        if (page->empty()) {
            break;
        }
        from = page->back().seq + 1;
        for (auto& r : *page) {
            all.push_back(std::move(r));
        }
        if (page->size() < 50'000) {
            break;
        }
    }
    auto checkpoints = (*store)->checkpoints();
    if (!checkpoints) {
        return unexpected(checkpoints.error());
    }
    return std::make_pair(std::move(all), std::move(*checkpoints));
}

int run_audit_export(const AuditFileArgs& args) {
    auto data = read_store(args.db);
    if (!data) {
        return fail(data.error());
    }
    std::ofstream out(args.out, std::ios::trunc);
    if (!out) {
        return fail("cannot write " + args.out);
    }
    for (const jit::AuditRecord& r : data->first) {
        out << "{\"type\":\"record\",\"seq\":" << r.seq << ",\"time_ms\":" << to_unix_ms(r.time)
            << ",\"actor\":" << text::json_quote(r.actor)
            << ",\"action\":" << text::json_quote(r.action)
            << ",\"scope\":" << text::json_quote(r.scope)
            << ",\"outcome\":" << text::json_quote(r.outcome)
            << ",\"reason\":" << text::json_quote(r.reason) << ",\"request_id\":" << r.request_id
            << ",\"grant_id\":" << r.grant_id << ",\"detail\":" << text::json_quote(r.detail)
            << ",\"hash\":\"" << jit::to_hex(r.hash) << "\"}\n";
    }
    for (const jit::Checkpoint& c : data->second) {
        out << "{\"type\":\"checkpoint\",\"seq\":" << c.seq << ",\"head\":\"" << jit::to_hex(c.head)
            << "\",\"time_ms\":" << to_unix_ms(c.time)
            << ",\"key\":" << text::json_quote(c.key_label)
            << ",\"algorithm\":" << text::json_quote(c.algorithm) << ",\"signature\":\""
            << crypto::base64_encode(c.signature) << "\"}\n";
    }
    out.close();
    if (!out) {
        return fail("cannot write " + args.out);
    }
    std::cout << "exported " << data->first.size() << " records and " << data->second.size()
              << " checkpoints to " << args.out << "\n";
    return 0;
}

// Checkpoints of an earlier export, plus its last record as an anchor: the log must still
// hold everything that export held. The lines are the ones run_audit_export writes, read by
// position: {"type":"record","seq":N,...,"hash":"<hex>"} and
// {"type":"checkpoint","seq":N,"head":"<hex>",...}. (Free text fields sit in between, so
// nothing is searched for inside them.)
Expected<std::vector<jit::Checkpoint>, std::string> read_anchors(const std::string& file) {
    std::ifstream in(file);
    if (!in) {
        return unexpected("cannot read " + file);
    }
    std::vector<jit::Checkpoint> anchors;
    std::optional<jit::Checkpoint> last_record;
    std::string line;
    std::size_t number = 0;
    auto parse_seq = [](std::string_view rest, std::int64_t& seq) {
        const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), seq);
        return ec == std::errc() && end != rest.data() && *end == ',' && seq > 0;
    };
    while (std::getline(in, line)) {
        ++number;
        const std::string where = file + ":" + std::to_string(number) + ": ";
        static constexpr std::string_view record_prefix = "{\"type\":\"record\",\"seq\":";
        static constexpr std::string_view checkpoint_prefix = "{\"type\":\"checkpoint\",\"seq\":";
        static constexpr std::size_t hex_size = 64;
        const std::string_view text = line;
        jit::Checkpoint c;
        std::optional<jit::ChainHash> hash;
        if (text.rfind(record_prefix, 0) == 0) {
            // ...,"hash":"<64 hex>"}
            static constexpr std::string_view tail = ",\"hash\":\"";
            if (!parse_seq(text.substr(record_prefix.size()), c.seq) ||
                text.size() < tail.size() + hex_size + 2 ||
                text.substr(text.size() - hex_size - 2 - tail.size(), tail.size()) != tail ||
                text.substr(text.size() - 2) != "\"}") {
                return unexpected(where + "not a record line of an audit export");
            }
            hash = jit::chain_hash_from_hex(text.substr(text.size() - hex_size - 2, hex_size));
        } else if (text.rfind(checkpoint_prefix, 0) == 0) {
            const std::string_view rest = text.substr(checkpoint_prefix.size());
            const auto head = rest.find(",\"head\":\"");
            if (!parse_seq(rest, c.seq) || head == std::string_view::npos ||
                rest.size() < head + 9 + hex_size) {
                return unexpected(where + "not a checkpoint line of an audit export");
            }
            hash = jit::chain_hash_from_hex(rest.substr(head + 9, hex_size));
        } else {
            return unexpected(where + "not an audit export line");
        }
        if (!hash) {
            return unexpected(where + "bad hash");
        }
        c.head = *hash;
        if (text.rfind(record_prefix, 0) == 0) {
            if (!last_record || c.seq > last_record->seq) {
                last_record = c;
            }
        } else {
            anchors.push_back(c);
        }
    }
    if (last_record) {
        anchors.push_back(*last_record);
    }
    return anchors;
}

// The chain, the export's anchors (--against), and the checkpoint rules of jit::verify_log:
// every record covered by a later signed checkpoint but the tail, which is named. With
// --token the signatures are checked with the audit key's public half (no PIN needed).
int run_audit_verify(const AuditFileArgs& args) {
    auto data = read_store(args.db);
    if (!data) {
        return fail(data.error());
    }
    auto& [records, checkpoints] = *data;
    std::vector<jit::Checkpoint> anchors;
    if (!args.against.empty()) {
        auto exported = read_anchors(args.against);
        if (!exported) {
            return fail(exported.error());
        }
        anchors = std::move(*exported);
    }
    jit::LogCheckOptions options;
    options.now = SystemClock().now();
    std::optional<crypto::PublicKey> public_key;
    if (!args.where.token.empty()) {
        auto key = provisioning::public_key(args.where, hsm::KeyName{"signerd.invalid", "audit"});
        if (key) {
            auto parsed = crypto::PublicKey::parse(
                KeyType::ed25519,
                std::string_view(reinterpret_cast<const char*>(key->public_key.raw.data()),
                                 key->public_key.raw.size()));
            if (!parsed) {
                return fail("audit key: " + parsed.error());
            }
            public_key = std::move(*parsed);
        } else if (key.error().code != hsm::ErrorCode::key_not_found) {
            return fail("audit key: " + key.error().to_string());
        }
        // No audit key in the token: no checkpoint can be valid, and each one found says so.
        options.signature_valid = [&public_key](const jit::Checkpoint& c) {
            return public_key && public_key->verify(
                                     SigningAlgorithm::ed25519_sha256,
                                     crypto::Sha256::hash(jit::checkpoint_message(c)), c.signature);
        };
    }
    const jit::LogReport report = jit::verify_log(records, checkpoints, anchors, options);
    if (!report.chain.ok) {
        std::cout << "BROKEN at record " << report.chain.first_broken << ": "
                  << report.chain.problem << "\n";
        return kFailed;
    }
    std::cout << "ok: " << report.chain.records << " records, chain intact; " << report.checkpoints
              << " checkpoints in the chain";
    if (report.failed_checkpoints > 0) {
        std::cout << " (" << report.failed_checkpoints << " failed, see the log)";
    }
    if (report.table_checkpoints > 0) {
        std::cout << ", " << report.table_checkpoints << " in the checkpoints table";
    }
    if (!anchors.empty()) {
        std::cout << ", " << anchors.size() << " anchors of " << args.against << " match";
    }
    if (report.signatures_checked) {
        std::cout << "; " << report.signatures_valid << " checkpoint signatures valid";
    } else {
        std::cout << " (signatures not checked: give --token to check them)";
    }
    std::cout << "; covered through record " << report.covered_through;
    if (!report.unclean_ends.empty()) {
        // Each a crash that signerd's next login covered with a signed recovery checkpoint.
        const bool one = report.unclean_ends.size() == 1;
        std::cout << "; " << report.unclean_ends.size() << (one ? " unclean end" : " unclean ends")
                  << " (signerd stopped without logging out) covered by a signed recovery "
                     "checkpoint, at signerd.start record"
                  << (one ? "" : "s");
        const char* separator = " ";
        for (const std::int64_t start : report.unclean_ends) {
            std::cout << separator << start;
            separator = ", ";
        }
    }
    if (!report.tail.empty()) {
        std::cout << "; " << report.tail;
    }
    std::cout << "\n";
    return 0;
}

}  // namespace

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

    // user add | list | disable | enable
    CLI::App* user =
        app.add_subcommand("user", "users of the approval workflow")->require_subcommand(1);
    auto name = std::make_shared<std::string>();
    auto roles = std::make_shared<std::string>();
    auto new_password_file = std::make_shared<std::string>();
    CLI::App* add = user->add_subcommand("add", "add a user");
    add_common(add, *c);
    add->add_option("--name", *name, "user name")->required();
    add->add_option("--roles", *roles, "requester, approver, admin, auditor (comma-separated)")
        ->required();
    add->add_option("--new-password-file", *new_password_file, "file holding the user's password");
    add->callback([&exit_code, c, name, roles, new_password_file] {
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        std::string password;
        if (!new_password_file->empty()) {
            std::string error;
            password = read_secret(*new_password_file, error);
            if (!error.empty()) {
                exit_code = fail(error);
                return;
            }
        }
        exit_code = call(*c, ipc::UserAdd{*auth, *name, *roles, password});
        base::wipe(password);
    });
    CLI::App* list = user->add_subcommand("list", "list users and their tokens");
    add_common(list, *c);
    list->callback([&exit_code, c] {
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        exit_code = call(*c, ipc::UserList{*auth}, [](const ipc::Reply& reply) {
            if (const auto* u = std::get_if<ipc::UsersReply>(&reply)) {
                for (const auto& v : u->users) {
                    std::cout << v.name << "\t" << v.roles << "\t"
                              << (v.disabled ? "disabled" : "enabled") << "\t"
                              << (v.has_password ? "password" : "no-password") << "\t"
                              << (v.totp ? "totp" : "no-totp") << "\n";
                }
                for (const auto& t : u->tokens) {
                    std::cout << "token " << t.id << "\t" << t.user << "\t" << t.kind << "\t"
                              << t.label << "\t" << (t.revoked ? "revoked/expired" : "valid")
                              << "\texpires " << time_text(t.expires_ms) << "\n";
                }
            }
        });
    });
    for (const bool disable : {true, false}) {
        CLI::App* cmd = user->add_subcommand(
            disable ? "disable" : "enable",
            disable ? "disable a user (its tokens stop working)" : "enable a user");
        add_common(cmd, *c);
        cmd->add_option("--name", *name, "user name")->required();
        cmd->callback([&exit_code, c, name, disable] {
            auto auth = credentials(*c);
            exit_code = auth ? call(*c, ipc::UserSetDisabled{*auth, *name, disable}) : kUsage;
        });
    }

    // apitoken create | revoke
    CLI::App* apitoken =
        app.add_subcommand("apitoken", "API tokens (shown once)")->require_subcommand(1);
    auto label = std::make_shared<std::string>();
    auto ttl = std::make_shared<std::string>();
    auto id = std::make_shared<std::int64_t>(0);
    CLI::App* create = apitoken->add_subcommand(
        "create", "create an API token (needs --user and --password-file)");
    add_common(create, *c);
    create->add_option("--for", *name, "user the token belongs to (default: --user)");
    create->add_option("--label", *label, "what the token is for");
    create->add_option("--ttl", *ttl,
                       "lifetime, such as 30d (default: 90d); 'never' for a token that does not "
                       "expire");
    create->callback([&exit_code, c, name, label, ttl] {
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        std::int64_t seconds = 0;  // signerd's default, ipc::kApiTokenDefaultTtl
        if (*ttl == "never") {
            seconds = ipc::kApiTokenNeverExpires;
        } else if (!ttl->empty()) {
            const auto d = jit::parse_duration(*ttl);
            if (!d) {
                exit_code = fail("--ttl: expected a duration such as 30d");
                return;
            }
            seconds = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
            if (seconds <= 0) {
                exit_code = fail("--ttl: expected a duration such as 30d, or never");
                return;
            }
        }
        exit_code = call(*c, ipc::ApiTokenCreate{*auth, *name, *label, seconds});
    });
    CLI::App* revoke_token = apitoken->add_subcommand("revoke", "revoke an API token");
    add_common(revoke_token, *c);
    revoke_token->add_option("--id", *id, "token id")->required();
    revoke_token->callback([&exit_code, c, id] {
        auto auth = credentials(*c);
        exit_code = auth ? call(*c, ipc::ApiTokenRevoke{*auth, *id}) : kUsage;
    });

    // totp enrol | confirm
    CLI::App* totp =
        app.add_subcommand("totp", "TOTP second factor (RFC 6238)")->require_subcommand(1);
    auto code = std::make_shared<std::string>();
    CLI::App* enrol =
        totp->add_subcommand("enrol", "new TOTP secret; prints the otpauth:// URI once");
    add_common(enrol, *c);
    enrol->add_option("--for", *name, "user (default: --user)");
    enrol->callback([&exit_code, c, name] {
        auto auth = credentials(*c);
        exit_code = auth ? call(*c, ipc::TotpEnrol{*auth, *name}) : kUsage;
    });
    CLI::App* confirm =
        totp->add_subcommand("confirm", "confirm the enrolment with a current code");
    add_common(confirm, *c);
    confirm->add_option("--for", *name, "user (default: --user)");
    confirm
        ->add_option("--code", *code,
                     "the current code; '-' reads it from standard input (a prompt without echo "
                     "on a terminal)")
        ->required();
    confirm->callback([&exit_code, c, name, code] {
        auto the_code = code_argument(*code, "TOTP code: ");
        base::wipe(*code);
        auto auth = the_code ? credentials(*c) : std::nullopt;
        exit_code = auth ? call(*c, ipc::TotpConfirm{*auth, *name, *the_code}) : kUsage;
        if (the_code) {
            base::wipe(*the_code);
        }
    });

    // elevation request | list | approve | deny | cancel | revoke
    CLI::App* elevation =
        app.add_subcommand("elevation", "just-in-time elevations")->require_subcommand(1);
    auto req = std::make_shared<ipc::ElevationRequest>();
    auto duration = std::make_shared<std::string>();
    auto budget = std::make_shared<std::uint64_t>(0);
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
                              << (v.break_glass ? "BREAK-GLASS " : "") << v.reason
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
                            "the token PIN (PIN source \"approver\" only)");
        }
        cmd->callback([&exit_code, c, id, reason, pin_file, action] {
            auto auth = credentials(*c);
            if (!auth) {
                exit_code = kUsage;
                return;
            }
            std::string pin;
            if (!pin_file->empty()) {
                std::string error;
                pin = read_secret(*pin_file, error);
                if (!error.empty()) {
                    exit_code = fail(error);
                    return;
                }
            }
            exit_code = call(*c, ipc::ElevationDecide{*auth, action, *id, *reason, pin});
            base::wipe(pin);
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
                    std::cout << v.id << "\t" << v.state << "\t" << v.scope << "\t" << v.holder
                              << "\tuntil " << time_text(v.expires_ms) << "\tuses " << v.uses;
                    if (v.budget) {
                        std::cout << "/" << *v.budget;
                    }
                    std::cout << (v.break_glass ? "\tBREAK-GLASS" : "") << "\n";
                }
            }
        });
    });

    // audit show | export | verify
    CLI::App* audit =
        app.add_subcommand("audit", "the tamper-evident audit log")->require_subcommand(1);
    auto from = std::make_shared<std::int64_t>(1);
    auto limit = std::make_shared<std::int64_t>(100);
    CLI::App* show = audit->add_subcommand("show", "print audit records (through signerd)");
    add_common(show, *c);
    show->add_option("--from", *from, "first record")->capture_default_str();
    show->add_option("--limit", *limit, "at most this many")->capture_default_str();
    show->callback([&exit_code, c, from, limit] {
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        exit_code = call(*c, ipc::AuditShow{*auth, *from, *limit}, [](const ipc::Reply& reply) {
            if (const auto* a = std::get_if<ipc::AuditReply>(&reply)) {
                for (const auto& r : a->records) {
                    std::cout << r.seq << "\t" << time_text(r.time_ms) << "\t" << r.actor << "\t"
                              << r.action << "\t" << r.outcome << "\t" << r.scope << "\t"
                              << r.reason << "\t" << r.detail << "\n";
                }
            }
        });
    });
    auto file_args = std::make_shared<AuditFileArgs>();
    CLI::App* exp =
        audit->add_subcommand("export", "write the log and its checkpoints as JSON lines");
    exp->add_option("--db", file_args->db, "signerd.db in the state folder")->required();
    exp->add_option("--out", file_args->out, "output file")->required();
    exp->callback([&exit_code, file_args] { exit_code = run_audit_export(*file_args); });
    CLI::App* ver = audit->add_subcommand(
        "verify", "walk the hash chain and report the first broken record; exit 1 if broken");
    ver->add_option("--db", file_args->db, "signerd.db in the state folder")->required();
    ver->add_option("--against", file_args->against,
                    "an earlier `audit export`: the log must still hold all of it (truncation)");
    ver->add_option("--module", file_args->where.module,
                    "PKCS#11 module, to check checkpoint signatures");
    ver->add_option("--token", file_args->where.token, "token label or URI holding the audit key");
    ver->callback([&exit_code, file_args] { exit_code = run_audit_verify(*file_args); });
}

}  // namespace dkim::cli
