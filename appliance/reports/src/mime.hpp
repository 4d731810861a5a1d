#pragma once
// The MIME side of report mails, through GMime: the decoded attachments of a message, and an
// RFC 6591 failure report when the message is one. Internal to the reader.

#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"
#include "dkim/reports/model.hpp"

namespace dkim::reports::mime {

struct Attachment {
    std::string name;   // the part's file name, or its content type when it has none
    std::string bytes;  // decoded (base64, quoted-printable)
};

struct MailContent {
    std::vector<Attachment> attachments;
    std::vector<FailureReport> failures;
    std::vector<std::string> problems;  // parts skipped, with why (caps)
};

// Walks a whole message (at most limits.max_mime_parts parts, limits.max_mime_depth deep).
Expected<MailContent, std::string> walk(std::string_view message, const Limits& limits);

// RFC 5965 §3.1 fields ("Name: value", folded lines joined) of a feedback-report part (or of
// the plain-text variant's lines), into `report`. false when no Feedback-Type/Auth-Failure
// field was found.
bool read_feedback_fields(std::string_view text, FailureReport& report);

}  // namespace dkim::reports::mime
