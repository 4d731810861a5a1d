#pragma once
// SMTP AUTH for the relay's clients (RFC 4954): the PLAIN (RFC 4616) and LOGIN exchanges as a
// socket-free state machine, and the Argon2id password check. The exchange never logs or
// echoes what the client sent; every copy of a password is wiped when it is done with.

#include <cstdint>
#include <string>
#include <string_view>

#include "config.hpp"
#include "dkim/smtp/protocol.hpp"

namespace dkim::relayd {

// Verifies an AUTH password against a client's Argon2id hash (blocking: run it on a worker).
// An unknown client costs the same as a wrong password.
bool verify_client_password(const Client* client, std::string_view password);

// One AUTH command's exchange: start() with the command's argument, then next() with each
// line the client sends after a 334, until the step says to refuse or to verify.
class AuthExchange {
  public:
    struct Step {
        enum class Kind : std::uint8_t {
            prompt,  // send `reply` (334) and pass the client's next line to next()
            refuse,  // send `reply`; the exchange is over
            verify,  // check `user` and `password`; the exchange is over
        } kind = Kind::refuse;
        smtp::Reply reply;
        std::string user;
        std::string password;  // the caller wipes it once checked
    };

    AuthExchange() = default;
    AuthExchange(const AuthExchange&) = delete;
    AuthExchange& operator=(const AuthExchange&) = delete;
    ~AuthExchange();

    // "PLAIN", "PLAIN <base64>", "LOGIN", "LOGIN <base64 user>".
    Step start(std::string argument);
    // The client's line after a 334 prompt.
    Step next(std::string line);

  private:
    enum class Stage : std::uint8_t { plain_response, login_user, login_password, done };
    Step plain(std::string encoded);
    Step login_user(std::string encoded);
    Step login_password(std::string encoded);

    Stage stage_ = Stage::done;
    std::string user_;
};

}  // namespace dkim::relayd
