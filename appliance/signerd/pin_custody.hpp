#pragma once
// Who holds the token's user PIN, and how it reaches the token (SECURITY.md, "PIN custody").
//
//   file      development: a 0600 file, read at each login.
//   sealed    the image: a systemd credential sealed with the host key (and the TPM2), which
//             systemd decrypts into $CREDENTIALS_DIRECTORY; read at each login, never kept.
//   approver  the approval that activates a grant brings it, sealed end to end to a key signerd
//             offered for that request (dkim/custody/envelope.hpp); webd forwards bytes it cannot
//             open. Used for that login and wiped: a session lost after it means a new approval.
//   shares    M of N custodians submit their shares (each sealed end to end like an approver's
//             PIN) within the unlock window; at the quorum signerd combines them, wipes them, and
//             holds the PIN in locked memory until it stops or `pin lock`: a restart waits for
//             the custodians again.
//
// Envelope keys: for each purpose ("approve" a request, "share" for the current split) signerd
// makes a fresh X25519 key pair, offers its public half with a statement signed by its identity
// key (Ed25519, in its state folder), and takes the private half back at first use or after
// five minutes. An envelope opens only for the purpose, subject and user its key was offered
// for.
//
// Shares: the split (who holds which share, a commitment to each) is stored and audited
// (pin.split); submissions (pin.share.submit, refused ones too, naming the custodian and why,
// never the share), the quorum (pin.share.quorum) and the wipe of the shares (pin.share.wipe,
// at the quorum or at the end of the window) are on the audit log.

#include <array>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "dkim/clock.hpp"
#include "dkim/custody/envelope.hpp"
#include "dkim/custody/shares.hpp"
#include "dkim/expected.hpp"
#include "dkim/hsm/secret.hpp"
#include "dkim/ipc/protocol.hpp"
#include "dkim/jit/authority.hpp"
#include "dkim/jit/directory.hpp"
#include "dkim/jit/journal.hpp"
#include "handlers.hpp"

namespace dkim::signerd {

struct CustodyOptions {
    PinSourceKind mode = PinSourceKind::file;
    std::filesystem::path pin_path;  // file, or $CREDENTIALS_DIRECTORY/<name>
    Duration unlock_window = std::chrono::minutes(15);
    // signerd's identity key (state folder); null: a new one in memory (tests).
    std::shared_ptr<const custody::IdentityKey> identity;
    std::optional<jit::PinShareSet> share_set;  // as stored
};

class PinCustody {
  public:
    static constexpr Duration kKeyLifetime = std::chrono::minutes(5);
    static constexpr std::size_t kMaxKeysPerUser = 8;
    static constexpr std::size_t kMaxKeys = 256;
    static constexpr std::size_t kMaxCustodians = 16;

    PinCustody(jit::Journal& journal, const jit::Authority& authority,
               const jit::Directory& directory, CustodyOptions options);
    PinCustody(const PinCustody&) = delete;
    PinCustody& operator=(const PinCustody&) = delete;

    PinSourceKind mode() const { return options_.mode; }

    // The PIN for a login that no person brings (the lifecycle's, when a grant is active): file
    // and sealed read it afresh, shares give a copy of the one a quorum rebuilt; approver none.
    Expected<hsm::Secret, std::string> pin_for_login() const;
    // The token refused pin_for_login's PIN: in shares mode it is forgotten (a quorum is needed
    // again; trying it at every tick would count against the token's PIN lockout); in sealed
    // mode the credential is not tried again before a restart (systemd decrypts it once, at the
    // start: it cannot change before the next one); in file mode the file is not tried again
    // until it changes (openCryptoki locks its PIN after 3 wrong ones: a reconcile a second
    // would lock it at once).
    void login_refused(TimePoint now, const std::string& why);

    // Opens an approver's PIN: sealed to a key offered to `user` for purpose "approve" and
    // request `request_id`. The key is used up whatever happens.
    Expected<hsm::Secret, std::string> open_approval_pin(const std::string& user,
                                                         std::int64_t request_id,
                                                         const ipc::PinEnvelope& envelope,
                                                         TimePoint now);

    // Offers are counted per user and per peer: the keys webd asks for in a user's name (it holds
    // the console's sessions) never crowd out the ones that user asks for at the CLI.
    ipc::Reply operate(const Peer& peer, const jit::Actor& who, ipc::PinKeyOffer& r, TimePoint now);
    ipc::Reply operate(const jit::Actor& who, ipc::PinShareSubmit& r, TimePoint now);
    ipc::Reply operate(const Peer& peer, const jit::Actor& who, ipc::PinSplit& r, TimePoint now);
    ipc::Reply operate(const Peer& peer, const jit::Actor& who, ipc::PinLock& r, TimePoint now);
    ipc::PinStatusReply status(bool logged_in, TimePoint now);

    // The end of an unlock window: the shares submitted in it are wiped (audited).
    void sweep(TimePoint now);
    std::optional<TimePoint> next_deadline() const;

    // Called after a quorum rebuilt the PIN, or after `pin lock` (the lifecycle logs in or out).
    void on_change(std::function<void(TimePoint)> changed) { changed_ = std::move(changed); }
    // Tries the first split's PIN on the token (the lifecycle's try_pin): a PIN the token refuses
    // is never split. Called without this custody's lock held. Unset (unit tests of the custody
    // alone): not tried.
    using PinCheck =
        std::function<Expected<void, std::string>(hsm::Secret, const std::string&, TimePoint)>;
    void on_split_check(PinCheck check) { check_pin_ = std::move(check); }

  private:
    struct Offer {
        std::string purpose;
        std::string subject;
        std::string user;
        bool admin_peer = false;  // asked for at the CLI (counted apart from webd's)
        custody::RecipientKey key;
        TimePoint expires;
    };
    struct Submitted {
        std::string custodian;
        custody::Share share;
        TimePoint at;
    };
    struct State {
        std::map<std::string, Offer> offers;  // by key id
        std::optional<jit::PinShareSet> set;
        std::vector<Submitted> submitted;  // the current window's, one per custodian
        TimePoint window_ends;
        std::optional<hsm::Secret> held;  // shares: the PIN a quorum rebuilt
        TimePoint quorum_at;              // when it did: a re-split follows it within the window
        bool credential_refused = false;  // sealed: the token refused the credential's PIN
        // file: the token refused the PIN of the file as it was then (device, inode, size,
        // modification time): not tried again until the file changes.
        std::optional<std::array<std::int64_t, 5>> refused_file;
    };

    Expected<hsm::Secret, std::string> open_locked(State& state, std::string_view purpose,
                                                   std::string_view subject,
                                                   const std::string& user,
                                                   const ipc::PinEnvelope& envelope, TimePoint now);
    void sweep_locked(State& state, TimePoint now);
    // Records; the outcome of a refusal stands whether or not it could be recorded.
    Expected<void, std::string> record(TimePoint now, const std::string& actor, std::string action,
                                       std::string outcome, std::string reason, std::string detail,
                                       std::vector<jit::Mutation> mutations = {});
    ipc::Reply refuse_share(State& state, TimePoint now, const std::string& custodian,
                            const std::string& why);

    jit::Journal& journal_;
    const jit::Authority& authority_;
    const jit::Directory& directory_;
    const CustodyOptions options_;
    std::shared_ptr<const custody::IdentityKey> identity_;
    mutable std::mutex mutex_;
    State state_;
    std::function<void(TimePoint)> changed_;
    PinCheck check_pin_;
};

}  // namespace dkim::signerd
