#include "service.hpp"

#include <algorithm>
#include <ctime>
#include <iostream>
#include <set>

#include "dkim/dns/name.hpp"

namespace dkim::reportd {

namespace bj = boost::json;
using reports::channel::error;
using reports::channel::int_member;
using reports::channel::Message;
using reports::channel::string_member;

namespace {

Message ok() {
    Message m;
    m.json["ok"] = true;
    return m;
}

// The query's range in days: from/until (unix seconds) or the last `default_days` days.
std::pair<std::int64_t, std::int64_t> day_range(const bj::object& args, std::int64_t now,
                                                std::int64_t default_days) {
    const std::int64_t until = int_member(args, "until", now);
    const std::int64_t from = int_member(args, "from", until - default_days * kDay);
    const std::int64_t to_day = (std::max(until, std::int64_t{1}) - 1) / kDay;
    std::int64_t from_day = std::max<std::int64_t>(from, 0) / kDay;
    from_day = std::max(from_day, to_day - 400);  // at most about 13 months at once
    return {std::min(from_day, to_day), to_day};
}

// Reporters name the policy domain; a hostile one could name thousands. signerd is asked about
// this many at most (the appliance signs for a few dozen).
constexpr std::size_t kMaxSummaryDomains = 100;

// "64 MiB", "512 KiB", "300 bytes": a cap as the operator set it.
std::string size_text(std::size_t bytes) {
    if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0) {
        return std::to_string(bytes >> 20) + " MiB";
    }
    if (bytes >= 1024 && bytes % 1024 == 0) {
        return std::to_string(bytes >> 10) + " KiB";
    }
    return std::to_string(bytes) + " bytes";
}

bool valid_domain_argument(const std::string& domain) {
    return domain.size() <= 253 &&
           domain.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-_") == std::string::npos;
}

}  // namespace

std::string day_text(std::int64_t day) {
    const std::time_t t = static_cast<std::time_t>(day * kDay);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[16];
    std::strftime(text, sizeof text, "%Y-%m-%d", &tm);
    return text;
}

Service::Service(ReportStore& store, SigningRecord& signing, const Clock& clock,
                 const Config& config, FindingSink* notifications, ReportStore* reader)
    : store_(store),
      signing_(signing),
      clock_(clock),
      config_(config),
      notifications_(notifications),
      reader_(reader != nullptr ? *reader : store),
      read_mutex_(reader != nullptr ? reader_own_mutex_ : store_mutex_) {}

// The kinds a webhook is for: evidence of the key being misused, and rotations going wrong,
// when authenticated reporters' reports alone show it (findings.hpp): anyone can mail a
// report address, and a forged report must not page anyone. Readiness, unknown sources and TLS
// failures are for the console, not a pager.
bool worth_a_webhook(const bj::object& finding) {
    const std::string kind = string_member(finding, "kind");
    const bj::value* authenticated = finding.if_contains("authenticated");
    return (kind == "replay_suspected" || kind == "signed_outside_grant" ||
            kind == "rotation_retired_seen" || kind == "rotation_new_failing") &&
           authenticated != nullptr && authenticated->is_bool() && authenticated->get_bool();
}

void Service::after_answer() {
    if (pending_notification_.exchange(false)) {
        (void)notify_new_findings();
    }
    (void)forget_old_submissions();
}

std::size_t Service::forget_old_submissions() {
    // At most once an hour: the bytes of submissions read more than keep_submissions_days ago.
    const std::int64_t now_ms = to_unix_ms(clock_.now());
    std::int64_t last = last_forget_ms_.load();
    if (last != 0 && now_ms - last < 3'600'000) {
        return 0;
    }
    if (!last_forget_ms_.compare_exchange_strong(last, now_ms)) {
        return 0;  // another connection's thread does it
    }
    std::lock_guard lock(store_mutex_);
    return store_.forget_submissions_before(now_ms / 1000 -
                                            std::int64_t{config_.keep_submissions_days} * kDay);
}

std::size_t Service::notify_new_findings() {
    if (notifications_ == nullptr) {
        return 0;
    }
    const Message answer = findings(bj::object{});
    const bj::value* list = answer.json.if_contains("findings");
    if (list == nullptr || !list->is_array()) {
        return 0;
    }
    const std::int64_t now_ms = to_unix_ms(clock_.now());
    std::size_t sent = 0;
    pending_notification_ = false;
    for (const bj::value& v : list->as_array()) {
        if (!v.is_object() || !worth_a_webhook(v.as_object())) {
            continue;
        }
        const bj::object& f = v.as_object();
        const std::string key = string_member(f, "kind") + "|" + string_member(f, "domain") + "|" +
                                string_member(f, "selector") + "|" +
                                std::to_string(int_member(f, "from"));
        bj::object event = f;
        event["type"] = "report.finding";
        event["time_ms"] = now_ms;
        std::string body = bj::serialize(event);
        if (body.size() > 60 * 1024) {  // the outbox's limit is 64 KiB: drop the evidence
            event.erase("evidence");
            body = bj::serialize(event);
        }
        {
            std::lock_guard lock(store_mutex_);
            if (!store_.first_notification(key, now_ms / 1000)) {
                continue;
            }
        }
        // Marked first, then spooled: a finding whose spooling fails is unmarked and tried
        // again after the next submission (a crash in between sends it twice, never never).
        if (auto put = notifications_->put(body, now_ms); !put) {
            std::cerr << "dkim-reportd: a finding could not be spooled: " << put.error() << "\n";
            std::lock_guard lock(store_mutex_);
            store_.forget_notification(key);
            continue;
        }
        ++sent;
    }
    return sent;
}

Message Service::handle(PeerKind peer, const Message& request, const SpooledBody* spooled) {
    const std::string op = string_member(request.json, "op");
    if (op == "submit") {
        return submit(request, peer, spooled);
    }
    if (peer == PeerKind::relay) {
        return error("forbidden", "relay peers may only submit reports");
    }
    if (op == "status") {
        return status();
    }
    if (op == "reports") {
        return list_reports(request.json);
    }
    if (op == "dashboard") {
        return dashboard(request.json);
    }
    if (op == "findings") {
        return findings(request.json);
    }
    if (op == "metrics") {
        return metrics();
    }
    return error("invalid", "unknown operation '" + op.substr(0, 32) + "'");
}

bool Service::admit_submission(std::int64_t now_ms) {
    std::lock_guard lock(rate_mutex_);
    while (!recent_.empty() && recent_.front() <= now_ms - 60'000) {
        recent_.pop_front();
    }
    if (recent_.size() >= config_.max_submissions_per_minute) {
        return false;
    }
    recent_.push_back(now_ms);
    return true;
}

Expected<ipc::SigningSummaryReply, std::string> Service::summaries(
    std::int64_t from, std::int64_t until, const std::vector<std::string>& domains) {
    ipc::SigningSummaryReply merged;
    std::size_t asked = 0;
    for (const std::string& d : domains) {
        if (++asked > kMaxSummaryDomains) {
            break;
        }
        auto one = signing_.summary(from, until, d);
        if (!one) {
            return unexpected(one.error());
        }
        merged.hours.insert(merged.hours.end(), one->hours.begin(), one->hours.end());
        merged.grants.insert(merged.grants.end(), one->grants.begin(), one->grants.end());
        merged.signature_lifetime = std::max(merged.signature_lifetime, one->signature_lifetime);
        merged.counted_since = std::max(merged.counted_since, one->counted_since);
    }
    return merged;
}

namespace {

bj::object outcome_json(const IngestResult& r) {
    bj::object o;
    o["submission"] = r.submission;
    o["reports"] = r.reports;
    o["duplicates"] = r.duplicates;
    bj::array errors;
    for (const auto& e : r.errors) {
        errors.push_back(bj::value(e));
    }
    o["errors"] = std::move(errors);
    return o;
}

}  // namespace

// A reporter domain as a peer sends it: "" or a domain name (lower case, no trailing dot).
bool valid_reporter(std::string_view name) {
    return name.empty() ||
           (dns::is_valid_name(name) &&
            std::none_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; }));
}

// {"op":"submit","origin":"...","reporter":"..."} + the bytes: one submission. With
// "parts":[n1, n2, ...] (and "origins":[...] and, optional, "reporters":[...], one each), the
// body is that many submissions end to end, stored in one transaction (a bulk import); the
// answer adds "results", one each, to the totals. A reporter (the domain the report mail's DKIM
// signature vouches for, store.hpp) is taken from relayd and the operator's CLI, which verify
// it; webd's uploads are the browser's bytes and have none (webd's word is not asked for).
Message Service::submit(const Message& request, PeerKind peer, const SpooledBody* spooled) {
    // The body: in the message, or (a large one) spooled to a file as it came (spool.hpp).
    const std::uint64_t body_size = spooled != nullptr ? spooled->size() : request.body.size();
    std::vector<std::unique_ptr<reports::ByteSource>> sources;
    const auto part_of_body = [&](std::uint64_t at, std::uint64_t size) {
        Submission part;
        if (spooled != nullptr) {
            sources.push_back(spooled->range(at, size));
            part.source = sources.back().get();
            part.size = size;
        } else {
            part.bytes = std::string_view(request.body)
                             .substr(static_cast<std::size_t>(at), static_cast<std::size_t>(size));
        }
        return part;
    };
    if (body_size == 0) {
        return error("invalid", "nothing to submit");
    }
    const bool vouching_peer = peer == PeerKind::relay || peer == PeerKind::admin;
    if (!vouching_peer &&
        (request.json.contains("reporter") || request.json.contains("reporters"))) {
        return error("forbidden", "only relayd and the operator's CLI name a reporter");
    }
    const std::string origin = string_member(request.json, "origin").substr(0, 512);
    const std::string reporter = string_member(request.json, "reporter");
    if (!valid_reporter(reporter)) {
        return error("invalid", "reporter: expected a domain name in lower case");
    }
    std::vector<Submission> parts;
    std::vector<std::string> origins;
    std::vector<std::string> reporters;
    if (const bj::value* sizes = request.json.if_contains("parts")) {
        const bj::value* names = request.json.if_contains("origins");
        if (!sizes->is_array() || sizes->as_array().empty() || sizes->as_array().size() > 1000 ||
            names == nullptr || !names->is_array() ||
            names->as_array().size() != sizes->as_array().size()) {
            return error("invalid", "parts: expected 1 to 1000 sizes and as many origins");
        }
        if (const bj::value* vouched = request.json.if_contains("reporters")) {
            if (!vouched->is_array() || vouched->as_array().size() != sizes->as_array().size()) {
                return error("invalid", "reporters: expected one per part");
            }
            for (const bj::value& name : vouched->as_array()) {
                if (!name.is_string() || !valid_reporter(name.get_string())) {
                    return error("invalid", "reporters: expected domain names in lower case");
                }
                reporters.emplace_back(name.get_string());
            }
        }
        std::size_t at = 0;
        for (std::size_t i = 0; i < sizes->as_array().size(); ++i) {
            const bj::value& n = sizes->as_array()[i];
            const bj::value& name = names->as_array()[i];
            if (!n.is_int64() || n.as_int64() <= 0 || !name.is_string() ||
                static_cast<std::uint64_t>(n.as_int64()) > body_size - at) {
                return error("invalid", "parts: sizes must be positive and add up to the body");
            }
            const auto size = static_cast<std::size_t>(n.as_int64());
            if (size > config_.limits.max_input) {
                return error("invalid",
                             "a part larger than " + size_text(config_.limits.max_input));
            }
            origins.emplace_back(std::string(name.as_string()).substr(0, 512));
            parts.push_back(part_of_body(at, size));
            at += size;
        }
        if (at != body_size) {
            return error("invalid", "parts: sizes must be positive and add up to the body");
        }
        for (std::size_t i = 0; i < parts.size(); ++i) {
            parts[i].origin = origins[i];
            if (!reporters.empty()) {
                parts[i].reporter = reporters[i];
            }
        }
    } else {
        if (body_size > config_.limits.max_input) {
            return error("invalid",
                         "submission larger than " + size_text(config_.limits.max_input));
        }
        parts.push_back(part_of_body(0, body_size));
        parts.back().origin = origin;
        parts.back().reporter = reporter;
    }
    const std::int64_t now_ms = to_unix_ms(clock_.now());
    // The rate limit holds relayd (anyone on the internet) and webd; the operator's own
    // imports (the admin peer) are not counted.
    if (peer != PeerKind::admin && request.json.contains("parts")) {
        return error("forbidden", "several parts in one submission are for the operator's imports");
    }
    if (peer != PeerKind::admin && !admit_submission(now_ms)) {
        return error("unavailable", "too many submissions this minute; try again later");
    }
    std::vector<IngestResult> results;
    {
        std::lock_guard lock(store_mutex_);
        auto stored = store_.submit_batch(now_ms / 1000, parts, config_.limits);
        if (!stored) {
            return error("unavailable", stored.error());
        }
        results = std::move(*stored);
    }
    for (const IngestResult& r : results) {
        if (r.reports > 0) {
            pending_notification_ = true;
        }
    }
    Message m = ok();
    if (results.size() == 1 && !request.json.contains("parts")) {
        for (auto& [key, value] : outcome_json(results.front())) {
            m.json[key] = value;
        }
        return m;
    }
    std::size_t reports = 0;
    std::size_t duplicates = 0;
    bj::array errors;
    bj::array each;
    for (const IngestResult& r : results) {
        reports += r.reports;
        duplicates += r.duplicates;
        for (const auto& e : r.errors) {
            errors.push_back(bj::value(e));
        }
        each.push_back(outcome_json(r));
    }
    m.json["reports"] = reports;
    m.json["duplicates"] = duplicates;
    m.json["errors"] = std::move(errors);
    m.json["results"] = std::move(each);
    return m;
}

std::size_t Service::recover() {
    std::lock_guard lock(store_mutex_);
    std::size_t n = 0;
    for (const std::int64_t id : store_.unread_submissions()) {
        (void)store_.ingest(id, config_.limits, to_unix_ms(clock_.now()) / 1000);
        ++n;
    }
    return n;
}

// Prometheus text for webd's /metrics: what is stored, and the findings of the readiness
// window by kind and severity (computed now, as the console would see them).
Message Service::metrics() {
    std::string text;
    {
        std::lock_guard lock(read_mutex_);
        text +=
            "# HELP dkim_reportd_submissions Submissions stored (report mails and files).\n"
            "# TYPE dkim_reportd_submissions gauge\n"
            "dkim_reportd_submissions " +
            std::to_string(reader_.submission_count()) + "\n";
        text +=
            "# HELP dkim_reportd_reports Reports stored, by kind.\n"
            "# TYPE dkim_reportd_reports gauge\n";
        for (const auto& [kind, n] : reader_.report_counts()) {
            text += "dkim_reportd_reports{kind=\"" + kind + "\"} " + std::to_string(n) + "\n";
        }
    }
    const Message f = findings(bj::object{});
    std::map<std::pair<std::string, std::string>, std::uint64_t> counts;
    if (const bj::value* list = f.json.if_contains("findings");
        list != nullptr && list->is_array()) {
        for (const bj::value& v : list->as_array()) {
            if (v.is_object()) {
                ++counts[{string_member(v.as_object(), "kind"),
                          string_member(v.as_object(), "severity")}];
            }
        }
    }
    text +=
        "# HELP dkim_reportd_findings Findings over the readiness window, by kind and "
        "severity.\n# TYPE dkim_reportd_findings gauge\n";
    for (const auto& [key, n] : counts) {
        text += "dkim_reportd_findings{kind=\"" + key.first + "\",severity=\"" + key.second +
                "\"} " + std::to_string(n) + "\n";
    }
    const bj::value* available = f.json.if_contains("signing_available");
    text +=
        "# HELP dkim_reportd_signing_record_available 1 when signerd's signing record could "
        "be read for the findings.\n# TYPE dkim_reportd_signing_record_available gauge\n"
        "dkim_reportd_signing_record_available " +
        std::string(available != nullptr && available->is_bool() && available->as_bool() ? "1"
                                                                                         : "0") +
        "\n";
    Message m = ok();
    m.json["text"] = text;
    return m;
}

Message Service::status() {
    std::lock_guard lock(read_mutex_);
    Message m = ok();
    m.json["submissions"] = reader_.submission_count();
    bj::array domains;
    for (const auto& d : reader_.domains()) {
        domains.push_back(bj::value(d));
    }
    m.json["domains"] = std::move(domains);
    return m;
}

Message Service::list_reports(const bj::object& args) {
    const std::string domain = string_member(args, "domain");
    if (!valid_domain_argument(domain)) {
        return error("invalid", "domain: expected a domain name in lower case");
    }
    const std::int64_t now = to_unix_ms(clock_.now()) / 1000;
    const std::int64_t until = int_member(args, "until", now + kDay);
    const std::int64_t from = int_member(args, "from", until - 30 * kDay);
    const auto limit =
        static_cast<std::size_t>(std::clamp<std::int64_t>(int_member(args, "limit", 100), 1, 1000));
    std::lock_guard lock(read_mutex_);
    bj::array out;
    for (const StoredReport& r : reader_.reports(domain, from, until, limit)) {
        bj::object o;
        o["id"] = r.id;
        o["kind"] = r.kind;
        o["org_name"] = r.org_name;
        o["report_id"] = r.report_id;
        o["domain"] = r.domain;
        o["begin"] = r.begin;
        o["end"] = r.end;
        o["received"] = r.received;
        o["records"] = r.records;
        o["messages"] = r.messages;
        o["reporter"] = r.reporter;
        o["authenticated"] = !r.reporter.empty();
        o["conflict"] = r.conflict;
        out.push_back(std::move(o));
    }
    Message m = ok();
    m.json["reports"] = std::move(out);
    return m;
}

Message Service::dashboard(const bj::object& args) {
    const std::string domain = string_member(args, "domain");
    if (!valid_domain_argument(domain)) {
        return error("invalid", "domain: expected a domain name in lower case");
    }
    const std::int64_t now = to_unix_ms(clock_.now()) / 1000;
    const auto [from_day, to_day] = day_range(args, now, 30);
    Message m = ok();
    m.json["domain"] = domain;
    m.json["from"] = from_day * kDay;
    m.json["until"] = (to_day + 1) * kDay;

    std::vector<DailyTotals> daily;
    std::vector<SelectorDay> selectors;
    std::vector<SourceTotals> sources;
    std::vector<std::string> domains;
    {
        std::lock_guard lock(read_mutex_);
        domains = reader_.domains();
        daily = reader_.daily(domain, from_day, to_day);
        selectors = reader_.selector_days(from_day, to_day, domain);
        if (!domain.empty()) {
            sources = reader_.sources(domain, from_day, to_day);
        }
    }
    bj::array domain_list;
    for (const auto& d : domains) {
        domain_list.push_back(bj::value(d));
    }
    m.json["domains"] = std::move(domain_list);
    bj::array days;
    for (const DailyTotals& d : daily) {
        bj::object o;
        o["domain"] = d.domain;
        o["day"] = day_text(d.day);
        o["messages"] = d.messages;
        o["dmarc_pass"] = d.dmarc_pass;
        o["dkim_aligned"] = d.dkim_aligned;
        o["spf_aligned"] = d.spf_aligned;
        o["quarantined"] = d.quarantined;
        o["rejected"] = d.rejected;
        days.push_back(std::move(o));
    }
    m.json["daily"] = std::move(days);

    // Signatures per selector and day next to the DKIM passes reporters saw.
    auto summary = summaries(from_day * kDay, (to_day + 1) * kDay,
                             domain.empty() ? domains : std::vector<std::string>{domain});
    m.json["signing_available"] = summary.has_value();
    if (!summary) {
        m.json["signing_error"] = summary.error();
    }
    std::map<std::pair<std::string, std::int64_t>, std::pair<std::int64_t, std::uint64_t>>
        per_day;  // (selector, day) -> (signed, reported pass)
    std::map<std::pair<std::string, std::int64_t>, std::uint64_t> failed;
    if (summary) {
        for (const auto& h : summary->hours) {
            if (domain.empty() || h.domain == domain) {
                per_day[{h.domain + "/" + h.selector, h.hour / kDay}].first += h.signatures;
            }
        }
    }
    for (const SelectorDay& s : selectors) {
        if (domain.empty() || s.signer == domain) {
            per_day[{s.signer + "/" + s.selector, s.day}].second += s.pass;
            failed[{s.signer + "/" + s.selector, s.day}] += s.fail;
        }
    }
    bj::array signing;
    for (const auto& [key, v] : per_day) {
        const auto slash = key.first.find('/');
        bj::object o;
        o["domain"] = key.first.substr(0, slash);
        o["selector"] = key.first.substr(slash + 1);
        o["day"] = day_text(key.second);
        o["signed"] = v.first;
        o["reported_pass"] = v.second;
        o["reported_fail"] = failed[key];
        signing.push_back(std::move(o));
    }
    m.json["signing"] = std::move(signing);
    bj::array grants;
    if (summary) {
        for (const auto& g : summary->grants) {
            if (domain.empty() || g.domain == domain) {
                bj::object o;
                o["grant_id"] = g.grant_id;
                o["domain"] = g.domain;
                o["selector"] = g.selector;
                o["start"] = g.start;
                o["end"] = g.end;
                grants.push_back(std::move(o));
            }
        }
    }
    m.json["grants"] = std::move(grants);
    bj::array source_list;
    for (std::size_t i = 0; i < sources.size() && i < 50; ++i) {
        const SourceTotals& s = sources[i];
        bj::object o;
        o["source_ip"] = s.source_ip;
        o["messages"] = s.messages;
        o["dkim_aligned"] = s.dkim_aligned;
        o["spf_aligned"] = s.spf_aligned;
        o["spf_pass"] = s.spf_pass;
        o["dmarc_pass"] = s.dmarc_pass;
        o["reverse_dns"] = nullptr;
        source_list.push_back(std::move(o));
    }
    m.json["sources"] = std::move(source_list);
    return m;
}

Message Service::findings(const bj::object& args) {
    const std::int64_t now = to_unix_ms(clock_.now()) / 1000;
    const auto [from_day, to_day] = day_range(args, now, config_.findings.readiness_days);
    const std::string only = string_member(args, "domain");
    if (!valid_domain_argument(only)) {
        return error("invalid", "domain: expected a domain name in lower case");
    }
    FindingInput in;
    in.from_day = from_day;
    in.to_day = to_day;
    in.outbound = config_.outbound;
    const std::int64_t readiness_from = to_day - config_.findings.readiness_days + 1;
    std::vector<std::string> domains;
    {
        std::lock_guard lock(read_mutex_);
        in.reported = reader_.selector_days(from_day, to_day);
        in.tls_failures = reader_.tls_failures(from_day, to_day);
        domains = reader_.domains();
        for (const std::string& d : domains) {
            if (!only.empty() && d != only) {
                continue;
            }
            DomainEvidence e;
            e.domain = d;
            e.sources = reader_.sources(d, readiness_from, to_day);
            e.by_reporter = reader_.reporter_sources(d, readiness_from, to_day);
            e.daily = reader_.daily(d, readiness_from, to_day);
            e.published = reader_.published_policy(d);
            in.domains.push_back(std::move(e));
        }
    }
    std::int64_t lifetime_guess = 7 * kDay;  // asked for before the lifetime is known
    const std::vector<std::string> asked = only.empty() ? domains : std::vector<std::string>{only};
    // signerd answers at most kMaxSummaryRange at once.
    const std::int64_t summary_from =
        std::max(from_day * kDay - lifetime_guess, (to_day + 1) * kDay - ipc::kMaxSummaryRange);
    auto summary = summaries(summary_from, (to_day + 1) * kDay, asked);
    std::string signing_problem;
    if (summary) {
        in.signing = std::move(*summary);
        in.signing_available = true;
        auto keys = signing_.active_keys(domains);
        if (keys) {
            in.active_keys = std::move(*keys);
        }
    } else {
        signing_problem = summary.error();
    }
    in.top_sources = [this](const std::string& signer, const std::string& selector,
                            std::int64_t day) {
        std::lock_guard lock(read_mutex_);
        return reader_.selector_sources(signer, selector, day, 10);
    };
    in.reporters = [this](const std::string& signer, const std::string& selector,
                          std::int64_t day) {
        std::lock_guard lock(read_mutex_);
        return reader_.authenticated_reporters(signer, selector, day);
    };
    std::vector<Finding> found = find(in, config_.findings);
    if (!only.empty()) {
        found.erase(std::remove_if(found.begin(), found.end(),
                                   [&](const Finding& f) { return f.domain != only; }),
                    found.end());
    }
    if (!in.signing_available) {
        // Fail closed: without signerd's record, no replay or outside-grant finding can be
        // ruled out, and the operator is told so.
        Finding f;
        f.kind = "signing_record_unavailable";
        f.severity = "warning";
        f.from = from_day * kDay;
        f.until = (to_day + 1) * kDay;
        f.summary = "dkim-signerd's signing record could not be read (" + signing_problem +
                    "): replays and signatures outside grants cannot be checked.";
        found.insert(found.begin(), std::move(f));
    }
    Message m = ok();
    m.json["from"] = from_day * kDay;
    m.json["until"] = (to_day + 1) * kDay;
    m.json["signing_available"] = in.signing_available;
    bj::array out;
    for (const Finding& f : found) {
        out.push_back(to_json(f));
    }
    m.json["findings"] = std::move(out);
    return m;
}

}  // namespace dkim::reportd
