// dkim-appliance up --state-dir DIR: the whole appliance on one machine, for evaluation and
// development. On first use it makes everything under DIR: a SoftHSM2 token with an RSA-2048
// and an Ed25519 key for the domain, the daemons' commented TOML configurations, signerd's
// SQLite state, an admin and two approvers (the default policy wants two approvals for
// key.retire and admin grants) with initial passwords and confirmed TOTP seeds, and
// (through dkim-webd) a self-signed TLS certificate. Then it starts dkim-signerd, dkim-relayd
// and dkim-webd as separate processes, each as its own system user (the packaged
// sysusers.d users), and supervises them the way systemd does on the appliance: READY=1 and
// WATCHDOG=1 over $NOTIFY_SOCKET, a restart with back-off when one exits or stops answering,
// and an orderly stop on Ctrl-C or SIGTERM. A second run reuses DIR.
//
// Layout of DIR (mode 0711, root):
//   up.toml                 the settings of this folder; options given to `up` are saved here
//   dkim-appliance.toml     defaults for the CLI (signerd's socket)
//   etc/{signerd,relayd,webd}.toml   written from up.toml at every start
//   softhsm2.conf, tokens/  the token (tokens/: dkim-signer, 0700)
//   secrets/                root only: the SO PIN, the users' initial passwords and TOTP seeds
//   signerd/                dkim-signer, 0700: the user PIN and signerd.db
//   webd/                   dkim-web, 0700: the self-signed certificate and its key
//   maildir/                dkim-relay, 0700: the default next hop
//   run/                    signerd's socket and up's notification socket
//   log/                    one log per daemon

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <system_error>
#include <tuple>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/config/endpoint.hpp"
#include "dkim/config/toml_reader.hpp"
#include "dkim/crypto/certificate.hpp"
#include "dkim/jit/credentials.hpp"
#include "dkim/provisioning/dns_record.hpp"
#include "dkim/provisioning/keys.hpp"
#include "dkim/service/traversal.hpp"
#include "dkim/text/json.hpp"
#include "signerd_connection.hpp"
#include "up_sysusers.hpp"

namespace dkim::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kTokenLabel = "dkim";
constexpr std::chrono::seconds kReadyTimeout{60};
constexpr std::chrono::seconds kWatchdog{10};
constexpr std::chrono::seconds kFirstBackoff{1};
constexpr std::chrono::seconds kMaxBackoff{30};
constexpr std::chrono::seconds kHealthyAfter{60};
constexpr std::chrono::seconds kStopTimeout{10};

struct Settings {
    std::string domain = "example.test";
    std::string smtp_listen = "127.0.0.1:2525";
    std::string https_listen = "127.0.0.1:8443";
    std::string next_hop;  // default: maildir under the state folder
    std::string module;    // default: Debian's SoftHSM2
};

struct UpArgs {
    std::string state_dir = "state";
    Settings given;
    bool json = false;
    std::string bin_dir;
    CLI::App* command = nullptr;
};

struct Paths {
    fs::path root, settings, cli_defaults, etc, softhsm_conf, tokens, secrets, signerd, webd,
        maildir, run, log, socket, notify;
    explicit Paths(const fs::path& dir)
        : root(dir),
          settings(dir / "up.toml"),
          cli_defaults(dir / "dkim-appliance.toml"),
          etc(dir / "etc"),
          softhsm_conf(dir / "softhsm2.conf"),
          tokens(dir / "tokens"),
          secrets(dir / "secrets"),
          signerd(dir / "signerd"),
          webd(dir / "webd"),
          maildir(dir / "maildir"),
          run(dir / "run"),
          log(dir / "log"),
          socket(dir / "run" / "signerd.sock"),
          notify(dir / "run" / "notify.sock") {}
};

struct Ids {
    uid_t signer = 0, relay = 0, web = 0;
    gid_t signer_gid = 0, relay_gid = 0, web_gid = 0;
};

std::string errno_text() {
    return std::error_code(errno, std::system_category()).message();
}

// A TOML basic string.
std::string toml_string(const std::string& s) {
    return text::json_quote(s);
}

std::string random_text(std::size_t bytes) {
    std::string raw = jit::random_totp_secret();  // 20 random bytes
    while (raw.size() < bytes) {
        raw += jit::random_totp_secret();
    }
    raw.resize(bytes);
    std::string out = jit::base32_encode(raw);
    base::wipe(raw);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

Expected<void, std::string> write_file(const fs::path& path, const std::string& content,
                                       mode_t mode, uid_t uid = 0, gid_t gid = 0) {
    const fs::path temporary = path.string() + ".tmp";
    const int fd =
        ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        return unexpected("cannot write " + temporary.string() + ": " + errno_text());
    }
    bool ok = ::fchmod(fd, mode) == 0 && ::fchown(fd, uid, gid) == 0;
    for (std::size_t done = 0; ok && done < content.size();) {
        const auto n = ::write(fd, content.data() + done, content.size() - done);
        ok = n > 0;
        done += ok ? static_cast<std::size_t>(n) : 0;
    }
    ok = ::fsync(fd) == 0 && ok;
    ::close(fd);
    if (!ok || ::rename(temporary.c_str(), path.c_str()) != 0) {
        return unexpected("cannot write " + path.string() + ": " + errno_text());
    }
    return {};
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

Expected<void, std::string> make_folder(const fs::path& path, mode_t mode, uid_t uid, gid_t gid) {
    std::error_code ec;
    fs::create_directories(path, ec);
    if (ec || ::chmod(path.c_str(), mode) != 0 || ::chown(path.c_str(), uid, gid) != 0) {
        return unexpected("cannot prepare " + path.string() + ": " +
                          (ec ? ec.message() : std::string(errno_text())));
    }
    return {};
}

std::string signal_name(int sig) {
    const char* name = ::sigdescr_np(sig);
    return name != nullptr ? name : "signal " + std::to_string(sig);
}

std::optional<std::pair<uid_t, gid_t>> user_ids(const char* name) {
    passwd entry{};
    passwd* found = nullptr;
    std::array<char, 4096> buffer{};
    if (::getpwnam_r(name, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
        return std::nullopt;
    }
    return std::pair{entry.pw_uid, entry.pw_gid};
}

std::string user_name(uid_t uid) {
    passwd entry{};
    passwd* found = nullptr;
    std::array<char, 4096> buffer{};
    if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
        return "uid " + std::to_string(uid);
    }
    return found->pw_name;
}

std::string group_name(gid_t gid) {
    ::group entry{};
    ::group* found = nullptr;
    std::array<char, 4096> buffer{};
    if (::getgrgid_r(gid, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
        return "gid " + std::to_string(gid);
    }
    return found->gr_name;
}

// The daemons run as their own users and open their configuration, state and sockets under
// the state folder, so every folder above it must let them search it (a `mktemp -d` folder,
// mode 0700, does not: signerd would fail to open etc/signerd.toml, again at every restart).
// Checked before anything is made or started: with the packaged users and their groups when
// they exist, else as users that own nothing and are in no group (the others' bits).
Expected<void, std::string> daemons_can_reach(const fs::path& root) {
    constexpr uid_t kNotYetMade = static_cast<uid_t>(-2);
    const auto signer = user_ids("dkim-signer");
    std::vector<service::Account> accounts;
    for (const char* name : {"dkim-signer", "dkim-relay", "dkim-web"}) {
        const auto ids = user_ids(name);
        service::Account account{name, ids ? ids->first : kNotYetMade, {}};
        for (const auto& known : {ids, signer}) {
            if (known) {
                account.groups.push_back(known->second);
            }
        }
        accounts.push_back(std::move(account));
    }
    const auto blocked = service::first_blocking(service::folders_on_the_way(root), accounts);
    if (!blocked) {
        return {};
    }
    char mode[8];
    (void)std::snprintf(mode, sizeof mode, "%04o", blocked->folder.mode);
    const char* who = blocked->applies == service::PermissionClass::owner   ? "its owner"
                      : blocked->applies == service::PermissionClass::group ? "its group"
                                                                            : "others";
    return unexpected(
        "the state folder " + root.string() +
        " cannot be reached by the daemons: they run as their own system users (dkim-signer, "
        "dkim-relay, dkim-web), and " +
        blocked->folder.path.string() + " (mode " + mode + ", owner " +
        user_name(blocked->folder.uid) + ", group " + group_name(blocked->folder.gid) +
        ") does not let " + blocked->account + " through: it needs search permission (x) for " +
        who + ".\n  Either let them through (enter, not list):  " + blocked->fix +
        "\n  or give a --state-dir outside it, whose every parent others may enter "
        "(such as /var/lib/dkim-appliance-up or ./state in a home folder of mode 0711 or 0755)."
        "\n  Nothing was made or started.");
}

// Everything below `folder` to its daemon's user (files made by root, or by an earlier layout).
Expected<void, std::string> hand_over(const fs::path& folder, uid_t uid, gid_t gid) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(folder, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        struct stat st {};
        if (::lstat(it->path().c_str(), &st) == 0 && (st.st_uid != uid || st.st_gid != gid) &&
            ::lchown(it->path().c_str(), uid, gid) != 0) {
            return unexpected("cannot hand " + it->path().string() + " to uid " +
                              std::to_string(uid) + ": " + errno_text());
        }
    }
    if (ec) {
        return unexpected("cannot read " + folder.string() + ": " + ec.message());
    }
    return {};
}

// The packaged system users (images/sysusers.d/dkim-appliance.conf), made with
// systemd-sysusers when the package is not installed.
Expected<Ids, std::string> system_users() {
    auto lookup = [](Ids& ids) {
        const auto signer = user_ids("dkim-signer");
        const auto relay = user_ids("dkim-relay");
        const auto web = user_ids("dkim-web");
        if (!signer || !relay || !web) {
            return false;
        }
        std::tie(ids.signer, ids.signer_gid) = *signer;
        std::tie(ids.relay, ids.relay_gid) = *relay;
        std::tie(ids.web, ids.web_gid) = *web;
        return true;
    };
    Ids ids;
    if (lookup(ids)) {
        return ids;
    }
    FILE* sysusers = ::popen("systemd-sysusers - >/dev/null", "w");
    if (sysusers == nullptr) {
        return unexpected("cannot run systemd-sysusers to create the daemons' users");
    }
    (void)std::fwrite(kSysusersConf, 1, std::strlen(kSysusersConf), sysusers);
    const int status = ::pclose(sysusers);
    if (status != 0 || !lookup(ids)) {
        return unexpected(
            "cannot create the users dkim-signer, dkim-relay and dkim-web (systemd-sysusers "
            "exited with " +
            std::to_string(WEXITSTATUS(status)) + ")");
    }
    std::cerr << "up: created the system users dkim-signer, dkim-relay and dkim-web\n";
    return ids;
}

// up.toml: the saved settings, then the options given now on top (and saved).
Expected<Settings, std::string> settle(const UpArgs& args, const Paths& paths) {
    Settings s;
    if (fs::exists(paths.settings)) {
        // Errors name file:line:column and the key; a key nobody reads is an error too.
        try {
            const toml::table t = config::parse_toml_file(paths.settings.string());
            config::TableReader r(t, paths.settings.string());
            for (const auto& [key, field] : {std::pair{"domain", &s.domain},
                                             {"smtp_listen", &s.smtp_listen},
                                             {"https_listen", &s.https_listen},
                                             {"next_hop", &s.next_hop},
                                             {"module", &s.module}}) {
                *field = r.string(key).value_or(*field);
            }
            r.finish();
        } catch (const config::ConfigError& e) {
            return unexpected(e.what());
        }
    }
    const auto given = [&](const char* option) { return args.command->count(option) > 0; };
    if (given("--domain"))
        s.domain = args.given.domain;
    if (given("--smtp"))
        s.smtp_listen = args.given.smtp_listen;
    if (given("--https"))
        s.https_listen = args.given.https_listen;
    if (given("--next-hop"))
        s.next_hop = args.given.next_hop;
    if (given("--module"))
        s.module = args.given.module;
    if (s.next_hop.empty()) {
        s.next_hop = "maildir:" + paths.maildir.string();
    }
    if (s.module.empty()) {
        for (const char* candidate : {"/usr/lib/softhsm/libsofthsm2.so",
                                      "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"}) {
            if (fs::exists(candidate)) {
                s.module = candidate;
                break;
            }
        }
        if (s.module.empty()) {
            return unexpected(
                "SoftHSM2 is not installed (apt-get install softhsm2), or give "
                "--module");
        }
    }
    for (const auto* listen : {&s.smtp_listen, &s.https_listen}) {
        if (!config::parse_endpoint(*listen)) {
            return unexpected("expected an IP:PORT, got \"" + *listen + "\"");
        }
    }
    if (s.next_hop.rfind("maildir:/", 0) != 0 && s.next_hop.rfind("smtp://", 0) != 0) {
        return unexpected("--next-hop: expected smtp://HOST:PORT (or maildir:/path)");
    }
    std::string saved =
        "# dkim-appliance up: the settings of this state folder. Options given to `up` are\n"
        "# saved here; edit this file or pass them again. The daemons' configurations in etc/\n"
        "# are written from it at every start.\n\n"
        "# The signing domain of the demo keys and the relay's clients.\n"
        "domain = " +
        toml_string(s.domain) +
        "\n"
        "# Where dkim-relayd takes mail (clients from 127.0.0.0/8 and ::1 may send).\n"
        "smtp_listen = " +
        toml_string(s.smtp_listen) +
        "\n"
        "# The approval console and the API (dkim-webd, HTTPS with a self-signed certificate).\n"
        "https_listen = " +
        toml_string(s.https_listen) +
        "\n"
        "# Where signed mail goes: smtp://HOST:PORT, or maildir:/path.\n"
        "next_hop = " +
        toml_string(s.next_hop) +
        "\n"
        "# The PKCS#11 module (SoftHSM2 here; a real HSM's module in production).\n"
        "module = " +
        toml_string(s.module) + "\n";
    if (auto written = write_file(paths.settings, saved, 0644); !written) {
        return unexpected(written.error());
    }
    return s;
}

// STARTTLS to the next hop is required (and its certificate checked) unless the next hop is
// on this machine, where a test sink without TLS is the usual peer.
std::string next_hop_tls(const std::string& next_hop) {
    if (next_hop.rfind("smtp://", 0) != 0) {
        return "";
    }
    const auto hop = config::parse_endpoint(next_hop.substr(7));
    const bool local =
        hop && (hop->host.rfind("127.", 0) == 0 || hop->host == "::1" || hop->host == "localhost");
    return local ? "# A next hop on this machine: STARTTLS when it offers it.\ntls = "
                   "\"opportunistic\"\n"
                 : "# STARTTLS with a verified certificate, or the message is not sent.\n"
                   "tls = \"required\"\n";
}

Expected<void, std::string> write_configs(const Settings& s, const Paths& p) {
    const std::string header =
        "# Written by `dkim-appliance up` at every start, from " + p.settings.string() +
        ".\n# The packaged appliance reads the same keys from /etc/dkim-appliance/.\n\n";
    const std::string signerd =
        header +
        "# The PKCS#11 module and the token's label: signerd is the only process that loads it.\n"
        "module = " +
        toml_string(s.module) +
        "\n"
        "token = " +
        toml_string(kTokenLabel) +
        "\n"
        "# The grant store and the audit log (SQLite).\n"
        "state_dir = " +
        toml_string(p.signerd.string()) +
        "\n"
        "# The one door: a Unix socket for root (admin), dkim-relay and dkim-web.\n"
        "socket = " +
        toml_string(p.socket.string()) +
        "\n"
        "socket_group = \"dkim-signer\"\n\n"
        "# The token's user PIN. On the appliance: source = \"credential\" (an encrypted systemd\n"
        "# credential).\n"
        "[pin]\nsource = \"file\"\nfile = " +
        toml_string((p.signerd / "user.pin").string()) +
        "\n\n"
        "# Who may connect, by uid: each daemon runs as its own user.\n"
        "[peers]\nadmin = [\"root\"]\nrelay = [\"dkim-relay\"]\nweb = [\"dkim-web\"]\n\n"
        "# Signing grants last at most an hour; one approver (not the requester) approves.\n"
        "# The other operations keep the default policy: key.retire and admin grants need two\n"
        "# approvers (up makes approver and approver2), key.generate and key.rotate one.\n"
        "[policy.sign]\nmax_duration = \"1h\"\n";
    const std::string relayd =
        header + "hostname = " + toml_string("relay." + s.domain) +
        "\n"
        "# Keys and signatures come from dkim-signerd; the relay holds neither key nor PIN.\n"
        "signerd_socket = " +
        toml_string(p.socket.string()) +
        "\n\n"
        "[[listen]]\naddress = " +
        toml_string(s.smtp_listen) +
        "\n\n"
        "# Signed mail goes on inside the client's transaction.\n"
        "[next_hop]\nurl = " +
        toml_string(s.next_hop) + "\n" + next_hop_tls(s.next_hop) +
        "\n"
        "# No selectors: the relay signs with the keys signerd reports active (rotation-ready).\n"
        "[[domain]]\nname = " +
        toml_string(s.domain) +
        "\n\n"
        "# Local clients may send mail from the domain.\n"
        "[[client]]\nname = \"local\"\nnetworks = [\"127.0.0.0/8\", \"::1/128\"]\n"
        "domains = [" +
        toml_string(s.domain) + "]\n";
    const std::string webd =
        header + "listen = " + toml_string(s.https_listen) +
        "\n"
        "# Development: a certificate made once in state_dir. Production: tls_certificate and\n"
        "# tls_key.\n"
        "self_signed = true\n"
        "state_dir = " +
        toml_string(p.webd.string()) +
        "\n"
        "# webd holds no key and no credential store: signerd checks every password and code.\n"
        "signerd_socket = " +
        toml_string(p.socket.string()) + "\n";
    for (const auto& [name, text] :
         {std::pair{"signerd.toml", signerd}, {"relayd.toml", relayd}, {"webd.toml", webd}}) {
        if (auto written = write_file(p.etc / name, text, 0644); !written) {
            return written;
        }
    }
    return write_file(p.cli_defaults,
                      "# Defaults for dkim-appliance commands run against this state folder:\n"
                      "#   dkim-appliance --config " +
                          p.cli_defaults.string() +
                          " elevation list\n"
                          "socket = " +
                          toml_string(p.socket.string()) + "\n",
                      0644);
}

// A dnsmasq txt-record line: the text in character-strings of at most 255 octets.
std::string dnsmasq_txt(const std::string& name, const std::string& text) {
    std::string line = "txt-record=" + name;
    for (std::size_t at = 0; at < text.size(); at += 255) {
        line += ",\"" + text.substr(at, 255) + "\"";
    }
    return line + "\n";
}

struct KeySpec {
    const char* selector;
    const char* algorithm;
};
constexpr std::array<KeySpec, 2> kKeys{{{"rsa2048", "rsa-2048"}, {"ed25519", "ed25519"}}};

// The token and the two keys, made with the PIN before signerd starts (they are active and
// unmanaged: signerd signs with them inside grants). Returns the zone lines to publish.
Expected<std::vector<std::string>, std::string> prepare_token(const Settings& s, const Paths& p,
                                                              const Ids& ids) {
    // Written at every start, like etc/: it names this folder's tokens/ (a copied or moved
    // state folder must not reach back to the old one).
    if (auto written = write_file(p.softhsm_conf,
                                  "# SoftHSM2 for `dkim-appliance up`: written at every start.\n"
                                  "directories.tokendir = " +
                                      p.tokens.string() +
                                      "\nobjectstore.backend = file\nlog.level = ERROR\n"
                                      "slots.removable = false\nlibrary.reset_on_fork = true\n",
                                  0644);
        !written) {
        return unexpected(written.error());
    }
    // Read by the module when it loads (below, and in signerd's environment).
    ::setenv("SOFTHSM2_CONF", p.softhsm_conf.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    const fs::path so_pin = p.secrets / "so.pin";
    const fs::path user_pin = p.signerd / "user.pin";
    // A state folder of the earlier demo script kept both PINs at its top.
    for (const auto& [old, now] :
         {std::pair{p.root / "so.pin", so_pin}, {p.root / "user.pin", user_pin}}) {
        std::error_code ec;
        if (!fs::exists(now) && fs::exists(old) && fs::exists(p.tokens)) {
            fs::copy_file(old, now, ec);
            if (ec || ::chmod(now.c_str(), 0600) != 0 ||
                (now == user_pin && ::chown(now.c_str(), ids.signer, ids.signer_gid) != 0)) {
                return unexpected("cannot move " + old.string() + " to " + now.string());
            }
            std::cerr << "up: moved " << old.string() << " to " << now.string() << "\n";
        }
    }
    for (const auto& [path, uid, gid] :
         {std::tuple{so_pin, uid_t{0}, gid_t{0}}, {user_pin, ids.signer, ids.signer_gid}}) {
        if (!fs::exists(path)) {
            std::string pin = random_text(16);
            auto written = write_file(path, pin + "\n", 0600, uid, gid);
            base::wipe(pin);
            if (!written) {
                return unexpected(written.error());
            }
        }
    }
    provisioning::TokenLocation where{s.module, kTokenLabel};
    auto report = [](const hsm::Error& e) { return unexpected(e.to_string()); };
    if (!where.open()) {
        auto so = hsm::Secret::from_file(so_pin);
        auto user = hsm::Secret::from_file(user_pin);
        if (!so || !user) {
            return report(!so ? so.error() : user.error());
        }
        auto slot = provisioning::init_token(s.module, kTokenLabel, *so, *user);
        if (!slot) {
            return report(slot.error());
        }
        std::cerr << "up: initialised SoftHSM2 token '" << kTokenLabel << "' in " << p.tokens
                  << "\n";
    }
    std::vector<std::string> records;
    std::string dnsmasq = "local=/" + s.domain + "/\n";
    for (const KeySpec& k : kKeys) {
        auto name = hsm::KeyName::make(s.domain, k.selector);
        if (!name) {
            return report(name.error());
        }
        auto existing = provisioning::public_key(where, *name);
        if (existing) {
            records.push_back(provisioning::render_zone_line(*name, existing->public_key));
            dnsmasq +=
                dnsmasq_txt(name->label(), provisioning::dkim_record_value(existing->public_key));
            continue;
        }
        auto pin = hsm::Secret::from_file(user_pin);
        if (!pin) {
            return report(pin.error());
        }
        auto made = provisioning::generate_key(where, std::move(*pin), *name,
                                               *hsm::parse_key_algorithm(k.algorithm));
        if (!made) {
            return report(made.error());
        }
        std::cerr << "up: generated " << made->key.algorithm_name() << " key " << name->label()
                  << " inside the token\n";
        records.push_back(provisioning::render_zone_line(*name, made->public_key));
        dnsmasq += dnsmasq_txt(name->label(), provisioning::dkim_record_value(made->public_key));
    }
    // The same records (and an SPF and a DMARC record for mail from this machine) for a DNS
    // server of the tour's own: dnsmasq --conf-file=DIR/dns/dnsmasq.conf --port 5353 ...
    dnsmasq += dnsmasq_txt(s.domain, "v=spf1 ip4:127.0.0.1 ip6:::1 -all");
    dnsmasq += dnsmasq_txt("_dmarc." + s.domain, "v=DMARC1; p=none");
    if (auto made = make_folder(p.root / "dns", 0755, 0, 0); !made) {
        return unexpected(made.error());
    }
    if (auto written = write_file(p.root / "dns" / "dnsmasq.conf",
                                  "# The DNS records of " + s.domain +
                                      ", for dnsmasq on a loopback port (written by up at every "
                                      "start):\n#   dnsmasq --no-daemon --no-resolv --no-hosts "
                                      "--listen-address=127.0.0.1 --bind-interfaces --port=5353 "
                                      "--conf-file=" +
                                      (p.root / "dns" / "dnsmasq.conf").string() + "\n" + dnsmasq,
                                  0644);
        !written) {
        return unexpected(written.error());
    }
    // The token's files belong to signerd's user from now on.
    if (auto handed = hand_over(p.tokens, ids.signer, ids.signer_gid); !handed) {
        return unexpected(handed.error());
    }
    return records;
}

// --- supervision ------------------------------------------------------------------------------

struct Child {
    std::string name;
    fs::path exe;
    fs::path config;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    std::vector<std::string> extra_env;
    fs::path log;

    pid_t pid = -1;
    bool ready = false;
    bool exited = false;
    int last_status = 0;
    std::string status;  // the last STATUS= line
    Clock::time_point started{}, last_ping{}, restart_at{};
    std::chrono::seconds backoff = kFirstBackoff;
    int restarts = 0;
};

std::string describe_exit(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return std::string("was killed by ") + signal_name(WTERMSIG(status));
    }
    return "stopped";
}

std::string log_tail(const fs::path& log, std::size_t lines) {
    std::vector<std::string> all;
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) {
        all.push_back(line);
    }
    std::string out;
    for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
        out += "  | " + all[i] + "\n";
    }
    return out;
}

class Supervisor {
  public:
    Supervisor(const fs::path& notify_path, gid_t notify_gid) {
        sigset_t set;
        sigemptyset(&set);
        for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) {
            sigaddset(&set, sig);
        }
        ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
        signal_fd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        notify_fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, notify_path.c_str(), sizeof addr.sun_path - 1);
        ::unlink(notify_path.c_str());
        const int on = 1;
        ok_ = signal_fd_ >= 0 && notify_fd_ >= 0 &&
              notify_path.string().size() < sizeof addr.sun_path &&
              ::bind(notify_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 &&
              ::setsockopt(notify_fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0 &&
              ::chown(notify_path.c_str(), 0, notify_gid) == 0 &&
              ::chmod(notify_path.c_str(), 0660) == 0;
        notify_path_ = notify_path;
    }
    ~Supervisor() {
        ::close(signal_fd_);
        ::close(notify_fd_);
        ::unlink(notify_path_.c_str());
    }
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    bool ok() const { return ok_; }
    bool stop_requested() const { return stop_; }

    void add(Child child) { children_.push_back(std::move(child)); }
    Child& child(const std::string& name) {
        for (Child& c : children_) {
            if (c.name == name) {
                return c;
            }
        }
        throw std::logic_error("no child " + name);
    }

    bool spawn(Child& c);
    // Starts `name` and waits for its READY=1. False, with the reason on stderr, when it
    // exits first, does not answer in time, or a stop was requested.
    bool start_and_wait(const std::string& name);
    // Until SIGINT/SIGTERM: restarts, watchdog.
    void supervise();
    void stop_all();

  private:
    // Handles what is pending, waiting at most `wait`.
    void pump(std::chrono::milliseconds wait);
    void on_message();
    void reap();
    std::chrono::milliseconds next_deadline() const;

    int signal_fd_ = -1;
    int notify_fd_ = -1;
    fs::path notify_path_;
    bool ok_ = false;
    bool stop_ = false;
    std::vector<Child> children_;
};

bool Supervisor::spawn(Child& c) {
    // Everything the child needs is prepared here: between fork and exec only
    // async-signal-safe calls.
    const int log_fd = ::open(c.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) {
        std::cerr << "up: cannot open " << c.log << ": " << errno_text() << "\n";
        return false;
    }
    std::vector<std::string> env = {
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET=" + notify_path_.string(),
        "WATCHDOG_USEC=" + std::to_string(std::chrono::microseconds(kWatchdog).count()),
        "WATCHDOG_PID=0000000000"};
    env.insert(env.end(), c.extra_env.begin(), c.extra_env.end());
    // The rest of up's environment stays behind, but for the time zone and the sanitizers'
    // options of a test build.
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view v(*e);
        for (const std::string_view prefix :
             {"TZ=", "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS="}) {
            if (v.substr(0, prefix.size()) == prefix) {
                env.emplace_back(v);
            }
        }
    }
    std::vector<char*> envp;
    envp.reserve(env.size() + 1);
    for (auto& e : env) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    char* pid_digits = env[3].data() + std::strlen("WATCHDOG_PID=");
    std::string exe = c.exe.string();
    std::string config = c.config.string();
    std::array<char*, 4> argv{exe.data(), const_cast<char*>("--config"), config.data(), nullptr};
    sigset_t none;
    sigemptyset(&none);

    const pid_t pid = ::fork();
    if (pid == 0) {
        // The child: its own process group (Ctrl-C reaches up only), its user, its log.
        (void)::setpgid(0, 0);
        ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
        // WATCHDOG_PID=<our pid>, without leading zeros (a leading 0 would read as octal).
        char digits[16];
        int n = 0;
        for (pid_t self = ::getpid(); self > 0; self /= 10) {
            digits[n++] = static_cast<char>('0' + self % 10);
        }
        for (int i = 0; i < n; ++i) {
            pid_digits[i] = digits[n - 1 - i];
        }
        pid_digits[n] = '\0';
        if (::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0 ||
            ::setgroups(c.groups.size(), c.groups.data()) != 0 || ::setgid(c.gid) != 0 ||
            ::setuid(c.uid) != 0) {
            ::_exit(126);
        }
        ::execve(exe.c_str(), argv.data(), envp.data());
        ::_exit(127);
    }
    ::close(log_fd);
    ::close(null_fd);
    if (pid < 0) {
        std::cerr << "up: cannot start " << c.name << ": " << errno_text() << "\n";
        return false;
    }
    c.pid = pid;
    c.ready = false;
    c.exited = false;
    c.started = Clock::now();
    c.last_ping = c.started;
    return true;
}

void Supervisor::on_message() {
    for (;;) {
        char buffer[4096];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
        iovec iov{buffer, sizeof buffer - 1};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const auto n = ::recvmsg(notify_fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            return;
        }
        pid_t sender = -1;
        for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS) {
                ucred cred{};
                std::memcpy(&cred, CMSG_DATA(h), sizeof cred);
                sender = cred.pid;
            }
        }
        for (Child& c : children_) {
            if (c.pid != sender || sender <= 0) {
                continue;
            }
            std::istringstream lines(std::string(buffer, static_cast<std::size_t>(n)));
            for (std::string line; std::getline(lines, line);) {
                if (line == "READY=1") {
                    c.ready = true;
                    c.last_ping = Clock::now();
                } else if (line == "WATCHDOG=1") {
                    c.last_ping = Clock::now();
                } else if (line.rfind("STATUS=", 0) == 0) {
                    c.status = line.substr(7);
                }
            }
        }
    }
}

void Supervisor::reap() {
    for (;;) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            return;
        }
        for (Child& c : children_) {
            if (c.pid != pid) {
                continue;
            }
            c.pid = -1;
            c.exited = true;
            c.last_status = status;
            if (stop_) {
                continue;
            }
            // Back-off doubles while a daemon keeps failing, and starts again at one second
            // once it ran for a minute.
            const auto ran = Clock::now() - c.started;
            c.backoff = ran >= kHealthyAfter || c.restarts == 0
                            ? kFirstBackoff
                            : std::min(c.backoff * 2, kMaxBackoff);
            c.restart_at = Clock::now() + c.backoff;
            std::cerr << "up: " << c.name << " " << describe_exit(status) << "; restarting in "
                      << c.backoff.count() << " s (log: " << c.log.string() << ")\n"
                      << log_tail(c.log, 3) << std::flush;
        }
    }
}

void Supervisor::pump(std::chrono::milliseconds wait) {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {notify_fd_, POLLIN, 0}};
    if (::poll(fds, 2, static_cast<int>(std::max<long long>(0, wait.count()))) <= 0) {
        return;
    }
    if ((fds[1].revents & POLLIN) != 0) {
        on_message();
    }
    if ((fds[0].revents & POLLIN) != 0) {
        signalfd_siginfo info{};
        while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            if (info.ssi_signo == SIGINT || info.ssi_signo == SIGTERM || info.ssi_signo == SIGHUP) {
                if (!stop_) {
                    std::cerr << "\nup: " << signal_name(static_cast<int>(info.ssi_signo))
                              << ": stopping the appliance\n"
                              << std::flush;
                }
                stop_ = true;
            }
        }
        reap();
    }
}

std::chrono::milliseconds Supervisor::next_deadline() const {
    auto next = Clock::now() + std::chrono::seconds(1);
    for (const Child& c : children_) {
        if (c.pid < 0 && c.exited) {
            next = std::min(next, c.restart_at);
        } else if (c.ready) {
            next = std::min(next, c.last_ping + kWatchdog);
        }
    }
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()));
}

bool Supervisor::start_and_wait(const std::string& name) {
    Child& c = child(name);
    if (!spawn(c)) {
        return false;
    }
    const auto deadline = Clock::now() + kReadyTimeout;
    while (!c.ready && !stop_) {
        if (c.exited) {
            std::cerr << "up: " << c.name << " " << describe_exit(c.last_status)
                      << " before it was ready; its log (" << c.log.string() << "):\n"
                      << log_tail(c.log, 12);
            return false;
        }
        if (Clock::now() >= deadline) {
            std::cerr << "up: " << c.name << " did not report ready within "
                      << kReadyTimeout.count() << " s; its log:\n"
                      << log_tail(c.log, 12);
            return false;
        }
        pump(std::chrono::milliseconds(200));
    }
    return c.ready;
}

void Supervisor::supervise() {
    while (!stop_) {
        pump(next_deadline());
        const auto now = Clock::now();
        for (Child& c : children_) {
            if (c.pid < 0 && c.exited && now >= c.restart_at && !stop_) {
                ++c.restarts;
                std::cerr << "up: restarting " << c.name << " (restart " << c.restarts << ")\n"
                          << std::flush;
                spawn(c);
            } else if (c.pid > 0 && c.ready && now - c.last_ping > kWatchdog) {
                std::cerr << "up: " << c.name << " sent no watchdog ping for " << kWatchdog.count()
                          << " s; aborting it\n"
                          << std::flush;
                ::kill(c.pid, SIGABRT);
                c.last_ping = now;  // one abort; reap() restarts it
            } else if (c.pid > 0 && !c.ready && now - c.started > kReadyTimeout) {
                std::cerr << "up: " << c.name << " did not report ready after a restart; "
                          << "killing it\n";
                ::kill(c.pid, SIGKILL);
                c.started = now;
            }
        }
    }
}

void Supervisor::stop_all() {
    stop_ = true;
    // The web console and the relay first, signerd (which logs the token out) last.
    for (const std::vector<std::string>& wave :
         {std::vector<std::string>{"dkim-webd", "dkim-relayd"}, {"dkim-signerd"}}) {
        for (const auto& name : wave) {
            for (Child& c : children_) {
                if (c.name == name && c.pid > 0) {
                    ::kill(c.pid, SIGTERM);
                }
            }
        }
        const auto deadline = Clock::now() + kStopTimeout;
        auto running = [&] {
            for (const Child& c : children_) {
                for (const auto& name : wave) {
                    if (c.name == name && c.pid > 0) {
                        return true;
                    }
                }
            }
            return false;
        };
        while (running() && Clock::now() < deadline) {
            pump(std::chrono::milliseconds(100));
            reap();
        }
        for (Child& c : children_) {
            for (const auto& name : wave) {
                if (c.name == name && c.pid > 0) {
                    std::cerr << "up: " << c.name << " did not stop within " << kStopTimeout.count()
                              << " s; killing it\n";
                    ::kill(c.pid, SIGKILL);
                    int status = 0;
                    ::waitpid(c.pid, &status, 0);
                    c.pid = -1;
                }
            }
        }
        for (Child& c : children_) {
            for (const auto& name : wave) {
                if (c.name == name && c.exited) {
                    std::cerr << "up: " << c.name << " " << describe_exit(c.last_status) << "\n";
                }
            }
        }
    }
}

// --- the facts --------------------------------------------------------------------------------

fs::path find_daemon(const std::string& name, const std::string& bin_dir) {
    std::vector<fs::path> candidates;
    if (!bin_dir.empty()) {
        candidates.push_back(fs::path(bin_dir) / name);
    }
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec).parent_path();
    if (!ec) {
        candidates.push_back(self / name);                        // installed side by side
        candidates.push_back(self.parent_path() / "web" / name);  // the build tree
    }
    candidates.push_back(fs::path("/usr/sbin") / name);
    for (const auto& c : candidates) {
        if (::access(c.c_str(), X_OK) == 0) {
            return c;
        }
    }
    return {};
}

struct UserFacts {
    std::string name, roles, password, totp_secret, otpauth;
};

std::optional<std::string> otpauth_secret(const std::string& uri) {
    const auto at = uri.find("secret=");
    if (at == std::string::npos) {
        return std::nullopt;
    }
    return uri.substr(at + 7, uri.find('&', at) - (at + 7));
}

// The admin and two approvers (a key's retirement and admin grants need two approvals by
// default, so that the demo can finish a rotation): created once through signerd (as root,
// its admin peer), each with an initial password and a confirmed TOTP seed, kept in secrets/
// (root only). A state folder made before the second approver existed gets it on its next run.
Expected<std::vector<UserFacts>, std::string> ensure_users(const Paths& p) {
    Common c;
    c.socket = p.socket.string();
    auto listed = ask_signerd(c, ipc::UserList{});
    if (!listed) {
        return unexpected("listing users: " + listed.error());
    }
    const auto* users = std::get_if<ipc::UsersReply>(&*listed);
    std::vector<UserFacts> out;
    for (const auto& [name, roles] :
         {std::pair<std::string, std::string>{"admin", "admin,requester,auditor"},
          {"approver", "approver"},
          {"approver2", "approver"}}) {
        UserFacts f{name, roles, "", "", ""};
        const fs::path password_file = p.secrets / (name + ".password");
        const fs::path totp_file = p.secrets / (name + ".totp");
        bool exists = false, totp = false;
        for (const auto& u : users ? users->users : std::vector<ipc::UserView>{}) {
            if (u.name == name) {
                exists = true;
                totp = u.totp;
            }
        }
        if (!exists) {
            f.password = random_text(15);
            if (auto w = write_file(password_file, f.password + "\n", 0600); !w) {
                return unexpected(w.error());
            }
            auto added = ask_signerd(c, ipc::UserAdd{{}, name, roles, f.password});
            if (!added) {
                return unexpected("adding " + name + ": " + added.error());
            }
        }
        if (!totp) {
            auto enrolled = ask_signerd(c, ipc::TotpEnrol{{}, name});
            const auto* ok = enrolled ? std::get_if<ipc::OkReply>(&*enrolled) : nullptr;
            const auto secret = ok ? otpauth_secret(ok->secret) : std::nullopt;
            if (!secret) {
                return unexpected("enrolling " + name + "'s TOTP: " +
                                  (enrolled ? "no secret in the reply" : enrolled.error()));
            }
            if (auto w = write_file(totp_file, *secret + "\n" + ok->secret + "\n", 0600); !w) {
                return unexpected(w.error());
            }
            auto raw = jit::base32_decode(*secret);
            const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
            char code[8];
            (void)std::snprintf(code, sizeof code, "%06u",
                                raw ? jit::totp_code(*raw, jit::totp_step(now)) : 0U);
            if (raw) {
                base::wipe(*raw);
            }
            auto confirmed = ask_signerd(c, ipc::TotpConfirm{{}, name, code});
            if (!confirmed) {
                return unexpected("confirming " + name + "'s TOTP: " + confirmed.error());
            }
        }
        std::istringstream password(read_text(password_file));
        std::getline(password, f.password);
        std::istringstream seed(read_text(totp_file));
        std::getline(seed, f.totp_secret);
        std::getline(seed, f.otpauth);
        out.push_back(std::move(f));
    }
    return out;
}

std::string swaks_command(const Settings& s) {
    const auto smtp = config::parse_endpoint(s.smtp_listen);
    const std::string host = smtp->host == "0.0.0.0" ? "127.0.0.1"
                             : smtp->host == "::"    ? "::1"
                                                     : smtp->host;
    return "swaks --server " + (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
           ":" + std::to_string(smtp->port) + " --from demo@" + s.domain +
           " --to someone@example.net --header 'Subject: signed by the DKIM appliance'";
}

std::string console_url(const Settings& s) {
    const auto https = config::parse_endpoint(s.https_listen);
    std::string host = https->host == "0.0.0.0" ? "127.0.0.1"
                       : https->host == "::"    ? "::1"
                                                : https->host;
    if (host.find(':') != std::string::npos) {
        host = "[" + host + "]";
    }
    return "https://" + host + ":" + std::to_string(https->port) + "/";
}

void print_facts(const Settings& s, const Paths& p, const std::vector<UserFacts>& users,
                 const std::vector<std::string>& records, bool json) {
    const auto certificate =
        crypto::certificate_sha256_fingerprint((p.webd / "webd-selfsigned.crt").string());
    const std::string fingerprint = certificate ? *certificate : "";
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    const std::string cli = (ec ? std::string("dkim-appliance") : self.string()) + " --config " +
                            p.cli_defaults.string();
    if (json) {
        std::ostringstream o;
        o << "{\"state_dir\":" << toml_string(p.root.string())
          << ",\"console_url\":" << toml_string(console_url(s))
          << ",\"certificate_sha256\":" << toml_string(fingerprint)
          << ",\"smtp\":" << toml_string(s.smtp_listen) << ",\"domain\":" << toml_string(s.domain)
          << ",\"next_hop\":" << toml_string(s.next_hop)
          << ",\"signerd_socket\":" << toml_string(p.socket.string())
          << ",\"cli_config\":" << toml_string(p.cli_defaults.string())
          << ",\"dnsmasq_conf\":" << toml_string((p.root / "dns" / "dnsmasq.conf").string())
          << ",\"users\":[";
        for (std::size_t i = 0; i < users.size(); ++i) {
            const UserFacts& u = users[i];
            o << (i ? "," : "") << "{\"name\":" << toml_string(u.name)
              << ",\"roles\":" << toml_string(u.roles)
              << ",\"password\":" << toml_string(u.password)
              << ",\"totp_secret\":" << toml_string(u.totp_secret)
              << ",\"otpauth_uri\":" << toml_string(u.otpauth) << "}";
        }
        o << "],\"dns_records\":[";
        for (std::size_t i = 0; i < records.size(); ++i) {
            o << (i ? "," : "") << toml_string(records[i]);
        }
        o << "],\"swaks\":" << toml_string(swaks_command(s)) << ",\"logs\":{";
        const char* names[] = {"dkim-signerd", "dkim-relayd", "dkim-webd"};
        for (std::size_t i = 0; i < 3; ++i) {
            o << (i ? "," : "") << toml_string(names[i]) << ":"
              << toml_string((p.log / (std::string(names[i]) + ".log")).string());
        }
        o << "}}\n";
        std::cout << o.str() << std::flush;
        return;
    }
    std::cout << "\nThe DKIM appliance is running (state in " << p.root.string() << ").\n\n"
              << "  Console    " << console_url(s) << "\n"
              << "             self-signed certificate, SHA-256 " << fingerprint << "\n";
    for (const UserFacts& u : users) {
        std::cout << "  " << (u.name == "admin" ? "Admin      " : "Approver   ") << "user "
                  << u.name << ", password " << u.password << " (" << u.roles << ")\n"
                  << "             TOTP seed " << u.totp_secret << "  (oathtool --totp -b "
                  << u.totp_secret << ")\n";
    }
    std::cout << "  SMTP       " << s.smtp_listen << " for clients on this machine, signing as @"
              << s.domain << "\n"
              << "  Next hop   " << s.next_hop << "\n"
              << "  CLI        " << cli << " elevation list\n"
              << "  Logs       " << (p.log / "").string()
              << "{dkim-signerd,dkim-relayd,dkim-webd}.log\n"
              << "  Secrets    " << p.secrets.string() << " (root only)\n\n"
              << "DNS records to publish for " << s.domain << ":\n";
    for (const auto& r : records) {
        std::cout << "  " << r << "\n";
    }
    std::cout << "  (for a DNS server of your own on 127.0.0.1: "
              << (p.root / "dns" / "dnsmasq.conf").string() << ")\n";
    std::cout << "\nSubmit a test message (signing waits for an approved grant: the relay answers\n"
              << "451 and files a request; approve it in the console as approver, then send "
                 "again;\na key's retirement needs approver and approver2):\n  "
              << swaks_command(s) << "\n\n"
              << "Ctrl-C stops the appliance; the same command starts it again with this state.\n"
              << std::flush;
}

int run_up(const UpArgs& args) {
    if (::geteuid() != 0) {
        return fail(
            "up runs each daemon as its own system user (dkim-signer, dkim-relay, "
            "dkim-web): run it as root");
    }
    std::error_code ec;
    fs::path root = fs::absolute(args.state_dir, ec).lexically_normal();
    if (ec) {
        return fail("cannot resolve " + args.state_dir + ": " + ec.message());
    }
    if (!root.has_filename()) {
        root = root.parent_path();  // "state/"
    }
    // Before anything is made: the daemons' users must be able to reach the folder.
    if (auto reachable = daemons_can_reach(root); !reachable) {
        return fail(reachable.error());
    }
    // Folders made on the way to it must let the daemons through too.
    ::umask(0022);
    fs::create_directories(root, ec);
    if (ec) {
        return fail("cannot create " + root.string() + ": " + ec.message());
    }
    const Paths p(root);
    // One `up` per state folder: two signerds on one token and one database would fight.
    const int lock = ::open((root / "up.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || ::flock(lock, LOCK_EX | LOCK_NB) != 0) {
        return fail("another `dkim-appliance up` is running with " + root.string() + " (it holds " +
                    (root / "up.lock").string() + ")");
    }
    auto ids = system_users();
    if (!ids) {
        return fail(ids.error());
    }
    for (const auto& [path, mode, uid, gid] : {std::tuple{p.root, 0711, uid_t{0}, gid_t{0}},
                                               {p.etc, 0755, 0u, 0u},
                                               {p.secrets, 0700, 0u, 0u},
                                               {p.log, 0750, 0u, 0u},
                                               {p.tokens, 0700, ids->signer, ids->signer_gid},
                                               {p.signerd, 0700, ids->signer, ids->signer_gid},
                                               {p.run, 0750, ids->signer, ids->signer_gid},
                                               {p.webd, 0700, ids->web, ids->web_gid},
                                               {p.maildir, 0700, ids->relay, ids->relay_gid}}) {
        if (auto made = make_folder(path, static_cast<mode_t>(mode), uid, gid); !made) {
            return fail(made.error());
        }
        // The daemons' own folders, whole (an earlier layout ran the daemons as other users).
        if (uid != 0) {
            if (auto handed = hand_over(path, uid, gid); !handed) {
                return fail(handed.error());
            }
        }
    }
    auto settings = settle(args, p);
    if (!settings) {
        return fail(settings.error());
    }
    if (settings->next_hop.rfind("maildir:", 0) == 0) {
        const fs::path box = settings->next_hop.substr(8);
        if (auto made = make_folder(box, 0700, ids->relay, ids->relay_gid); !made) {
            return fail(made.error());
        }
    }
    if (auto written = write_configs(*settings, p); !written) {
        return fail(written.error());
    }
    auto records = prepare_token(*settings, p, *ids);
    if (!records) {
        return fail(records.error());
    }

    struct Daemon {
        const char* name;
        fs::path config;
        uid_t uid;
        gid_t gid;
    };
    Supervisor supervisor(p.notify, ids->signer_gid);
    if (!supervisor.ok()) {
        return fail("cannot listen for the daemons' notifications on " + p.notify.string() + ": " +
                    errno_text());
    }
    for (const Daemon& d :
         {Daemon{"dkim-signerd", p.etc / "signerd.toml", ids->signer, ids->signer_gid},
          Daemon{"dkim-relayd", p.etc / "relayd.toml", ids->relay, ids->relay_gid},
          Daemon{"dkim-webd", p.etc / "webd.toml", ids->web, ids->web_gid}}) {
        Child c;
        c.name = d.name;
        c.exe = find_daemon(d.name, args.bin_dir);
        if (c.exe.empty()) {
            return fail(std::string("cannot find ") + d.name +
                        " (beside dkim-appliance, in /usr/sbin, or give --bin-dir)");
        }
        c.config = d.config;
        c.uid = d.uid;
        c.gid = d.gid;
        c.groups = {d.gid, ids->signer_gid};
        c.log = p.log / (std::string(d.name) + ".log");
        if (c.name == "dkim-signerd") {
            c.extra_env.push_back("SOFTHSM2_CONF=" + p.softhsm_conf.string());
        }
        supervisor.add(std::move(c));
    }
    int status = 0;
    std::vector<UserFacts> users;
    if (!supervisor.start_and_wait("dkim-signerd")) {
        status = kFailed;
    } else if (auto made = ensure_users(p); !made) {
        status = fail(made.error());
    } else {
        users = std::move(*made);
        if (!supervisor.start_and_wait("dkim-relayd") || !supervisor.start_and_wait("dkim-webd")) {
            status = kFailed;
        }
    }
    if (status == 0 && !supervisor.stop_requested()) {
        print_facts(*settings, p, users, *records, args.json);
        for (auto& u : users) {
            base::wipe(u.password);
            base::wipe(u.totp_secret);
            base::wipe(u.otpauth);
        }
        supervisor.supervise();
    }
    supervisor.stop_all();
    std::cerr << "up: stopped\n";
    return status;
}

}  // namespace

void add_up_command(CLI::App& app, int& exit_code) {
    auto args = std::make_shared<UpArgs>();
    CLI::App* up = app.add_subcommand(
        "up",
        "Run the whole appliance on this machine (as root): a SoftHSM2 token with demo keys, "
        "dkim-signerd, dkim-relayd and dkim-webd, supervised until Ctrl-C");
    args->command = up;
    up->add_option("--state-dir", args->state_dir,
                   "folder for the token, the state, the configs and the logs (made on first "
                   "use, reused after)")
        ->capture_default_str();
    up->add_option("--domain", args->given.domain, "signing domain of the demo keys")
        ->capture_default_str();
    up->add_option("--smtp", args->given.smtp_listen, "SMTP listen address of dkim-relayd")
        ->capture_default_str();
    up->add_option("--https", args->given.https_listen, "HTTPS listen address of dkim-webd")
        ->capture_default_str();
    up->add_option("--next-hop", args->given.next_hop,
                   "where signed mail goes: smtp://HOST:PORT (default: a maildir in the state "
                   "folder)");
    up->add_option("--module", args->given.module, "PKCS#11 module (default: SoftHSM2)");
    up->add_option("--bin-dir", args->bin_dir,
                   "folder of dkim-signerd, dkim-relayd and dkim-webd (default: beside "
                   "dkim-appliance, else /usr/sbin)");
    up->add_flag("--json", args->json, "print the facts as one JSON object (one line)");
    up->callback([&exit_code, args] { exit_code = run_up(*args); });
}

}  // namespace dkim::cli
