#include "dkim/jit/model.hpp"

#include "dkim/dkim/signature.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::jit {

std::string_view to_string(Operation op) noexcept {
    switch (op) {
        case Operation::sign: return "sign";
        case Operation::key_generate: return "key.generate";
        case Operation::key_rotate: return "key.rotate";
        case Operation::key_retire: return "key.retire";
        case Operation::admin: return "admin";
    }
    return "?";
}

std::optional<Operation> parse_operation(std::string_view text) noexcept {
    for (Operation op : kOperations) {
        if (to_string(op) == text) {
            return op;
        }
    }
    return std::nullopt;
}

std::string_view to_string(Role role) noexcept {
    switch (role) {
        case Role::requester: return "requester";
        case Role::approver: return "approver";
        case Role::admin: return "admin";
        case Role::auditor: return "auditor";
    }
    return "?";
}

std::optional<Role> parse_role(std::string_view text) noexcept {
    for (Role role : kRoles) {
        if (to_string(role) == text) {
            return role;
        }
    }
    return std::nullopt;
}

std::string roles_to_string(RoleSet set) {
    std::string out;
    for (Role role : kRoles) {
        if (has_role(set, role)) {
            if (!out.empty()) {
                out += ',';
            }
            out += to_string(role);
        }
    }
    return out;
}

std::optional<RoleSet> parse_roles(std::string_view text) {
    RoleSet set = 0;
    while (!text.empty()) {
        const auto comma = text.find(',');
        const std::string_view item = text.substr(0, comma);
        const auto role = parse_role(item);
        if (!role) {
            return std::nullopt;
        }
        set |= static_cast<RoleSet>(*role);
        if (comma == std::string_view::npos) {
            break;
        }
        text.remove_prefix(comma + 1);
    }
    return set;
}

std::string_view to_string(RequestState state) noexcept {
    switch (state) {
        case RequestState::pending: return "pending";
        case RequestState::approved: return "approved";
        case RequestState::denied: return "denied";
        case RequestState::cancelled: return "cancelled";
        case RequestState::expired: return "expired";
        case RequestState::superseded: return "superseded";
    }
    return "?";
}

std::string_view to_string(GrantState state) noexcept {
    switch (state) {
        case GrantState::active: return "active";
        case GrantState::expired: return "expired";
        case GrantState::exhausted: return "exhausted";
        case GrantState::revoked: return "revoked";
        case GrantState::scheduled: return "scheduled";
    }
    return "?";
}

bool Scope::covers(Operation op, std::string_view d, std::string_view s, std::string_view c) const {
    if (op != operation) {
        return false;
    }
    if (domain != "*" && !mail::iequals(domain, d)) {
        return false;
    }
    if (selector != "*" && !mail::iequals(selector, s)) {
        return false;
    }
    return client == "*" || client == c;
}

bool Scope::covers(const Scope& inner) const {
    // The same test a signature (or an operation) of `inner` meets: a literal "*" there is
    // matched only by a "*" here, since no domain, selector or client name is "*".
    return covers(inner.operation, inner.domain, inner.selector, inner.client);
}

std::string Scope::to_string() const {
    std::string out(jit::to_string(operation));
    out += ' ';
    out += domain;
    if (operation != Operation::admin) {
        out += '/';
        out += selector;
    }
    if (operation == Operation::sign && client != "*") {
        out += " for ";
        out += client;
    }
    return out;
}

namespace {
bool is_client_name(std::string_view name) {
    if (name.empty() || name.size() > 64) {
        return false;
    }
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}
}  // namespace

std::optional<std::string> validate_scope(Scope& scope) {
    scope.domain = mail::ascii_lowercase(scope.domain);
    scope.selector = mail::ascii_lowercase(scope.selector);
    if (scope.operation == Operation::admin) {
        if (scope.domain.empty()) {
            scope.domain = "*";
        }
        if (scope.domain != "*" || scope.selector != "*") {
            return "an admin scope covers the whole appliance: domain and selector must be '*'";
        }
    } else {
        if (!is_valid_domain(scope.domain)) {
            return "'" + scope.domain + "' is not a valid domain name";
        }
        if (scope.selector != "*" && !is_valid_selector(scope.selector)) {
            return "'" + scope.selector + "' is not a valid selector";
        }
        if (scope.operation == Operation::key_generate && scope.selector == "*") {
            return "key.generate needs a selector";
        }
    }
    if (scope.client.empty()) {
        scope.client = "*";
    }
    if (scope.client != "*" &&
        (scope.operation != Operation::sign || !is_client_name(scope.client))) {
        return "a client may only be named for sign scopes, as a service identity name";
    }
    return std::nullopt;
}

}  // namespace dkim::jit
