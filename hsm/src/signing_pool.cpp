#include "dkim/hsm/signing_pool.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <optional>

#include "dkim/lock_guarded.hpp"
#include "pkcs11.hpp"
#include "token_state.hpp"

namespace dkim::hsm {

using detail::Session;

struct SigningPool::State {
    struct Sessions {
        std::vector<Session> idle;
        std::size_t open = 0;  // idle + leased
        // Private key handles by CKA_ID, valid only for the login epoch they were found in.
        std::uint64_t handles_epoch = 0;
        std::map<std::vector<unsigned char>, CK_OBJECT_HANDLE> handles;
    };
    LockGuarded<Sessions> sessions;
    // Signalled when a leased session comes back or goes: waited on with `sessions` locked.
    std::condition_variable available;
};

namespace {

// A session leased to one operation; back to the pool on destruction unless discarded.
class Lease {
  public:
    Lease(SigningPool::State& state, Session session)
        : state_(&state), session_(std::move(session)) {}
    Lease(Lease&& other) noexcept
        : state_(std::exchange(other.state_, nullptr)), session_(std::move(other.session_)) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
        if (state_ == nullptr) {
            return;
        }
        {
            auto sessions = state_->sessions.lock();
            if (discarded_) {
                --sessions->open;
            } else {
                sessions->idle.push_back(std::move(session_));
            }
        }
        state_->available.notify_one();
    }

    Session& session() { return session_; }
    // The token reported the session gone: forget the handle, do not return it.
    void discard(bool handle_is_dead) {
        if (handle_is_dead) {
            session_.forget();
        }
        session_.close();
        discarded_ = true;
    }

  private:
    SigningPool::State* state_;
    Session session_;
    bool discarded_ = false;
};

// RFC 8017 §9.2 note 1: the DER encoding of DigestInfo for SHA-256, before the 32-byte hash.
constexpr std::array<unsigned char, 19> kSha256DigestInfo{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                          0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                          0x01, 0x05, 0x00, 0x04, 0x20};

}  // namespace

SigningPool::SigningPool(std::shared_ptr<Token> token) : SigningPool(std::move(token), Options{}) {}

SigningPool::SigningPool(std::shared_ptr<Token> token, Options options)
    : token_(std::move(token)), options_(options), state_(std::make_unique<State>()) {
    if (options_.max_sessions == 0) {
        options_.max_sessions = 1;
    }
}

SigningPool::~SigningPool() = default;

std::size_t SigningPool::open_sessions() const {
    return state_->sessions.read_only_lock()->open;
}

Result<std::vector<unsigned char>> SigningPool::sign(const KeyInfo& key,
                                                     std::span<const unsigned char> data) {
    if (auto ok = token_->module()->check_not_forked(); !ok) {
        return dkim::unexpected(std::move(ok).error());
    }
    // What the token signs: the data itself (CKM_SHA256_RSA_PKCS hashes it), its SHA-256 hash
    // (Ed25519, RFC 8463), or the hash in its DER DigestInfo (CKM_RSA_PKCS pads only: RFC 8017
    // §9.2 step 2, giving the same signature CKM_SHA256_RSA_PKCS would).
    std::array<unsigned char, sizeof kSha256DigestInfo + SHA256_DIGEST_LENGTH> digest_info{};
    std::span<const unsigned char> input = data;
    const CK_MECHANISM_TYPE type =
        key.type == KeyType::rsa ? token_->rsa_signing_mechanism() : CKM_EDDSA;
    if (type != CKM_SHA256_RSA_PKCS) {
        std::copy(kSha256DigestInfo.begin(), kSha256DigestInfo.end(), digest_info.begin());
        SHA256(data.data(), data.size(), digest_info.data() + kSha256DigestInfo.size());
        input = std::span<const unsigned char>(digest_info);
        if (type == CKM_EDDSA) {
            input = input.subspan(kSha256DigestInfo.size());
        }
    }
    CK_MECHANISM mechanism{type, nullptr, 0};
    auto& state = *state_;
    // Only failures need this text: build it then, not on every signature.
    const auto context = [&] { return token_->name() + ": signing with key " + key.name.label(); };

    for (int attempt = 0; attempt < 2; ++attempt) {
        const std::uint64_t epoch = token_->state_->epoch.load(std::memory_order_acquire);
        if (epoch == 0) {
            return dkim::unexpected(Error{ErrorCode::locked,
                                          token_->name() +
                                              " is locked: it is not logged in, and signing "
                                              "needs an active login (an approved grant)",
                                          "", CKR_USER_NOT_LOGGED_IN});
        }

        // Lease a session: an idle one, a new one, or wait while max_sessions are busy.
        std::optional<Lease> lease;
        CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
        {
            auto sessions = state.sessions.lock();
            state.available.wait(sessions.lock(), [&] {
                return !sessions->idle.empty() || sessions->open < options_.max_sessions;
            });
            if (sessions->handles_epoch != epoch) {
                sessions->handles.clear();
                sessions->handles_epoch = epoch;
            }
            if (auto it = sessions->handles.find(key.id); it != sessions->handles.end()) {
                handle = it->second;
            }
            if (!sessions->idle.empty()) {
                lease.emplace(state, std::move(sessions->idle.back()));
                sessions->idle.pop_back();
            } else {
                ++sessions->open;
            }
        }
        if (!lease) {
            auto session = Session::open(token_->module(), token_->slot_id(), false);
            if (!session) {
                --state.sessions.lock()->open;
                state.available.notify_one();
                if (attempt == 0 && session.error().code == ErrorCode::session_lost) {
                    if (auto ok = token_->recover_login(epoch); !ok) {
                        return dkim::unexpected(std::move(ok).error());
                    }
                    continue;
                }
                return dkim::unexpected(std::move(session).error());
            }
            lease.emplace(state, std::move(*session));
        }
        Session& session = lease->session();

        CK_RV rv = CKR_OK;
        std::string failed_call;  // only set on failure
        const auto failed = [&](Error error) {
            rv = error.rv;
            failed_call = std::move(error.function);
        };
        if (handle == CK_INVALID_HANDLE) {
            // Look the key up again after every login: old handles are invalid.
            CK_OBJECT_CLASS klass = CKO_PRIVATE_KEY;
            std::array match{detail::attr(CKA_CLASS, klass),
                             detail::attr(CKA_ID, std::span<const unsigned char>(key.id))};
            auto found = session.find_objects(match, 2);
            if (!found) {
                rv = found.error().rv;
                failed_call = "C_FindObjects";
            } else if (found->empty()) {
                // Invisible private objects mean we were logged out behind our back.
                auto logged_in = session.user_logged_in();
                if (logged_in && *logged_in) {
                    return dkim::unexpected(Error{ErrorCode::key_not_found,
                                                  token_->name() + " has no private key " +
                                                      key.name.label() +
                                                      " with the expected CKA_ID",
                                                  "C_FindObjects", 0});
                }
                rv = logged_in ? CKR_USER_NOT_LOGGED_IN : logged_in.error().rv;
                failed_call = "C_FindObjects";
            } else {
                handle = found->front();
                auto sessions = state.sessions.lock();
                if (sessions->handles_epoch == epoch) {
                    sessions->handles[key.id] = handle;
                }
            }
        }

        if (rv == CKR_OK) {
            if (auto ok = session.sign_init(mechanism, handle); !ok) {
                failed(std::move(ok).error());
            }
        }
        if (rv == CKR_OK) {
            auto signature = session.sign(input);
            if (signature) {
                return std::move(*signature);
            }
            failed(std::move(signature).error());
        }

        const bool session_lost = detail::is_session_lost(rv);
        const bool stale_login = rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_KEY_HANDLE_INVALID ||
                                 rv == CKR_OBJECT_HANDLE_INVALID;
        if ((session_lost || stale_login) && attempt == 0) {
            lease->discard(session_lost);
            lease.reset();
            {
                auto sessions = state.sessions.lock();
                sessions->handles.clear();
                // Idle sessions were most likely closed by the same event; keep only those
                // the token still knows.
                std::erase_if(sessions->idle, [&](Session& idle) {
                    auto alive = idle.state();
                    if (alive) {
                        return false;
                    }
                    idle.forget();
                    --sessions->open;
                    return true;
                });
            }
            if (auto ok = token_->recover_login(epoch); !ok) {
                return dkim::unexpected(std::move(ok).error());
            }
            continue;
        }
        if (session_lost) {
            lease->discard(true);
        }
        Error error = detail::make_error(rv, failed_call, context());
        if (error.code == ErrorCode::locked) {
            error.message = token_->name() + " is locked: it is not logged in";
        }
        return dkim::unexpected(std::move(error));
    }
    return dkim::unexpected(Error{
        ErrorCode::session_lost, context() + ": the session was lost again after recovery", "", 0});
}

}  // namespace dkim::hsm
