// dkim-appliance user | apitoken | totp: the users of the approval workflow, their API tokens
// and their second factor (RFC 6238 TOTP), through dkim-signerd's socket, where credentials are
// checked.
//
// Credentials come from files or the terminal, never from the command line: --user with
// --password-file, or --token-file; a TOTP code from standard input with '-'.

#include <chrono>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/jit/policy.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {

void add_user_commands(CLI::App& app, int& exit_code) {
    auto c = std::make_shared<Common>();

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
}

}  // namespace dkim::cli
