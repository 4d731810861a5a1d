#include "config.hpp"

#include <grp.h>
#include <pwd.h>
#include <toml++/toml.h>

#include <array>

#include "dkim/config/toml_reader.hpp"

namespace dkim::reportd {

namespace {

constexpr config::KeyDoc kReportdKeys[] = {
    {"socket", "string", "/run/dkim-appliance/reportd.sock",
     "The Unix socket relayd, webd and the CLI reach dkim-reportd on.",
     "\"/run/dkim-appliance/reportd.sock\""},
    {"socket_mode", "integer", "0660 (432)", "The socket's permission bits.", "432"},
    {"socket_group", "string", "", "The group the socket belongs to (the peers share it).",
     "\"dkim-reports\""},
    {"store", "string", "/var/lib/dkim-reports/reports.db",
     "The report store (SQLite): submissions as received, reports, findings' inputs.",
     "\"/var/lib/dkim-reports/reports.db\""},
    {"signerd_socket", "string", "/run/dkim-signerd/signerd.sock",
     "dkim-signerd's socket, for its signing summary (this daemon is its reports peer).",
     "\"/run/dkim-signerd/signerd.sock\""},
    {"outbound", "strings", "[]",
     "The addresses or networks the appliance's mail leaves from: sources that are ours.",
     "[\"192.0.2.25\", \"2001:db8::/64\"]"},
    {"max_submissions_per_minute", "integer", "600",
     "Submissions accepted per minute from relayd and webd together (more are refused, to be "
     "retried); the operator's imports are not counted.",
     "600"},
    {"keep_submissions_days", "integer", "90",
     "How long a submission's bytes as received are kept once read (the reports read from them "
     "stay): the store's disk does not grow with every report mail ever sent.",
     "90"},
    {"webhook_outbox", "string", "",
     "A notification outbox (the folder a dkim-notifyd instance delivers from): each new finding "
     "about replay, signing outside a grant or rotation that authenticated reporters' reports "
     "show is spooled there once, as a report.finding event. Empty: no webhook.",
     "\"/var/spool/dkim-notify-reports\""},
    {"peers", "table", "", "Who may connect, by Unix user name or uid; one role per uid."},
    {"peers.relay", "strings", "[]", "May submit report mail only (dkim-relayd).",
     "[\"dkim-relay\"]"},
    {"peers.web", "strings", "[]",
     "May submit (console uploads) and read dashboards, findings and reports (dkim-webd).",
     "[\"dkim-web\"]"},
    {"peers.admin", "strings", "[]", "May do everything (the operator CLI).", "[\"root\"]"},
    {"limits", "table", "", "Caps on one submission (hostile input is expected)."},
    {"limits.max_input", "size", "64MiB", "Bytes of one submission.", "\"64MiB\""},
    {"limits.max_decompressed", "size", "512MiB", "Bytes out of one gzip or zip member.",
     "\"512MiB\""},
    {"limits.max_records", "integer", "2000000", "Records in one aggregate report.", "2000000"},
    {"findings", "table", "", "How findings are judged."},
    {"findings.replay_ratio", "integer", "1",
     "Reported DKIM passes above this many times the signatures (day and lifetime before) are a "
     "suspected replay.",
     "2"},
    {"findings.replay_min_messages", "integer", "10",
     "Fewer reported passes than this are never called a replay.", "10"},
    {"findings.readiness_days", "integer", "14", "The window enforcement readiness looks at.",
     "14"},
    {"findings.readiness_min_messages", "integer", "100",
     "Known sources' messages needed in the window before a next step is proposed.", "100"},
};

std::optional<std::uint32_t> uid_of(const std::string& who) {
    if (!who.empty() && who.find_first_not_of("0123456789") == std::string::npos) {
        try {
            return static_cast<std::uint32_t>(std::stoul(who));
        } catch (...) {
            return std::nullopt;
        }
    }
    passwd entry{};
    passwd* found = nullptr;
    std::array<char, 4096> buffer{};
    if (getpwnam_r(who.c_str(), &entry, buffer.data(), buffer.size(), &found) == 0 &&
        found != nullptr) {
        return static_cast<std::uint32_t>(found->pw_uid);
    }
    return std::nullopt;
}

}  // namespace

const config::Schema& config_schema() {
    static const config::Schema schema{"dkim-reportd: /etc/dkim-appliance/reportd.toml",
                                       kReportdKeys};
    return schema;
}

Expected<Config, std::string> load_config(const std::string& file) {
    try {
        const toml::table root = config::parse_toml_file(file);
        config::TableReader r(root, file, "", &config_schema());
        Config c;
        c.file = file;
        c.socket = r.string("socket").value_or(c.socket.string());
        c.socket_mode = static_cast<unsigned>(
            r.integer("socket_mode", 0, 0777).value_or(static_cast<std::int64_t>(c.socket_mode)));
        if (auto group = r.string("socket_group")) {
            {
                ::group entry{};
                ::group* found = nullptr;
                std::array<char, 4096> buffer{};
                if (getgrnam_r(group->c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
                    found == nullptr) {
                    r.fail("socket_group", "no such group: " + *group);
                }
                c.socket_gid = static_cast<std::uint32_t>(found->gr_gid);
            }
        }
        c.store = r.string("store").value_or(c.store.string());
        if (c.store.is_relative()) {
            r.fail("store", "expected an absolute path");
        }
        c.signerd_socket = r.string("signerd_socket").value_or(c.signerd_socket);
        c.outbound = r.strings("outbound").value_or(c.outbound);
        c.webhook_outbox = r.string("webhook_outbox").value_or("");
        if (!c.webhook_outbox.empty() && c.webhook_outbox.is_relative()) {
            r.fail("webhook_outbox", "expected an absolute path");
        }
        c.max_submissions_per_minute = static_cast<std::uint32_t>(
            r.integer("max_submissions_per_minute", 1, 1'000'000).value_or(600));
        c.keep_submissions_days = static_cast<std::uint32_t>(
            r.integer("keep_submissions_days", 1, 3650).value_or(c.keep_submissions_days));
        if (auto peers = r.table("peers")) {
            const std::pair<const char*, PeerKind> kinds[] = {
                {"relay", PeerKind::relay}, {"web", PeerKind::web}, {"admin", PeerKind::admin}};
            for (const auto& [name, kind] : kinds) {
                for (const std::string& who :
                     peers->strings(name).value_or(std::vector<std::string>{})) {
                    const auto uid = uid_of(who);
                    if (!uid) {
                        peers->fail(name, "no such user: " + who);
                    }
                    if (!c.peers.emplace(*uid, kind).second) {
                        peers->fail(name, who + " has two roles");
                    }
                }
            }
            peers->finish();
        }
        if (auto limits = r.table("limits")) {
            c.limits.max_input = limits->size("max_input", 1024, std::uint64_t{1} << 32)
                                     .value_or(c.limits.max_input);
            c.limits.max_decompressed =
                limits->size("max_decompressed", 1024, std::uint64_t{1} << 34)
                    .value_or(c.limits.max_decompressed);
            c.limits.max_records = static_cast<std::size_t>(
                limits->integer("max_records", 1, 100'000'000)
                    .value_or(static_cast<std::int64_t>(c.limits.max_records)));
            limits->finish();
        }
        if (auto f = r.table("findings")) {
            c.findings.replay_ratio =
                static_cast<double>(f->integer("replay_ratio", 1, 1000).value_or(1));
            c.findings.replay_min_messages = static_cast<std::uint64_t>(
                f->integer("replay_min_messages", 1, 1'000'000'000).value_or(10));
            c.findings.readiness_days = f->integer("readiness_days", 1, 366).value_or(14);
            c.findings.readiness_min_messages = static_cast<std::uint64_t>(
                f->integer("readiness_min_messages", 1, 1'000'000'000).value_or(100));
            f->finish();
        }
        r.finish();
        return c;
    } catch (const config::ConfigError& e) {
        return unexpected(std::string(e.what()));
    }
}

}  // namespace dkim::reportd
