#include "dkim/mail/authentication_results.hpp"

namespace dkim::mail {
namespace {

// RFC 2045 §5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>.
bool is_token_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127) {
        return false;
    }
    constexpr std::string_view tspecials = "()<>@,;:\\\"/[]?=";
    return tspecials.find(c) == std::string_view::npos;
}

// RFC 8601 §2.3 pvalue: a value, or "[local-part] @ domain-name" for identities.
bool is_plain_identity(std::string_view v) {
    const std::size_t at = v.find('@');
    if (at == std::string_view::npos || v.find('@', at + 1) != std::string_view::npos) {
        return false;
    }
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i != at && !is_token_char(v[i]) && v[i] != '.') {
            return false;
        }
    }
    return v.size() > at + 1;
}

}  // namespace

std::string_view to_string(AuthResult r) {
    switch (r) {
        case AuthResult::none: return "none";
        case AuthResult::pass: return "pass";
        case AuthResult::fail: return "fail";
        case AuthResult::policy: return "policy";
        case AuthResult::neutral: return "neutral";
        case AuthResult::temperror: return "temperror";
        case AuthResult::permerror: return "permerror";
        case AuthResult::softfail: return "softfail";
    }
    return "none";
}

std::string quote_if_needed(std::string_view value) {
    bool token = !value.empty();
    for (const char c : value) {
        token = token && is_token_char(c);
    }
    if (token) {
        return std::string(value);
    }
    std::string out = "\"";
    for (const char c : value) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
        }
        // Control characters (CR, LF, ...) have no place in a header we write.
        out.push_back(static_cast<unsigned char>(c) < 32 || c == 127 ? ' ' : c);
    }
    out.push_back('"');
    return out;
}

std::string render_authentication_results(std::string_view authserv_id,
                                          const std::vector<MethodResult>& results) {
    std::string out = "Authentication-Results: ";
    out.append(authserv_id);
    out.push_back(';');
    if (results.empty()) {
        out.append(" none\r\n");
        return out;
    }
    for (std::size_t i = 0; i < results.size(); ++i) {
        const MethodResult& r = results[i];
        out.append("\r\n\t");
        out.append(r.method);
        out.push_back('=');
        out.append(to_string(r.result));
        if (!r.comment.empty()) {
            out.append(" (");
            for (const char c : r.comment) {
                const auto u = static_cast<unsigned char>(c);
                if (c == '(' || c == ')' || c == '\\') {
                    out.push_back('\\');  // quoted-pair (RFC 5322 §3.2.2)
                }
                out.push_back(u < 32 || u == 127 ? ' ' : c);
            }
            out.push_back(')');
        }
        if (!r.reason.empty()) {
            out.append(" reason=");
            std::string quoted = quote_if_needed(r.reason);
            if (quoted.front() != '"') {
                quoted = "\"" + quoted + "\"";
            }
            out.append(quoted);
        }
        for (const AuthProperty& p : r.properties) {
            out.push_back(' ');
            out.append(p.name);
            out.push_back('=');
            out.append(is_plain_identity(p.value) ? p.value : quote_if_needed(p.value));
        }
        if (i + 1 < results.size()) {
            out.push_back(';');
        }
    }
    out.append("\r\n");
    return out;
}

std::optional<std::string> authserv_id_of(std::string_view value) {
    std::size_t i = 0;
    // CFWS: whitespace, folding and (nested) comments with quoted-pairs.
    int depth = 0;
    while (i < value.size()) {
        const char c = value[i];
        if (depth > 0) {
            if (c == '\\') {
                ++i;
            } else if (c == '(') {
                ++depth;
            } else if (c == ')') {
                --depth;
            }
            ++i;
        } else if (c == '(') {
            depth = 1;
            ++i;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            ++i;
        } else {
            break;
        }
    }
    std::string id;
    if (i < value.size() && value[i] == '"') {
        bool closed = false;
        for (++i; i < value.size(); ++i) {
            if (value[i] == '\\' && i + 1 < value.size()) {
                id.push_back(value[++i]);
            } else if (value[i] == '"') {
                closed = true;
                break;
            } else {
                id.push_back(value[i]);
            }
        }
        if (!closed) {
            return std::nullopt;
        }
    } else {
        while (i < value.size() && is_token_char(value[i])) {
            id.push_back(value[i++]);
        }
    }
    if (!id.empty() && id.back() == '.') {
        id.pop_back();
    }
    if (id.empty()) {
        return std::nullopt;
    }
    return ascii_lowercase(id);
}

std::string strip_authentication_results(const HeaderBlock& header, std::string_view authserv_id,
                                         std::size_t& removed) {
    std::string ours = ascii_lowercase(authserv_id);
    if (!ours.empty() && ours.back() == '.') {
        ours.pop_back();
    }
    removed = 0;
    std::string out;
    out.reserve(header.text().size());
    for (std::size_t i = 0; i < header.size(); ++i) {
        if (iequals(header.name(i), "Authentication-Results")) {
            const auto id = authserv_id_of(header.value(i));
            if (id && *id == ours) {
                ++removed;
                continue;
            }
        }
        out.append(header.raw(i));
    }
    return out;
}

}  // namespace dkim::mail
