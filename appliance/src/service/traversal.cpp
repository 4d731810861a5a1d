// Whether a service user can reach a folder (see dkim/service/traversal.hpp).
#include "dkim/service/traversal.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <system_error>
#include <utility>

namespace dkim::service {

namespace fs = std::filesystem;

PermissionClass permission_class(const FolderFacts& folder, const Account& account) {
    if (account.uid == folder.uid) {
        return PermissionClass::owner;
    }
    if (std::find(account.groups.begin(), account.groups.end(), folder.gid) !=
        account.groups.end()) {
        return PermissionClass::group;
    }
    return PermissionClass::others;
}

bool can_search(const FolderFacts& folder, const Account& account) {
    if (account.uid == 0) {
        return true;
    }
    switch (permission_class(folder, account)) {
        case PermissionClass::owner: return (folder.mode & S_IXUSR) != 0;
        case PermissionClass::group: return (folder.mode & S_IXGRP) != 0;
        case PermissionClass::others: return (folder.mode & S_IXOTH) != 0;
    }
    return false;
}

std::optional<Blocked> first_blocking(const std::vector<FolderFacts>& folders,
                                      const std::vector<Account>& accounts) {
    for (const FolderFacts& folder : folders) {
        for (const Account& account : accounts) {
            if (can_search(folder, account)) {
                continue;
            }
            Blocked b;
            b.folder = folder;
            b.account = account.name;
            b.applies = permission_class(folder, account);
            const char* who = b.applies == PermissionClass::owner   ? "u"
                              : b.applies == PermissionClass::group ? "g"
                                                                    : "o";
            b.fix = std::string("chmod ") + who + "+x " + folder.path.string();
            return b;
        }
    }
    return std::nullopt;
}

namespace {

// Appends the existing ancestors of `absolute` (outermost first, not `absolute` itself) that
// are not in `seen` yet; false once an ancestor does not exist.
bool add_ancestors(const fs::path& absolute, std::vector<FolderFacts>& out,
                   std::set<std::pair<dev_t, ino_t>>& seen) {
    fs::path walked;
    const fs::path parent = absolute.parent_path();
    for (const fs::path& part : parent) {
        walked /= part;
        struct stat st {};
        if (::stat(walked.c_str(), &st) != 0) {
            if (errno == ENOENT || errno == ENOTDIR) {
                return false;
            }
            out.push_back(FolderFacts{walked, 0, 0, 0});
            return false;
        }
        if (seen.insert({st.st_dev, st.st_ino}).second) {
            out.push_back(FolderFacts{walked, static_cast<unsigned>(st.st_mode & 07777), st.st_uid,
                                      st.st_gid});
        }
    }
    return true;
}

}  // namespace

std::vector<FolderFacts> folders_on_the_way(const fs::path& target) {
    std::error_code ec;
    fs::path absolute = fs::absolute(target, ec).lexically_normal();
    if (!absolute.has_filename()) {
        absolute = absolute.parent_path();  // "state/"
    }
    std::vector<FolderFacts> out;
    std::set<std::pair<dev_t, ino_t>> seen;
    add_ancestors(absolute, out, seen);
    // A symlink on the way leads through the folders of its target as well.
    const fs::path resolved = fs::weakly_canonical(absolute, ec);
    if (!ec && resolved != absolute) {
        add_ancestors(resolved, out, seen);
    }
    return out;
}

}  // namespace dkim::service
