#pragma once
// The signing listener's policy: mail from configured clients only (by address or AUTH), from
// their own domains only, signed through signerd before it leaves. The From: domain decides
// the keys; the body is hashed while it arrives; the signature waits for the final dot.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dkim/mail/header.hpp"
#include "policy.hpp"
#include "signing.hpp"

namespace dkim::relayd {

// Where blocking work runs: a thread pool in the daemon, the calling thread in tests.
class Blocking {
  public:
    explicit Blocking(asio::thread_pool* pool = nullptr) : pool_(pool) {}
    // `f` captures only references and pointers (run_blocking's rule).
    template <class F>
    awaitable<std::invoke_result_t<F>> run(F f) {
        if (pool_ != nullptr) {
            co_return co_await run_blocking(*pool_, f);
        }
        co_return f();
    }

  private:
    asio::thread_pool* pool_;
};

class SigningPolicy final : public MailPolicy {
  public:
    SigningPolicy(const Config& config, SigningBackend& signing, RelayMetrics& metrics,
                  const Clock& clock, Blocking blocking = Blocking());

    bool offers_auth() const override { return true; }
    awaitable<std::optional<smtp::Reply>> mail(const Peer& peer, const smtp::Path& sender) override;
    std::optional<Refusal> rcpt(const Peer& peer, const smtp::Path& recipient) override;
    void end_of_header(const Peer& peer, std::string_view header_section) override;
    void body(std::string_view chunk) override;
    awaitable<Delivery> end_of_data(const Peer& peer, const std::string& message,
                                    std::size_t body_start, bool eight_bit) override;
    std::optional<std::string> log_line(const Peer& peer, const std::string& session_id,
                                        std::uint64_t sequence, std::size_t recipients,
                                        const Conclusion& c) const override;
    void annotate(Conclusion& c) const override;
    void reset() override;
    // After end_of_header: why this message is not one to sign for `peer` (its header section
    // is unusable, a From: domain is not the client's, or no [[domain]] signs it), or nullopt
    // when it is. The SMTP listener refuses such mail at the final dot; the milter lets it go
    // untouched, as OpenDKIM does with mail its SigningTable does not name.
    std::optional<std::string> not_signed_because(const Peer& peer) const;

  private:
    // The refusal of a message that is not one to sign (see not_signed_because), or nullopt.
    std::optional<smtp::Reply> unsignable(const Peer& peer) const;

    const Config& config_;
    SigningBackend& signing_;
    RelayMetrics& metrics_;
    const Clock& clock_;
    Blocking blocking_;
    // The message's header section, once complete.
    std::optional<mail::HeaderBlock> header_;
    std::string header_error_;
    std::vector<std::string> from_domains_;
    const SigningDomain* domain_ = nullptr;
    std::unique_ptr<BodySignature> signature_;
};

}  // namespace dkim::relayd
