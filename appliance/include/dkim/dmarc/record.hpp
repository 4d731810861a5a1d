#pragma once
// DMARC policy records (RFC 7489 §6.3, §6.4, with the tags DMARCbis adds: np, psd, t). They
// come from any sender's DNS: tags are read leniently as the RFC asks (unknown tags ignored,
// a bad optional value falls back to its default), never past the record's bytes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::dmarc {

enum class Policy : std::uint8_t { none, quarantine, reject };
enum class Alignment : std::uint8_t { relaxed, strict };
// psd= (DMARCbis): the record's domain is a public suffix (y), an organizational domain (n),
// or says nothing (absent, or "u").
enum class PsdFlag : std::uint8_t { unset, yes, no };

std::string_view to_string(Policy policy);

struct Record {
    // p=: absent or invalid leaves p_valid false (§6.6.3 step 6 decides what that means).
    Policy p = Policy::none;
    bool p_valid = false;
    std::optional<Policy> sp;
    bool sp_invalid = false;
    std::optional<Policy> np;  // DMARCbis: for non-existent subdomains
    Alignment adkim = Alignment::relaxed;
    Alignment aspf = Alignment::relaxed;
    unsigned pct = 100;    // RFC 7489
    bool testing = false;  // DMARCbis t=y
    PsdFlag psd = PsdFlag::unset;
    std::vector<std::string> rua;  // syntactically valid URIs only
    std::vector<std::string> ruf;
};

// A TXT record is a DMARC record when it starts with the version tag "v=DMARC1" (spaces
// allowed around '=') followed by ';' or its end.
bool is_dmarc_record(std::string_view txt);

// An error only when the record does not start with the version tag or is not made of
// tag=value pairs.
Expected<Record, std::string> parse_record(std::string_view txt);

}  // namespace dkim::dmarc
