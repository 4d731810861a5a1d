#pragma once
// The author's domain: the domain part of each mailbox in a From: field (RFC 5322 §3.4,
// §3.6.2), for the relay's "may this client send for this domain" check and, later, DMARC's
// RFC5322.From domain. Display names, comments, quoted strings, obsolete routes and group
// syntax are understood; the value comes from untrusted mail.

#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::mail {

// The lower-cased domains of the mailboxes in `value` (an unfolded From: value), in order.
// An error when there is no mailbox, or a mailbox has no domain or an invalid one.
Expected<std::vector<std::string>, std::string> mailbox_domains(std::string_view value);

}  // namespace dkim::mail
