#include "dkim/dmarc/policy.hpp"

#include <libpsl.h>

#include <random>

#include "dkim/mail/header.hpp"

namespace dkim::dmarc {
namespace {

std::string normalize(std::string_view name) {
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    return mail::ascii_lowercase(name);
}

std::vector<std::string_view> labels(std::string_view name) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (start <= name.size()) {
        std::size_t dot = name.find('.', start);
        if (dot == std::string_view::npos) {
            dot = name.size();
        }
        out.push_back(name.substr(start, dot - start));
        start = dot + 1;
    }
    return out;
}

// The rightmost `n` labels of `name`.
std::string rightmost(std::string_view name, std::size_t n) {
    const auto parts = labels(name);
    std::string out;
    for (std::size_t i = parts.size() - std::min(n, parts.size()); i < parts.size(); ++i) {
        if (!out.empty()) {
            out += '.';
        }
        out += parts[i];
    }
    return out;
}

Policy one_lower(Policy p) {
    return p == Policy::reject ? Policy::quarantine : Policy::none;
}

}  // namespace

struct PublicSuffixList::Impl {
    psl_ctx_t* ctx = nullptr;
    ~Impl() { psl_free(ctx); }
};

PublicSuffixList::PublicSuffixList(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PublicSuffixList::~PublicSuffixList() = default;

Expected<std::shared_ptr<const PublicSuffixList>, std::string> PublicSuffixList::load(
    const std::string& file) {
    auto impl = std::make_unique<Impl>();
    impl->ctx = psl_latest(file.c_str());
    if (impl->ctx == nullptr) {
        return unexpected("cannot load the Public Suffix List from " + file);
    }
    return std::shared_ptr<const PublicSuffixList>(new PublicSuffixList(std::move(impl)));
}

std::string PublicSuffixList::organizational_domain(std::string_view domain) const {
    const std::string name = normalize(domain);
    const char* registrable = psl_registrable_domain(impl_->ctx, name.c_str());
    return registrable != nullptr ? std::string(registrable) : name;
}

std::string_view to_string(Result result) {
    switch (result) {
        case Result::none: return "none";
        case Result::pass: return "pass";
        case Result::fail: return "fail";
        case Result::temperror: return "temperror";
        case Result::permerror: return "permerror";
    }
    return "none";
}

std::vector<std::string> tree_walk_names(std::string_view domain) {
    const std::string name = normalize(domain);
    std::vector<std::string> out{name};
    std::size_t count = labels(name).size();
    if (count >= 8) {
        count = 8;  // the next name has 7 labels
    }
    while (count > 1) {
        --count;
        out.push_back(rightmost(name, count));
    }
    return out;
}

Evaluator::Evaluator(dns::Resolver& resolver, Options options, std::function<unsigned()> percent)
    : resolver_(resolver), options_(std::move(options)), percent_(std::move(percent)) {
    if (!percent_) {
        percent_ = [] {
            thread_local std::mt19937 engine{std::random_device{}()};
            return static_cast<unsigned>(std::uniform_int_distribution<int>(0, 99)(engine));
        };
    }
}

// The one DMARC record at _dmarc.<domain>: none for NXDOMAIN, NODATA, no DMARC record or more
// than one (§6.6.3 step 3); an error for a DNS failure.
Expected<std::optional<Record>, std::string> Evaluator::record_at(const std::string& domain) const {
    const dns::Answer txt = resolver_.lookup("_dmarc." + domain, dns::RecordType::txt);
    if (txt.status == dns::LookupStatus::temporary_failure) {
        return unexpected("_dmarc." + domain + ": " + txt.error);
    }
    std::optional<Record> found;
    int count = 0;
    for (const std::string& r : txt.records) {
        if (is_dmarc_record(r)) {
            ++count;
            auto parsed = parse_record(r);
            if (parsed) {
                found = std::move(*parsed);
            }
        }
    }
    if (count != 1) {
        return std::optional<Record>();
    }
    return found;
}

Expected<Evaluator::Found, std::string> Evaluator::discover(const std::string& from_domain) const {
    std::vector<std::string> names;
    if (options_.method == OrgDomainMethod::tree_walk) {
        names = tree_walk_names(from_domain);
    } else {
        names.push_back(from_domain);
        const std::string org = options_.psl->organizational_domain(from_domain);
        if (org != from_domain) {
            names.push_back(org);
        }
    }
    for (const std::string& name : names) {
        auto record = record_at(name);
        if (!record) {
            return unexpected(record.error());
        }
        if (*record) {
            return Found{std::move(*record), name};
        }
    }
    return Found{};
}

Expected<std::string, std::string> Evaluator::organizational_domain(std::string_view domain) const {
    const std::string name = normalize(domain);
    if (options_.method == OrgDomainMethod::public_suffix_list) {
        return options_.psl->organizational_domain(name);
    }
    // DMARCbis: psd=n marks the organizational domain, psd=y the public suffix above it;
    // otherwise the record found highest up the tree; no record at all: the domain itself.
    const std::size_t depth = labels(name).size();
    std::optional<std::string> highest;
    for (const std::string& target : tree_walk_names(name)) {
        auto record = record_at(target);
        if (!record) {
            return unexpected(record.error());
        }
        if (!*record) {
            continue;
        }
        if ((*record)->psd == PsdFlag::no) {
            return target;
        }
        if ((*record)->psd == PsdFlag::yes) {
            const std::size_t below = labels(target).size() + 1;
            return below > depth ? name : rightmost(name, below);
        }
        highest = target;
    }
    return highest.value_or(name);
}

Expected<bool, std::string> Evaluator::aligned(const std::string& a, const std::string& b,
                                               Alignment mode) const {
    const std::string x = normalize(a);
    const std::string y = normalize(b);
    if (x == y) {
        return true;
    }
    if (mode == Alignment::strict || x.empty() || y.empty()) {
        return false;
    }
    auto ox = organizational_domain(x);
    if (!ox) {
        return unexpected(ox.error());
    }
    auto oy = organizational_domain(y);
    if (!oy) {
        return unexpected(oy.error());
    }
    return *ox == *oy;
}

// RFC 9091 §2.7: NXDOMAIN or NODATA for A, AAAA and MX. A DNS failure is not proof.
bool Evaluator::non_existent(const std::string& domain) const {
    for (const auto type : {dns::RecordType::a, dns::RecordType::aaaa, dns::RecordType::mx}) {
        const dns::Answer answer = resolver_.lookup(domain, type);
        if (answer.status != dns::LookupStatus::no_such_name &&
            answer.status != dns::LookupStatus::no_data) {
            return false;
        }
    }
    return true;
}

Evaluation Evaluator::evaluate(const Identifiers& ids) const {
    Evaluation out;
    const std::string from = normalize(ids.from_domain);
    if (from.empty() || from.find('.') == std::string::npos) {
        out.result = Result::permerror;
        out.reason = "no usable RFC5322.From domain";
        return out;
    }
    auto found = discover(from);
    if (!found) {
        out.result = Result::temperror;
        out.reason = "policy discovery: " + found.error();
        return out;
    }
    if (!found->record) {
        out.reason = "no DMARC record";
        return out;
    }
    Record& record = *found->record;
    if (!record.p_valid || record.sp_invalid) {
        // §6.6.3 step 6: with a usable rua, act as p=none; otherwise no DMARC processing.
        if (record.rua.empty()) {
            out.reason = "the DMARC record at " + found->domain + " has no valid p= (ignored)";
            return out;
        }
        record.p = Policy::none;
        record.p_valid = true;
        if (record.sp_invalid) {
            record.sp.reset();
        }
    }
    out.policy_domain = found->domain;
    auto org = organizational_domain(from);
    out.org_domain = org ? *org : from;

    std::string alignment_error;
    if (ids.spf_pass) {
        auto a = aligned(ids.spf_domain, from, record.aspf);
        if (a) {
            out.spf_aligned = *a;
        } else {
            alignment_error = a.error();
        }
    }
    for (const std::string& d : ids.dkim_pass_domains) {
        auto a = aligned(d, from, record.adkim);
        if (a && *a) {
            out.dkim_aligned = true;
            out.aligned_dkim_domain = normalize(d);
            break;
        }
        if (!a) {
            alignment_error = a.error();
        }
    }
    out.record = record;
    if (out.spf_aligned || out.dkim_aligned) {
        out.result = Result::pass;
        return out;
    }
    if (!alignment_error.empty()) {
        out.result = Result::temperror;
        out.reason = "alignment: " + alignment_error;
        return out;
    }
    // An aligned identifier that could not be checked (DNS) might have passed: enforcing a
    // policy on a DNS failure would refuse legitimate mail, so the result is temperror.
    const auto aligned_temperror = [&](const std::string& domain, Alignment mode) {
        auto a = aligned(domain, from, mode);
        return !a || *a;
    };
    if (ids.spf_temperror && aligned_temperror(ids.spf_domain, record.aspf)) {
        out.result = Result::temperror;
        out.reason = "SPF for " + normalize(ids.spf_domain) + " failed on DNS";
        return out;
    }
    for (const std::string& d : ids.dkim_temperror_domains) {
        if (aligned_temperror(d, record.adkim)) {
            out.result = Result::temperror;
            out.reason = "a DKIM key of " + normalize(d) + " could not be fetched (DNS)";
            return out;
        }
    }
    out.result = Result::fail;
    if (found->domain == from) {
        out.requested = record.p;
    } else if (record.np && non_existent(from)) {
        out.requested = *record.np;
    } else {
        out.requested = record.sp.value_or(record.p);
    }
    out.disposition = out.requested;
    if (out.requested != Policy::none) {
        // t=y (DMARCbis testing) or outside pct= (RFC 7489 sampling): one level lower.
        if (record.testing || (record.pct < 100 && percent_() >= record.pct)) {
            out.disposition = one_lower(out.requested);
            out.sampled_out = true;
        }
    }
    out.reason = "no aligned SPF or DKIM pass";
    return out;
}

}  // namespace dkim::dmarc
