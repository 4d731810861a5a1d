#include "dkim/inbound/verifier.hpp"

#include <algorithm>

#include "dkim/mail/address.hpp"
#include "dkim/mail/authentication_results.hpp"

namespace dkim::inbound {
namespace {

mail::AuthResult auth_result(spf::Result r) {
    switch (r) {
        case spf::Result::none: return mail::AuthResult::none;
        case spf::Result::neutral: return mail::AuthResult::neutral;
        case spf::Result::pass: return mail::AuthResult::pass;
        case spf::Result::fail: return mail::AuthResult::fail;
        case spf::Result::softfail: return mail::AuthResult::softfail;
        case spf::Result::temperror: return mail::AuthResult::temperror;
        case spf::Result::permerror: return mail::AuthResult::permerror;
    }
    return mail::AuthResult::none;
}

mail::AuthResult auth_result(dmarc::Result r) {
    switch (r) {
        case dmarc::Result::none: return mail::AuthResult::none;
        case dmarc::Result::pass: return mail::AuthResult::pass;
        case dmarc::Result::fail: return mail::AuthResult::fail;
        case dmarc::Result::temperror: return mail::AuthResult::temperror;
        case dmarc::Result::permerror: return mail::AuthResult::permerror;
    }
    return mail::AuthResult::none;
}

// The From domains of the header section: exactly one From field, its distinct domains.
Expected<std::vector<std::string>, std::string> from_domains(std::string_view message) {
    std::size_t end = message.find("\r\n\r\n");
    end = end == std::string_view::npos ? message.size() : end + 2;
    if (message.starts_with("\r\n")) {
        end = 0;
    }
    auto header = mail::HeaderBlock::parse(std::string(message.substr(0, end)));
    if (!header) {
        return unexpected("malformed header section: " + header.error().to_string());
    }
    const auto from = header->find_all("From");
    if (from.size() != 1) {
        return unexpected("the message has " + std::to_string(from.size()) +
                          " From fields; RFC 5322 asks for exactly one");
    }
    auto domains = mail::mailbox_domains(header->unfolded_value(from[0]));
    if (!domains) {
        return unexpected("unusable From field: " + domains.error());
    }
    std::vector<std::string> distinct;
    for (std::string& d : *domains) {
        if (std::find(distinct.begin(), distinct.end(), d) == distinct.end()) {
            distinct.push_back(std::move(d));
        }
    }
    return distinct;
}

// A domain as compared for alignment: lower case, no trailing dot.
std::string comparable_domain(std::string_view name) {
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    return mail::ascii_lowercase(name);
}

}  // namespace

std::string_view to_string(Action action) {
    switch (action) {
        case Action::deliver: return "deliver";
        case Action::quarantine: return "quarantine";
        case Action::reject: return "reject";
    }
    return "deliver";
}

mail::MethodResult spf_method_result(const spf::Outcome& outcome, std::string_view property,
                                     std::string_view identity) {
    mail::MethodResult r;
    r.method = "spf";
    r.result = auth_result(outcome.result);
    if (outcome.result == spf::Result::temperror || outcome.result == spf::Result::permerror) {
        r.reason = outcome.problem;
    } else if (!outcome.mechanism.empty()) {
        r.comment = "matched " + outcome.mechanism;
    }
    if (outcome.result == spf::Result::fail && !outcome.explanation.empty()) {
        r.reason = outcome.explanation;  // the domain's exp= text (RFC 7208 §6.2)
    }
    if (!identity.empty()) {
        r.properties.push_back({std::string(property), std::string(identity)});
    }
    return r;
}

mail::MethodResult dmarc_method_result(const dmarc::Evaluation& e, std::string_view from_domain) {
    mail::MethodResult r;
    r.method = "dmarc";
    r.result = auth_result(e.result);
    if (e.record && (e.result == dmarc::Result::pass || e.result == dmarc::Result::fail)) {
        r.comment = "p=" + std::string(dmarc::to_string(e.record->p));
        if (e.record->sp) {
            r.comment += " sp=" + std::string(dmarc::to_string(*e.record->sp));
        }
        r.comment += " dis=" + std::string(dmarc::to_string(e.disposition));
    }
    if (e.result != dmarc::Result::pass && !e.reason.empty()) {
        r.reason = e.reason;
    }
    if (!from_domain.empty()) {
        r.properties.push_back({"header.from", std::string(from_domain)});
    }
    return r;
}

Verifier::Verifier(dns::Resolver& resolver, KeyFetcher& keys, Settings settings,
                   std::function<unsigned()> percent)
    : keys_(keys),
      settings_(std::move(settings)),
      spf_(resolver, settings_.authserv_id, settings_.spf_limits),
      dmarc_(resolver, settings_.dmarc, std::move(percent)) {}

SpfResults Verifier::check_spf(const Envelope& envelope, std::int64_t now) const {
    SpfResults out;
    const spf::Identity id{envelope.client, envelope.helo, envelope.mail_from};
    out.mail_from = spf_.check_mail_from(id, now);
    if (settings_.check_helo && !envelope.mail_from.empty()) {
        // For the null reverse-path the MAIL FROM check already was the HELO check.
        out.helo = spf_.check_helo(id, now);
    }
    return out;
}

Verdict Verifier::finish(SpfResults spf, std::string_view message,
                         std::chrono::system_clock::time_point now) const {
    Verdict v;
    v.spf = std::move(spf);
    auto verdicts = verify_message(message, keys_, now, settings_.dkim);
    if (verdicts) {
        v.dkim = std::move(*verdicts);
    } else {
        SignatureVerdict broken;
        broken.result = mail::AuthResult::permerror;
        broken.reason = "the header section cannot be parsed";
        v.dkim.push_back(std::move(broken));
    }
    std::vector<mail::MethodResult> results = to_method_results(v.dkim);

    const spf::Outcome& mf = v.spf.mail_from;
    results.push_back(
        spf_method_result(mf, "smtp.mailfrom", mf.domain.empty() ? std::string_view() : mf.domain));
    if (v.spf.helo) {
        results.push_back(spf_method_result(*v.spf.helo, "smtp.helo", v.spf.helo->domain));
    }

    std::vector<std::string> dkim_pass;
    std::vector<std::string> dkim_temperror;
    for (const SignatureVerdict& s : v.dkim) {
        if (s.result == mail::AuthResult::pass && !s.domain.empty()) {
            dkim_pass.push_back(s.domain);
        } else if (s.result == mail::AuthResult::temperror && !s.domain.empty()) {
            dkim_temperror.push_back(s.domain);
        }
    }
    auto domains = from_domains(message);
    if (!domains) {
        v.dmarc.result = dmarc::Result::permerror;
        v.dmarc.reason = domains.error();
        results.push_back(dmarc_method_result(v.dmarc, ""));
        if (settings_.reject_dmarc) {
            v.action = Action::reject;
            v.why = "DMARC cannot be evaluated: " + domains.error();
        }
    } else {
        // Every distinct From domain is evaluated; the strictest outcome counts (a second
        // mailbox must not carry a message past the first one's policy).
        bool first = true;
        for (const std::string& domain : *domains) {
            dmarc::Identifiers ids;
            ids.from_domain = domain;
            ids.spf_pass = mf.result == spf::Result::pass;
            ids.spf_domain = mf.domain;
            ids.dkim_pass_domains = dkim_pass;
            ids.spf_temperror = mf.result == spf::Result::temperror;
            ids.dkim_temperror_domains = dkim_temperror;
            dmarc::Evaluation e = dmarc_.evaluate(ids);
            results.push_back(dmarc_method_result(e, domain));
            const bool worse =
                e.result == dmarc::Result::fail &&
                (v.dmarc.result != dmarc::Result::fail || e.disposition > v.dmarc.disposition);
            if (first || worse) {
                v.dmarc = std::move(e);
                v.from_domain = domain;
            }
            first = false;
        }
        if (v.dmarc.result == dmarc::Result::fail) {
            const std::string policy = "DMARC policy of " + v.from_domain + " (" +
                                       std::string(dmarc::to_string(v.dmarc.disposition)) +
                                       "): no aligned SPF or DKIM pass";
            if (v.dmarc.disposition == dmarc::Policy::reject && settings_.reject_dmarc) {
                v.action = Action::reject;
                v.why = "Rejected by the " + policy;
            } else if (v.dmarc.disposition != dmarc::Policy::none && settings_.quarantine_dmarc) {
                v.action = Action::quarantine;
                v.why = "Quarantined by the " + policy;
            }
        }
    }
    v.authentication_results = mail::render_authentication_results(settings_.authserv_id, results);
    return v;
}

std::string Verifier::authenticated_author(std::string_view message,
                                           std::chrono::system_clock::time_point now) const {
    // The From domain first: no DNS for a message that cannot have an author.
    auto domains = from_domains(message);
    if (!domains || domains->size() != 1) {
        return {};
    }
    std::string from = comparable_domain(domains->front());
    if (from.empty()) {
        return {};
    }
    // A signature with l= covers the first bytes of the body only: anyone holding such a
    // message may append a report of their own (and prepend a Content-Type that shows it) with
    // the signature still passing (RFC 6376 §8.2). It vouches for no report, so it is refused.
    VerifyOptions whole_body = settings_.dkim;
    whole_body.allow_body_length = false;
    auto verdicts = verify_message(message, keys_, now, whole_body);
    if (!verdicts) {
        return {};
    }
    std::vector<std::string> passed;
    for (const SignatureVerdict& s : *verdicts) {
        if (s.result != mail::AuthResult::pass || s.domain.empty()) {
            continue;
        }
        std::string d = comparable_domain(s.domain);
        if (d == from) {
            return from;  // aligned either way, without an organizational domain lookup
        }
        passed.push_back(std::move(d));
    }
    if (passed.empty()) {
        return {};
    }
    const auto from_org = dmarc_.organizational_domain(from);
    if (!from_org) {
        return {};  // DNS failed in the tree walk: not authenticated this time
    }
    for (const std::string& d : passed) {
        const auto org = dmarc_.organizational_domain(d);
        if (org && *org == *from_org) {
            return from;
        }
    }
    return {};
}

}  // namespace dkim::inbound
