// The audit log: records page by page, and the verification of its chain.

#include "endpoints.hpp"
#include "query.hpp"

namespace dkim::web::detail {

Result<Response> audit(Context& ctx, Caller& caller) {
    auto after = query_integer(ctx.query, "after", 0, std::int64_t{1} << 53);
    auto limit = query_integer(ctx.query, "limit", 1, 1000);
    if (!after || !limit) {
        return unexpected(!after ? after.error() : limit.error());
    }
    const std::int64_t from = after->value_or(0) + 1;
    auto records =
        ctx.call<ipc::AuditReply>(ipc::AuditShow{caller.credentials, from, limit->value_or(100)});
    if (!records) {
        return unexpected(records.error());
    }
    std::vector<api::AuditRecord> out;
    for (const ipc::AuditView& a : records->records) {
        out.push_back({a.seq, a.time_ms, a.actor, a.action, a.scope, a.outcome, a.reason,
                       a.request_id, a.grant_id, a.detail, a.hash});
    }
    const std::int64_t next = out.empty() ? from - 1 : out.back().seq;
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("records", out), cereal::make_nvp("next_after", next)),
        ctx.req);
}

Result<Response> audit_verify(Context& ctx, Caller& caller) {
    auto report = ctx.call<ipc::AuditVerifyReply>(ipc::AuditVerify{caller.credentials});
    if (!report) {
        return unexpected(report.error());
    }
    return json_response(
        http::status::ok,
        api::object(cereal::make_nvp("ok", report->ok),
                    cereal::make_nvp("records", report->records),
                    cereal::make_nvp("first_broken", report->first_broken),
                    cereal::make_nvp("problem", report->problem),
                    cereal::make_nvp("checkpoints", report->checkpoints),
                    cereal::make_nvp("checkpoint_signatures", report->checkpoint_signatures),
                    cereal::make_nvp("head", report->head),
                    cereal::make_nvp("verified_ms", to_unix_ms(ctx.now))),
        ctx.req);
}

}  // namespace dkim::web::detail
