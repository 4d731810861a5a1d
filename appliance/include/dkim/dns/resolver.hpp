#pragma once
// DNS behind an interface (ARCHITECTURE.md: every side effect has a fake): the DKIM verifier
// asks for TXT records, SPF for TXT, A, AAAA, MX and PTR, DMARC for TXT.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dkim/lock_guarded.hpp"

namespace dkim::dns {

enum class RecordType : std::uint16_t { a = 1, ptr = 12, mx = 15, txt = 16, aaaa = 28 };

// "TXT", "AAAA", ... for messages.
std::string_view to_string(RecordType type);

enum class LookupStatus : std::uint8_t {
    found,
    no_such_name,       // NXDOMAIN
    no_data,            // the name exists, without records of that type
    temporary_failure,  // SERVFAIL, REFUSED, timeout, network error: try again later
};

// What DNSSEC says of an answer: `secure` when a validating resolver proved it (trust anchor
// configured), `bogus` when validation failed (the answer is then a temporary_failure),
// `insecure` otherwise (unsigned zone, or no validation configured).
enum class Security : std::uint8_t { insecure, secure, bogus };

struct Answer {
    LookupStatus status = LookupStatus::temporary_failure;
    // One entry per record, in the answer's order:
    //   TXT:    its character-strings concatenated (RFC 6376 §3.6.2.2, RFC 7208 §3.3);
    //   A/AAAA: the address in text form ("192.0.2.1", "2001:db8::1");
    //   MX:     the exchange's name, by preference (lowest first);
    //   PTR:    the name.
    // Names without the trailing dot, as received (callers compare case-insensitively).
    std::vector<std::string> records;
    std::chrono::seconds ttl{0};
    Security security = Security::insecure;
    std::string error;  // for temporary_failure: what went wrong
};
using TxtResult = Answer;

class Resolver {
  public:
    virtual ~Resolver() = default;
    // `name` without a trailing dot. Blocking, with a deadline of the implementation's; safe
    // to call from several threads. CNAMEs are followed.
    virtual Answer lookup(std::string_view name, RecordType type) = 0;

    TxtResult lookup_txt(std::string_view name) { return lookup(name, RecordType::txt); }
};

// For unit tests and the conformance suites: answers from a zone held in memory, counting
// lookups. A name that was never mentioned is NXDOMAIN; a mentioned name without records of
// the asked type is NODATA.
class FakeResolver final : public Resolver {
  public:
    // Replaces the name's TXT records and any status set for them (no records: the name
    // exists without TXT records).
    void set_txt(std::string_view name, std::vector<std::string> records,
                 std::chrono::seconds ttl = std::chrono::seconds(300));
    // Adds one record (an MX takes the exchange name; preference is the order of adding).
    void add(std::string_view name, RecordType type, std::string value);
    void set_cname(std::string_view name, std::string_view target);
    // Every lookup of the name (of the type) answers `status` instead of its records.
    void set_status(std::string_view name, LookupStatus status);
    void set_status(std::string_view name, RecordType type, LookupStatus status);
    void clear(std::string_view name);

    Answer lookup(std::string_view name, RecordType type) override;
    std::size_t lookups() const;

  private:
    struct Node {
        std::map<RecordType, std::vector<std::string>> records;
        std::map<RecordType, LookupStatus> type_status;
        std::optional<LookupStatus> status;
        std::string cname;
        std::chrono::seconds ttl{300};
    };
    struct State {
        std::map<std::string, Node> zone;
        std::size_t lookups = 0;
    };
    mutable LockGuarded<State> state_;
};

}  // namespace dkim::dns
