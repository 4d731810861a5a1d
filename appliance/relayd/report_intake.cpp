#include "report_intake.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>

#include "next_hop.hpp"

namespace dkim::relayd {

namespace bj = boost::json;
using namespace std::chrono_literals;

std::string printable_line(std::string_view text, std::size_t max) {
    std::string out;
    for (const char c : text) {
        if (out.size() >= max) {
            break;
        }
        const auto u = static_cast<unsigned char>(c);
        if (u == '\r' || u == '\n' || u == '\t') {
            out.push_back(' ');
        } else {
            out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
        }
    }
    return out;
}

ReportAnswer read_report_answer(const Expected<reports::channel::Message, std::string>& answer) {
    using reports::channel::int_member;
    using reports::channel::string_member;
    ReportAnswer out;
    if (!answer) {
        out.reason = "dkim-reportd could not be asked: " + answer.error();
        return out;
    }
    const bj::object& json = answer->json;
    const bj::value* ok = json.if_contains("ok");
    if (ok != nullptr && ok->is_bool() && ok->get_bool()) {
        out.kind = ReportAnswer::Kind::stored;
        out.submission = int_member(json, "submission", -1);
        out.reports = int_member(json, "reports");
        out.duplicates = int_member(json, "duplicates");
        const bj::value* errors = json.if_contains("errors");
        out.errors = errors != nullptr && errors->is_array() ? errors->get_array().size() : 0;
        return out;
    }
    const std::string code = string_member(json, "code");
    const std::string error = string_member(json, "error");
    out.kind = code == "invalid" ? ReportAnswer::Kind::invalid : ReportAnswer::Kind::unavailable;
    out.reason = code == "invalid" ? error : (code.empty() ? "no code" : code) + ": " + error;
    return out;
}

smtp::Reply report_reply(const ReportAnswer& answer) {
    switch (answer.kind) {
        case ReportAnswer::Kind::stored:
            return local_reply(
                250, "2.0.0",
                "Ok: report stored (submission " + std::to_string(answer.submission) + ")");
        case ReportAnswer::Kind::invalid:
            return local_reply(
                554, "5.6.0",
                "Report refused: " +
                    printable_line(answer.reason.empty() ? "no reason given" : answer.reason));
        case ReportAnswer::Kind::unavailable: break;
    }
    return local_reply(451, "4.3.0", "The report store is unavailable; try again later");
}

RelayMetrics::ReportOutcome report_outcome(const ReportAnswer& answer) {
    switch (answer.kind) {
        case ReportAnswer::Kind::stored: return RelayMetrics::ReportOutcome::stored;
        case ReportAnswer::Kind::invalid: return RelayMetrics::ReportOutcome::invalid;
        case ReportAnswer::Kind::unavailable: break;
    }
    return RelayMetrics::ReportOutcome::unavailable;
}

// --- the socket ------------------------------------------------------------------------------

ChannelSubmitter::ChannelSubmitter(std::string socket, asio::thread_pool& pool,
                                   std::chrono::milliseconds timeout)
    : socket_(std::move(socket)), pool_(pool), timeout_(timeout) {}

awaitable<ReportAnswer> ChannelSubmitter::submit(const std::string& origin,
                                                 const std::string& message,
                                                 const std::string& reporter) {
    const ChannelSubmitter* self = this;
    const std::string* o = &origin;
    const std::string* m = &message;
    const std::string* r = &reporter;
    co_return co_await run_blocking(pool_, [self, o, m, r] { return self->call(*o, *m, *r); });
}

ReportAnswer ChannelSubmitter::call(const std::string& origin, const std::string& message,
                                    const std::string& reporter) const {
    try {
        reports::channel::Client client(socket_, timeout_);
        reports::channel::Message request;
        request.json["op"] = "submit";
        request.json["origin"] = origin;
        if (!reporter.empty()) {
            request.json["reporter"] = reporter;  // authenticated (DKIM, aligned with From)
        }
        request.body = message;
        return read_report_answer(client.call(request));
    } catch (const std::exception& e) {  // std::bad_alloc for a message that does not fit
        ReportAnswer failed;
        failed.reason = std::string("dkim-reportd could not be asked: ") + e.what();
        return failed;
    }
}

// --- the hourly limits -----------------------------------------------------------------------

std::string report_rate_key(std::string_view address_text) {
    std::string text(address_text);
    std::array<unsigned char, 16> bytes{};
    if (inet_pton(AF_INET, text.c_str(), bytes.data()) == 1) {
        return text;
    }
    if (inet_pton(AF_INET6, text.c_str(), bytes.data()) != 1) {
        return text;
    }
    static constexpr std::array<unsigned char, 12> kMapped{0, 0, 0, 0, 0,    0,
                                                           0, 0, 0, 0, 0xff, 0xff};
    char out[INET6_ADDRSTRLEN] = {};
    if (std::equal(kMapped.begin(), kMapped.end(), bytes.begin())) {
        (void)inet_ntop(AF_INET, bytes.data() + 12, out, sizeof out);
        return out;
    }
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    (void)inet_ntop(AF_INET6, bytes.data(), out, sizeof out);
    return std::string(out) + "/64";
}

ReportIntake::ReportIntake(const ReportSettings& settings, ReportSubmitter& submitter,
                           const Clock& clock)
    : settings_(settings), submitter_(submitter), clock_(clock) {}

ReportIntake::Admission ReportIntake::admit(std::string_view client_address) {
    const MonotonicTime now = clock_.monotonic();
    std::string key = report_rate_key(client_address);
    std::lock_guard lock(mutex_);
    while (!all_.empty() && all_.front().first <= now - 1h) {
        auto it = per_client_.find(all_.front().second);
        if (it != per_client_.end() && --it->second == 0) {
            per_client_.erase(it);
        }
        all_.pop_front();
    }
    const auto mine = per_client_.find(key);
    if (mine != per_client_.end() && mine->second >= settings_.max_per_client_per_hour) {
        return Admission::client_limit;
    }
    if (all_.size() >= settings_.max_per_hour) {
        return Admission::relay_limit;
    }
    ++per_client_[key];
    all_.emplace_back(now, std::move(key));
    return Admission::admitted;
}

}  // namespace dkim::relayd
