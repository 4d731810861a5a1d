// dkim-appliance sign | verify: the DKIM engine on one message, stdin to stdout.
//
// `sign` is an operator tool: the PIN file is its credential and it logs in for the one
// message (the daemons sign through just-in-time grants instead). `verify` needs no
// privileges at all; with --ip it runs the inbound listener's checks (SPF, DKIM, DMARC).

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "dkim/dkim/signer.hpp"
#include "dkim/dkim/verifier.hpp"
#include "dkim/dns/unbound_resolver.hpp"
#include "dkim/hsm/keys.hpp"
#include "dkim/hsm/signing_pool.hpp"
#include "dkim/hsm/token.hpp"
#include "dkim/inbound/verifier.hpp"
#include "dkim/ipc/remote_signer.hpp"
#include "dkim/provisioning/keys.hpp"
#include "dkim/signing/token_signer.hpp"
#include "dkim/text/json.hpp"

namespace dkim::cli {
namespace {

// The engine works on CRLF; files on disk often use LF. Input is converted, and what we add
// is written back with the input's own line endings, in front of the input's unchanged bytes.
struct WireMessage {
    std::string crlf;
    bool lf_input = false;
};

WireMessage read_stdin() {
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    WireMessage m;
    const std::size_t first_lf = input.find('\n');
    m.lf_input = first_lf != std::string::npos && (first_lf == 0 || input[first_lf - 1] != '\r');
    if (!m.lf_input) {
        m.crlf = std::move(input);
        return m;
    }
    m.crlf.reserve(input.size() + input.size() / 32);
    for (std::size_t i = 0; i < input.size(); ++i) {
        if (input[i] == '\n' && (i == 0 || input[i - 1] != '\r')) {
            m.crlf.push_back('\r');
        }
        m.crlf.push_back(input[i]);
    }
    return m;
}

std::string with_line_endings(std::string_view crlf_text, bool lf) {
    if (!lf) {
        return std::string(crlf_text);
    }
    std::string out;
    out.reserve(crlf_text.size());
    for (std::size_t i = 0; i < crlf_text.size(); ++i) {
        if (crlf_text[i] == '\r' && i + 1 < crlf_text.size() && crlf_text[i + 1] == '\n') {
            continue;
        }
        out.push_back(crlf_text[i]);
    }
    return out;
}

std::chrono::system_clock::time_point now_or(std::optional<std::int64_t> unix_time) {
    if (unix_time) {
        return std::chrono::system_clock::time_point(std::chrono::seconds(*unix_time));
    }
    return std::chrono::system_clock::now();
}

// "3600", "90m", "12h", "7d"
std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
    if (text.empty()) {
        return std::nullopt;
    }
    std::int64_t unit = 1;
    switch (text.back()) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: unit = 0; break;
    }
    if (unit != 0) {
        text.remove_suffix(1);
    } else {
        unit = 1;
    }
    std::int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size() || value <= 0 ||
        value > 10LL * 365 * 86400 / unit) {
        return std::nullopt;
    }
    return std::chrono::seconds(value * unit);
}

// --- sign -----------------------------------------------------------------------------------

struct SignArgs {
    provisioning::TokenLocation where;
    std::string pin_file;
    std::string domain;
    std::vector<std::string> selectors;
    std::string canonicalization = "relaxed/relaxed";
    std::string expire_after;
    std::optional<std::int64_t> now;
    std::string signerd;  // sign through dkim-signerd's socket instead of the token
    std::string algorithm = "rsa-sha256";
};

int run_sign(const SignArgs& args) {
    auto canon = Canonicalization::parse(args.canonicalization);
    if (!canon) {
        std::cerr << "dkim-appliance: --canonicalization: " << canon.error() << "\n";
        return kUsage;
    }
    SignOptions options;
    options.canonicalization = *canon;
    if (!args.signerd.empty() && args.expire_after.empty()) {
        options.expire_after = std::chrono::hours(24 * 7);  // within signerd's signing profile
    }
    if (!args.expire_after.empty()) {
        options.expire_after = parse_duration(args.expire_after);
        if (!options.expire_after) {
            std::cerr << "dkim-appliance: --expire-after: expected a duration such as 3600, 12h "
                         "or 7d\n";
            return kUsage;
        }
    }
    std::vector<hsm::KeyName> names;
    for (const std::string& selector : args.selectors) {
        auto name = hsm::KeyName::make(args.domain, selector);
        if (!name) {
            return fail(name.error().to_string());
        }
        names.push_back(std::move(*name));
    }
    const WireMessage message = read_stdin();
    auto split = mail::split_message(message.crlf);
    if (!split) {
        return fail("message: " + split.error().to_string());
    }

    if (!args.signerd.empty()) {
        // Through the enforcement point: signerd checks the grant; no PIN here.
        const auto algorithm = parse_signing_algorithm(args.algorithm);
        if (!algorithm || *algorithm == SigningAlgorithm::rsa_sha1) {
            std::cerr << "dkim-appliance: --algorithm: rsa-sha256 or ed25519-sha256\n";
            return kUsage;
        }
        ipc::SignerClient client(args.signerd);
        std::vector<std::unique_ptr<ipc::RemoteSigner>> remotes;
        std::vector<SigningKey> keys;
        for (const hsm::KeyName& name : names) {
            remotes.push_back(std::make_unique<ipc::RemoteSigner>(client, name.domain,
                                                                  name.selector, *algorithm));
            keys.push_back(SigningKey{name.domain, name.selector, remotes.back().get(), {}});
        }
        MessageSigner signer(std::move(keys), options);
        signer.update_body(split->body);
        auto fields = signer.finish(split->header, now_or(args.now));
        if (!fields) {
            for (const auto& remote : remotes) {
                if (remote->last_code() == ipc::ErrorCode::locked) {
                    std::cerr << "dkim-appliance: " << fields.error().message << "\n";
                    return 3;  // locked: a pending request awaits approval
                }
            }
            return fail(fields.error().message);
        }
        std::cout << with_line_endings(*fields, message.lf_input)
                  << with_line_endings(message.crlf, message.lf_input);
        std::cout.flush();
        return std::cout ? 0 : fail("cannot write the signed message");
    }
    if (args.where.token.empty() || args.pin_file.empty()) {
        std::cerr << "dkim-appliance: sign needs --token and --pin-file, or --signerd\n";
        return kUsage;
    }

    auto pin = hsm::Secret::from_file(args.pin_file);
    if (!pin) {
        return fail(pin.error().to_string());
    }
    auto token = args.where.open();
    if (!token) {
        return fail(token.error().to_string());
    }
    // One login for this one message; a lost session is not silently re-logged in.
    auto login = hsm::Login::acquire(*token, std::move(*pin), hsm::Login::Relogin::forbidden);
    if (!login) {
        return fail(login.error().to_string());
    }
    hsm::KeyStore store(*token);
    hsm::SigningPool pool(*token);
    std::vector<std::unique_ptr<signing::TokenSigner>> signers;
    std::vector<SigningKey> keys;
    for (const hsm::KeyName& name : names) {
        auto key = store.find(name);
        if (!key) {
            return fail(key.error().to_string());
        }
        signers.push_back(std::make_unique<signing::TokenSigner>(pool, std::move(*key)));
        keys.push_back(SigningKey{name.domain, name.selector, signers.back().get(), {}});
    }
    MessageSigner signer(std::move(keys), options);
    signer.update_body(split->body);
    auto fields = signer.finish(split->header, now_or(args.now));
    if (!fields) {
        return fail(fields.error().message);
    }
    std::cout << with_line_endings(*fields, message.lf_input)
              << with_line_endings(message.crlf, message.lf_input);
    std::cout.flush();
    return std::cout ? 0 : fail("cannot write the signed message");
}

// --- verify ---------------------------------------------------------------------------------

struct VerifyArgs {
    DnsArgs dns;
    std::string authserv_id;
    bool refuse_body_length = false;
    std::optional<std::int64_t> now;
    // The inbound checks: the SMTP client's address, HELO name and MAIL FROM address.
    std::string ip;
    std::string helo;
    std::string mail_from;
    std::string org_domain = "psl";
    std::string psl_file = dmarc::PublicSuffixList::kDefaultFile;
};

std::string host_name() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
        return "localhost";
    }
    return name;
}

// SPF (MAIL FROM and HELO), DKIM and DMARC as dkim-relayd's inbound listener runs them:
// prints the Authentication-Results field; the action goes to stderr.
int run_inbound(const VerifyArgs& args, dns::Resolver& resolver, KeyFetcher& keys,
                const VerifyOptions& options, const std::string& authserv_id,
                const WireMessage& message) {
    const auto client = net::IpAddress::parse(args.ip);
    if (!client) {
        std::cerr << "dkim-appliance: --ip: '" << args.ip << "' is not an IP address\n";
        return kUsage;
    }
    inbound::Settings settings;
    settings.authserv_id = authserv_id;
    settings.dkim = options;
    if (args.org_domain == "tree-walk") {
        settings.dmarc.method = dmarc::OrgDomainMethod::tree_walk;
    } else {
        auto psl = dmarc::PublicSuffixList::load(args.psl_file);
        if (!psl) {
            return fail(psl.error());
        }
        settings.dmarc.psl = *psl;
    }
    const inbound::Verifier verifier(resolver, keys, settings);
    const auto now = now_or(args.now);
    const inbound::Envelope envelope{*client, args.helo, args.mail_from};
    const auto spf = verifier.check_spf(
        envelope, std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
    const inbound::Verdict verdict = verifier.finish(spf, message.crlf, now);
    std::cout << with_line_endings(verdict.authentication_results, message.lf_input);
    std::cerr << "dkim-appliance: action: " << inbound::to_string(verdict.action)
              << (verdict.why.empty() ? "" : " (" + verdict.why + ")") << "\n";
    return verdict.action == inbound::Action::deliver ? 0 : kFailed;
}

int run_verify(const VerifyArgs& args) {
    auto resolver = open_resolver(args.dns);
    if (!resolver) {
        std::cerr << "dkim-appliance: " << resolver.error() << "\n";
        return kUsage;
    }
    const WireMessage message = read_stdin();
    KeyFetcher keys(**resolver);
    VerifyOptions options;
    options.allow_body_length = !args.refuse_body_length;
    const std::string id = args.authserv_id.empty() ? host_name() : args.authserv_id;
    if (!args.ip.empty()) {
        return run_inbound(args, **resolver, keys, options, id, message);
    }
    auto verdicts = verify_message(message.crlf, keys, now_or(args.now), options);
    if (!verdicts) {
        return fail("message: " + verdicts.error().to_string());
    }
    std::cout << with_line_endings(
        mail::render_authentication_results(id, to_method_results(*verdicts)), message.lf_input);
    bool any_pass = false;
    for (const SignatureVerdict& v : *verdicts) {
        any_pass = any_pass || v.result == mail::AuthResult::pass;
    }
    return any_pass ? 0 : kFailed;
}

// --- dns query -------------------------------------------------------------------------------

struct QueryArgs {
    std::string name;
    std::string type = "TXT";
    DnsArgs dns;
};

int run_dns_query(const QueryArgs& args) {
    auto resolver = open_resolver(args.dns);
    if (!resolver) {
        std::cerr << "dkim-appliance: " << resolver.error() << "\n";
        return kUsage;
    }
    static const std::pair<const char*, dns::RecordType> kTypes[] = {
        {"A", dns::RecordType::a},
        {"AAAA", dns::RecordType::aaaa},
        {"MX", dns::RecordType::mx},
        {"PTR", dns::RecordType::ptr},
        {"TXT", dns::RecordType::txt}};
    dns::RecordType type = dns::RecordType::txt;
    for (const auto& [text, t] : kTypes) {
        if (args.type == text) {
            type = t;
        }
    }
    const dns::Answer answer = (*resolver)->lookup(args.name, type);
    static constexpr const char* kStatus[] = {"found", "nxdomain", "nodata", "temporary-failure"};
    static constexpr const char* kSecurity[] = {"insecure", "secure", "bogus"};
    std::cout << "status=" << kStatus[static_cast<int>(answer.status)]
              << " dnssec=" << kSecurity[static_cast<int>(answer.security)]
              << " ttl=" << answer.ttl.count();
    if (!answer.error.empty()) {
        std::cout << " error=" << text::json_quote(answer.error);
    }
    std::cout << "\n";
    for (const std::string& record : answer.records) {
        std::cout << record << "\n";
    }
    return answer.status == dns::LookupStatus::found ? 0 : kFailed;
}

}  // namespace

void add_dns_query_command(CLI::App& dns, int& exit_code) {
    auto args = std::make_shared<QueryArgs>();
    CLI::App* query = dns.add_subcommand(
        "query",
        "Look a name up as the daemons do (libunbound): status, DNSSEC state (insecure, secure, "
        "bogus), TTL, then one record per line; exit 0 when records were found");
    query->add_option("--name", args->name, "the name to look up")->required();
    query->add_option("--type", args->type, "record type")
        ->check(CLI::IsMember({"A", "AAAA", "MX", "PTR", "TXT"}))
        ->capture_default_str();
    add_dns_options(query, args->dns);
    query->callback([&exit_code, args] { exit_code = run_dns_query(*args); });
}

void add_mail_commands(CLI::App& app, int& exit_code) {
    // The arguments live as long as the callbacks that read them (as long as `app`).
    auto sign_args = std::make_shared<SignArgs>();
    CLI::App* sign = app.add_subcommand(
        "sign",
        "Sign the message on stdin with keys in the token; the signed message goes to "
        "stdout (LF or CRLF, as the input)");
    sign->add_option("--module", sign_args->where.module, "PKCS#11 module (.so) of the token");
    sign->add_option("--token", sign_args->where.token, "token label, or an RFC 7512 URI");
    sign->add_option("--pin-file", sign_args->pin_file, "file holding the user PIN (mode 0600)");
    sign->add_option("--signerd", sign_args->signerd,
                     "sign through dkim-signerd's socket (inside a grant) instead of the token; "
                     "exit 3 when locked");
    sign->add_option("--algorithm", sign_args->algorithm, "a= with --signerd")
        ->check(CLI::IsMember({"rsa-sha256", "ed25519-sha256"}))
        ->capture_default_str();
    sign->add_option("--domain", sign_args->domain, "signing domain (d=)")->required();
    sign->add_option("--selector", sign_args->selectors,
                     "selector (s=); repeat for several signatures (RSA and Ed25519)")
        ->required();
    sign->add_option("--canonicalization", sign_args->canonicalization, "c= header/body")
        ->check(
            CLI::IsMember({"simple/simple", "simple/relaxed", "relaxed/simple", "relaxed/relaxed"}))
        ->capture_default_str();
    sign->add_option("--expire-after", sign_args->expire_after,
                     "add x= this long after t= (seconds, or 90m, 12h, 7d; with --signerd the "
                     "default is 7d, signerd's default limit)");
    sign->add_option("--now", sign_args->now, "sign as of this Unix time (t=); for tests");
    sign->callback([&exit_code, sign_args] { exit_code = run_sign(*sign_args); });

    auto verify_args = std::make_shared<VerifyArgs>();
    CLI::App* verify = app.add_subcommand(
        "verify",
        "Verify every DKIM signature of the message on stdin and print one "
        "Authentication-Results field; exit 0 when at least one passes, 1 otherwise");
    add_dns_options(verify, verify_args->dns);
    verify->add_option("--authserv-id", verify_args->authserv_id,
                       "authserv-id of the field (default: this host's name)");
    verify->add_flag("--refuse-body-length", verify_args->refuse_body_length,
                     "treat signatures with l= as policy failures");
    verify->add_option("--now", verify_args->now, "evaluate t= and x= as of this Unix time");
    verify->add_option("--ip", verify_args->ip,
                       "the SMTP client's address: also check SPF and DMARC as the inbound "
                       "listener does; exit 0 when the message would be delivered, 1 when "
                       "quarantined or rejected");
    verify->add_option("--helo", verify_args->helo, "the client's HELO/EHLO name (with --ip)");
    verify->add_option("--mail-from", verify_args->mail_from,
                       "the MAIL FROM address, empty for the null reverse-path (with --ip)");
    verify
        ->add_option("--org-domain", verify_args->org_domain,
                     "DMARC organizational domains: the Public Suffix List or the DMARCbis DNS "
                     "tree walk")
        ->check(CLI::IsMember({"psl", "tree-walk"}))
        ->capture_default_str();
    verify->add_option("--psl-file", verify_args->psl_file, "Public Suffix List (libpsl format)")
        ->capture_default_str();
    verify->callback([&exit_code, verify_args] { exit_code = run_verify(*verify_args); });
}

void add_dns_options(CLI::App* command, DnsArgs& dns) {
    command->add_option("--dns-server", dns.server,
                        "DNS server as IP or IP:PORT (default: /etc/resolv.conf)");
    command->add_option("--dns-timeout-ms", dns.timeout_ms, "per lookup")
        ->check(CLI::Range(100, 60000))
        ->capture_default_str();
    command->add_option("--trust-anchor", dns.trust_anchor,
                        "DNSSEC trust anchor file (DS or DNSKEY records, e.g. "
                        "/usr/share/dns/root.key): validate answers");
}

Expected<std::unique_ptr<dns::UnboundResolver>, std::string> open_resolver(const DnsArgs& args) {
    dns::UnboundOptions options;
    if (!args.server.empty()) {
        options.upstream = args.server;
    }
    options.timeout = std::chrono::milliseconds(args.timeout_ms);
    if (!args.trust_anchor.empty()) {
        options.trust_anchor_file = args.trust_anchor;
    }
    return dns::UnboundResolver::create(options);
}

}  // namespace dkim::cli
