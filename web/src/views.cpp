#include "views.hpp"

namespace dkim::web::detail {

std::vector<std::string> split_roles(const std::string& roles) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < roles.size()) {
        const std::size_t comma = roles.find(',', start);
        const std::size_t end = comma == std::string::npos ? roles.size() : comma;
        if (end > start) {
            out.push_back(roles.substr(start, end - start));
        }
        start = end + 1;
    }
    return out;
}

api::GrantSummary grant_view(const ipc::GrantView& g) {
    api::GrantSummary v;
    v.id = g.id;
    v.request_id = g.request_id;
    v.holder = g.holder;
    v.scope = g.scope;
    v.state = g.state;
    v.starts_ms = g.starts_ms;
    v.expires_ms = g.expires_ms;
    v.budget = g.budget;
    v.uses = g.uses;
    if (g.budget) {
        v.uses_left = *g.budget > g.uses ? *g.budget - g.uses : 0;
    }
    v.revoked_by = g.revoked_by;
    v.revoke_reason = g.revoke_reason;
    v.break_glass = g.break_glass;
    if (g.renews != 0) {
        v.renews = g.renews;
    }
    return v;
}

api::Elevation elevation_view(const ipc::RequestView& r,
                              const std::vector<ipc::GrantView>& grants) {
    api::Elevation v;
    v.id = r.id;
    v.requester = r.requester;
    v.operation = r.operation;
    v.domain = r.domain;
    v.selector = r.selector;
    v.client = r.client;
    v.scope = r.scope;
    v.duration_seconds = r.duration_ms / 1000;
    v.budget = r.budget;
    v.reason = r.reason;
    v.state = r.state;
    v.created_ms = r.created_ms;
    v.pending_until_ms = r.pending_until_ms;
    v.approvals = r.approvals;
    v.quorum = r.quorum;
    v.decided_by = r.decided_by;
    v.decision_reason = r.decision_reason;
    v.break_glass = r.break_glass;
    v.filed_by_signer = r.filed_by_signer;
    if (r.superseded_by != 0) {
        v.superseded_by = r.superseded_by;
    }
    if (r.renews != 0) {
        v.renews = r.renews;
        v.renews_expires_ms = r.renews_expires_ms;
    }
    for (const ipc::GrantView& g : grants) {
        if (g.request_id == r.id) {
            v.grant = grant_view(g);
        }
    }
    return v;
}

api::Key key_view(const ipc::KeyView& k) {
    return api::Key{k.domain,   k.selector,   k.algorithm, k.signing, k.bits,
                    k.dns_name, k.dns_record, k.state,     k.managed};
}

api::Permissions permissions_view(const ipc::Permissions& p, const std::string& roles) {
    return api::Permissions{p.request,
                            p.break_glass,
                            p.approve,
                            p.revoke_own,
                            p.revoke_any,
                            p.cancel_any,
                            p.audit,
                            p.users,
                            may_read_reports(roles),
                            may_upload_reports(roles)};
}

namespace {

bool has_role(const std::string& roles, std::string_view role) {
    for (const std::string& r : split_roles(roles)) {
        if (r == role) {
            return true;
        }
    }
    return false;
}

}  // namespace

bool may_read_reports(const std::string& roles) {
    return has_role(roles, "auditor") || has_role(roles, "admin");
}

bool may_upload_reports(const std::string& roles) {
    return has_role(roles, "admin");
}

}  // namespace dkim::web::detail
