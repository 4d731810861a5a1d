#pragma once
// The fixture of the relay's Transaction tests (transaction_test.cpp, the red team's
// transaction_attack_test.cpp, and report_transaction_test.cpp's report addresses): a relayd
// configuration with a network client, an AUTH client and report addresses, the fakes of
// transaction_fakes.hpp, a ManualClock, and helpers that feed bytes and collect replies.

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <fstream>

#include "dkim/dns/resolver.hpp"
#include "jit_fixture.hpp"
#include "signing_policy.hpp"
#include "transaction.hpp"
#include "transaction_fakes.hpp"
#include "verifying_policy.hpp"

namespace dkim::relayd::fakes {

using namespace std::chrono_literals;

inline std::string argon2_hash(const std::string& password) {
    std::array<char, crypto_pwhash_STRBYTES> out{};
    if (sodium_init() < 0 ||
        crypto_pwhash_str(out.data(), password.data(), password.size(), crypto_pwhash_OPSLIMIT_MIN,
                          crypto_pwhash_MEMLIMIT_MIN) != 0) {
        return {};
    }
    return out.data();
}

inline const char* const kRelayConfig = R"(hostname = "relay.test"
[[listen]]
address = "127.0.0.1:2525"
[[listen]]
address = "127.0.0.1:2526"
role = "inbound"
[next_hop]
url = "maildir:/nonexistent"
[[domain]]
name = "example.com"
selectors = ["sel1"]
[[domain]]
name = "other.test"
selectors = ["sel1"]
[[client]]
name = "apps"
networks = ["10.0.0.0/8"]
domains = ["example.com"]
[limits]
commands = @COMMANDS@
errors = 3
auth_failures = 2
recipients = 3
message_size = 4096
line_length = 200
[inbound]
domains = ["example.net"]
authserv_id = "relay.test"
[inbound.reports]
addresses = ["dmarc-reports@example.net", "TLS-Reports@Reports.Example.org"]
max_size = 2048
max_per_client_per_hour = 3
max_per_hour = 5
)";

class TransactionFixture : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto file = dir_ / "relayd.toml";
        std::string text = kRelayConfig;
        text.replace(text.find("@COMMANDS@"), 10, std::to_string(command_limit()));
        std::ofstream(file) << text << "[[client]]\nname = \"alice\"\npassword_hash = \""
                            << argon2_hash("s3cret") << "\"\ndomains = [\"example.com\"]\n";
        auto loaded = load_config(file.string());
        ASSERT_TRUE(loaded) << loaded.error();
        config_ = std::make_unique<Config>(std::move(*loaded));
    }

    // A signing transaction from `client` (nullptr: an address no [[client]] matches).
    void start_signing(const Client* network_client, bool tls_offered = false,
                       bool plain_auth = false) {
        policy_ = std::make_unique<SigningPolicy>(*config_, signing_, metrics_, clock_);
        start(network_client, tls_offered, plain_auth);
    }
    // The [limits] commands of the relay's configuration.
    virtual std::size_t command_limit() const { return 40; }
    void start_verifying(bool plain_auth = false) {
        keys_ = std::make_unique<KeyFetcher>(resolver_);
        inbound::Settings settings;
        settings.authserv_id = "relay.test";
        settings.dmarc.method = dmarc::OrgDomainMethod::tree_walk;  // no PSL file needed
        verifier_ = std::make_unique<inbound::Verifier>(resolver_, *keys_, settings);
        policy_ = std::make_unique<VerifyingPolicy>(*config_, *verifier_, metrics_, clock_);
        start(nullptr, false, plain_auth);
    }
    // An inbound transaction with [inbound.reports] from `address`; the report intake (and so
    // its hourly counts) is the same for every transaction of a test.
    void start_reports(const std::string& address = "10.1.2.3") {
        if (!intake_) {
            intake_ =
                std::make_unique<ReportIntake>(*config_->inbound->reports, submitter_, clock_);
        }
        address_ = address;
        reports_ = intake_.get();
        start_verifying();
    }
    void start(const Client* network_client, bool tls_offered, bool plain_auth) {
        ConnectionInfo c;
        c.id = "t1";
        c.address_text = address_;
        c.network_client = network_client;
        c.tls_offered = tls_offered;
        c.plain_auth = plain_auth;
        txn_ =
            std::make_unique<Transaction>(*config_, c, *policy_, host_, metrics_, clock_, reports_);
    }
    const Client* apps() const { return config_->client("apps"); }

    // Feeds bytes as one chunk; returns every reply sent since the last call.
    std::string send(std::string_view bytes) {
        run(txn_->receive(bytes));
        return replies();
    }
    std::string replies() {
        std::string out = host_.sent + txn_->take_output();
        host_.sent.clear();
        return out;
    }
    void run(awaitable<void> task) {
        asio::co_spawn(io_, std::move(task), asio::detached);
        io_.restart();
        io_.run();
    }
    static std::vector<int> codes(const std::string& replies) {
        std::vector<int> out;
        std::size_t at = 0;
        while (at < replies.size()) {
            const std::size_t end = replies.find("\r\n", at);
            if (end == std::string::npos) {
                break;
            }
            if (end - at >= 4 && replies[at + 3] == ' ') {
                out.push_back(std::stoi(replies.substr(at, 3)));
            }
            at = end + 2;
        }
        return out;
    }

    std::size_t data_calls(const std::string& name = "") const {
        return static_cast<std::size_t>(
            std::count(host_.hop.calls.begin(), host_.hop.calls.end(), name + "DATA"));
    }

    std::filesystem::path dir_ = test::make_temp_dir("relayd-transaction");
    std::unique_ptr<Config> config_;
    ManualClock clock_{from_unix_ms(1'767'225'600'000)};  // 2026-01-01
    RelayMetrics metrics_;
    FakeHost host_;
    FakeSigning signing_;
    dns::FakeResolver resolver_;
    std::unique_ptr<KeyFetcher> keys_;
    std::unique_ptr<inbound::Verifier> verifier_;
    std::unique_ptr<MailPolicy> policy_;
    FakeSubmitter submitter_;
    std::unique_ptr<ReportIntake> intake_;
    ReportIntake* reports_ = nullptr;  // set by start_reports
    std::string address_ = "10.1.2.3";
    std::unique_ptr<Transaction> txn_;
    asio::io_context io_;
};

inline const std::string kMessage =
    "From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody line\r\n";
inline const std::string kEnvelope =
    "EHLO c.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n";

}  // namespace dkim::relayd::fakes
