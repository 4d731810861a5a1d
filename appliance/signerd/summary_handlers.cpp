#include "summary_handlers.hpp"

#include "dkim/dkim/signature.hpp"
#include "dkim/ipc/frame.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::signerd {

namespace {

constexpr std::int64_t kHour = 3600;
// 9999-12-31T23:59:59Z: later times are no dates (and would overflow as milliseconds).
constexpr std::int64_t kLastUnixSecond = 253'402'300'799;

// Unix seconds of a TimePoint, rounded up (an interval's end is never shown earlier than it is).
std::int64_t seconds_rounded_up(TimePoint t) {
    return std::chrono::ceil<std::chrono::seconds>(t).time_since_epoch().count();
}

std::int64_t seconds_rounded_down(TimePoint t) {
    return std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
}

// The first hour of a range: the one that holds `from` (not negative).
std::int64_t first_hour(std::int64_t from) {
    return from / kHour * kHour;
}

}  // namespace

ipc::Reply SummaryHandlers::signing_summary(const ipc::SigningSummaryRequest& request) const {
    if (request.from < 0 || request.until <= request.from || request.until > kLastUnixSecond) {
        return error_reply(ipc::ErrorCode::invalid,
                           "the range needs 0 <= from < until <= 253402300799 (unix seconds)");
    }
    if (request.until - request.from > ipc::kMaxSummaryRange) {
        return error_reply(ipc::ErrorCode::invalid,
                           "the range is longer than " +
                               std::to_string(ipc::kMaxSummaryRange / 86400) +
                               " days: ask for a shorter one");
    }
    if (!request.domain.empty() && !is_valid_domain(request.domain)) {
        return error_reply(ipc::ErrorCode::invalid, "invalid domain");
    }
    const std::string domain = mail::ascii_lowercase(request.domain);
    const std::string narrower = domain.empty() ? "ask for one domain at a time, or a shorter range"
                                                : "ask for a shorter range";

    auto counted = journal_.store().signing_hours(first_hour(request.from), request.until, domain,
                                                  ipc::kMaxSummaryRows + 1);
    if (!counted) {
        return error_reply(ipc::ErrorCode::unavailable,
                           "the signing summary cannot be read: " + counted.error());
    }
    if (counted->rows.size() > ipc::kMaxSummaryRows) {
        return error_reply(ipc::ErrorCode::invalid,
                           "the range holds more than " + std::to_string(ipc::kMaxSummaryRows) +
                               " hours of signatures or refusals: " + narrower);
    }
    const auto intervals = authority_.sign_grant_intervals(
        domain, from_unix_ms(request.from * 1000), from_unix_ms(request.until * 1000));
    if (intervals.size() > ipc::kMaxSummaryRows) {
        return error_reply(ipc::ErrorCode::invalid, "the range holds more than " +
                                                        std::to_string(ipc::kMaxSummaryRows) +
                                                        " sign grants: " + narrower);
    }

    ipc::SigningSummaryReply out;
    out.hours.reserve(counted->rows.size());
    for (jit::SigningHour& h : counted->rows) {
        out.hours.push_back(
            {std::move(h.domain), std::move(h.selector), h.hour, h.signatures, h.refusals});
    }
    out.grants.reserve(intervals.size());
    for (const jit::GrantInterval& g : intervals) {
        out.grants.push_back({g.grant_id, g.domain, g.selector, seconds_rounded_down(g.start),
                              seconds_rounded_up(g.end)});
    }
    out.signature_lifetime = signature_lifetime_.count();
    out.counted_since = seconds_rounded_up(counted->counted_since);
    // Long names in every row can make a reply within the row limits larger than one frame.
    ipc::Reply reply{std::move(out)};
    if (ipc::encode(reply).size() - ipc::kFrameHeaderSize > ipc::kMaxFrameSize) {
        return error_reply(ipc::ErrorCode::invalid,
                           "the summary of the range does not fit in one reply: " + narrower);
    }
    return reply;
}

}  // namespace dkim::signerd
