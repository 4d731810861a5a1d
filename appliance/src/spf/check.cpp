#include "dkim/spf/check.hpp"

#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include "dkim/dns/name.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/spf/macro.hpp"
#include "dkim/spf/record.hpp"

namespace dkim::spf {
namespace {

constexpr std::size_t kMaxDomain = dns::kMaxNameLength;

std::string strip_dot(std::string_view name) {
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    return std::string(name);
}

// §4.3: a domain check_host() can start from: labels of 1..63 octets, more than one label
// ("If the <domain> is malformed (e.g., label longer than 63 characters, zero-length label not
// at the end, etc.) or is not a multi-label domain name, [...] check_host() immediately returns
// the result "none"").
bool valid_domain(std::string_view name) {
    return dns::is_valid_name(strip_dot(name), {dns::LabelSyntax::any_octet, 2});
}

// §4.8: an expanded domain-spec over 253 octets loses labels on the left until it fits.
std::string truncate_domain(std::string name) {
    name = strip_dot(name);
    while (name.size() > kMaxDomain) {
        const std::size_t dot = name.find('.');
        if (dot == std::string::npos) {
            return {};
        }
        name.erase(0, dot + 1);
    }
    return name;
}

bool same_or_subdomain(std::string_view name, std::string_view domain) {
    const std::string n = mail::ascii_lowercase(strip_dot(name));
    const std::string d = mail::ascii_lowercase(strip_dot(domain));
    return n == d || (n.size() > d.size() && n.compare(n.size() - d.size(), d.size(), d) == 0 &&
                      n[n.size() - d.size() - 1] == '.');
}

Result qualifier_result(Qualifier q) {
    switch (q) {
        case Qualifier::pass: return Result::pass;
        case Qualifier::fail: return Result::fail;
        case Qualifier::softfail: return Result::softfail;
        case Qualifier::neutral: return Result::neutral;
    }
    return Result::neutral;
}

// An error that ends the evaluation: temperror or permerror, with why.
struct Abort {
    Result result;
    std::string problem;
};

class Evaluation {
  public:
    Evaluation(dns::Resolver& resolver, const Limits& limits, const SteadyNow& clock,
               std::string_view receiver, const net::IpAddress& ip, std::string_view sender,
               std::string_view helo, std::int64_t now)
        : resolver_(resolver),
          limits_(limits),
          clock_(clock),
          deadline_(clock() + limits.time_budget),
          receiver_(receiver),
          ip_(ip.unmapped()),
          sender_(sender),
          helo_(helo),
          now_(now) {
        const std::size_t at = sender_.rfind('@');
        local_part_ = at == std::string::npos ? std::string() : sender_.substr(0, at);
        sender_domain_ = at == std::string::npos ? sender_ : sender_.substr(at + 1);
        if (local_part_.empty()) {
            local_part_ = "postmaster";  // §4.3
            sender_ = local_part_ + "@" + sender_domain_;
        }
    }

    Outcome run(std::string_view domain) {
        Outcome out;
        out.domain = strip_dot(domain);
        if (!valid_domain(domain)) {
            out.result = Result::none;
            out.problem = "'" + out.domain + "' is not a valid domain name";
            return out;
        }
        Step step = evaluate(out.domain, 0);
        out.result = step.result;
        out.mechanism = std::move(step.mechanism);
        out.explanation = std::move(step.explanation);
        out.problem = std::move(step.problem);
        return out;
    }

  private:
    struct Step {
        Result result = Result::neutral;
        std::string mechanism;
        std::string explanation;
        std::string problem;
    };
    enum class Match : std::uint8_t { yes, no };

    // Every lookup of the evaluation, inside its time budget.
    dns::Answer lookup(std::string_view name, dns::RecordType type) {
        if (clock_() >= deadline_) {
            dns::Answer late;
            late.error = "the SPF evaluation ran out of its time budget (" +
                         std::to_string(limits_.time_budget.count()) + " ms)";
            return late;  // temporary_failure
        }
        return resolver_.lookup(name, type);
    }

    static Step aborted(Abort a) { return Step{a.result, {}, {}, std::move(a.problem)}; }

    MacroContext context(std::string_view domain) {
        MacroContext c;
        c.sender = sender_;
        c.local_part = local_part_;
        c.sender_domain = sender_domain_;
        c.domain = domain;
        c.ip = ip_;
        c.helo = helo_;
        c.receiver = receiver_;
        c.timestamp = now_;
        c.validated_name = [this, d = std::string(domain)] { return validated_name(d); };
        return c;
    }

    Step evaluate(const std::string& domain, int depth) {
        if (depth > 20) {  // unreachable within the term limit; a guard all the same
            return aborted({Result::permerror, "include/redirect nesting too deep"});
        }
        const dns::Answer txt = lookup(domain, dns::RecordType::txt);
        if (txt.status == dns::LookupStatus::temporary_failure) {
            return aborted({Result::temperror, "TXT lookup for " + domain + ": " + txt.error});
        }
        std::vector<const std::string*> spf;
        if (txt.status == dns::LookupStatus::found) {
            for (const std::string& r : txt.records) {
                if (is_spf_record(r)) {
                    spf.push_back(&r);
                }
            }
        }
        if (spf.empty()) {
            return Step{Result::none, {}, {}, "no SPF record at " + domain};
        }
        if (spf.size() > 1) {
            return aborted({Result::permerror, "more than one SPF record at " + domain});
        }
        auto record = parse_record(*spf.front());
        if (!record) {
            return aborted({Result::permerror, "SPF record of " + domain + ": " + record.error()});
        }
        for (const Directive& d : record->directives) {
            auto matched = match(d, domain, depth);
            if (auto* abort = std::get_if<Abort>(&matched)) {
                return aborted(std::move(*abort));
            }
            if (std::get<Match>(matched) == Match::yes) {
                Step step{qualifier_result(d.qualifier), d.text, {}, {}};
                if (step.result == Result::fail && record->explanation) {
                    step.explanation = explain(*record->explanation, domain);
                }
                return step;
            }
        }
        if (record->redirect) {
            if (auto counted = count_term(); counted) {
                return aborted(std::move(*counted));
            }
            auto target = target_domain(*record->redirect, domain);
            if (!target) {
                return aborted(target.error());
            }
            Step step = evaluate(*target, depth + 1);
            if (step.result == Result::none) {
                return aborted({Result::permerror, "redirect=" + *target + ": no SPF record"});
            }
            return step;
        }
        return Step{Result::neutral, "default", {}, {}};
    }

    std::optional<Abort> count_term() {
        if (++dns_terms_ > limits_.dns_terms) {
            return Abort{Result::permerror, "more than " + std::to_string(limits_.dns_terms) +
                                                " DNS-querying terms (RFC 7208 section 4.6.4)"};
        }
        return std::nullopt;
    }

    // An answer without records; over the limit it ends the evaluation.
    std::optional<Abort> count_void(const dns::Answer& answer) {
        if (answer.status != dns::LookupStatus::found || answer.records.empty()) {
            if (++void_lookups_ > limits_.void_lookups) {
                return Abort{Result::permerror, "more than " +
                                                    std::to_string(limits_.void_lookups) +
                                                    " void DNS lookups (RFC 7208 section 4.6.4)"};
            }
        }
        return std::nullopt;
    }

    Expected<std::string, Abort> target_domain(std::string_view spec, std::string_view domain) {
        if (spec.empty()) {
            return std::string(domain);
        }
        auto expanded = expand_macros(spec, context(domain), MacroUse::domain_spec);
        if (!expanded) {
            return unexpected(Abort{Result::permerror, expanded.error()});
        }
        return truncate_domain(std::move(*expanded));
    }

    // A or AAAA for the client's family; whether one lies in the prefix.
    Expected<bool, Abort> address_match(const std::string& name, const Directive& d,
                                        bool count_voids) {
        const dns::RecordType type = ip_.is_v4() ? dns::RecordType::a : dns::RecordType::aaaa;
        const dns::Answer answer = lookup(name, type);
        if (answer.status == dns::LookupStatus::temporary_failure) {
            return unexpected(Abort{
                Result::temperror,
                std::string(dns::to_string(type)) + " lookup for " + name + ": " + answer.error});
        }
        if (count_voids) {
            if (auto abort = count_void(answer)) {
                return unexpected(std::move(*abort));
            }
        }
        for (const std::string& text : answer.records) {
            const auto address = net::IpAddress::parse(text);
            if (address && ip_.in_network(*address, ip_.is_v4() ? d.cidr4 : d.cidr6)) {
                return true;
            }
        }
        return false;
    }

    std::variant<Match, Abort> match(const Directive& d, const std::string& domain, int depth) {
        switch (d.mechanism) {
            case Mechanism::all: return Match::yes;
            case Mechanism::ip4:
            case Mechanism::ip6: {
                const unsigned prefix = d.mechanism == Mechanism::ip4 ? d.cidr4 : d.cidr6;
                return d.network && ip_.in_network(*d.network, prefix) ? Match::yes : Match::no;
            }
            default: break;
        }
        if (auto counted = count_term(); counted) {
            return std::move(*counted);
        }
        auto target = target_domain(d.domain_spec, domain);
        if (!target) {
            return target.error();
        }
        switch (d.mechanism) {
            case Mechanism::include: {
                Step step = evaluate(*target, depth + 1);
                switch (step.result) {
                    case Result::pass: return Match::yes;
                    case Result::fail:
                    case Result::softfail:
                    case Result::neutral: return Match::no;
                    case Result::temperror: return Abort{Result::temperror, step.problem};
                    case Result::none:
                        return Abort{Result::permerror, "include:" + *target + ": no SPF record"};
                    case Result::permerror: return Abort{Result::permerror, step.problem};
                }
                return Match::no;
            }
            case Mechanism::a: {
                auto matched = address_match(*target, d, true);
                if (!matched) {
                    return matched.error();
                }
                return *matched ? Match::yes : Match::no;
            }
            case Mechanism::mx: {
                const dns::Answer mx = lookup(*target, dns::RecordType::mx);
                if (mx.status == dns::LookupStatus::temporary_failure) {
                    return Abort{Result::temperror, "MX lookup for " + *target + ": " + mx.error};
                }
                if (auto abort = count_void(mx)) {
                    return std::move(*abort);
                }
                if (mx.records.size() > limits_.mx_names) {
                    return Abort{Result::permerror, "mx:" + *target + " has more than " +
                                                        std::to_string(limits_.mx_names) +
                                                        " MX records"};
                }
                for (const std::string& host : mx.records) {
                    auto matched = address_match(host, d, false);
                    if (!matched) {
                        return matched.error();
                    }
                    if (*matched) {
                        return Match::yes;
                    }
                }
                return Match::no;
            }
            case Mechanism::ptr: {
                const std::string name = validated_name(*target, true);
                return name.empty() ? Match::no : Match::yes;
            }
            case Mechanism::exists: {
                const dns::Answer a = lookup(*target, dns::RecordType::a);
                if (a.status == dns::LookupStatus::temporary_failure) {
                    return Abort{Result::temperror, "A lookup for " + *target + ": " + a.error};
                }
                if (auto abort = count_void(a)) {
                    return std::move(*abort);
                }
                return a.records.empty() ? Match::no : Match::yes;
            }
            default: return Match::no;
        }
    }

    // §5.5: the client's names (PTR, at most ptr_names) whose A/AAAA records include the
    // client; DNS errors only skip names. With `within_only`, a name in (or under) `domain`, or
    // "" (the ptr mechanism); without, the best one for %{p}: `domain` itself, then a
    // subdomain, then any; "unknown" when none.
    std::string validated_name(const std::string& domain, bool within_only = false) {
        const dns::Answer ptr = lookup(ip_.reverse_name(), dns::RecordType::ptr);
        std::vector<std::string> validated;
        if (ptr.status == dns::LookupStatus::found) {
            const dns::RecordType type = ip_.is_v4() ? dns::RecordType::a : dns::RecordType::aaaa;
            std::size_t tried = 0;
            for (const std::string& name : ptr.records) {
                if (tried++ == limits_.ptr_names) {
                    break;
                }
                if (within_only && !same_or_subdomain(name, domain)) {
                    continue;
                }
                const dns::Answer forward = lookup(name, type);
                for (const std::string& text : forward.records) {
                    const auto address = net::IpAddress::parse(text);
                    if (address && *address == ip_) {
                        validated.push_back(strip_dot(name));
                        break;
                    }
                }
            }
        }
        for (const std::string& name : validated) {
            if (mail::ascii_lowercase(name) == mail::ascii_lowercase(strip_dot(domain))) {
                return name;
            }
        }
        for (const std::string& name : validated) {
            if (same_or_subdomain(name, domain)) {
                return name;
            }
        }
        if (within_only) {
            return {};
        }
        return validated.empty() ? std::string("unknown") : validated.front();
    }

    // §6.2: the exp= text; any problem gives the default explanation (empty).
    std::string explain(const std::string& spec, const std::string& domain) {
        auto target = expand_macros(spec, context(domain), MacroUse::domain_spec);
        if (!target) {
            return {};
        }
        const std::string name = truncate_domain(std::move(*target));
        if (!valid_domain(name)) {
            return {};
        }
        const dns::Answer txt = lookup(name, dns::RecordType::txt);
        if (txt.status != dns::LookupStatus::found || txt.records.size() != 1) {
            return {};
        }
        auto text = expand_macros(txt.records.front(), context(domain), MacroUse::explanation);
        return text ? std::move(*text) : std::string();
    }

    dns::Resolver& resolver_;
    const Limits& limits_;
    const SteadyNow& clock_;
    std::chrono::steady_clock::time_point deadline_;
    std::string receiver_;
    net::IpAddress ip_;
    std::string sender_;
    std::string local_part_;
    std::string sender_domain_;
    std::string helo_;
    std::int64_t now_;
    unsigned dns_terms_ = 0;
    unsigned void_lookups_ = 0;
};

}  // namespace

std::string_view to_string(Result result) {
    switch (result) {
        case Result::none: return "none";
        case Result::neutral: return "neutral";
        case Result::pass: return "pass";
        case Result::fail: return "fail";
        case Result::softfail: return "softfail";
        case Result::temperror: return "temperror";
        case Result::permerror: return "permerror";
    }
    return "none";
}

Checker::Checker(dns::Resolver& resolver, std::string receiver, Limits limits, SteadyNow now)
    : resolver_(resolver), receiver_(std::move(receiver)), limits_(limits), now_(std::move(now)) {
    if (!now_) {
        now_ = [] { return std::chrono::steady_clock::now(); };
    }
}

Outcome Checker::check_host(const net::IpAddress& ip, std::string_view domain,
                            std::string_view sender, std::string_view helo,
                            std::int64_t now) const {
    Evaluation evaluation(resolver_, limits_, now_, receiver_, ip, sender, helo, now);
    return evaluation.run(domain);
}

Outcome Checker::check_helo(const Identity& id, std::int64_t now) const {
    return check_host(id.ip, id.helo, "postmaster@" + strip_dot(id.helo), id.helo, now);
}

Outcome Checker::check_mail_from(const Identity& id, std::int64_t now) const {
    if (id.mail_from.empty()) {
        return check_helo(id, now);
    }
    const std::size_t at = id.mail_from.rfind('@');
    if (at == std::string::npos) {
        // A reverse-path without a domain: RFC 7208 §4.3 has only <domain>s; nothing to check.
        Outcome out;
        out.problem = "MAIL FROM has no domain";
        return out;
    }
    return check_host(id.ip, id.mail_from.substr(at + 1), id.mail_from, id.helo, now);
}

}  // namespace dkim::spf
