// dkim-appliance audit show | export | verify: the tamper-evident audit log. `show` goes through
// dkim-signerd's socket, where credentials are checked; `export` and `verify` read the state
// store directly (read-only), so that the log can be checked without trusting the daemon that
// wrote it.

#include <charconv>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "commands.hpp"
#include "dkim/crypto/base64.hpp"
#include "dkim/crypto/public_key.hpp"
#include "dkim/crypto/sha256.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/jit/audit.hpp"
#include "dkim/jit/challenges.hpp"
#include "dkim/jit/shared_store.hpp"
#include "dkim/jit/store.hpp"
#include "dkim/provisioning/keys.hpp"
#include "dkim/text/json.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {
namespace {

struct AuditFileArgs {
    std::string db;
    // A cluster's shared store instead (libpq connection string, password apart).
    std::string database;
    std::string password_file;
    std::string out;
    std::string against;
    provisioning::TokenLocation where;
    std::string node;                    // the cluster node whose token --token is
    std::vector<std::string> node_keys;  // NAME=BASE64: other nodes' audit public keys
};

// signerd.db read-only, or the cluster's PostgreSQL store read-only.
Expected<std::unique_ptr<jit::Store>, std::string> open_store(const AuditFileArgs& args) {
    if (!args.database.empty()) {
        jit::PostgresOptions options;
        options.conninfo = args.database;
        options.read_only = true;
        options.node = "audit-verify";
        if (!args.password_file.empty()) {
            auto password = hsm::Secret::from_file(args.password_file);
            if (!password) {
                return unexpected("--password-file: " + password.error().to_string());
            }
            options.password.assign(reinterpret_cast<const char*>(password->bytes().data()),
                                    password->size());
        }
        auto store = jit::open_postgres_store(std::move(options));
        if (!store) {
            return unexpected(store.error());
        }
        return std::unique_ptr<jit::Store>(std::move(*store));
    }
    jit::SqliteOptions options;
    options.read_only = true;
    options.create = false;
    return jit::open_sqlite_store(args.db, options);
}

Expected<std::pair<std::vector<jit::AuditRecord>, std::vector<jit::Checkpoint>>, std::string>
read_store(const AuditFileArgs& args) {
    auto store = open_store(args);
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
    auto data = read_store(args);
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
            << ",\"grant_id\":" << r.grant_id << ",\"detail\":" << text::json_quote(r.detail);
        if (!r.node.empty()) {
            out << ",\"node\":" << text::json_quote(r.node);
        }
        out << ",\"hash\":\"" << jit::to_hex(r.hash) << "\"}\n";
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

// The audit key's public half as `audit key` prints it (PublicKey::parse_audit_key): the raw
// Ed25519 key, or an RSA key's SubjectPublicKeyInfo on a token without EdDSA.
std::string_view audit_key_bytes(const hsm::PublicKey& key) {
    const auto& bytes = key.type == hsm::KeyType::ed25519 ? key.raw : key.spki_der;
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The chain, the export's anchors (--against), and the checkpoint rules of jit::verify_log:
// every record covered by a later signed checkpoint but the tail, which is named. With
// --token the signatures are checked with the audit key's public half (no PIN needed).
int run_audit_verify(const AuditFileArgs& args) {
    auto data = read_store(args);
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
    // The audit keys' public halves, by node ("" on a single appliance): the one in --token
    // (the node named by --node), and any given with --node-key.
    std::map<std::string, std::optional<crypto::PublicKey>> keys;
    if (!args.where.token.empty()) {
        auto key = provisioning::public_key(args.where, hsm::KeyName{"signerd.invalid", "audit"});
        std::optional<crypto::PublicKey> public_key;
        if (key) {
            auto parsed = crypto::PublicKey::parse_audit_key(audit_key_bytes(key->public_key));
            if (!parsed) {
                return fail("audit key: " + parsed.error());
            }
            public_key = std::move(*parsed);
        } else if (key.error().code != hsm::ErrorCode::key_not_found) {
            return fail("audit key: " + key.error().to_string());
        }
        // No audit key in the token: no checkpoint can be valid, and each one found says so.
        keys[args.node] = std::move(public_key);
    }
    for (const std::string& given : args.node_keys) {
        const auto eq = given.find('=');
        const auto raw = eq == std::string::npos
                             ? std::nullopt
                             : crypto::base64_decode(std::string_view(given).substr(eq + 1));
        auto parsed = raw ? crypto::PublicKey::parse_audit_key(*raw)
                          : Expected<crypto::PublicKey, std::string>(
                                unexpected(std::string("expected NAME=BASE64")));
        if (!parsed) {
            return fail("--node-key " + given + ": " + parsed.error());
        }
        keys[given.substr(0, eq)] = std::move(*parsed);
    }
    // With keys given, every checkpoint must verify with its node's key: one of a node whose
    // key was not given is refused (a log rewritten with the checkpoints of a node of the
    // writer's own would otherwise pass), and the report names the node.
    std::set<std::string> unknown;
    if (!keys.empty()) {
        options.signature_valid = [&keys, &unknown](const jit::Checkpoint& c) {
            const auto it = keys.find(c.node);
            if (it == keys.end()) {
                unknown.insert(c.node);
                return false;
            }
            return it->second && it->second->verify(
                                     it->second->signing_algorithm(),
                                     crypto::Sha256::hash(jit::checkpoint_message(c)), c.signature);
        };
    }
    const jit::LogReport report = jit::verify_log(records, checkpoints, anchors, options);
    if (!report.chain.ok) {
        std::cout << "BROKEN at record " << report.chain.first_broken << ": "
                  << report.chain.problem;
        if (!unknown.empty()) {
            std::cout << " (no audit key was given for node " << *unknown.begin()
                      << ": --node-key NAME=KEY, from `audit key` on that node)";
        }
        std::cout << "\n";
        return kFailed;
    }
    // Decisions made with a passkey: each must carry an assertion that verifies with the public
    // key its passkey.register record holds (a forged approval has none).
    const jit::PasskeyDecisionReport passkeys = jit::check_passkey_decisions(records);
    if (passkeys.first_bad != 0) {
        std::cout << "BROKEN at record " << passkeys.first_bad
                  << ": a passkey decision that does not verify: " << passkeys.problem << "\n";
        return kFailed;
    }
    // Signatures under grants no decision in the log made, or made for another scope, or that
    // the log revoked (a grant row written, edited or revived by hand).
    if (const auto unauthorized = jit::first_unauthorized_signature(records);
        unauthorized.seq != 0) {
        std::cout << "BROKEN at record " << unauthorized.seq << ": " << unauthorized.problem
                  << "\n";
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
    std::cout << "; " << passkeys.checked << " passkey decisions verified";
    std::cout << "; covered through record " << report.covered_through;
    // " 12, 15, 20": the records a report names.
    const auto print_seqs = [](const std::vector<std::int64_t>& seqs) {
        const char* separator = " ";
        for (const std::int64_t seq : seqs) {
            std::cout << separator << seq;
            separator = ", ";
        }
    };
    if (!report.unclean_ends.empty()) {
        // Each a crash that signerd's next login covered with a signed recovery checkpoint.
        const bool one = report.unclean_ends.size() == 1;
        std::cout << "; " << report.unclean_ends.size() << (one ? " unclean end" : " unclean ends")
                  << " (signerd stopped without logging out) covered by a signed recovery "
                     "checkpoint, at signerd.start record"
                  << (one ? "" : "s");
        print_seqs(report.unclean_ends);
    }
    if (!report.cut_off_ends.empty()) {
        // Each a node that lost the shared store and logged out after its lease, without a
        // checkpoint; its next login's signed recovery checkpoint covered it.
        const bool one = report.cut_off_ends.size() == 1;
        std::cout << "; " << report.cut_off_ends.size()
                  << (one ? " unclean logout" : " unclean logouts")
                  << " (the record says its node was cut off from the shared store for longer "
                     "than its lease, as a database outage leaves; unsigned, like a crash's "
                     "start) covered by a later signed checkpoint, at token.logout record"
                  << (one ? "" : "s");
        print_seqs(report.cut_off_ends);
    }
    if (!report.tail.empty()) {
        std::cout << "; " << report.tail;
    }
    std::cout << "\n";
    return 0;
}

}  // namespace

void add_audit_commands(CLI::App& app, int& exit_code) {
    auto c = std::make_shared<Common>();

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
    auto* exp_db = exp->add_option("--db", file_args->db, "signerd.db in the state folder");
    auto* exp_database =
        exp->add_option("--database", file_args->database,
                        "a cluster's shared store: libpq's connection string (read-only)");
    exp_db->excludes(exp_database);
    exp->add_option("--password-file", file_args->password_file,
                    "the database password, with --database");
    exp->add_option("--out", file_args->out, "output file")->required();
    exp->callback([&exit_code, file_args, exp] {
        if (exp->count("--db") + exp->count("--database") != 1) {
            std::cerr << "dkim-appliance: audit export needs --db or --database\n";
            exit_code = kUsage;
            return;
        }
        exit_code = run_audit_export(*file_args);
    });
    CLI::App* ver = audit->add_subcommand(
        "verify", "walk the hash chain and report the first broken record; exit 1 if broken");
    auto* ver_db = ver->add_option("--db", file_args->db, "signerd.db in the state folder");
    auto* ver_database = ver->add_option(
        "--database", file_args->database,
        "a cluster's shared store: libpq's connection string (read-only); the whole cluster's "
        "log");
    ver_db->excludes(ver_database);
    ver->add_option("--password-file", file_args->password_file,
                    "the database password, with --database");
    ver->add_option("--node", file_args->node,
                    "with --database: the node whose token --token is (its checkpoints are "
                    "checked with it)");
    ver->add_option("--node-key", file_args->node_keys,
                    "NAME=BASE64: another node's audit public key (`audit key` on that node)");
    ver->add_option("--against", file_args->against,
                    "an earlier `audit export`: the log must still hold all of it (truncation)");
    ver->add_option("--module", file_args->where.module,
                    "PKCS#11 module, to check checkpoint signatures");
    ver->add_option("--token", file_args->where.token, "token label or URI holding the audit key");
    ver->callback([&exit_code, file_args, ver] {
        if (ver->count("--db") + ver->count("--database") != 1) {
            std::cerr << "dkim-appliance: audit verify needs --db or --database\n";
            exit_code = kUsage;
            return;
        }
        exit_code = run_audit_verify(*file_args);
    });
    // audit key: the audit key's public half, for --node-key on the other nodes.
    auto key_where = std::make_shared<provisioning::TokenLocation>();
    CLI::App* key = audit->add_subcommand(
        "key", "print the audit key's public half (base64), for `audit verify --node-key`");
    key->add_option("--module", key_where->module, "PKCS#11 module")->required();
    key->add_option("--token", key_where->token, "token label or URI")->required();
    key->callback([&exit_code, key_where] {
        auto found = provisioning::public_key(*key_where, hsm::KeyName{"signerd.invalid", "audit"});
        if (!found) {
            exit_code = fail("audit key: " + found.error().to_string());
            return;
        }
        std::cout << crypto::base64_encode(audit_key_bytes(found->public_key)) << "\n";
        exit_code = 0;
    });
}

}  // namespace dkim::cli
