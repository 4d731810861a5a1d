#pragma once
// signerd's replies (ipc::*View) as the API's JSON shapes (api_json.hpp).

#include <string>
#include <vector>

#include "api_json.hpp"
#include "dkim/ipc/protocol.hpp"
#include "json_body.hpp"

namespace dkim::web::detail {

// "requester,approver" -> {"requester", "approver"}
std::vector<std::string> split_roles(const std::string& roles);

api::GrantSummary grant_view(const ipc::GrantView& g);

// The request with the grant that came of it, if one is among `grants`.
api::Elevation elevation_view(const ipc::RequestView& r, const std::vector<ipc::GrantView>& grants);

api::Key key_view(const ipc::KeyView& k);

// signerd's permissions, and webd's own rule for reports (dkim-reportd knows no users): read
// them with the auditor or admin role (the audit log's rule), upload them with admin.
api::Permissions permissions_view(const ipc::Permissions& p, const std::string& roles);
bool may_read_reports(const std::string& roles);
bool may_upload_reports(const std::string& roles);

api::Passkey passkey_view(const ipc::PasskeyView& p);
api::PasskeyChallenge challenge_view(const ipc::PasskeyChallengeReply& c);

// A WebAuthn assertion as the console sends it: an object of base64url members credential_id,
// client_data_json, authenticator_data, signature (required) and user_handle (optional). `name`
// is the member of `body` that holds it; nullptr: the body itself is the assertion.
Expected<std::optional<ipc::PasskeyAssertion>, FieldError> read_assertion(JsonBody& body,
                                                                          const char* name,
                                                                          bool required);

api::PinStatus pin_status_view(const ipc::PinStatusReply& s);
api::ClusterStatus cluster_status_view(const ipc::ClusterStatusReply& s);
api::PinKeyOffer pin_key_offer_view(const ipc::PinKeyOfferReply& o);

// A PIN or a share sealed to signerd, as the console sends it: an object {key_id, envelope}
// (dkim/custody/envelope.hpp's text, "v1." and base64url fields). webd checks its shape and
// sizes only; signerd opens it. Anything else (a string: a PIN or a share in clear) is refused
// without its value being quoted.
Expected<std::optional<ipc::PinEnvelope>, FieldError> read_pin_envelope(JsonBody& body,
                                                                        const char* name,
                                                                        bool required);

// A JSON object whose members are `value`'s (its save()), at the top level.
template <class T>
std::string root_object(const T& value) {
    std::ostringstream out;
    {
        cereal::JSONOutputArchive ar(out, cereal::JSONOutputArchive::Options::NoIndent());
        value.save(ar);
    }
    return out.str();
}

}  // namespace dkim::web::detail
