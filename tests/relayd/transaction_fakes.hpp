#pragma once
// Fakes for the relay's Transaction (transaction.hpp): a next hop that records what it was
// told, a host that collects replies and log lines, a signing backend whose signature names
// the body it hashed, and a dkim-reportd that records submissions and answers as told. Used by
// transaction_test.cpp, report_transaction_test.cpp and fuzz_smtp_transaction.cpp.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "report_intake.hpp"
#include "signing.hpp"
#include "transaction.hpp"

namespace dkim::relayd::fakes {

// --- fakes -----------------------------------------------------------------------------------

// What the next hop was told, and what it answers.
struct HopScript {
    smtp::Reply mail = local_reply(250, "2.1.0", "ok");
    smtp::Reply rcpt = local_reply(250, "2.1.5", "ok");
    smtp::Reply data = local_reply(250, "2.0.0", "queued as 1");
    std::vector<std::string> calls;     // "MAIL <a>", "RCPT <b>", "DATA", "RSET", "QUIT"
    std::vector<std::string> messages;  // prefix + message of each DATA
};

class FakeNextHop final : public NextHopSession {
  public:
    FakeNextHop(HopScript& script, std::string name) : script_(script), name_(std::move(name)) {}
    awaitable<smtp::Reply> mail(const MailCommand& command) override {
        script_.calls.push_back(name_ + "MAIL <" + command.reverse_path + ">");
        co_return script_.mail;
    }
    awaitable<smtp::Reply> rcpt(const std::string& forward_path) override {
        script_.calls.push_back(name_ + "RCPT <" + forward_path + ">");
        co_return script_.rcpt;
    }
    awaitable<smtp::Reply> data(const std::string& prefix, const std::string& message,
                                bool /*eight_bit*/) override {
        script_.calls.push_back(name_ + "DATA");
        script_.messages.push_back(prefix + message);
        co_return script_.data;
    }
    awaitable<void> reset() override {
        script_.calls.push_back(name_ + "RSET");
        co_return;
    }
    awaitable<void> quit() override {
        script_.calls.push_back(name_ + "QUIT");
        co_return;
    }
    std::string describe() const override { return "fake"; }

  private:
    HopScript& script_;
    std::string name_;
};

class FakeHost final : public TransactionHost {
  public:
    awaitable<bool> flush(std::string& output) override {
        ++flushes;
        if (broken) {
            co_return false;
        }
        sent += output;
        output.clear();
        co_return true;
    }
    std::shared_ptr<NextHopSession> next_hop(Route route) override {
        return std::make_shared<FakeNextHop>(hop, route == Route::quarantine ? "Q:" : "");
    }
    awaitable<bool> verify_password(const Client* client, const std::string& password) override {
        ++password_checks;
        co_return client != nullptr && client->name == "alice" && password == "s3cret";
    }
    void log(const std::string& line) override { logs.push_back(line); }

    HopScript hop;
    std::string sent;
    std::size_t flushes = 0;
    bool broken = false;  // the client reset the connection: writes fail
    std::size_t password_checks = 0;
    std::vector<std::string> logs;
};

// A signature that names the body it hashed: the test sees what the policy fed it.
class FakeSignature final : public BodySignature {
  public:
    explicit FakeSignature(const SignFailure* failure) : failure_(failure) {}
    void update_body(std::string_view chunk) override { body_.append(chunk); }
    Expected<std::string, SignFailure> finish(const mail::HeaderBlock& /*header*/,
                                              TimePoint now) override {
        if (failure_ != nullptr) {
            return unexpected(*failure_);
        }
        return "DKIM-Signature: v=1; t=" + std::to_string(to_unix_ms(now) / 1000) +
               "; bodylen=" + std::to_string(body_.size()) + "\r\n";
    }
    const std::vector<std::string>& selectors() const override { return selectors_; }

  private:
    const SignFailure* failure_;
    std::string body_;
    std::vector<std::string> selectors_{"sel1"};
};

class FakeSigning final : public SigningBackend {
  public:
    std::unique_ptr<BodySignature> start(const SigningDomain& /*domain*/,
                                         const std::string& smtp_client) override {
        clients.push_back(smtp_client);
        if (!cached) {
            return nullptr;
        }
        return std::make_unique<FakeSignature>(failure ? &*failure : nullptr);
    }
    Expected<void, SignFailure> prepare(const SigningDomain& /*domain*/) override {
        ++prepares;
        if (prepare_fails) {
            return unexpected(
                SignFailure{SignFailure::Kind::unavailable, "signerd is down", "", 0});
        }
        cached = true;
        return {};
    }

    bool cached = true;
    bool prepare_fails = false;
    std::size_t prepares = 0;
    std::optional<SignFailure> failure;
    std::vector<std::string> clients;
};

// dkim-reportd: each submission recorded, `answer` answered.
class FakeSubmitter final : public ReportSubmitter {
  public:
    FakeSubmitter() { clear(); }
    // Back to answering "stored as submission 7", with nothing recorded.
    void clear() {
        answer = ReportAnswer{};
        answer.kind = ReportAnswer::Kind::stored;
        answer.submission = 7;
        answer.reports = 1;
        origins.clear();
        messages.clear();
        reporters.clear();
    }
    awaitable<ReportAnswer> submit(const std::string& origin, const std::string& message,
                                   const std::string& reporter) override {
        origins.push_back(origin);
        messages.push_back(message);
        reporters.push_back(reporter);
        co_return answer;
    }

    ReportAnswer answer;
    std::vector<std::string> origins;
    std::vector<std::string> messages;
    std::vector<std::string> reporters;
};

}  // namespace dkim::relayd::fakes
