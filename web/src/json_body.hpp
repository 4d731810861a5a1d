#pragma once
// Request bodies of the REST API: one JSON object, read strictly. Every refusal names the
// field it is about, so that a 400 tells the client what to fix:
//   {"error": {"code": "invalid_field", "field": "duration_seconds", "message": "..."}}
// Unknown fields are refused too (a typo must not silently fall back to a default).
// The parser is RapidJSON (the one cereal's JSON archives use), iterative (no recursion on
// nesting), validating UTF-8.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::web {

struct FieldError {
    std::string field;  // "" when the body itself is wrong
    std::string message;
};

class JsonBody {
  public:
    // An empty body reads as {} (for POST actions that take no input).
    static Expected<JsonBody, FieldError> parse(std::string_view body);
    JsonBody(JsonBody&&) noexcept;
    JsonBody& operator=(JsonBody&&) noexcept;
    ~JsonBody();

    // A string of 1..max bytes (printable: no control characters). Absent: nullopt, or an
    // error when `required`.
    Expected<std::optional<std::string>, FieldError> string(const char* name, bool required,
                                                            std::size_t max);
    Expected<std::optional<std::int64_t>, FieldError> integer(const char* name, bool required,
                                                              std::int64_t min, std::int64_t max);
    Expected<std::optional<bool>, FieldError> boolean(const char* name);
    // A string of base64url (RFC 4648 §5, no padding), decoded: 1..max bytes once decoded.
    Expected<std::optional<std::string>, FieldError> bytes(const char* name, bool required,
                                                           std::size_t max);
    // An object whose members are base64url strings, decoded (a WebAuthn assertion): only the
    // members named in `members` (refused: any other, a non-string, a wrong encoding, more than
    // `max` bytes), each of which may be absent. Errors name "name.member".
    Expected<std::optional<std::map<std::string, std::string>>, FieldError> bytes_object(
        const char* name, const std::vector<std::string>& members, std::size_t max);

    // An object whose members are strings (printable, each at most `max` bytes): only the
    // members named in `members`, each of which may be absent. Errors name "name.member" and
    // never quote a value.
    Expected<std::optional<std::map<std::string, std::string>>, FieldError> string_object(
        const char* name, const std::vector<std::string>& members, std::size_t max);
    // Whether the body has the member `name` (null included), which counts as read: for a field
    // that is refused by its presence alone, without its value being copied anywhere.
    bool has(const char* name);

    // Refuses the first field that no getter asked for.
    Expected<void, FieldError> finish() const;

  private:
    struct Impl;
    explicit JsonBody(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    std::set<std::string> seen_;
};

}  // namespace dkim::web
