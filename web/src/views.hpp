#pragma once
// signerd's replies (ipc::*View) as the API's JSON shapes (api_json.hpp).

#include <string>
#include <vector>

#include "api_json.hpp"
#include "dkim/ipc/protocol.hpp"

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

}  // namespace dkim::web::detail
