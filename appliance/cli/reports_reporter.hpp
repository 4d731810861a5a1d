#pragma once
// The authenticated reporter of report mail that `reports import` and `reports fetch-imap` hand
// to dkim-reportd: the From domain of a mail message with a DKIM signature that verified and is
// aligned with it (inbound::Verifier::authenticated_author, as relayd's inbound listener names
// it), sent beside the bytes as "reporter" / "reporters". dkim-reportd lets only reports with an
// authenticated reporter raise critical findings. A bare XML, gzip or zip file, an mbox, a
// message without such a signature or a DNS failure has none: the bytes are imported all the
// same. --no-verify skips the DNS lookups altogether (every reporter empty).

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "commands.hpp"
#include "dkim/dkim/key_fetcher.hpp"
#include "dkim/dmarc/policy.hpp"
#include "dkim/inbound/verifier.hpp"

namespace dkim::cli {

struct ReporterArgs {
    // A lookup that does not answer in 2 s leaves the reporter empty (a few lookups a message).
    DnsArgs dns{{}, 2000, {}};
    bool no_verify = false;
    std::string org_domain = "psl";
    std::string psl_file = dmarc::PublicSuffixList::kDefaultFile;
};

// --no-verify, --org-domain, --psl-file and the DNS options.
void add_reporter_options(CLI::App* command, ReporterArgs& args);

class ReporterCheck {
  public:
    // With --no-verify a check that names no reporter and looks nothing up.
    static Expected<std::unique_ptr<ReporterCheck>, std::string> open(const ReporterArgs& args);

    // The reporter of `bytes` (a file's or a fetched message's, LF or CRLF), or "".
    std::string reporter(std::string_view bytes) const;

  private:
    ReporterCheck() = default;
    std::unique_ptr<dns::UnboundResolver> resolver_;
    std::unique_ptr<KeyFetcher> keys_;
    std::unique_ptr<inbound::Verifier> verifier_;
};

// Whether `bytes` begin like a mail message (a header field), not like an mbox ("From "), XML,
// JSON, gzip or zip: only those are verified.
bool looks_like_message(std::string_view bytes);

}  // namespace dkim::cli
