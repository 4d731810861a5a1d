#pragma once
// A Service on a JitEngine with a ManualClock: users alice (requester) and bob and carol
// (approvers, TOTP enrolled), and helpers that build real header blocks to be signed.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "capturing_signer.hpp"
#include "dkim/crypto/base64.hpp"
#include "dkim/custody/envelope.hpp"
#include "dkim/dkim/signer.hpp"
#include "dkim/mail/header.hpp"
#include "jit_fixture.hpp"
#include "service.hpp"

namespace dkim::test {

inline std::string header_block(const std::string& domain, const std::string& selector,
                                SigningAlgorithm algorithm = SigningAlgorithm::rsa_sha256,
                                Canon header_canon = Canon::relaxed, TimePoint at = test_epoch()) {
    CapturingSigner capture(algorithm);
    SignOptions options;
    options.canonicalization = Canonicalization{header_canon, Canon::relaxed};
    options.expire_after = std::chrono::hours(24 * 7);  // within signerd's signing profile
    MessageSigner signer({SigningKey{domain, selector, &capture, {}}}, options);
    const std::string message =
        "From: a@" + domain + "\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n";
    auto split = mail::split_message(message);
    EXPECT_TRUE(split);
    signer.update_body(split->body);
    auto fields = signer.finish(split->header, at);
    EXPECT_TRUE(fields) << fields.error().message;
    return capture.captured;
}

// Service options with the PIN "1234" in a 0600 file (one per test process, removed when the
// process ends: each test is a process of its own under ctest, and /tmp kept hundreds).
inline signerd::ServiceOptions file_pin_options() {
    struct PinFile {
        std::filesystem::path dir = make_temp_dir("dkim-pin");
        std::filesystem::path file = dir / "pin";
        PinFile() {
            std::ofstream(file) << "1234\n";
            ::chmod(file.c_str(), 0600);
        }
        ~PinFile() {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
        PinFile(const PinFile&) = delete;
        PinFile& operator=(const PinFile&) = delete;
    };
    static const PinFile pin;
    signerd::ServiceOptions o;
    o.pin_source = signerd::PinSourceKind::file;
    o.pin_path = pin.file;
    return o;
}

struct Person {
    std::string name;
    std::string password;
    std::string totp_secret;  // raw
};

class SignerdHarness {
  public:
    SignerdHarness(signerd::TokenGate& gate, signerd::ServiceOptions options = {},
                   jit::Policy policy = jit::Policy::defaults())
        : engine(std::move(policy)),
          clock(test_epoch()),
          gate_(gate),
          options_(std::move(options)) {
        build();
        const jit::Actor local{
            jit::Actor::Kind::local, "root", static_cast<jit::RoleSet>(jit::Role::admin), {}};
        auto add = [&](const std::string& name, jit::Role role, bool totp) {
            Person p{name, name + "-password-123", ""};
            EXPECT_TRUE(engine.directory().add_user(local, name, static_cast<jit::RoleSet>(role),
                                                    p.password, clock.now()));
            if (totp) {
                auto e = engine.directory().enrol_totp(local, name, clock.now());
                p.totp_secret = base32_decode(e->secret_base32);
                const jit::Actor self = user(name, {role});
                EXPECT_TRUE(engine.directory().confirm_totp(
                    self, name, totp_at(p.totp_secret, clock.now() - std::chrono::seconds(30)),
                    clock.now()));
            }
            people[name] = p;
        };
        add("alice", jit::Role::requester, false);
        add("bob", jit::Role::approver, true);
        add("carol", jit::Role::approver, true);
    }

    void build() {
        options_.pin_share_set = engine.pin_share_set();  // as signerd's main does
        service = std::make_unique<signerd::Service>(engine.journal(), engine.authority(),
                                                     engine.directory(), engine.keys(), gate_,
                                                     clock, metrics, options_);
    }
    void restart() {
        service.reset();
        engine.restart();
        build();
    }

    ipc::Credentials password_of(const std::string& name, bool with_totp = false) {
        ipc::Credentials c;
        c.user = name;
        c.password = people[name].password;
        if (with_totp) {
            // A fresh step each time: codes are accepted once.
            clock.advance(std::chrono::seconds(30));
            c.totp = totp_at(people[name].totp_secret, clock.now());
        }
        return c;
    }

    ipc::Reply call(const signerd::Peer& peer, ipc::Request request) {
        return service->handle(peer, request);
    }

    std::int64_t request_sign(const std::string& domain, const std::string& selector,
                              std::int64_t seconds,
                              std::optional<std::uint64_t> budget = std::nullopt) {
        ipc::ElevationRequest r;
        r.auth = password_of("alice");
        r.operation = "sign";
        r.domain = domain;
        r.selector = selector;
        r.duration_seconds = seconds;
        r.budget = budget;
        r.reason = "CHG-7 newsletter";
        auto reply = call(admin_peer, r);
        const auto* ok = std::get_if<ipc::OkReply>(&reply);
        EXPECT_NE(ok, nullptr) << (std::holds_alternative<ipc::ErrorReply>(reply)
                                       ? std::get<ipc::ErrorReply>(reply).message
                                       : "");
        return ok ? ok->id : 0;
    }
    // With a PIN (custody "approver"): sealed, as the console and the CLI do, to a key signerd
    // offers `who` for this request.
    ipc::Reply decide(const std::string& who, const std::string& action, std::int64_t id,
                      const std::string& pin = "") {
        ipc::PinEnvelope envelope;
        if (!pin.empty()) {
            auto sealed = seal_pin(who, "approve", std::to_string(id), pin);
            if (!sealed) {
                return ipc::ErrorReply{ipc::ErrorCode::protocol, sealed.error(), 0, {}};
            }
            envelope = std::move(*sealed);
        }
        return call(admin_peer,
                    ipc::ElevationDecide{password_of(who, true), action, id, "not now", envelope});
    }
    // Asks signerd for a key offered to `who` and seals `plaintext` to it.
    Expected<ipc::PinEnvelope, std::string> seal_pin(const std::string& who,
                                                     const std::string& purpose,
                                                     const std::string& subject,
                                                     const std::string& plaintext,
                                                     const signerd::Peer* peer = nullptr) {
        auto offered =
            call(peer ? *peer : admin_peer, ipc::PinKeyOffer{password_of(who), purpose, subject});
        const auto* offer = std::get_if<ipc::PinKeyOfferReply>(&offered);
        if (offer == nullptr) {
            return unexpected("no key offer: " + error_message_of(offered));
        }
        const auto key = crypto::base64url_decode(offer->public_key);
        custody::PublicKey recipient{};
        if (!key || key->size() != recipient.size()) {
            return unexpected(std::string("a malformed key offer"));
        }
        std::copy(key->begin(), key->end(), recipient.begin());
        auto sealed = custody::seal(
            std::span(reinterpret_cast<const unsigned char*>(plaintext.data()),  // NOLINT
                      plaintext.size()),
            recipient, offer->associated_data);
        if (!sealed) {
            return unexpected(sealed.error());
        }
        return ipc::PinEnvelope{offer->key_id, custody::format_envelope(*sealed)};
    }
    static std::string error_message_of(const ipc::Reply& reply) {
        const auto* e = std::get_if<ipc::ErrorReply>(&reply);
        return e ? e->describe() : "another reply";
    }
    ipc::Reply sign(const std::string& block, const std::string& domain = "example.com",
                    const std::string& selector = "s1",
                    const std::string& algorithm = "rsa-sha256") {
        return call(relay_peer, ipc::SignRequest{domain, selector, algorithm, block, {}});
    }

    JitEngine engine;
    ManualClock clock;
    signerd::Metrics metrics;
    std::unique_ptr<signerd::Service> service;
    std::map<std::string, Person> people;
    const signerd::Peer relay_peer{signerd::PeerKind::relay, "relay", 1001};
    const signerd::Peer web_peer{signerd::PeerKind::web, "web", 1002};
    const signerd::Peer admin_peer{signerd::PeerKind::admin, "root", 0};
    const signerd::Peer reports_peer{signerd::PeerKind::reports, "dkim-report", 1003};

  private:
    signerd::TokenGate& gate_;
    signerd::ServiceOptions options_;
};

// A first passkey registered through webd (`registered`: PasskeyRegister's reply) is pending until
// root confirms it at the CLI: what a test that needs a usable passkey does next. The reply is
// returned as root's confirmation leaves it (confirmed), or as it was when it was a refusal.
inline ipc::Reply confirmed_at_the_cli(SignerdHarness& h, const std::string& user,
                                       ipc::Reply registered) {
    auto* r = std::get_if<ipc::PasskeysReply>(&registered);
    if (r != nullptr && r->passkeys.size() == 1 && !r->passkeys.front().confirmed) {
        const auto confirmed =
            h.call(h.admin_peer, ipc::PasskeyConfirm{{}, user, r->passkeys.front().credential_id});
        EXPECT_TRUE(std::holds_alternative<ipc::OkReply>(confirmed));
        r->passkeys.front().confirmed = std::holds_alternative<ipc::OkReply>(confirmed);
    }
    return registered;
}

inline std::string error_code(const ipc::Reply& reply) {
    const auto* e = std::get_if<ipc::ErrorReply>(&reply);
    return e ? std::string(ipc::to_string(e->code)) : "";
}
inline std::string error_message(const ipc::Reply& reply) {
    const auto* e = std::get_if<ipc::ErrorReply>(&reply);
    return e ? e->message : "";
}

// The whole audit log (its store read directly).
inline std::vector<jit::AuditRecord> audit_log(SignerdHarness& h) {
    auto log = h.engine.journal().store().audit_records(1, 100'000);
    EXPECT_TRUE(log);
    return log ? *log : std::vector<jit::AuditRecord>{};
}

}  // namespace dkim::test
