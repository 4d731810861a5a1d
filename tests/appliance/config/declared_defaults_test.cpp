// Every default that a daemon's configuration schema declares, and so the README's
// configuration reference documents, against the value its parser applies when the key is
// left out: for dkim-signerd, dkim-relayd, dkim-webd and dkim-notifyd. A declared default that
// no check below reads fails too, so a new key cannot skip the comparison.
//
// Each check parses a small file (the daemon's required keys, the key's table, and what makes
// the key apply, such as [pin] source = "credential") and renders the parsed value as the
// reference writes it; both sides are compared in a canonical form for their type (a duration
// in milliseconds, a size in bytes). A default given per name of a placeholder ("sign 8h,
// others 1h" for policy.<operation>.max_duration) is compared name by name.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "appliance/notify/notifyd_config.hpp"
#include "appliance/relayd/config.hpp"
#include "appliance/signerd/config.hpp"
#include "dkim/config/toml_reader.hpp"
#include "web/src/config.hpp"

namespace {

namespace fs = std::filesystem;
using dkim::config::KeyDoc;
using dkim::config::Schema;

std::vector<std::string_view> words(std::string_view text, char separator = ' ') {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        const auto at = text.find(separator);
        if (at != 0) {
            out.push_back(text.substr(0, at));
        }
        text = at == std::string_view::npos ? std::string_view() : text.substr(at + 1);
    }
    return out;
}

// ", " outside brackets: the parts of "admin and key.retire 2, others 1".
std::vector<std::string> parts(std::string_view text) {
    std::vector<std::string> out(1);
    int depth = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        depth += text[i] == '[' ? 1 : (text[i] == ']' ? -1 : 0);
        if (depth == 0 && text.substr(i, 2) == ", ") {
            out.emplace_back();
            ++i;
        } else {
            out.back() += text[i];
        }
    }
    return out;
}

// One value of `type` in a form that compares: "5m" and "300000ms" alike.
std::string canonical_value(std::string_view type, std::string text) {
    // A trailing note is not part of the value: "[] (anyone)".
    if (const auto note = text.find(" ("); note != std::string::npos && text.back() == ')') {
        text.resize(note);
    }
    if (type == "duration") {
        if (text == "none") {
            return "0ms";
        }
        if (const auto d = dkim::config::parse_duration(text)) {
            return std::to_string(d->count()) + "ms";
        }
    } else if (type == "size") {
        if (const auto bytes = dkim::config::parse_size(text)) {
            return std::to_string(*bytes);
        }
    }
    return text;
}

// A folder for one daemon's files, removed at the end.
fs::path make_folder() {
    static int made = 0;
    const fs::path dir =
        fs::temp_directory_path() /
        ("dkim-defaults-" + std::to_string(::getpid()) + "-" + std::to_string(++made));
    fs::create_directories(dir);
    return dir;
}

template <class Config>
class DeclaredDefaults {
  public:
    using Load = std::function<dkim::Expected<Config, std::string>(const std::string& file)>;
    using Read = std::function<std::string(const Config&)>;

    // `minimal`: the daemon's required keys.
    DeclaredDefaults(const Schema& schema, Load load, std::string minimal)
        : schema_(schema), load_(std::move(load)), minimal_(std::move(minimal)) {}
    ~DeclaredDefaults() {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    DeclaredDefaults(const DeclaredDefaults&) = delete;
    DeclaredDefaults& operator=(const DeclaredDefaults&) = delete;

    // `key` parses to its declared default in the minimal file with `extra` after it (by default,
    // the key's table, empty); `read` renders the parsed configuration's value.
    void expect(std::string_view key, const Read& read,
                std::optional<std::string> extra = std::nullopt) {
        expect_in(minimal_ + extra.value_or(table_of(key)), key, read);
    }

    // `expect` for a part of the configuration (a next hop, an operation's policy): `each` renders
    // a part's value for every part, in the minimal file with `extra` after it.
    template <class Part>
    using PartRead = std::function<std::string(const Part&)>;
    template <class Part>
    auto for_parts(std::string (*each)(const Config&, const PartRead<Part>&), std::string extra) {
        return [this, each, extra](std::string_view key, PartRead<Part> read) {
            expect(
                key, [each, read](const Config& c) { return each(c, read); }, extra);
        };
    }

    // `expect` in a file of its own: for keys that exclude the minimal file's.
    void expect_in(const std::string& text, std::string_view key, const Read& read) {
        const KeyDoc* doc = find(key);
        if (doc == nullptr || doc->fallback.empty()) {
            ADD_FAILURE() << schema_.title << ": no declared default for " << key;
            return;
        }
        checked_.insert(std::string(key));
        const fs::path file = dir_ / "config.toml";
        std::ofstream(file) << text;
        auto config = load_(file.string());
        if (!config.has_value()) {
            ADD_FAILURE() << schema_.title << ": " << key << ": " << config.error() << "\n" << text;
            return;
        }
        const std::string parsed = read(*config);
        EXPECT_EQ(canonical(*doc, parsed), canonical(*doc, std::string(doc->fallback)))
            << schema_.title << ": the parsed default of " << key << " is not the declared "
            << doc->fallback << " (parsed: " << parsed << ")\n"
            << text;
    }

    // Every key that declares a default value was compared.
    void expect_every_default_compared() const {
        for (const KeyDoc& k : schema_.keys) {
            if (!k.fallback.empty() && k.type != "table" && k.type != "tables") {
                EXPECT_EQ(checked_.count(std::string(k.path)), 1U)
                    << schema_.title << ": " << k.path << " declares the default " << k.fallback
                    << ": compare it with the parsed one here";
            }
        }
    }

  private:
    const KeyDoc* find(std::string_view key) const {
        for (const KeyDoc& k : schema_.keys) {
            if (k.path == key) {
                return &k;
            }
        }
        return nullptr;
    }
    // "[audit]\n" for "audit.checkpoint_interval"; "" for a top-level key, and for one in an
    // array of tables or under a placeholder (the check says which tables).
    static std::string table_of(std::string_view key) {
        const auto dot = key.rfind('.');
        if (dot == std::string_view::npos || key.find_first_of("[<") != std::string_view::npos) {
            return "";
        }
        return "[" + std::string(key.substr(0, dot)) + "]\n";
    }
    // The names a placeholder in `doc`'s path stands for, or none.
    std::vector<std::string_view> names(const KeyDoc& doc) const {
        for (const auto& p : schema_.placeholders) {
            if (doc.path.find(p.name) != std::string_view::npos) {
                return words(p.names);
            }
        }
        return {};
    }
    // A placeholder's default, name by name: "sign 8h, others 1h" -> "admin=3600000ms; ...".
    std::string canonical(const KeyDoc& doc, const std::string& text) const {
        const auto all = names(doc);
        if (all.empty()) {
            return canonical_value(doc.type, text);
        }
        std::map<std::string, std::string> values;
        std::optional<std::string> others;
        for (const std::string& part : parts(text)) {
            std::vector<std::string> named;
            bool rest = false;
            const auto tokens = words(part);
            std::size_t i = 0;
            for (; i < tokens.size(); ++i) {
                const bool name = std::find(all.begin(), all.end(), tokens[i]) != all.end();
                if (!name && tokens[i] != "and" && tokens[i] != "others") {
                    break;
                }
                rest = rest || tokens[i] == "others";
                if (name) {
                    named.emplace_back(tokens[i]);
                }
            }
            std::string value;
            for (; i < tokens.size(); ++i) {
                value += (value.empty() ? "" : " ") + std::string(tokens[i]);
            }
            value = canonical_value(doc.type, value);
            for (const auto& n : named) {
                values[n] = value;
            }
            if (rest || named.empty()) {
                others = value;
            }
        }
        std::string out;
        for (const auto n : all) {
            const auto it = values.find(std::string(n));
            out += std::string(n) + "=" +
                   (it != values.end() ? it->second : others.value_or("(none)")) + "; ";
        }
        return out;
    }

    const Schema& schema_;
    Load load_;
    std::string minimal_;
    fs::path dir_ = make_folder();
    std::set<std::string> checked_;
};

std::string ms(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + "ms";
}

std::string flag(bool b) {
    return b ? "true" : "false";
}

// ["a", "b"], as the reference writes a list.
std::string list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (const auto& i : items) {
        out += (out.size() == 1 ? "\"" : ", \"") + i + "\"";
    }
    return out + "]";
}

// --- dkim-signerd ----------------------------------------------------------------------------

using dkim::signerd::PinSourceKind;
using SignerdConfig = dkim::signerd::Config;

std::string each_operation(const SignerdConfig& c,
                           const std::function<std::string(const dkim::jit::OperationPolicy&)>& f) {
    std::string out;
    for (const dkim::jit::Operation op : dkim::jit::kOperations) {
        out += (out.empty() ? "" : ", ") + std::string(dkim::jit::to_string(op)) + " " +
               f(c.policy.for_operation(op));
    }
    return out;
}

std::string peers_of(const SignerdConfig& c, dkim::signerd::PeerKind kind) {
    std::vector<std::string> names;
    for (const auto& [uid, peer] : c.peers) {
        if (peer.kind == kind) {
            names.push_back(peer.name);
        }
    }
    return list(names);
}

TEST(DeclaredDefaultsTest, Signerd) {
    const std::string required = "module = \"m.so\"\ntoken = \"t\"\n";
    using C = SignerdConfig;
    DeclaredDefaults<C> d(dkim::signerd::config_schema(), dkim::signerd::load_config,
                          required + "[pin]\nsource = \"file\"\nfile = \"/pin\"\n");
    d.expect("state_dir", [](const C& c) { return c.state_dir.string(); });
    d.expect("socket", [](const C& c) { return c.socket.string(); });
    d.expect("socket_mode", [](const C& c) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", c.socket_mode);
        return std::string(mode);
    });
    d.expect("password_cost", [](const C& c) {
        const auto interactive = *dkim::jit::parse_password_cost("interactive");
        return c.password_cost.ops == interactive.ops &&
                       c.password_cost.memory == interactive.memory
                   ? std::string("interactive")
                   : std::string("another cost");
    });
    d.expect("peers.relay", [](const C& c) { return peers_of(c, dkim::signerd::PeerKind::relay); });
    d.expect("peers.web", [](const C& c) { return peers_of(c, dkim::signerd::PeerKind::web); });
    d.expect("peers.admin", [](const C& c) { return peers_of(c, dkim::signerd::PeerKind::admin); });
    d.expect("peers.reports",
             [](const C& c) { return peers_of(c, dkim::signerd::PeerKind::reports); });
    d.expect("audit.checkpoint_interval", [](const C& c) { return ms(c.checkpoint_interval); });
    d.expect("audit.checkpoint_records",
             [](const C& c) { return std::to_string(c.checkpoint_records); });
    d.expect("signing_profile.oversigned", [](const C& c) { return list(c.profile.oversigned); });
    d.expect("signing_profile.max_clock_skew", [](const C& c) {
        return ms(std::chrono::duration_cast<std::chrono::milliseconds>(c.profile.max_clock_skew));
    });
    d.expect("signing_profile.max_lifetime", [](const C& c) {
        return ms(std::chrono::duration_cast<std::chrono::milliseconds>(c.profile.max_lifetime));
    });
    d.expect("metrics.listen", [](const C& c) { return c.metrics_listen; });
    d.expect("webauthn.origins", [](const C& c) { return list(c.webauthn.origins); });
    d.expect("webauthn.rp_name", [](const C& c) { return c.webauthn.rp_name; });
    d.expect("webauthn.user_verification", [](const C& c) {
        return std::string(c.webauthn.require_user_verification ? "required" : "preferred");
    });
    // Each operation's table, empty: its own defaults, not another's.
    const std::string operations =
        "[policy.sign]\n[policy.admin]\n[policy.key.generate]\n"
        "[policy.key.rotate]\n[policy.key.retire]\n";
    auto operation = d.for_parts<dkim::jit::OperationPolicy>(each_operation, operations);
    operation("policy.<operation>.max_duration", [](const auto& p) { return ms(p.max_duration); });
    operation("policy.<operation>.pending_expiry",
              [](const auto& p) { return ms(p.pending_expiry); });
    operation("policy.<operation>.renew_before",
              [](const auto& p) { return p.renew_before.to_string(); });
    operation("policy.<operation>.quorum", [](const auto& p) { return std::to_string(p.quorum); });
    operation("policy.<operation>.factors", [](const auto& p) {
        std::vector<std::string> accepted;
        if (p.accepts_totp) {
            accepted.emplace_back("totp");
        }
        if (p.accepts_webauthn) {
            accepted.emplace_back("webauthn");
        }
        return list(accepted);
    });
    operation("policy.<operation>.approvers", [](const auto& p) { return list(p.approvers); });
    d.expect("policy.break_glass.max_duration",
             [](const C& c) { return ms(c.policy.break_glass_max); });
    d.expect("policy.signer_request_duration",
             [](const C& c) { return ms(c.policy.signer_request_duration); });
    const std::string rule = "[[policy.auto_approve]]\nname = \"r\"\noperation = \"sign\"\n";
    d.expect(
        "policy.auto_approve[].domain",
        [](const C& c) { return c.policy.auto_approve.at(0).domain_pattern; }, rule);
    d.expect(
        "policy.auto_approve[].requesters",
        [](const C& c) { return list(c.policy.auto_approve.at(0).requesters); }, rule);
    d.expect(
        "policy.auto_approve[].max_duration",
        [](const C& c) { return ms(c.policy.auto_approve.at(0).max_duration); }, rule);

    // The PIN's keys: [pin] is in the minimal file, and its sources exclude each other.
    d.expect_in(required + "[pin]\nfile = \"/pin\"\n", "pin.source",
                [](const C& c) { return std::string(dkim::signerd::to_string(c.pin_source)); });
    d.expect_in(required + "[pin]\nsource = \"sealed\"\n", "pin.credential",
                [](const C& c) { return c.pin_credential; });
    d.expect(
        "pin.unlock_window", [](const C& c) { return ms(c.pin_unlock_window); }, "");
    d.expect(
        "cluster.lease",
        [](const C& c) { return c.cluster ? ms(c.cluster->lease) : std::string("(no cluster)"); },
        "[cluster]\nnode = \"n1\"\ndatabase = \"host=db dbname=dkim\"\n");
    d.expect(
        "cluster.node_keys",
        [](const C& c) {
            std::vector<std::string> names;
            for (const auto& [name, key] : c.cluster->node_keys) {
                names.push_back(name);
            }
            return list(names);
        },
        "[cluster]\nnode = \"n1\"\ndatabase = \"host=db dbname=dkim\"\n");
    d.expect_every_default_compared();
}

// --- dkim-relayd -----------------------------------------------------------------------------

using RelaydConfig = dkim::relayd::Config;

// Each next hop's value: [next_hop], [inbound.next_hop], [inbound.quarantine_next_hop].
std::string each_hop(const RelaydConfig& c,
                     const std::function<std::string(const dkim::relayd::NextHop&)>& f) {
    if (!c.inbound || !c.inbound->quarantine_next_hop) {
        return "(a hop is missing)";
    }
    return "next_hop " + f(c.next_hop) + ", inbound.next_hop " + f(c.inbound->next_hop) +
           ", inbound.quarantine_next_hop " + f(*c.inbound->quarantine_next_hop);
}

std::string each_inbound(const RelaydConfig& c,
                         const std::function<std::string(const dkim::relayd::Inbound&)>& f) {
    return c.inbound ? f(*c.inbound) : std::string("(no [inbound])");
}

std::string each_reports(const RelaydConfig& c,
                         const std::function<std::string(const dkim::relayd::ReportSettings&)>& f) {
    return c.inbound && c.inbound->reports ? f(*c.inbound->reports)
                                           : std::string("(no [inbound.reports])");
}

std::string tls_mode(dkim::relayd::TlsMode mode) {
    switch (mode) {
        case dkim::relayd::TlsMode::required: return "required";
        case dkim::relayd::TlsMode::opportunistic: return "opportunistic";
        case dkim::relayd::TlsMode::off: return "off";
    }
    return "?";
}

TEST(DeclaredDefaultsTest, Relayd) {
    using C = RelaydConfig;
    DeclaredDefaults<C> d(dkim::relayd::config_schema(), dkim::relayd::load_config,
                          "[[listen]]\naddress = \"127.0.0.1:2525\"\n"
                          "[next_hop]\nurl = \"smtp://mx.example.net:25\"\n");
    d.expect("hostname", [](const C& c) { return c.hostname; });
    d.expect("signerd_socket", [](const C& c) { return c.signerd_socket; });
    d.expect("listen[].role", [](const C& c) {
        switch (c.listeners.at(0).role) {
            case dkim::relayd::Listener::Role::outbound: return std::string("outbound");
            case dkim::relayd::Listener::Role::inbound: return std::string("inbound");
            case dkim::relayd::Listener::Role::both: return std::string("both");
        }
        return std::string("?");
    });
    d.expect("listen[].protocol", [](const C& c) {
        return std::string(c.listeners.at(0).protocol == dkim::relayd::Listener::Protocol::smtp
                               ? "smtp"
                               : "milter");
    });
    // A milter listener on a Unix socket: the postfix user's processes (the test machine has
    // Postfix).
    d.expect_in(
        "[[listen]]\naddress = \"unix:/run/dkim-test/milter.sock\"\nprotocol = \"milter\"\n",
        "listen[].allowed_users", [](const C& c) {
            std::string out;
            for (const uid_t uid : c.listeners.at(0).allowed_uids) {
                const passwd* pw = ::getpwuid(uid);
                out += std::string(out.empty() ? "[" : ", ") + "\"" +
                       (pw != nullptr ? pw->pw_name : std::to_string(uid)) + "\"";
            }
            return out + "]";
        });
    // An SMTP listener's and a milter listener's, in one file.
    d.expect_in(
        "[[listen]]\naddress = \"127.0.0.1:2525\"\n[[listen]]\naddress = \"127.0.0.1:8891\"\n"
        "protocol = \"milter\"\n[next_hop]\nurl = \"smtp://mx.example.net:25\"\n",
        "listen[].allowed_networks", [](const C& c) {
            auto text = [](const std::vector<dkim::relayd::Network>& networks) {
                std::string out;
                for (const auto& n : networks) {
                    const bool v4 = std::all_of(n.address.begin(), n.address.begin() + 10,
                                                [](unsigned char b) { return b == 0; }) &&
                                    n.address[10] == 0xff && n.address[11] == 0xff;
                    char buffer[64];
                    ::inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? &n.address[12] : n.address.data(),
                                buffer, sizeof buffer);
                    out += std::string(out.empty() ? "[" : ", ") + "\"" + buffer + "/" +
                           std::to_string(v4 ? n.prefix - 96 : n.prefix) + "\"";
                }
                return out + "]";
            };
            return (c.listeners.at(0).allowed_networks.empty()
                        ? std::string("anyone")
                        : text(c.listeners.at(0).allowed_networks)) +
                   "; milter: " + text(c.listeners.at(1).allowed_networks);
        });
    d.expect("listen[].plain_auth", [](const C& c) { return flag(c.listeners.at(0).plain_auth); });
    d.expect("limits.message_size",
             [](const C& c) { return std::to_string(c.limits.message_size); });
    d.expect("limits.recipients", [](const C& c) { return std::to_string(c.limits.recipients); });
    d.expect("limits.line_length", [](const C& c) { return std::to_string(c.limits.line_length); });
    d.expect("limits.commands", [](const C& c) { return std::to_string(c.limits.commands); });
    d.expect("limits.errors", [](const C& c) { return std::to_string(c.limits.errors); });
    d.expect("limits.connections", [](const C& c) { return std::to_string(c.limits.connections); });
    d.expect("limits.connections_per_client",
             [](const C& c) { return std::to_string(c.limits.connections_per_client); });
    d.expect("limits.auth_failures",
             [](const C& c) { return std::to_string(c.limits.auth_failures); });
    d.expect("limits.greeting_delay", [](const C& c) { return ms(c.limits.greeting_delay); });
    d.expect("limits.command_timeout", [](const C& c) { return ms(c.limits.command_timeout); });
    d.expect("limits.data_timeout", [](const C& c) { return ms(c.limits.data_timeout); });
    d.expect("limits.session_timeout", [](const C& c) { return ms(c.limits.session_timeout); });
    // Every hop, each with its url only.
    const std::string hops =
        "[inbound]\ndomains = [\"example.net\"]\n"
        "[inbound.next_hop]\nurl = \"smtp://in.example.net:25\"\n"
        "[inbound.quarantine_next_hop]\nurl = \"maildir:/var/q\"\n";
    auto hop = d.for_parts<dkim::relayd::NextHop>(each_hop, hops);
    hop("<hop>.tls", [](const auto& h) { return tls_mode(h.tls); });
    hop("<hop>.verify_certificate", [](const auto& h) { return flag(h.verify_certificate); });
    hop("<hop>.server_name", [](const auto& h) {
        return h.server_name == h.host ? std::string("the url's host") : h.server_name;
    });
    hop("<hop>.connect_timeout", [](const auto& h) { return ms(h.connect_timeout); });
    hop("<hop>.command_timeout", [](const auto& h) { return ms(h.command_timeout); });
    hop("<hop>.data_timeout", [](const auto& h) { return ms(h.data_timeout); });
    d.expect("signing.canonicalization", [](const C& c) { return c.canonicalization.to_string(); });
    d.expect("signing.expire_after",
             [](const C& c) { return c.expire_after ? ms(*c.expire_after) : std::string("none"); });
    d.expect("signing.workers", [](const C& c) { return std::to_string(c.signing_workers); });
    d.expect("signing.key_refresh", [](const C& c) { return ms(c.key_refresh); });
    // The inbound keys: [inbound] needs its domains.
    const std::string inbound = "[inbound]\ndomains = [\"example.net\"]\n";
    auto in = d.for_parts<dkim::relayd::Inbound>(each_inbound, inbound);
    d.expect(
        "inbound.authserv_id",
        [](const C& c) {
            return c.inbound->authserv_id == c.hostname ? std::string("hostname")
                                                        : c.inbound->authserv_id;
        },
        inbound);
    in("inbound.dmarc_reject", [](const auto& i) { return flag(i.dmarc_reject); });
    in("inbound.quarantine", [](const auto& i) {
        switch (i.quarantine) {
            case dkim::relayd::Quarantine::header: return std::string("header");
            case dkim::relayd::Quarantine::next_hop: return std::string("next_hop");
            case dkim::relayd::Quarantine::off: return std::string("off");
        }
        return std::string("?");
    });
    in("inbound.check_helo", [](const auto& i) { return flag(i.check_helo); });
    in("inbound.org_domain",
       [](const auto& i) { return std::string(i.tree_walk ? "tree-walk" : "psl"); });
    in("inbound.psl_file", [](const auto& i) { return i.psl_file; });
    in("inbound.dns_timeout", [](const auto& i) { return ms(i.dns_timeout); });
    in("inbound.workers", [](const auto& i) { return std::to_string(i.workers); });
    // The report addresses: [inbound.reports] needs its addresses.
    auto reports = d.for_parts<dkim::relayd::ReportSettings>(
        each_reports, inbound + "[inbound.reports]\naddresses = [\"r@example.net\"]\n");
    reports("inbound.reports.socket", [](const auto& r) { return r.socket; });
    reports("inbound.reports.max_size", [](const auto& r) { return std::to_string(r.max_size); });
    reports("inbound.reports.max_per_client_per_hour",
            [](const auto& r) { return std::to_string(r.max_per_client_per_hour); });
    reports("inbound.reports.max_per_hour",
            [](const auto& r) { return std::to_string(r.max_per_hour); });
    d.expect_every_default_compared();
}

// --- dkim-webd -------------------------------------------------------------------------------

TEST(DeclaredDefaultsTest, Webd) {
    using C = dkim::web::Config;
    DeclaredDefaults<C> d(dkim::web::config_schema(), dkim::web::load_config,
                          "tls_certificate = \"/webd.crt\"\ntls_key = \"/webd.key\"\n");
    d.expect("listen",
             [](const C& c) { return c.listen.host + ":" + std::to_string(c.listen.port); });
    d.expect("self_signed", [](const C& c) { return flag(c.self_signed); });
    d.expect("state_dir", [](const C& c) { return c.state_dir.string(); });
    d.expect("signerd_socket", [](const C& c) { return c.signerd_socket; });
    d.expect("workers", [](const C& c) { return std::to_string(c.workers); });
    d.expect("body_limit", [](const C& c) { return std::to_string(c.body_limit); });
    d.expect("header_limit", [](const C& c) { return std::to_string(c.header_limit); });
    d.expect("read_timeout", [](const C& c) { return ms(c.read_timeout); });
    d.expect("idle_timeout", [](const C& c) { return ms(c.idle_timeout); });
    d.expect("write_timeout", [](const C& c) { return ms(c.write_timeout); });
    d.expect("max_connections", [](const C& c) { return std::to_string(c.max_connections); });
    d.expect("session_ttl",
             [](const C& c) { return ms(std::chrono::seconds(c.handler.session_ttl_seconds)); });
    d.expect("session_idle", [](const C& c) { return ms(c.session_idle); });
    d.expect("max_sessions", [](const C& c) { return std::to_string(c.max_sessions); });
    d.expect("metrics", [](const C& c) {
        switch (c.handler.metrics) {
            case dkim::web::MetricsAccess::off: return std::string("off");
            case dkim::web::MetricsAccess::public_: return std::string("public");
            case dkim::web::MetricsAccess::authenticated: return std::string("authenticated");
            case dkim::web::MetricsAccess::auditor: return std::string("auditor");
        }
        return std::string("?");
    });
    d.expect("login.attempts_per_address",
             [](const C& c) { return std::to_string(c.login.per_address); });
    d.expect("login.attempts_per_user",
             [](const C& c) { return std::to_string(c.login.per_user); });
    d.expect("login.window", [](const C& c) { return ms(c.login.window); });
    d.expect("dns.outbound_addresses",
             [](const C& c) { return list(c.handler.dns.outbound_addresses); });
    d.expect("reports.upload_limit", [](const C& c) { return std::to_string(c.upload_limit); });
    d.expect("reports.upload_timeout", [](const C& c) { return ms(c.upload_timeout); });
    d.expect("reports.reverse_dns", [](const C& c) { return flag(c.reverse_dns); });
    d.expect("reports.dns_timeout", [](const C& c) { return ms(c.dns_timeout); });
    d.expect_every_default_compared();
}

// --- dkim-notifyd ----------------------------------------------------------------------------

TEST(DeclaredDefaultsTest, Notifyd) {
    using C = dkim::notify::Config;
    DeclaredDefaults<C> d(dkim::notify::config_schema(), dkim::notify::load_config,
                          "url = \"https://hooks.example.net/dkim\"\nsecret_file = \"/key\"\n");
    d.expect("outbox", [](const C& c) { return c.outbox.string(); });
    d.expect("timeout", [](const C& c) { return ms(c.timeout); });
    d.expect("poll_interval", [](const C& c) { return ms(c.poll_interval); });
    d.expect("first_backoff", [](const C& c) { return ms(c.first_backoff); });
    d.expect("max_backoff", [](const C& c) { return ms(c.max_backoff); });
    d.expect("max_age", [](const C& c) { return ms(c.max_age); });
    d.expect_every_default_compared();
}

}  // namespace
