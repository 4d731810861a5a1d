#pragma once
// A JIT engine on a real SQLite store in a temporary folder, with a ManualClock, that can be
// "restarted" (everything rebuilt from the store) and whose store can be made to fail.

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <random>

#include "dkim/jit/authority.hpp"
#include "dkim/jit/credentials.hpp"
#include "dkim/jit/directory.hpp"
#include "dkim/jit/journal.hpp"
#include "dkim/jit/store.hpp"

namespace dkim::test {

// Forwards to a real store; commit() fails while `failing` is set (a full or read-only disk).
class FailingStore final : public jit::Store {
  public:
    explicit FailingStore(std::unique_ptr<jit::Store> inner) : inner_(std::move(inner)) {}
    Expected<jit::StoredState, std::string> load() override { return inner_->load(); }
    Expected<void, std::string> commit(const std::vector<jit::Mutation>& m,
                                       const std::vector<jit::AuditRecord>& r) override {
        if (failing) {
            return unexpected(std::string("disk I/O error (injected)"));
        }
        ++commits;
        return inner_->commit(m, r);
    }
    Expected<std::vector<jit::AuditRecord>, std::string> audit_records(
        std::int64_t from, std::int64_t limit) override {
        return inner_->audit_records(from, limit);
    }
    Expected<std::vector<jit::Checkpoint>, std::string> checkpoints() override {
        return inner_->checkpoints();
    }
    Expected<jit::SigningHours, std::string> signing_hours(std::int64_t from, std::int64_t until,
                                                           const std::string& domain,
                                                           std::size_t limit) override {
        return inner_->signing_hours(from, until, domain, limit);
    }
    std::atomic<bool> failing{false};
    std::atomic<int> commits{0};

  private:
    std::unique_ptr<jit::Store> inner_;
};

inline std::filesystem::path make_temp_dir(const std::string& prefix, bool memory = false) {
    // /dev/shm for tests that commit tens of thousands of times: fsync costs nothing there.
    const std::filesystem::path base = memory && std::filesystem::is_directory("/dev/shm")
                                           ? std::filesystem::path("/dev/shm")
                                           : std::filesystem::temp_directory_path();
    std::string pattern = (base / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    return pattern;
}

inline TimePoint test_epoch() {
    // 2026-11-26T12:00:00Z
    return from_unix_ms(1'795'694'400'000);
}

class JitEngine {
  public:
    explicit JitEngine(jit::Policy policy = jit::Policy::defaults(), bool memory = false)
        : dir_(make_temp_dir("dkim-jit", memory)), policy_(std::move(policy)) {
        restart();
    }
    ~JitEngine() {
        reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    JitEngine(const JitEngine&) = delete;
    JitEngine& operator=(const JitEngine&) = delete;

    // Drops every in-memory object and rebuilds them from the store (a restart).
    void restart() {
        reset();
        auto opened = jit::open_sqlite_store(db());
        if (!opened) {
            throw std::runtime_error(opened.error());
        }
        store_ = std::make_unique<FailingStore>(std::move(*opened));
        auto state = store_->load();
        if (!state) {
            throw std::runtime_error(state.error());
        }
        journal_ = std::make_unique<jit::Journal>(*store_, state->audit_seq, state->audit_head);
        authority_ = std::make_unique<jit::Authority>(*journal_, policy_, *state);
        directory_ =
            std::make_unique<jit::Directory>(*journal_, *state, jit::PasswordCost::minimal());
        keys_ = std::make_unique<jit::KeyRegistry>(state->keys);
        pin_share_set_ = state->pin_share_set;
    }
    // As the store had it at the last restart (signerd passes it to its PIN custody).
    const std::optional<jit::PinShareSet>& pin_share_set() const { return pin_share_set_; }

    std::filesystem::path db() const { return dir_ / "signerd.db"; }
    jit::Authority& authority() { return *authority_; }
    jit::Directory& directory() { return *directory_; }
    jit::Journal& journal() { return *journal_; }
    jit::KeyRegistry& keys() { return *keys_; }
    FailingStore& store() { return *store_; }
    jit::Policy& policy() { return policy_; }

  private:
    void reset() {
        keys_.reset();
        directory_.reset();
        authority_.reset();
        journal_.reset();
        store_.reset();
    }
    std::filesystem::path dir_;
    jit::Policy policy_;
    std::unique_ptr<FailingStore> store_;
    std::unique_ptr<jit::Journal> journal_;
    std::unique_ptr<jit::Authority> authority_;
    std::unique_ptr<jit::Directory> directory_;
    std::unique_ptr<jit::KeyRegistry> keys_;
    std::optional<jit::PinShareSet> pin_share_set_;
};

inline jit::Actor user(const std::string& name, std::initializer_list<jit::Role> roles) {
    jit::RoleSet set = 0;
    for (jit::Role r : roles) {
        set |= static_cast<jit::RoleSet>(r);
    }
    return jit::Actor{jit::Actor::Kind::user, name, set, {}};
}

inline jit::RequestInput sign_request(const std::string& domain, const std::string& selector,
                                      Duration duration,
                                      std::optional<std::uint64_t> budget = std::nullopt) {
    jit::RequestInput in;
    in.scope = jit::Scope{jit::Operation::sign, domain, selector, "*"};
    in.duration = duration;
    in.budget = budget;
    in.reason = "CHG-1234 quarterly newsletter";
    return in;
}

// RFC 4648 base32, as authenticator apps read otpauth:// secrets.
inline std::string base32_decode(std::string_view text) {
    return jit::base32_decode(text).value_or("");
}

// The six-digit TOTP code for `secret` at `t`, as an authenticator app computes it.
inline std::string totp_at(const std::string& secret, TimePoint t) {
    char text[8];
    std::snprintf(text, sizeof text, "%06u",
                  jit::totp_code(secret, jit::totp_step(to_unix_ms(t) / 1000)));
    return text;
}

}  // namespace dkim::test
