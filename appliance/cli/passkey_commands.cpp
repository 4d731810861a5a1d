// dkim-appliance passkey list | remove | confirm: the users' passkeys (WebAuthn credentials) as
// dkim-signerd keeps them. Passkeys are made and used in the web console (a browser talks to the
// authenticator); the CLI lists them, confirms a user's first one (registered with a TOTP code,
// which webd sees: pending until a person confirms it here), and removes them, among them the
// last passkey of a user who lost their authenticator, which the console refuses: here only the
// local operator (root) or an admin under an admin grant may, and signerd checks which.
//
// --user and --password-file (or --token-file) authenticate as everywhere in the CLI; --for
// names the user whose passkeys are listed or removed (root needs no credentials).

#include <iostream>
#include <memory>

#include "commands.hpp"
#include "dkim/crypto/base64.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {

namespace {

// --user names who authenticates; the passkeys' user is --for. `--user bob` alone (root meaning
// bob's passkeys) would fail in credentials() with a message about --password-file: say this.
bool target_is_not_user(const Common& c) {
    if (!c.user.empty() && c.password_file.empty() && c.token_file.empty()) {
        std::cerr << "dkim-appliance: --user " << c.user << " authenticates as " << c.user
                  << " (with --password-file); the user whose passkeys to list or remove is "
                     "--for "
                  << c.user << "\n";
        return false;
    }
    return true;
}

void print_passkeys(const ipc::Reply& reply) {
    const auto* r = std::get_if<ipc::PasskeysReply>(&reply);
    if (r == nullptr) {
        return;
    }
    for (const ipc::PasskeyView& v : r->passkeys) {
        std::cout << v.user << "\t" << v.name << "\t" << v.algorithm << "\t"
                  << crypto::base64url_encode(v.credential_id) << "\tcreated "
                  << time_text(v.created_ms) << "\tlast used "
                  << (v.last_used_ms == 0 ? std::string("never") : time_text(v.last_used_ms))
                  << (v.backup_eligible ? "\tsynced" : "")
                  << (v.confirmed ? "" : "\tPENDING: confirm it with `passkey confirm`") << "\n";
    }
}

}  // namespace

void add_passkey_commands(CLI::App& app, int& exit_code) {
    auto c = std::make_shared<Common>();
    CLI::App* passkey =
        app.add_subcommand("passkey",
                           "passkeys (WebAuthn) of the users: made and used in the web console; "
                           "listed and removed here")
            ->require_subcommand(1);
    auto target = std::make_shared<std::string>();
    auto all = std::make_shared<bool>(false);

    CLI::App* list = passkey->add_subcommand(
        "list",
        "list passkeys: user, name, algorithm, credential id (base64url), created, last used "
        "(yours with --user; another user's or all as root, admin or auditor)");
    add_common(list, *c);
    auto* for_list = list->add_option("--for", *target, "the user whose passkeys to list");
    list->add_flag("--all", *all, "every user's passkeys")->excludes(for_list);
    list->callback([&exit_code, c, target, all] {
        if (!target_is_not_user(*c)) {
            exit_code = kUsage;
            return;
        }
        if (target->empty() && !*all && c->user.empty() && c->token_file.empty()) {
            std::cerr << "dkim-appliance: name the user with --for NAME, or --all (or "
                         "authenticate with --user for your own)\n";
            exit_code = kUsage;
            return;
        }
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        exit_code = call(*c, ipc::PasskeyList{*auth, *all ? "*" : *target}, print_passkeys);
    });

    auto credential = std::make_shared<std::string>();
    CLI::App* remove = passkey->add_subcommand(
        "remove",
        "remove a user's passkey, the last one included (a lost authenticator): as root, or as "
        "an admin under an admin grant; the web console never removes a user's last passkey");
    add_common(remove, *c);
    remove->add_option("--for", *target, "the user whose passkey to remove")->required();
    remove
        ->add_option("CREDENTIAL_ID", *credential,
                     "the passkey's credential id, base64url as `passkey list` prints it")
        ->required();
    remove->callback([&exit_code, c, target, credential] {
        if (!target_is_not_user(*c)) {
            exit_code = kUsage;
            return;
        }
        const auto id = crypto::base64url_decode(*credential);
        if (!id || id->empty()) {
            std::cerr << "dkim-appliance: CREDENTIAL_ID: expected base64url (as `passkey list` "
                         "prints it)\n";
            exit_code = kUsage;
            return;
        }
        auto auth = credentials(*c);
        exit_code = auth ? call(*c, ipc::PasskeyRemove{*auth, *target, *id}) : kUsage;
    });

    CLI::App* confirm = passkey->add_subcommand(
        "confirm",
        "confirm a user's first passkey, registered in the web console with a TOTP code: until "
        "then it neither signs in nor decides (webd sees TOTP codes; a first TOTP is enrolled "
        "here too). As root, or as an admin under an admin grant. Check with the user that the "
        "credential id is theirs: their console shows it");
    add_common(confirm, *c);
    confirm->add_option("--for", *target, "the user whose passkey to confirm")->required();
    confirm
        ->add_option("CREDENTIAL_ID", *credential,
                     "the passkey's credential id, base64url as `passkey list` prints it")
        ->required();
    confirm->callback([&exit_code, c, target, credential] {
        if (!target_is_not_user(*c)) {
            exit_code = kUsage;
            return;
        }
        const auto id = crypto::base64url_decode(*credential);
        if (!id || id->empty()) {
            std::cerr << "dkim-appliance: CREDENTIAL_ID: expected base64url (as `passkey list` "
                         "prints it)\n";
            exit_code = kUsage;
            return;
        }
        auto auth = credentials(*c);
        exit_code = auth ? call(*c, ipc::PasskeyConfirm{*auth, *target, *id}) : kUsage;
    });
}

}  // namespace dkim::cli
