#include "up_state_folder.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "dkim/base/wipe.hpp"
#include "dkim/jit/credentials.hpp"
#include "dkim/service/traversal.hpp"
#include "up_sysusers.hpp"

namespace dkim::cli::up {

namespace fs = std::filesystem;

namespace {

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

}  // namespace

StatePaths::StatePaths(const fs::path& dir)
    : root(dir),
      settings(dir / "up.toml"),
      cli_defaults(dir / "dkim-appliance.toml"),
      etc(dir / "etc"),
      softhsm_conf(dir / "softhsm2.conf"),
      tokens(dir / "tokens"),
      secrets(dir / "secrets"),
      signerd(dir / "signerd"),
      webd(dir / "webd"),
      reportd(dir / "reportd"),
      maildir(dir / "maildir"),
      dns(dir / "dns"),
      dnsmasq_conf(dir / "dns" / "dnsmasq.conf"),
      run(dir / "run"),
      reportd_run(dir / "run" / "reportd"),
      log(dir / "log"),
      socket(dir / "run" / "signerd.sock"),
      reportd_socket(dir / "run" / "reportd" / "reportd.sock"),
      notify(dir / "run" / "notify.sock"),
      certificate(dir / "webd" / "webd-selfsigned.crt"),
      lock(dir / "up.lock"),
      credentials(dir / "credentials") {}

fs::path StatePaths::daemon_log(const std::string& daemon) const {
    return log / (daemon + ".log");
}

std::string errno_text() {
    return std::error_code(errno, std::system_category()).message();
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
                                       mode_t mode, uid_t uid, gid_t gid) {
    const fs::path temporary = path.string() + ".tmp";
    UniqueFd fd(
        ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd) {
        return unexpected("cannot write " + temporary.string() + ": " + errno_text());
    }
    bool ok = ::fchmod(fd.get(), mode) == 0 && ::fchown(fd.get(), uid, gid) == 0;
    for (std::size_t done = 0; ok && done < content.size();) {
        const auto n = ::write(fd.get(), content.data() + done, content.size() - done);
        ok = n > 0;
        done += ok ? static_cast<std::size_t>(n) : 0;
    }
    ok = ::fsync(fd.get()) == 0 && ok;
    fd.reset();
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

// With the packaged users and their groups when they exist, else as users that own nothing
// and are in no group (the others' bits).
Expected<void, std::string> daemons_can_reach(const fs::path& root) {
    constexpr uid_t kNotYetMade = static_cast<uid_t>(-2);
    const auto signer = user_ids("dkim-signer");
    std::vector<service::Account> accounts;
    for (const char* name : {"dkim-signer", "dkim-relay", "dkim-web", "dkim-report"}) {
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
    std::array<char, 8> mode{};
    (void)std::snprintf(mode.data(), mode.size(), "%04o", blocked->folder.mode);
    const char* who = blocked->applies == service::PermissionClass::owner   ? "its owner"
                      : blocked->applies == service::PermissionClass::group ? "its group"
                                                                            : "others";
    return unexpected(
        "the state folder " + root.string() +
        " cannot be reached by the daemons: they run as their own system users (dkim-signer, "
        "dkim-relay, dkim-web, dkim-report), and " +
        blocked->folder.path.string() + " (mode " + mode.data() + ", owner " +
        user_name(blocked->folder.uid) + ", group " + group_name(blocked->folder.gid) +
        ") does not let " + blocked->account + " through: it needs search permission (x) for " +
        who + ".\n  Either let them through (enter, not list):  " + blocked->fix +
        "\n  or give a --state-dir outside it, whose every parent others may enter "
        "(such as /var/lib/dkim-appliance-up or ./state in a home folder of mode 0711 or 0755)."
        "\n  Nothing was made or started.");
}

Expected<DaemonUsers, std::string> system_users() {
    auto lookup = [](DaemonUsers& users) {
        const auto signer = user_ids("dkim-signer");
        const auto relay = user_ids("dkim-relay");
        const auto web = user_ids("dkim-web");
        const auto report = user_ids("dkim-report");
        if (!signer || !relay || !web || !report) {
            return false;
        }
        std::tie(users.signer, users.signer_gid) = *signer;
        std::tie(users.relay, users.relay_gid) = *relay;
        std::tie(users.web, users.web_gid) = *web;
        std::tie(users.report, users.report_gid) = *report;
        return true;
    };
    DaemonUsers users;
    if (lookup(users)) {
        return users;
    }
    FILE* sysusers = ::popen("systemd-sysusers - >/dev/null", "w");
    if (sysusers == nullptr) {
        return unexpected("cannot run systemd-sysusers to create the daemons' users");
    }
    (void)std::fwrite(kSysusersConf, 1, std::strlen(kSysusersConf), sysusers);
    const int status = ::pclose(sysusers);
    if (status != 0 || !lookup(users)) {
        return unexpected(
            "cannot create the users dkim-signer, dkim-relay, dkim-web and dkim-report "
            "(systemd-sysusers exited with " +
            std::to_string(WEXITSTATUS(status)) + ")");
    }
    std::cerr << "up: created the system users dkim-signer, dkim-relay, dkim-web and dkim-report\n";
    return users;
}

Expected<UniqueFd, std::string> lock_state_folder(const StatePaths& paths) {
    UniqueFd lock(::open(paths.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
        return unexpected("another `dkim-appliance up` is running with " + paths.root.string() +
                          " (it holds " + paths.lock.string() + ")");
    }
    return lock;
}

Expected<void, std::string> prepare_folders(const StatePaths& p, const DaemonUsers& u) {
    struct Folder {
        const fs::path& path;
        mode_t mode;
        uid_t uid;
        gid_t gid;
    };
    for (const Folder& f : {Folder{p.root, 0711, 0, 0},
                            {p.etc, 0755, 0, 0},
                            {p.secrets, 0700, 0, 0},
                            {p.credentials, 0700, 0, 0},
                            {p.log, 0750, 0, 0},
                            {p.dns, 0755, 0, 0},
                            {p.tokens, 0700, u.signer, u.signer_gid},
                            {p.signerd, 0700, u.signer, u.signer_gid},
                            {p.run, 0750, u.signer, u.signer_gid},
                            {p.reportd_run, 0750, u.report, u.report_gid},
                            {p.webd, 0700, u.web, u.web_gid},
                            {p.reportd, 0700, u.report, u.report_gid},
                            {p.maildir, 0700, u.relay, u.relay_gid}}) {
        if (auto made = make_folder(f.path, f.mode, f.uid, f.gid); !made) {
            return made;
        }
        if (f.uid != 0) {
            if (auto handed = hand_over(f.path, f.uid, f.gid); !handed) {
                return handed;
            }
        }
    }
    return {};
}

}  // namespace dkim::cli::up
