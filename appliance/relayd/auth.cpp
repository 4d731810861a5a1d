#include "auth.hpp"

#include <sodium.h>

#include <array>
#include <optional>

#include "dkim/base/wipe.hpp"
#include "dkim/crypto/base64.hpp"
#include "dkim/mail/header.hpp"

namespace dkim::relayd {

namespace {

using Step = AuthExchange::Step;

Step auth_prompt(std::string_view text) {
    Step s;
    s.kind = Step::Kind::prompt;
    s.reply.code = 334;
    s.reply.text = std::string(text);
    return s;
}

Step auth_refusal(int code, std::string_view enhanced, std::string_view text) {
    Step s;
    s.kind = Step::Kind::refuse;
    s.reply.code = code;
    s.reply.enhanced = std::string(enhanced);
    s.reply.text = std::string(text);
    return s;
}

// A client's base64 line: its decoded bytes, or the refusal. "*" cancels (RFC 4954 §4), "="
// is an empty response. The encoded text is wiped either way.
std::optional<std::string> auth_decode(std::string& encoded, Step& refusal) {
    if (encoded == "*") {
        base::wipe(encoded);
        refusal = auth_refusal(501, "5.0.0", "Authentication cancelled");
        return std::nullopt;
    }
    auto decoded = encoded == "=" ? std::optional<std::string>("") : crypto::base64_decode(encoded);
    base::wipe(encoded);
    if (!decoded) {
        refusal = auth_refusal(501, "5.5.2", "Invalid base64 data");
    }
    return decoded;
}

}  // namespace

bool verify_client_password(const Client* client, std::string_view password) {
    // An Argon2id hash of a random password that nobody knows: unknown names cost the same.
    static const std::string dummy = [] {
        std::array<char, crypto_pwhash_STRBYTES> out{};
        std::array<unsigned char, 32> random{};
        randombytes_buf(random.data(), random.size());
        if (crypto_pwhash_str(out.data(), reinterpret_cast<const char*>(random.data()),
                              random.size(), crypto_pwhash_OPSLIMIT_MIN,
                              crypto_pwhash_MEMLIMIT_MIN) != 0) {
            return std::string();
        }
        return std::string(out.data());
    }();
    const std::string& hash =
        client != nullptr && !client->password_hash.empty() ? client->password_hash : dummy;
    const bool ok = crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
    return ok && client != nullptr && !client->password_hash.empty();
}

AuthExchange::~AuthExchange() {
    base::wipe(user_);
}

Step AuthExchange::start(std::string argument) {
    const std::size_t space = argument.find(' ');
    const std::string mechanism = argument.substr(0, space);
    std::string initial = space == std::string::npos ? "" : argument.substr(space + 1);
    base::wipe(argument);
    if (mail::iequals(mechanism, "PLAIN")) {
        if (initial.empty()) {
            stage_ = Stage::plain_response;
            return auth_prompt("");
        }
        return plain(std::move(initial));
    }
    if (mail::iequals(mechanism, "LOGIN")) {
        if (initial.empty()) {
            stage_ = Stage::login_user;
            return auth_prompt("VXNlcm5hbWU6");  // "Username:"
        }
        return login_user(std::move(initial));
    }
    base::wipe(initial);
    return auth_refusal(504, "5.5.4", "Unrecognized authentication mechanism (PLAIN or LOGIN)");
}

Step AuthExchange::next(std::string line) {
    switch (stage_) {
        case Stage::plain_response: return plain(std::move(line));
        case Stage::login_user: return login_user(std::move(line));
        case Stage::login_password: return login_password(std::move(line));
        case Stage::done: break;
    }
    base::wipe(line);
    return auth_refusal(503, "5.5.1", "No authentication exchange in progress");
}

Step AuthExchange::plain(std::string encoded) {
    stage_ = Stage::done;
    Step refusal;
    auto response = auth_decode(encoded, refusal);
    if (!response) {
        return refusal;
    }
    // authzid NUL authcid NUL passwd (RFC 4616)
    const std::size_t first = response->find('\0');
    const std::size_t second =
        first == std::string::npos ? std::string::npos : response->find('\0', first + 1);
    if (second == std::string::npos) {
        base::wipe(*response);
        return auth_refusal(501, "5.5.2", "Malformed PLAIN response");
    }
    const std::string authzid = response->substr(0, first);
    Step s;
    s.kind = Step::Kind::verify;
    s.user = response->substr(first + 1, second - first - 1);
    s.password = response->substr(second + 1);
    base::wipe(*response);
    if (!authzid.empty() && authzid != s.user) {
        base::wipe(s.password);
        return auth_refusal(535, "5.7.8", "Authentication credentials invalid");
    }
    return s;
}

Step AuthExchange::login_user(std::string encoded) {
    stage_ = Stage::done;
    Step refusal;
    auto name = auth_decode(encoded, refusal);
    if (!name) {
        return refusal;
    }
    user_ = std::move(*name);
    stage_ = Stage::login_password;
    return auth_prompt("UGFzc3dvcmQ6");  // "Password:"
}

Step AuthExchange::login_password(std::string encoded) {
    stage_ = Stage::done;
    Step refusal;
    auto secret = auth_decode(encoded, refusal);
    if (!secret) {
        base::wipe(user_);
        return refusal;
    }
    Step s;
    s.kind = Step::Kind::verify;
    s.user = std::move(user_);
    user_.clear();
    s.password = std::move(*secret);
    return s;
}

}  // namespace dkim::relayd
