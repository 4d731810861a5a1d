#pragma once
// Domain names: the one validator of the tree. DKIM's d= and s=, the names of the appliance's
// keys (hsm::KeyName, provisioning, the OpenDKIM import), SMTP domains (smtp::is_valid_domain,
// and through it relayd's configuration), SPF's check_host() domains and the API's all come
// here; they differ only in what a label may hold and how many labels they need.
//
// STANDARDS: RFC 1035 §2.3.4 ("labels 63 octets or less", "names 255 octets or less": on the
// wire, where a name of 253 characters in text form, without the final dot, takes 255 octets);
// RFC 5321 §4.1.2 ("sub-domain = Let-dig [Ldh-str]": letters, digits and hyphens, no hyphen
// first or last), which RFC 6376 §3.5 uses for d= and §3.1 for selectors; RFC 6531 §3.3
// (U-labels with SMTPUTF8); RFC 7208 §4.3 (SPF checks lengths only).

#include <cstddef>
#include <string>
#include <string_view>

namespace dkim::dns {

inline constexpr std::size_t kMaxLabelLength = 63;
inline constexpr std::size_t kMaxNameLength = 253;

// What a label may hold besides being 1 to 63 octets long. Letters are of either case
// everywhere: DNS compares names without case, and callers that store names lower them.
enum class LabelSyntax {
    ldh,             // RFC 5321 sub-domain: letters, digits, '-' but not first or last
    ldh_underscore,  // ldh, and '_' anywhere: DKIM selectors as senders write them
    ldh_utf8,        // ldh, with octets from 0x80 up as letters: U-labels (SMTPUTF8)
    any_octet,       // anything but '.': SPF's domains (RFC 7208 §4.3 checks lengths only)
};

struct NameRules {
    LabelSyntax labels = LabelSyntax::ldh;
    std::size_t min_labels = 1;
};

bool is_valid_label(std::string_view label, LabelSyntax syntax = LabelSyntax::ldh) noexcept;

// Labels separated by single dots, 253 characters at most. No label is empty: no leading,
// doubled or trailing dot (callers that accept the absolute form "example.com." strip the dot).
bool is_valid_name(std::string_view name, NameRules rules = {}) noexcept;

// --- the names of the appliance's own keys --------------------------------------------------
// A key's label is its record's name, "<selector>._domainkey.<domain>" (RFC 6376 §3.6.2.1).

// A domain keys are made for: a mail domain of two labels or more ("localhost" and "com" are
// mistakes), LDH labels.
inline constexpr NameRules kKeyDomain{LabelSyntax::ldh, 2};
// RFC 6376 §3.1: "selector = sub-domain *( "." sub-domain )": LDH labels, no '_'.
inline constexpr NameRules kKeySelector{LabelSyntax::ldh, 1};

// "<selector>._domainkey.<domain>" is 253 characters at most: a selector and a domain can each
// be valid and together too long for one DNS name.
bool fits_key_record_name(std::string_view selector, std::string_view domain) noexcept;

// The domain's, then the selector's, then the pair's problem as a message ("domain 'x' is not a
// valid domain name"), or "" when "<selector>._domainkey.<domain>" can name a key. The domain
// may end in the root's dot (KeyName drops it); letters of either case.
std::string key_name_problem(std::string_view domain, std::string_view selector);
// A key domain that leaves room for a key record name (with a one-character selector).
bool is_key_domain(std::string_view domain) noexcept;
bool is_key_selector(std::string_view selector) noexcept;

}  // namespace dkim::dns

namespace dkim {

// DKIM-Signature d= and s= as received (RFC 6376 §3.5), and the domains and selectors of
// grants, requests and the API. Selectors may hold '_': senders use it and DNS resolves it
// (the keys the appliance makes never do: dns::kKeySelector).
bool is_valid_domain(std::string_view name) noexcept;
bool is_valid_selector(std::string_view name) noexcept;

}  // namespace dkim
