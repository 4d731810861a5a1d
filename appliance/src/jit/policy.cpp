#include "dkim/jit/policy.hpp"

#include <toml++/toml.h>

#include <algorithm>

#include "dkim/config/toml_reader.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::jit {

std::optional<Duration> parse_duration(std::string_view text) {
    return config::parse_duration(text);
}

std::string format_duration(Duration d) {
    std::int64_t s = d.count() / 1000;
    if (s == 0) {
        return std::to_string(d.count()) + "ms";
    }
    std::string out;
    const std::pair<std::int64_t, char> units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    for (const auto& [size, letter] : units) {
        if (s >= size) {
            out += std::to_string(s / size);
            out += letter;
            s %= size;
        }
    }
    return out;
}

bool domain_matches(std::string_view pattern, std::string_view domain) {
    if (pattern == "*") {
        return true;
    }
    if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
        const std::string_view suffix = pattern.substr(1);  // ".example.com"
        return domain.size() > suffix.size() &&
               mail::iequals(domain.substr(domain.size() - suffix.size()), suffix);
    }
    return mail::iequals(pattern, domain);
}

std::optional<Duration> RenewBefore::lead_for(Duration duration) const {
    if (percent > 0) {
        return duration * percent / 100;
    }
    if (lead > Duration(0)) {
        return std::min(lead, duration);
    }
    return std::nullopt;
}

std::string RenewBefore::to_string() const {
    if (percent > 0) {
        return std::to_string(percent) + "%";
    }
    return lead > Duration(0) ? format_duration(lead) : "off";
}

std::optional<RenewBefore> parse_renew_before(std::string_view text) {
    if (text == "off") {
        return RenewBefore{};
    }
    if (!text.empty() && text.back() == '%') {
        const std::string_view digits = text.substr(0, text.size() - 1);
        if (digits.empty() || digits.size() > 2 ||
            !std::all_of(digits.begin(), digits.end(),
                         [](char c) { return c >= '0' && c <= '9'; })) {
            return std::nullopt;
        }
        unsigned percent = 0;
        for (char c : digits) {
            percent = percent * 10 + static_cast<unsigned>(c - '0');
        }
        if (percent < 1 || percent > 99) {
            return std::nullopt;
        }
        return RenewBefore{percent, Duration(0)};
    }
    const auto lead = parse_duration(text);
    if (!lead) {
        return std::nullopt;
    }
    return RenewBefore{0, *lead};
}

bool OperationPolicy::may_approve(std::string_view user, RoleSet roles) const {
    for (const std::string& who : approvers) {
        if (who.rfind("role:", 0) == 0) {
            const auto role = parse_role(std::string_view(who).substr(5));
            if (role && has_role(roles, *role)) {
                return true;
            }
        } else if (who == user) {
            return true;
        }
    }
    return false;
}

bool TimeWindow::contains(TimePoint t) const {
    const auto day = std::chrono::floor<std::chrono::days>(t);
    const int minute =
        static_cast<int>(std::chrono::duration_cast<std::chrono::minutes>(t - day).count());
    if (start_minute <= end_minute) {
        return minute >= start_minute && minute < end_minute;
    }
    return minute >= start_minute || minute < end_minute;
}

bool AutoApproveRule::matches(const Request& request, TimePoint now) const {
    if (request.break_glass || request.scope.operation != operation) {
        return false;
    }
    if (!domain_matches(domain_pattern, request.scope.domain)) {
        return false;
    }
    if (!requesters.empty() &&
        std::find(requesters.begin(), requesters.end(), request.requester) == requesters.end()) {
        return false;
    }
    if (request.duration > max_duration) {
        return false;
    }
    return !window || window->contains(now);
}

const AutoApproveRule* Policy::auto_rule(const Request& request, TimePoint now) const {
    for (const AutoApproveRule& rule : auto_approve) {
        if (rule.matches(request, now)) {
            return &rule;
        }
    }
    return nullptr;
}

Policy Policy::defaults() {
    Policy policy;
    for (Operation op : kOperations) {
        OperationPolicy p;
        if (op != Operation::sign) {
            p.max_duration = std::chrono::hours(1);
            p.pending_expiry = std::chrono::hours(4);
        }
        if (op == Operation::admin || op == Operation::key_retire) {
            p.quorum = 2;
        }
        if (op == Operation::sign) {
            p.renew_before = RenewBefore{20, Duration(0)};  // mail must not wait for approvers
        }
        policy.operations[op] = p;
    }
    return policy;
}

namespace {

Duration read_duration(config::TableReader& r, const std::string& key, Duration fallback) {
    const auto text = r.string(key);
    if (!text) {
        return fallback;
    }
    const auto d = parse_duration(*text);
    if (!d) {
        r.fail(key, "expected a duration such as \"90s\", \"15m\", \"8h\" or \"1h30m\"");
    }
    return *d;
}

std::optional<int> parse_clock_time(std::string_view text) {
    // "HH:MM"
    if (text.size() != 5 || text[2] != ':') {
        return std::nullopt;
    }
    for (std::size_t i : {0UL, 1UL, 3UL, 4UL}) {
        if (text[i] < '0' || text[i] > '9') {
            return std::nullopt;
        }
    }
    const int h = (text[0] - '0') * 10 + (text[1] - '0');
    const int m = (text[3] - '0') * 10 + (text[4] - '0');
    if (h > 24 || m > 59 || (h == 24 && m != 0)) {
        return std::nullopt;
    }
    return h * 60 + m;
}

void read_operation(config::TableReader& r, OperationPolicy& p) {
    p.max_duration = read_duration(r, "max_duration", p.max_duration);
    p.pending_expiry = read_duration(r, "pending_expiry", p.pending_expiry);
    if (auto quorum = r.integer("quorum", 1, 16)) {
        p.quorum = static_cast<unsigned>(*quorum);
    }
    if (auto approvers = r.strings("approvers")) {
        if (approvers->empty()) {
            r.fail("approvers", "at least one approver (\"role:approver\" or a user name)");
        }
        for (const std::string& who : *approvers) {
            if (who.rfind("role:", 0) == 0 && !parse_role(std::string_view(who).substr(5))) {
                r.fail("approvers",
                       "unknown role in '" + who + "' (requester, approver, admin, auditor)");
            }
        }
        p.approvers = std::move(*approvers);
    }
    if (auto renew = r.string("renew_before")) {
        const auto parsed = parse_renew_before(*renew);
        if (!parsed) {
            r.fail("renew_before",
                   "expected a share of the grant's duration (\"20%\", 1% to 99%), a lead time "
                   "(\"10m\") or \"off\"");
        }
        p.renew_before = *parsed;
    }
    if (auto factors = r.strings("factors")) {
        p.accepts_totp = p.accepts_webauthn = false;
        for (const std::string& factor : *factors) {
            if (factor == "totp") {
                p.accepts_totp = true;
            } else if (factor == "webauthn") {
                p.accepts_webauthn = true;
            } else {
                r.fail("factors", "unknown factor '" + factor + "' (totp, webauthn)");
            }
        }
        if (!p.accepts_totp && !p.accepts_webauthn) {
            r.fail("factors", "at least one second factor (\"totp\", \"webauthn\")");
        }
    }
    if (auto pattern = r.string("ticket_pattern")) {
        try {
            p.ticket_regex.emplace(*pattern, std::regex::ECMAScript | std::regex::optimize);
        } catch (const std::regex_error& error) {
            r.fail("ticket_pattern",
                   std::string("not a valid regular expression: ") + error.what());
        }
        p.ticket_pattern = std::move(*pattern);
    }
    r.finish();
}

AutoApproveRule read_rule(config::TableReader& r, const Policy& policy) {
    AutoApproveRule rule;
    const auto name = r.string("name");
    if (!name || name->empty()) {
        r.fail("name", "every auto-approval rule needs a name (it is recorded in the audit log)");
    }
    rule.name = *name;
    const auto op_text = r.string("operation");
    const auto op = op_text ? parse_operation(*op_text) : std::nullopt;
    if (!op) {
        r.fail("operation", "expected one of sign, key.generate, key.rotate, key.retire");
    }
    if (*op == Operation::admin) {
        r.fail("operation", "admin elevations are never auto-approved");
    }
    rule.operation = *op;
    rule.domain_pattern = mail::ascii_lowercase(r.string("domain").value_or("*"));
    rule.requesters = r.strings("requesters").value_or(std::vector<std::string>{});
    rule.max_duration = read_duration(r, "max_duration", rule.max_duration);
    if (rule.max_duration > policy.for_operation(rule.operation).max_duration) {
        r.fail("max_duration", "longer than the operation's own max_duration");
    }
    if (auto window = r.string("window")) {
        const auto dash = window->find('-');
        const auto start = parse_clock_time(std::string_view(*window).substr(0, dash));
        const auto end = dash == std::string::npos
                             ? std::nullopt
                             : parse_clock_time(std::string_view(*window).substr(dash + 1));
        if (!start || !end || *start == *end) {
            r.fail("window", "expected \"HH:MM-HH:MM\" (UTC), for example \"08:00-18:00\"");
        }
        rule.window = TimeWindow{*start, *end};
    }
    r.finish();
    return rule;
}

}  // namespace

Expected<Policy, std::string> parse_policy(const toml::table& table, const std::string& file,
                                           const config::Schema* schema) {
    try {
        Policy policy = Policy::defaults();
        config::TableReader r(table, file, "policy", schema);
        // [policy.sign], [policy.admin], and [policy.key.generate] etc. (TOML reads the dotted
        // name as nested tables).
        for (Operation op : {Operation::sign, Operation::admin}) {
            if (auto sub = r.table(std::string(to_string(op)))) {
                read_operation(*sub, policy.operations[op]);
            }
        }
        if (auto key = r.table("key")) {
            for (Operation op :
                 {Operation::key_generate, Operation::key_rotate, Operation::key_retire}) {
                if (auto sub = key->table(std::string(to_string(op).substr(4)))) {
                    read_operation(*sub, policy.operations[op]);
                }
            }
            key->finish();
        }
        if (auto bg = r.table("break_glass")) {
            policy.break_glass_max = read_duration(*bg, "max_duration", policy.break_glass_max);
            if (policy.break_glass_max > std::chrono::hours(4)) {
                bg->fail("max_duration", "break-glass is for emergencies: at most 4h");
            }
            bg->finish();
        }
        policy.signer_request_duration =
            read_duration(r, "signer_request_duration", policy.signer_request_duration);
        for (auto& rule_reader : r.tables("auto_approve")) {
            policy.auto_approve.push_back(read_rule(rule_reader, policy));
        }
        r.finish();
        return policy;
    } catch (const config::ConfigError& error) {
        return unexpected(std::string(error.what()));
    }
}

}  // namespace dkim::jit
