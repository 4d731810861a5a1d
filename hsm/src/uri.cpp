#include "dkim/hsm/uri.hpp"

#include <array>
#include <charconv>
#include <cstdint>

#include "dkim/base/hex.hpp"

namespace dkim::hsm {
namespace {

// Character classes of RFC 7512 §2.3's ABNF.
bool is_unreserved(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}
// pk11-res-avail = ":" / "[" / "]" / "@" / "!" / "$" / "'" / "(" / ")" / "*" / "+" / "," / "="
bool is_res_avail(char c) {
    return c != '\0' && std::string_view(":[]@!$'()*+,=").find(c) != std::string_view::npos;
}
// pk11-pchar = unreserved / pk11-res-avail / pct-encoded (and "&" is allowed in the path).
bool is_path_char(char c) {
    return is_unreserved(c) || is_res_avail(c) || c == '&';
}
// pk11-qchar = unreserved / pk11-res-avail / "/" / "?" / "|" / pct-encoded.
bool is_query_char(char c) {
    return is_unreserved(c) || is_res_avail(c) || c == '/' || c == '?' || c == '|';
}
bool is_attr_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

using ParseResult = dkim::Expected<std::string, std::string>;

ParseResult decode(std::string_view value, bool in_query, std::string_view name) {
    std::string out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        const char c = value[i];
        if (c == '%') {
            if (i + 2 >= value.size()) {
                return dkim::unexpected("attribute '" + std::string(name) +
                                        "': truncated percent-encoding");
            }
            const int high = base::hex_digit_value(value[i + 1]);
            const int low = base::hex_digit_value(value[i + 2]);
            if (high < 0 || low < 0) {
                return dkim::unexpected("attribute '" + std::string(name) +
                                        "': invalid percent-encoding '" +
                                        std::string(value.substr(i, 3)) + "'");
            }
            out.push_back(static_cast<char>(high * 16 + low));
            i += 2;
            continue;
        }
        if (!(in_query ? is_query_char(c) : is_path_char(c))) {
            return dkim::unexpected("attribute '" + std::string(name) + "': character 0x" +
                                    "0123456789abcdef"[(c >> 4) & 0xf] +
                                    "0123456789abcdef"[c & 0xf] + " must be percent-encoded");
        }
        out.push_back(c);
    }
    return out;
}

struct PathField {
    std::string_view name;
    std::optional<std::string> Pkcs11Uri::*member;
};

constexpr std::array<PathField, 11> kStringPathFields{{
    {"token", &Pkcs11Uri::token},
    {"manufacturer", &Pkcs11Uri::manufacturer},
    {"serial", &Pkcs11Uri::serial},
    {"model", &Pkcs11Uri::model},
    {"library-manufacturer", &Pkcs11Uri::library_manufacturer},
    {"library-description", &Pkcs11Uri::library_description},
    {"library-version", &Pkcs11Uri::library_version},
    {"slot-description", &Pkcs11Uri::slot_description},
    {"slot-manufacturer", &Pkcs11Uri::slot_manufacturer},
    {"object", &Pkcs11Uri::object},
    {"type", &Pkcs11Uri::type},
}};

constexpr std::array<PathField, 3> kQueryFields{{
    {"pin-source", &Pkcs11Uri::pin_source},
    {"module-name", &Pkcs11Uri::module_name},
    {"module-path", &Pkcs11Uri::module_path},
}};

dkim::Expected<bool, std::string> set_once(std::optional<std::string>& field, std::string_view name,
                                           std::string value) {
    if (field) {
        return dkim::unexpected("attribute '" + std::string(name) + "' appears twice");
    }
    field = std::move(value);
    return true;
}

}  // namespace

std::string percent_encode(std::string_view bytes, bool in_query) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : bytes) {
        // '&' is legal in the path but we encode it too, as do p11-kit and OpenSC, so that
        // the canonical form is unambiguous for readers that split on it.
        const bool plain = in_query ? is_query_char(c) && c != '&' : is_path_char(c) && c != '&';
        if (plain) {
            out.push_back(c);
        } else {
            const auto byte = static_cast<unsigned char>(c);
            out.push_back('%');
            out.push_back(kHex[byte >> 4]);
            out.push_back(kHex[byte & 0xf]);
        }
    }
    return out;
}

dkim::Expected<Pkcs11Uri, std::string> Pkcs11Uri::parse(std::string_view text) {
    constexpr std::string_view scheme = "pkcs11:";
    if (text.size() < scheme.size() ||
        !std::equal(scheme.begin(), scheme.end(), text.begin(), [](char a, char b) {
            return a == (b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : b);
        })) {
        return dkim::unexpected(std::string("a PKCS#11 URI starts with \"pkcs11:\""));
    }
    text.remove_prefix(scheme.size());
    std::string_view path = text;
    std::string_view query;
    bool has_query = false;
    if (const auto mark = text.find('?'); mark != std::string_view::npos) {
        path = text.substr(0, mark);
        query = text.substr(mark + 1);
        has_query = true;
    }

    Pkcs11Uri uri;
    const auto parse_component = [&](std::string_view component, char separator,
                                     bool in_query) -> dkim::Expected<bool, std::string> {
        while (!component.empty()) {
            const auto end = component.find(separator);
            const std::string_view item = component.substr(0, end);
            component =
                end == std::string_view::npos ? std::string_view{} : component.substr(end + 1);
            if (item.empty()) {
                if (end != std::string_view::npos || !component.empty()) {
                    return dkim::unexpected(std::string("empty attribute (\"") + separator +
                                            separator + "\")");
                }
                continue;
            }
            const auto equals = item.find('=');
            if (equals == std::string_view::npos || equals == 0) {
                return dkim::unexpected("attribute '" + std::string(item) + "' is not name=value");
            }
            const std::string_view name = item.substr(0, equals);
            for (const char c : name) {
                if (!is_attr_name_char(c)) {
                    return dkim::unexpected("attribute name '" + std::string(name) +
                                            "' has an invalid character");
                }
            }
            auto value = decode(item.substr(equals + 1), in_query, name);
            if (!value) {
                return dkim::unexpected(std::move(value).error());
            }
            if (name.size() > 2 && name.substr(0, 2) == "x-") {
                (in_query ? uri.vendor_query : uri.vendor)
                    .emplace_back(std::string(name), std::move(*value));
                continue;
            }
            if (!in_query) {
                if (name == "id") {
                    if (uri.id) {
                        return dkim::unexpected(std::string("attribute 'id' appears twice"));
                    }
                    uri.id.emplace(value->begin(), value->end());
                    continue;
                }
                if (name == "slot-id") {
                    if (uri.slot_id) {
                        return dkim::unexpected(std::string("attribute 'slot-id' appears twice"));
                    }
                    unsigned long slot = 0;
                    const auto* first = value->data();
                    const auto* last = first + value->size();
                    const auto [ptr, ec] = std::from_chars(first, last, slot);
                    if (value->empty() || ec != std::errc() || ptr != last) {
                        return dkim::unexpected("attribute 'slot-id': '" + *value +
                                                "' is not a decimal number");
                    }
                    uri.slot_id = slot;
                    continue;
                }
                bool known = false;
                for (const auto& field : kStringPathFields) {
                    if (field.name == name) {
                        auto ok = set_once(uri.*field.member, name, std::move(*value));
                        if (!ok) {
                            return dkim::unexpected(std::move(ok).error());
                        }
                        known = true;
                        break;
                    }
                }
                if (!known) {
                    // RFC 7512 §2.3: an unknown attribute cannot be matched; refusing it is
                    // safer than silently selecting a different object.
                    return dkim::unexpected("unknown path attribute '" + std::string(name) + "'");
                }
                continue;
            }
            if (name == "pin-value") {
                return dkim::unexpected(
                    std::string("pin-value is refused: a PIN in a URI leaks into logs and process "
                                "listings; use a PIN file instead"));
            }
            bool known = false;
            for (const auto& field : kQueryFields) {
                if (field.name == name) {
                    auto ok = set_once(uri.*field.member, name, std::move(*value));
                    if (!ok) {
                        return dkim::unexpected(std::move(ok).error());
                    }
                    known = true;
                    break;
                }
            }
            if (!known) {
                return dkim::unexpected("unknown query attribute '" + std::string(name) + "'");
            }
        }
        return true;
    };

    if (auto ok = parse_component(path, ';', false); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    if (has_query) {
        if (auto ok = parse_component(query, '&', true); !ok) {
            return dkim::unexpected(std::move(ok).error());
        }
    }
    if (uri.type && *uri.type != "public" && *uri.type != "private" && *uri.type != "cert" &&
        *uri.type != "secret-key" && *uri.type != "data") {
        return dkim::unexpected("attribute 'type': unknown object type '" + *uri.type + "'");
    }
    return uri;
}

std::string Pkcs11Uri::to_string() const {
    std::string path;
    const auto add = [&path](std::string_view name, std::string_view value) {
        path += path.empty() ? "" : ";";
        path.append(name).append("=").append(percent_encode(value, false));
    };
    for (const auto& field : kStringPathFields) {
        if (field.name == "object") {
            // RFC order: ... slot-id, object, type, id; slot-id sits before object.
            if (slot_id) {
                path += path.empty() ? "" : ";";
                path += "slot-id=" + std::to_string(*slot_id);
            }
        }
        if (const auto& value = this->*field.member; value) {
            add(field.name, *value);
        }
    }
    if (id) {
        // RFC 7512 §2.3: the id is binary; every byte is percent-encoded, readable or not.
        static constexpr char kHex[] = "0123456789ABCDEF";
        path += path.empty() ? "id=" : ";id=";
        for (const unsigned char byte : *id) {
            path += {'%', kHex[byte >> 4], kHex[byte & 0xf]};
        }
    }
    for (const auto& [name, value] : vendor) {
        add(name, value);
    }
    std::string query;
    for (const auto& field : kQueryFields) {
        if (const auto& value = this->*field.member; value) {
            query += query.empty() ? "" : "&";
            query.append(field.name).append("=").append(percent_encode(*value, true));
        }
    }
    for (const auto& [name, value] : vendor_query) {
        query += query.empty() ? "" : "&";
        query.append(name).append("=").append(percent_encode(value, true));
    }
    return "pkcs11:" + path + (query.empty() ? "" : "?" + query);
}

}  // namespace dkim::hsm
