#include "reports_reporter.hpp"

#include <chrono>
#include <iostream>

namespace dkim::cli {

void add_reporter_options(CLI::App* command, ReporterArgs& args) {
    command->add_flag("--no-verify", args.no_verify,
                      "look nothing up: no report is sent with an authenticated reporter (DKIM "
                      "signature aligned with the From domain)");
    command
        ->add_option("--org-domain", args.org_domain,
                     "organizational domains for the reporter's alignment: the Public Suffix "
                     "List or the DMARCbis DNS tree walk")
        ->check(CLI::IsMember({"psl", "tree-walk"}))
        ->capture_default_str();
    command->add_option("--psl-file", args.psl_file, "Public Suffix List (libpsl format)")
        ->capture_default_str();
    add_dns_options(command, args.dns);
}

Expected<std::unique_ptr<ReporterCheck>, std::string> ReporterCheck::open(
    const ReporterArgs& args) {
    std::unique_ptr<ReporterCheck> check(new ReporterCheck());
    if (args.no_verify) {
        return check;
    }
    inbound::Settings settings;
    settings.authserv_id = "dkim-appliance";  // no Authentication-Results field is made
    if (args.org_domain == "tree-walk") {
        settings.dmarc.method = dmarc::OrgDomainMethod::tree_walk;
    } else {
        auto psl = dmarc::PublicSuffixList::load(args.psl_file);
        if (psl) {
            settings.dmarc.psl = *psl;
        } else {
            // No list (the publicsuffix package is only recommended): the reports still go in,
            // their reporters aligned by the DMARCbis tree walk instead.
            std::cerr << "dkim-appliance: " << psl.error()
                      << "; reporters' organizational domains by the DNS tree walk instead\n";
            settings.dmarc.method = dmarc::OrgDomainMethod::tree_walk;
        }
    }
    auto resolver = open_resolver(args.dns);
    if (!resolver) {
        return unexpected(resolver.error());
    }
    check->resolver_ = std::move(*resolver);
    check->keys_ = std::make_unique<KeyFetcher>(*check->resolver_);
    check->verifier_ =
        std::make_unique<inbound::Verifier>(*check->resolver_, *check->keys_, std::move(settings));
    return check;
}

bool looks_like_message(std::string_view bytes) {
    // A field name (printable ASCII but ':') and its colon on the first line.
    std::size_t i = 0;
    while (i < bytes.size() && i < 1000) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        if (c == ':') {
            return i > 0;
        }
        if (c < 33 || c > 126) {
            return false;
        }
        ++i;
    }
    return false;
}

std::string ReporterCheck::reporter(std::string_view bytes) const {
    if (!verifier_ || !looks_like_message(bytes)) {
        return {};
    }
    // The engine works on CRLF; files on disk often use LF.
    std::string crlf;
    crlf.reserve(bytes.size() + bytes.size() / 32);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r')) {
            crlf.push_back('\r');
        }
        crlf.push_back(bytes[i]);
    }
    try {
        return verifier_->authenticated_author(crlf, std::chrono::system_clock::now());
    } catch (const std::exception&) {  // std::bad_alloc: no reporter, the bytes still go
        return {};
    }
}

}  // namespace dkim::cli
