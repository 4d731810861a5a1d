// ipc::wipe_secrets against every request type, field by field.

#include "dkim/ipc/protocol.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace dkim::ipc {
namespace {

template <class T>
constexpr bool kIsOptionalNumber = false;
template <class T>
constexpr bool kIsOptionalNumber<std::optional<T>> = std::is_arithmetic_v<T>;

// An archive for the requests' serialize(): collects their string fields in the order they are
// sent, the credentials' too. A field of another kind than a number or a string stops the build:
// say here how to reach the strings in it.
struct StringFields {
    std::vector<std::string*> fields;

    template <class... T>
    void operator()(T&... values) {
        (add(values), ...);
    }
    void add(std::string& s) { fields.push_back(&s); }
    // PinSplit's custodians: user names, never secret (and empty in a default request).
    void add(std::vector<std::string>& /*names*/) {}
    template <class T>
    void add(T& value) {
        if constexpr (requires { value.serialize(*this); }) {
            value.serialize(*this);
        } else {
            static_assert(std::is_arithmetic_v<T> || kIsOptionalNumber<T>,
                          "a request field of a new kind: collect its strings here");
        }
    }
};

// Fills every string field of a T, wipes the request, and tells for each field in order whether
// it was wiped ('s') or kept ('p').
template <class T>
std::string wiped_fields(std::size_t& index) {
    Request request{std::in_place_type<T>};
    index = request.index();
    StringFields collect;
    std::get<T>(request).serialize(collect);
    std::vector<std::string> values;
    for (std::size_t i = 0; i < collect.fields.size(); ++i) {
        // Longer than any small-string buffer: the bytes live on the heap.
        values.push_back("field " + std::to_string(i) + " " + std::string(40, 'x'));
        *collect.fields[i] = values.back();
    }
    wipe_secrets(request);
    std::string pattern;
    for (std::size_t i = 0; i < collect.fields.size(); ++i) {
        const std::string& now = *collect.fields[i];
        pattern += now.empty() ? 's' : now == values[i] ? 'p' : '?';
    }
    return pattern;
}

// Every string field of every request type, in the order serialize() names them: 's' for a
// secret that wipe_secrets must wipe, 'p' for a field it keeps. A new field or a new request
// type fails this test until it is classified here (and, if it is secret, wiped).
// user, password, token, totp, token_kind, and the passkey assertion's five fields (not secret:
// bound to one challenge, used once)
const std::string kCredentials =
    "psssp"
    "ppppp";

class WipeSecretsTest : public ::testing::Test {
  protected:
    template <class T>
    void expect(std::string_view name, const std::string& fields) {
        std::size_t index = 0;
        EXPECT_EQ(wiped_fields<T>(index), fields)
            << name << ": 's' is a field wipe_secrets wipes, 'p' one it keeps";
        EXPECT_TRUE(seen_.insert(index).second) << name << " is listed twice";
    }
    std::set<std::size_t> seen_;
};

TEST_F(WipeSecretsTest, EveryRequestTypeHasEverySecretWipedAndNothingElse) {
    expect<SignRequest>("SignRequest", "ppppp");  // domain, selector, algorithm, data, client
    expect<StatusRequest>("StatusRequest", "");
    expect<SessionCreate>("SessionCreate", kCredentials);
    expect<UserAdd>("UserAdd", kCredentials + "pps");  // name, roles, password
    expect<UserList>("UserList", kCredentials);
    expect<UserSetDisabled>("UserSetDisabled", kCredentials + "p");  // name
    expect<ApiTokenCreate>("ApiTokenCreate", kCredentials + "pp");   // user, label
    expect<ApiTokenRevoke>("ApiTokenRevoke", kCredentials);
    expect<TotpEnrol>("TotpEnrol", kCredentials + "p");       // user
    expect<TotpConfirm>("TotpConfirm", kCredentials + "ps");  // user, code
    // operation, domain, selector, client, reason
    expect<ElevationRequest>("ElevationRequest", kCredentials + "ppppp");
    expect<ElevationList>("ElevationList", kCredentials);
    // action, reason, the PIN envelope's key id and text (sealed to signerd: not secret)
    expect<ElevationDecide>("ElevationDecide", kCredentials + "pppp");
    expect<GrantRevoke>("GrantRevoke", kCredentials + "p");  // reason
    expect<GrantList>("GrantList", kCredentials);
    expect<AuditShow>("AuditShow", kCredentials);
    expect<PublicKeyRequest>("PublicKeyRequest", "pp");  // domain, selector
    expect<WhoAmI>("WhoAmI", kCredentials);
    expect<SessionEnd>("SessionEnd", kCredentials);
    expect<KeyList>("KeyList", kCredentials);
    expect<KeyGenerate>("KeyGenerate", kCredentials + "ppp");  // domain, selector, algorithm
    expect<AuditVerify>("AuditVerify", kCredentials);
    expect<KeyActivate>("KeyActivate", kCredentials + "pp");  // domain, selector
    expect<KeyRetire>("KeyRetire", kCredentials + "pp");      // domain, selector
    // domain, selector, private_key, test_data
    expect<KeyImport>("KeyImport", kCredentials + "ppsp");
    expect<SigningKeysRequest>("SigningKeysRequest", "p");        // domain
    expect<SigningSummaryRequest>("SigningSummaryRequest", "p");  // domain
    expect<PasskeyLoginChallenge>("PasskeyLoginChallenge", "");
    // purpose, reason, credential_id, attestation_object, operation, domain, selector, client
    expect<PasskeyChallenge>("PasskeyChallenge", kCredentials + "pppppppp");
    // name, client_data_json, attestation_object
    expect<PasskeyRegister>("PasskeyRegister", kCredentials + "ppp");
    expect<PasskeyList>("PasskeyList", kCredentials + "p");       // user
    expect<PasskeyRename>("PasskeyRename", kCredentials + "pp");  // credential_id, name
    expect<PasskeyRemove>("PasskeyRemove", kCredentials + "pp");
    expect<PasskeyConfirm>("PasskeyConfirm", kCredentials + "pp");  // user, credential_id
    expect<PinKeyOffer>("PinKeyOffer", kCredentials + "pp");        // purpose, subject
    expect<PinShareSubmit>("PinShareSubmit", kCredentials + "pp");  // the envelope's key, text
    expect<PinSplit>("PinSplit", kCredentials + "s");               // the PIN (a first split)
    expect<PinStatusRequest>("PinStatusRequest", kCredentials);
    expect<PinLock>("PinLock", kCredentials + "p");  // reason
    expect<ClusterStatusRequest>("ClusterStatusRequest", kCredentials);
    // domain, algorithm, selector pattern, phase (the checked selectors are a list: public)
    expect<ClusterRotate>("ClusterRotate", kCredentials + "pppp");
    EXPECT_EQ(seen_.size(), std::variant_size_v<Request>)
        << "a request type is missing above: classify its fields";
}

TEST(CredentialsTest, WipeLeavesTheUserAndTheTokenKind) {
    Credentials c{"alice", "pw", "tok", "123456", "api", {}};
    c.wipe();
    EXPECT_EQ(c.user, "alice");
    EXPECT_EQ(c.token_kind, "api");
    EXPECT_TRUE(c.password.empty() && c.token.empty() && c.totp.empty());
}

}  // namespace
}  // namespace dkim::ipc
