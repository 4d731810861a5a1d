#pragma once
// Whether a service user can reach a folder: each folder on the way must let that user search
// it (the x bit of the owner, group or others class the user falls in, as the kernel checks:
// the owner's bits apply to the owner even when others may pass). `dkim-appliance up` asks
// this before it makes anything, because the daemons it starts run as their own system users
// and cannot open their configuration under a folder such as a `mktemp -d` one (mode 0700).
//
// first_blocking() is the decision, on facts gathered by folders_on_the_way(); ACLs and
// capabilities other than root's are not considered.

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dkim::service {

// One folder that a path walk passes (the facts stat(2) gives, following symlinks).
struct FolderFacts {
    std::filesystem::path path;
    unsigned mode = 0;  // permission bits
    uid_t uid = 0;
    gid_t gid = 0;
};

// A user that must get through: its uid and every group it runs with.
struct Account {
    std::string name;
    uid_t uid = 0;
    std::vector<gid_t> groups;
};

// Which class of a folder's permission bits applies to an account.
enum class PermissionClass { owner, group, others };

struct Blocked {
    FolderFacts folder;
    std::string account;  // the first account it stops
    PermissionClass applies = PermissionClass::others;
    // "chmod o+x /tmp/tmp.XXXX": the smallest change that lets the account through.
    std::string fix;
};

PermissionClass permission_class(const FolderFacts& folder, const Account& account);
// Root searches every folder; anyone else needs the x bit of its class.
bool can_search(const FolderFacts& folder, const Account& account);

// The first folder (in walk order, outermost first) that one of `accounts` cannot search.
std::optional<Blocked> first_blocking(const std::vector<FolderFacts>& folders,
                                      const std::vector<Account>& accounts);

// The folders a process searches to reach `target` (not `target` itself), outermost first:
// each existing ancestor of the absolute path as written, then those of its resolved path that
// a symlink leads through. The walk ends at the first ancestor that does not exist (what
// `target` still needs is made later, by whoever makes it). An ancestor that cannot be
// stat'ed for another reason is reported with mode 0.
std::vector<FolderFacts> folders_on_the_way(const std::filesystem::path& target);

}  // namespace dkim::service
