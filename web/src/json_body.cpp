#include "json_body.hpp"

#include <algorithm>

// cereal's JSON archive configures RapidJSON (assertions throw); include it first so that
// every translation unit of dkim_web sees RapidJSON configured the same way.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cereal/archives/json.hpp>

#include "dkim/base/wipe.hpp"
#include "dkim/crypto/base64.hpp"

namespace dkim::web {

// Parsed in place: the strings of the document point into `buffer`, which is wiped when the
// body goes (bodies carry passwords, TOTP codes and PINs).
struct JsonBody::Impl {
    std::string buffer;
    rapidjson::Document document;
    // The member `name`, or null. (No iterator comparisons here: clang warns that C++20 finds
    // RapidJSON's operator== ambiguous.)
    const rapidjson::Value* find(const char* name) const {
        return document.HasMember(name) ? &document[name] : nullptr;
    }
    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl() { base::secure_wipe(buffer.data(), buffer.size()); }
};

JsonBody::JsonBody(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JsonBody::JsonBody(JsonBody&&) noexcept = default;
JsonBody& JsonBody::operator=(JsonBody&&) noexcept = default;
JsonBody::~JsonBody() = default;

Expected<JsonBody, FieldError> JsonBody::parse(std::string_view body) {
    auto impl = std::make_unique<Impl>();
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        impl->document.SetObject();
        return JsonBody(std::move(impl));
    }
    if (body.find('\0') != std::string_view::npos) {
        return unexpected(FieldError{"", "the body is not valid JSON: a NUL byte"});
    }
    constexpr unsigned kFlags =
        rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
    impl->buffer.assign(body);
    impl->document.ParseInsitu<kFlags>(impl->buffer.data());
    if (impl->document.HasParseError()) {
        return unexpected(FieldError{
            "", "the body is not valid JSON: " +
                    std::string(rapidjson::GetParseError_En(impl->document.GetParseError())) +
                    " (at byte " + std::to_string(impl->document.GetErrorOffset()) + ")"});
    }
    if (!impl->document.IsObject()) {
        return unexpected(FieldError{"", "the body must be a JSON object"});
    }
    // Duplicate names would let two readers of the same body disagree.
    std::set<std::string_view> names;
    for (rapidjson::SizeType i = 0; i < impl->document.MemberCount(); ++i) {
        const auto& member = *(impl->document.MemberBegin() + i);
        const std::string_view name(member.name.GetString(), member.name.GetStringLength());
        if (!names.insert(name).second) {
            return unexpected(FieldError{std::string(name), "the field appears twice"});
        }
    }
    return JsonBody(std::move(impl));
}

namespace {

bool printable(std::string_view text) {
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            return false;
        }
    }
    return true;
}

}  // namespace

Expected<std::optional<std::string>, FieldError> JsonBody::string(const char* name, bool required,
                                                                  std::size_t max) {
    seen_.insert(name);
    const rapidjson::Value* found = impl_->find(name);
    if (found == nullptr || found->IsNull()) {
        if (required) {
            return unexpected(FieldError{name, "is required"});
        }
        return std::optional<std::string>();
    }
    if (!found->IsString()) {
        return unexpected(FieldError{name, "must be a string"});
    }
    std::string value(found->GetString(), found->GetStringLength());
    if (value.empty() && required) {
        return unexpected(FieldError{name, "must not be empty"});
    }
    if (value.size() > max) {
        return unexpected(FieldError{name, "is longer than " + std::to_string(max) + " bytes"});
    }
    if (!printable(value)) {
        return unexpected(FieldError{name, "must not contain control characters"});
    }
    return std::optional<std::string>(std::move(value));
}

Expected<std::optional<std::int64_t>, FieldError> JsonBody::integer(const char* name, bool required,
                                                                    std::int64_t min,
                                                                    std::int64_t max) {
    seen_.insert(name);
    const rapidjson::Value* found = impl_->find(name);
    if (found == nullptr || found->IsNull()) {
        if (required) {
            return unexpected(FieldError{name, "is required"});
        }
        return std::optional<std::int64_t>();
    }
    if (!found->IsInt64()) {
        return unexpected(FieldError{name, "must be an integer"});
    }
    const std::int64_t value = found->GetInt64();
    if (value < min || value > max) {
        return unexpected(FieldError{
            name, "must be between " + std::to_string(min) + " and " + std::to_string(max)});
    }
    return std::optional<std::int64_t>(value);
}

Expected<std::optional<bool>, FieldError> JsonBody::boolean(const char* name) {
    seen_.insert(name);
    const rapidjson::Value* found = impl_->find(name);
    if (found == nullptr || found->IsNull()) {
        return std::optional<bool>();
    }
    if (!found->IsBool()) {
        return unexpected(FieldError{name, "must be true or false"});
    }
    return std::optional<bool>(found->GetBool());
}

Expected<std::optional<std::string>, FieldError> JsonBody::bytes(const char* name, bool required,
                                                                 std::size_t max) {
    auto text = string(name, required, max / 3 * 4 + 4);
    if (!text || !*text) {
        return text;
    }
    auto decoded = crypto::base64url_decode(**text);
    if (!decoded || (required && decoded->empty())) {
        return unexpected(FieldError{name, "must be base64url without padding"});
    }
    if (decoded->size() > max) {
        return unexpected(FieldError{name, "is longer than " + std::to_string(max) + " bytes"});
    }
    return std::optional<std::string>(std::move(*decoded));
}

Expected<std::optional<std::map<std::string, std::string>>, FieldError> JsonBody::bytes_object(
    const char* name, const std::vector<std::string>& members, std::size_t max) {
    seen_.insert(name);
    const rapidjson::Value* found = impl_->find(name);
    if (found == nullptr || found->IsNull()) {
        return std::optional<std::map<std::string, std::string>>();
    }
    if (!found->IsObject()) {
        return unexpected(FieldError{name, "must be an object"});
    }
    std::map<std::string, std::string> out;
    for (rapidjson::SizeType i = 0; i < found->MemberCount(); ++i) {
        const auto& member = *(found->MemberBegin() + i);
        const std::string key(member.name.GetString(), member.name.GetStringLength());
        const std::string field =
            std::string(name) + "." + (printable(key) && key.size() <= 64 ? key : "?");
        if (std::find(members.begin(), members.end(), key) == members.end()) {
            return unexpected(FieldError{field, "is not a field of this object"});
        }
        if (out.count(key) != 0) {
            return unexpected(FieldError{field, "the field appears twice"});
        }
        if (!member.value.IsString()) {
            return unexpected(FieldError{field, "must be a string"});
        }
        const std::string_view text(member.value.GetString(), member.value.GetStringLength());
        if (text.size() > max / 3 * 4 + 4) {
            return unexpected(
                FieldError{field, "is longer than " + std::to_string(max) + " bytes"});
        }
        auto decoded = crypto::base64url_decode(text);
        if (!decoded) {
            return unexpected(FieldError{field, "must be base64url without padding"});
        }
        if (decoded->size() > max) {
            return unexpected(
                FieldError{field, "is longer than " + std::to_string(max) + " bytes"});
        }
        out.emplace(key, std::move(*decoded));
    }
    return std::optional<std::map<std::string, std::string>>(std::move(out));
}

Expected<std::optional<std::map<std::string, std::string>>, FieldError> JsonBody::string_object(
    const char* name, const std::vector<std::string>& members, std::size_t max) {
    seen_.insert(name);
    const rapidjson::Value* found = impl_->find(name);
    if (found == nullptr || found->IsNull()) {
        return std::optional<std::map<std::string, std::string>>();
    }
    if (!found->IsObject()) {
        return unexpected(FieldError{name, "must be an object"});
    }
    // The members are checked before any is copied: a refused object leaves no copy behind.
    for (rapidjson::SizeType i = 0; i < found->MemberCount(); ++i) {
        const auto& member = *(found->MemberBegin() + i);
        const std::string_view key(member.name.GetString(), member.name.GetStringLength());
        const std::string field =
            std::string(name) + "." + (printable(key) && key.size() <= 64 ? std::string(key) : "?");
        if (std::find(members.begin(), members.end(), key) == members.end()) {
            return unexpected(FieldError{field, "is not a field of this object"});
        }
        for (rapidjson::SizeType j = 0; j < i; ++j) {
            const auto& before = *(found->MemberBegin() + j);
            if (key == std::string_view(before.name.GetString(), before.name.GetStringLength())) {
                return unexpected(FieldError{field, "the field appears twice"});
            }
        }
        if (!member.value.IsString()) {
            return unexpected(FieldError{field, "must be a string"});
        }
        const std::string_view text(member.value.GetString(), member.value.GetStringLength());
        if (text.size() > max) {
            return unexpected(
                FieldError{field, "is longer than " + std::to_string(max) + " bytes"});
        }
        if (!printable(text)) {
            return unexpected(FieldError{field, "must not contain control characters"});
        }
    }
    std::map<std::string, std::string> out;
    for (rapidjson::SizeType i = 0; i < found->MemberCount(); ++i) {
        const auto& member = *(found->MemberBegin() + i);
        out.emplace(std::string(member.name.GetString(), member.name.GetStringLength()),
                    std::string(member.value.GetString(), member.value.GetStringLength()));
    }
    return std::optional<std::map<std::string, std::string>>(std::move(out));
}

bool JsonBody::has(const char* name) {
    seen_.insert(name);
    return impl_->find(name) != nullptr;
}

Expected<void, FieldError> JsonBody::finish() const {
    for (rapidjson::SizeType i = 0; i < impl_->document.MemberCount(); ++i) {
        const auto& member = *(impl_->document.MemberBegin() + i);
        const std::string name(member.name.GetString(), member.name.GetStringLength());
        if (seen_.count(name) == 0) {
            return unexpected(FieldError{printable(name) && name.size() <= 64 ? name : "?",
                                         "is not a field of this request"});
        }
    }
    return {};
}

}  // namespace dkim::web
