#pragma once
// DMARC evaluation (RFC 7489 §6.6, with DMARCbis's DNS tree walk): policy discovery, the
// organizational domain (by the Public Suffix List or by the tree walk, configurable), SPF and
// DKIM identifier alignment, the result, the policy that applies (p, sp, np) and the
// disposition after pct= or t=y.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/dmarc/record.hpp"
#include "dkim/dns/resolver.hpp"
#include "dkim/expected.hpp"

namespace dkim::dmarc {

// Debian's publicsuffix package, read through libpsl.
class PublicSuffixList {
  public:
    static constexpr const char* kDefaultFile = "/usr/share/publicsuffix/public_suffix_list.dafsa";
    // The newest of `file` and libpsl's built-in list.
    static Expected<std::shared_ptr<const PublicSuffixList>, std::string> load(
        const std::string& file = kDefaultFile);
    ~PublicSuffixList();
    PublicSuffixList(const PublicSuffixList&) = delete;
    PublicSuffixList& operator=(const PublicSuffixList&) = delete;

    // The registrable domain ("example.co.uk" for "a.b.example.co.uk"); a public suffix is
    // its own organizational domain.
    std::string organizational_domain(std::string_view domain) const;

  private:
    struct Impl;
    explicit PublicSuffixList(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

enum class OrgDomainMethod : std::uint8_t {
    public_suffix_list,  // RFC 7489 §3.2
    tree_walk,           // DMARCbis: the DNS tree walk, bounded to 8 queries
};

enum class Result : std::uint8_t { none, pass, fail, temperror, permerror };
std::string_view to_string(Result result);

struct Identifiers {
    std::string from_domain;  // the RFC5322.From domain
    bool spf_pass = false;    // the SPF result for spf_domain was pass
    std::string spf_domain;   // RFC5321.MailFrom domain (or HELO for the null path)
    std::vector<std::string> dkim_pass_domains;  // d= of each signature that verified
    // Identifiers whose check failed on DNS (temperror): when one of them is aligned, a
    // missing pass is no proof of a fail, and the result is temperror instead.
    bool spf_temperror = false;
    std::vector<std::string> dkim_temperror_domains;
};

struct Evaluation {
    Result result = Result::none;
    std::optional<Record> record;
    std::string policy_domain;  // where the record was found
    std::string org_domain;     // the From domain's organizational domain
    bool spf_aligned = false;
    bool dkim_aligned = false;
    std::string aligned_dkim_domain;
    Policy requested = Policy::none;    // p, sp or np as published
    Policy disposition = Policy::none;  // after pct/t; none for pass
    bool sampled_out = false;           // pct= or t=y lowered the disposition
    std::string reason;
};

struct Options {
    OrgDomainMethod method = OrgDomainMethod::public_suffix_list;
    std::shared_ptr<const PublicSuffixList> psl;  // required for public_suffix_list
};

class Evaluator {
  public:
    // `percent`: a roll in [0, 100) for pct= sampling (tests inject a fixed one).
    Evaluator(dns::Resolver& resolver, Options options, std::function<unsigned()> percent = {});

    Evaluation evaluate(const Identifiers& ids) const;
    // The organizational domain of `domain`; an error (temperror) when DNS failed mid-walk.
    Expected<std::string, std::string> organizational_domain(std::string_view domain) const;

  private:
    struct Found {
        std::optional<Record> record;
        std::string domain;
    };
    Expected<std::optional<Record>, std::string> record_at(const std::string& domain) const;
    Expected<Found, std::string> discover(const std::string& from_domain) const;
    Expected<bool, std::string> aligned(const std::string& a, const std::string& b,
                                        Alignment mode) const;
    bool non_existent(const std::string& domain) const;

    dns::Resolver& resolver_;
    Options options_;
    std::function<unsigned()> percent_;
};

// The names the tree walk queries for `domain` (without "_dmarc."): the domain, then, from 7
// labels down (or from one label less), one label less at a time, to the top-level domain.
std::vector<std::string> tree_walk_names(std::string_view domain);

}  // namespace dkim::dmarc
