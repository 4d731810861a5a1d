#pragma once
// SPF evaluation (RFC 7208): check_host() for the MAIL FROM and HELO identities, with every
// mechanism and modifier, macros, explanations and the processing limits of §4.6.4 (10 terms
// that query DNS, 2 void lookups, 10 MX or PTR names). DNS errors are temperror, never pass
// or fail.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "dkim/dns/resolver.hpp"
#include "dkim/net/ip_address.hpp"

namespace dkim::spf {

enum class Result : std::uint8_t { none, neutral, pass, fail, softfail, temperror, permerror };

// "pass", "fail", ... as in Received-SPF and Authentication-Results (RFC 8601 §2.7.2).
std::string_view to_string(Result result);

struct Limits {
    unsigned dns_terms = 10;    // include, a, mx, ptr, exists, redirect
    unsigned void_lookups = 2;  // answers with no records (NXDOMAIN or NODATA)
    unsigned mx_names = 10;     // names of one mx mechanism, each looked up
    unsigned ptr_names = 10;    // names of one PTR answer that are validated
    // §4.6.4 allows an overall limit: a domain whose servers answer just inside each lookup's
    // deadline must not hold a worker for minutes. Past it, every lookup fails (temperror).
    std::chrono::milliseconds time_budget{20000};
};

// The clock the time budget is measured with (tests inject a fake one).
using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;

struct Outcome {
    Result result = Result::none;
    std::string domain;       // the identity's domain (after "postmaster@" rules)
    std::string mechanism;    // the matching term, "default" or empty
    std::string explanation;  // for fail: the exp= text, or empty for the default
    std::string problem;      // for temperror/permerror/none: what happened
};

struct Identity {
    net::IpAddress ip;      // the SMTP client
    std::string helo;       // HELO/EHLO argument
    std::string mail_from;  // the reverse-path without <>, empty for the null path
};

class Checker {
  public:
    // `receiver`: this host's name, for %{r} in explanations.
    Checker(dns::Resolver& resolver, std::string receiver, Limits limits = {}, SteadyNow now = {});

    // §2.4: the MAIL FROM identity; the null reverse-path is checked as postmaster@<helo>.
    Outcome check_mail_from(const Identity& id, std::int64_t now) const;
    // §2.3: the HELO identity (postmaster@<helo>); none when HELO is no domain name.
    Outcome check_helo(const Identity& id, std::int64_t now) const;
    // §4: check_host(<ip>, <domain>, <sender>).
    Outcome check_host(const net::IpAddress& ip, std::string_view domain, std::string_view sender,
                       std::string_view helo, std::int64_t now) const;

  private:
    dns::Resolver& resolver_;
    std::string receiver_;
    Limits limits_;
    SteadyNow now_;
};

}  // namespace dkim::spf
