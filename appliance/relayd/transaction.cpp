#include "transaction.hpp"

#include <algorithm>
#include <cstdio>

#include "dkim/base/wipe.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/text/json.hpp"
#include "transaction_state.hpp"

namespace dkim::relayd {

using namespace std::chrono_literals;

std::string one_line(std::string_view text) {
    std::string out;
    for (const char c : text.substr(0, 400)) {
        out.push_back(c == '\r' || c == '\n' ? ' ' : c);
    }
    return out;
}

std::string enhanced_or_default(const smtp::Reply& answer) {
    if (!answer.enhanced.empty()) {
        return answer.enhanced;
    }
    return answer.code < 500 ? "4.4.0" : "5.0.0";
}

std::optional<HeaderEnd> find_header_end(std::string_view message, std::size_t scanned_from) {
    // The empty line: CRLF at the very start, or CRLF CRLF.
    if (message.starts_with("\r\n")) {
        return HeaderEnd{0, 2};
    }
    const std::size_t from = scanned_from >= 3 ? scanned_from - 3 : 0;
    const std::size_t end = message.find("\r\n\r\n", from);
    if (end == std::string_view::npos) {
        return std::nullopt;
    }
    return HeaderEnd{end + 2, end + 4};
}

Transaction::Transaction(const Config& config, ConnectionInfo connection, MailPolicy& policy,
                         TransactionHost& host, RelayMetrics& metrics, const Clock& clock,
                         ReportIntake* reports)
    : config_(config),
      connection_(std::move(connection)),
      policy_(policy),
      host_(host),
      metrics_(metrics),
      clock_(clock),
      reports_(reports),
      in_(config.limits.command_line) {}

Transaction::~Transaction() = default;

awaitable<bool> Transaction::send_now() {
    // (A co_await inside a condition: GCC 12 miscompiles it, hence the named result.)
    const bool written = co_await host_.flush(output_);
    if (!written) {
        closing_ = true;
    }
    co_return written;
}

void Transaction::reply(int code, std::string_view enhanced, std::string_view text) {
    output_ += smtp::format_reply(code, enhanced, text);
}

void Transaction::reply(const smtp::Reply& r) {
    reply(r.code, r.enhanced, r.text);
}

void Transaction::close_after_reply(int code, std::string_view enhanced, std::string_view text) {
    reply(code, enhanced, text);
    closing_ = true;
}

bool Transaction::error_counted() {
    if (++errors_ >= config_.limits.errors) {
        close_after_reply(421, "4.7.0", config_.hostname + " Too many errors; closing");
        return true;
    }
    return false;
}

bool Transaction::auth_offered() const {
    if (!policy_.offers_auth()) {
        return false;
    }
    const bool any_password = std::any_of(config_.clients.begin(), config_.clients.end(),
                                          [](const Client& c) { return !c.password_hash.empty(); });
    return any_password && (tls_active_ || connection_.plain_auth);
}

bool Transaction::report_transaction() const {
    return envelope_ && envelope_->kind == Envelope::Kind::reports;
}

std::uint64_t Transaction::message_limit() const {
    if (report_transaction()) {
        return std::min(config_.limits.message_size, reports_->settings().max_size);
    }
    return config_.limits.message_size;
}

Peer Transaction::peer() const {
    Peer p;
    p.address_text = connection_.address_text;
    p.helo = helo_name_;
    p.client = client();
    p.auth_offered = auth_offered();
    p.starttls_first = connection_.tls_offered && !tls_active_;
    return p;
}

void Transaction::tls_started() {
    tls_requested_ = false;
    tls_active_ = true;
    in_ = smtp::LineBuffer(config_.limits.command_line);  // nothing read in clear text survives
    // RFC 3207 §4.2: forget everything learnt before TLS.
    greeted_ = false;
    ehlo_ = false;
    auth_client_ = nullptr;
}

// --- input -----------------------------------------------------------------------------------

awaitable<void> Transaction::receive(std::string_view bytes) {
    if (tls_requested_) {
        // Between "220 Ready to start TLS" and the handshake nothing is read: it would be
        // clear text taken as coming through TLS (CVE-2011-0411).
        co_return;
    }
    in_.append(bytes);
    std::string line;
    while (!closing_ && !tls_requested_) {
        if (data_) {
            if (!in_.has_pending()) {
                co_return;
            }
            const bool ended = co_await feed_data();
            if (!ended) {
                co_return;
            }
            continue;
        }
        const auto status = in_.next_line(line);
        if (status == smtp::LineBuffer::Status::need_more) {
            co_return;
        }
        if (auth_) {
            // The client's answer to a 334.
            if (status != smtp::LineBuffer::Status::line) {
                auth_.reset();
                close_after_reply(500, "5.5.6", "Malformed line; closing");
                co_return;
            }
            auto step = auth_->next(std::move(line));
            base::wipe(line);
            co_await auth_step(std::move(step));
            continue;
        }
        if (status == smtp::LineBuffer::Status::line) {
            co_await command(line);
            continue;
        }
        if (status == smtp::LineBuffer::Status::too_long) {
            close_after_reply(500, "5.5.6", "Command line too long; closing");
        } else {
            close_after_reply(521, "5.5.2",
                              "Bare CR or LF in a command line; lines end in CRLF only");
        }
        co_return;
    }
}

awaitable<void> Transaction::input_ended(bool timed_out) {
    if (data_) {
        // The client left or stalled: nothing was sent to the next hop; it keeps the mail.
        metrics_.transaction(RelayMetrics::Outcome::aborted);
        Conclusion c;
        c.code = timed_out ? 421 : 0;
        c.size = data_->decoder.size();
        c.latency = clock_.monotonic() - envelope_->started;
        policy_.annotate(c);
        c.sign_state = "-";
        c.selectors = "-";
        log_transaction(c);
        if (timed_out) {
            close_after_reply(421, "4.4.2", config_.hostname + " Timeout in DATA; closing");
        } else {
            closing_ = true;
        }
        co_await reset_transaction();
        co_return;
    }
    if (timed_out && !auth_) {
        close_after_reply(421, "4.4.2", config_.hostname + " Timeout; closing");
    } else {
        closing_ = true;
    }
    auth_.reset();
}

awaitable<void> Transaction::finish() {
    closing_ = true;
    if (envelope_) {
        metrics_.transaction(RelayMetrics::Outcome::aborted);
        envelope_.reset();
        data_.reset();
        policy_.reset();
    }
    if (next_hop_) {
        auto hop = std::move(next_hop_);
        try {
            co_await hop->quit();
        } catch (const std::exception&) {
        }
    }
}

// --- commands --------------------------------------------------------------------------------

awaitable<void> Transaction::command(const std::string& line) {
    const smtp::Command c = smtp::parse_command(line);
    if (++commands_ > config_.limits.commands) {
        close_after_reply(421, "4.7.0", config_.hostname + " Too many commands; closing");
        co_return;
    }
    switch (c.verb) {
        case smtp::Verb::ehlo: co_await ehlo(c, true); break;
        case smtp::Verb::helo: co_await ehlo(c, false); break;
        case smtp::Verb::mail: co_await mail(c); break;
        case smtp::Verb::rcpt: co_await rcpt(c); break;
        case smtp::Verb::data: data(c); break;
        case smtp::Verb::starttls: starttls(c); break;
        case smtp::Verb::auth: co_await auth(c); break;
        case smtp::Verb::rset:
            co_await reset_transaction();
            reply(250, "2.0.0", "Ok");
            break;
        case smtp::Verb::noop: reply(250, "2.0.0", "Ok"); break;
        case smtp::Verb::quit:
            close_after_reply(221, "2.0.0", config_.hostname + " Bye");
            co_await reset_transaction();
            break;
        case smtp::Verb::help:
            reply(214, "2.0.0",
                  "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY STARTTLS AUTH");
            break;
        case smtp::Verb::vrfy:
            // No disclosure (RFC 5321 §3.5.3 allows 252).
            reply(252, "2.5.0", "Cannot VRFY; send mail and delivery will be attempted");
            break;
        case smtp::Verb::expn: reply(502, "5.5.1", "EXPN is not available"); break;
        case smtp::Verb::bdat:
            if (!error_counted()) {
                reply(502, "5.5.1", "BDAT (CHUNKING) is not offered; use DATA");
            }
            break;
        case smtp::Verb::unknown:
            if (!error_counted()) {
                reply(500, "5.5.2", "Command not recognized");
            }
            break;
    }
}

awaitable<void> Transaction::ehlo(const smtp::Command& c, bool extended) {
    if (c.argument.empty() || c.argument.size() > 255) {
        if (!error_counted()) {
            reply(501, "5.5.4", extended ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
        }
        co_return;
    }
    co_await reset_transaction();
    greeted_ = true;
    ehlo_ = extended;
    helo_name_ = c.argument;
    if (!extended) {
        reply(250, "", config_.hostname);
        co_return;
    }
    std::vector<std::string> lines{config_.hostname,
                                   "PIPELINING",
                                   "SIZE " + std::to_string(config_.limits.message_size),
                                   "8BITMIME",
                                   "ENHANCEDSTATUSCODES",
                                   "SMTPUTF8"};
    if (connection_.tls_offered && !tls_active_) {
        lines.emplace_back("STARTTLS");
    }
    if (auth_offered() && auth_client_ == nullptr) {
        lines.emplace_back("AUTH PLAIN LOGIN");
    }
    output_ += smtp::format_reply(250, "", lines);
}

awaitable<void> Transaction::reset_transaction(bool next_hop_done) {
    if (envelope_ && envelope_->hop_mail_sent && next_hop_ && !next_hop_done) {
        co_await next_hop_->reset();
    }
    if (envelope_) {
        policy_.reset();
    }
    envelope_.reset();
    data_.reset();
}

awaitable<void> Transaction::mail(const smtp::Command& c) {
    if (!greeted_) {
        reply(503, "5.5.1", "Send EHLO first");
        co_return;
    }
    if (envelope_) {
        reply(503, "5.5.1", "Nested MAIL command");
        co_return;
    }
    auto path = smtp::parse_mail_from(c.argument);
    if (!path) {
        if (!error_counted()) {
            reply(501, "5.1.7", "Bad sender address syntax: " + path.error().message);
        }
        co_return;
    }
    auto t = std::make_unique<Envelope>();
    for (const auto& p : path->parameters) {
        if (p.keyword == "SIZE" && p.value) {
            const auto& v = *p.value;
            if (v.empty() || v.size() > 15 ||
                !std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
                reply(501, "5.5.4", "Malformed SIZE parameter");
                co_return;
            }
            t->declared_size = std::stoull(v);
        } else if (p.keyword == "BODY" && p.value &&
                   (mail::iequals(*p.value, "8BITMIME") || mail::iequals(*p.value, "7BIT"))) {
            t->eight_bit = mail::iequals(*p.value, "8BITMIME");
        } else if (p.keyword == "SMTPUTF8" && !p.value && ehlo_) {
            t->smtputf8 = true;
        } else if (p.keyword == "AUTH" && p.value && smtp::decode_xtext(*p.value)) {
            // RFC 4954 §5: accepted; the relay does not pass on identities it cannot vouch for.
        } else {
            reply(555, "5.5.4", "Unsupported MAIL parameter " + p.keyword.substr(0, 20));
            co_return;
        }
    }
    if (t->declared_size > config_.limits.message_size) {
        reply(552, "5.3.4",
              "Message size exceeds the limit of " + std::to_string(config_.limits.message_size) +
                  " bytes");
        co_return;
    }
    if (path->utf8 && !t->smtputf8) {
        reply(553, "5.6.7", "Non-ASCII addresses need the SMTPUTF8 parameter (RFC 6531)");
        co_return;
    }
    const Peer who = peer();
    const smtp::Path* sender = &*path;
    auto refusal = co_await policy_.mail(who, *sender);
    if (refusal) {
        reply(*refusal);
        policy_.reset();
        co_return;
    }
    // With report addresses the next hop hears MAIL with the first recipient that is not one
    // (open_next_hop): a report transaction never reaches it.
    if (reports_ == nullptr) {
        if (!next_hop_) {
            next_hop_ = host_.next_hop(Route::primary);
        }
        const bool sent = co_await send_now();
        if (!sent) {  // the next hop may take a while: pipelined replies go first
            policy_.reset();
            co_return;
        }
        const MailCommand command{path->address, t->declared_size, t->eight_bit, t->smtputf8};
        const auto answer = co_await next_hop_->mail(command);
        if (!answer.positive()) {
            reply(answer.code, enhanced_or_default(answer), "Next hop: " + one_line(answer.text));
            policy_.reset();
            co_return;
        }
        t->hop_mail_sent = true;
    }
    t->sender = path->address;
    t->sender_domain = path->domain;
    t->started = clock_.monotonic();
    envelope_ = std::move(t);
    reply(250, "2.1.0", "Sender OK");
}

awaitable<void> Transaction::rcpt(const smtp::Command& c) {
    if (!envelope_) {
        reply(503, "5.5.1", "Need MAIL before RCPT");
        co_return;
    }
    auto path = smtp::parse_rcpt_to(c.argument);
    if (!path) {
        if (!error_counted()) {
            reply(501, "5.1.3", "Bad recipient address syntax: " + path.error().message);
        }
        co_return;
    }
    if (!path->parameters.empty()) {
        reply(555, "5.5.4",
              "Unsupported RCPT parameter " + path->parameters[0].keyword.substr(0, 20));
        co_return;
    }
    if (path->utf8 && !envelope_->smtputf8) {
        reply(553, "5.6.7", "Non-ASCII addresses need the SMTPUTF8 parameter (RFC 6531)");
        co_return;
    }
    if (envelope_->recipients.size() >= config_.limits.recipients) {
        reply(452, "4.5.3", "Too many recipients");
        co_return;
    }
    if (reports_ != nullptr && reports_->is_report_address(*path)) {
        report_rcpt(*path);
        co_return;
    }
    if (auto refusal = policy_.rcpt(peer(), *path)) {
        if (!refusal->counted || !error_counted()) {
            reply(refusal->reply);
        }
        co_return;
    }
    if (envelope_->kind == Envelope::Kind::reports) {
        // RFC 5321 §3.3: 452 for a recipient refused for now; the client sends it again, in a
        // transaction of its own.
        reply(452, "4.5.3",
              "This transaction is for report addresses only; send to other recipients in "
              "another transaction");
        co_return;
    }
    const bool sent = co_await send_now();
    if (!sent) {
        co_return;
    }
    if (!envelope_->hop_mail_sent) {
        const bool opened = co_await open_next_hop();
        if (!opened) {
            co_return;
        }
    }
    const auto answer = co_await next_hop_->rcpt(path->address);
    if (!answer.positive()) {
        reply(answer.code, enhanced_or_default(answer), "Next hop: " + one_line(answer.text));
        co_return;
    }
    envelope_->kind = Envelope::Kind::mail;
    envelope_->recipients.push_back(path->address);
    reply(250, "2.1.5", "Recipient OK");
}

awaitable<bool> Transaction::open_next_hop() {
    Envelope& e = *envelope_;
    if (e.hop_refusal) {
        reply(*e.hop_refusal);
        co_return false;
    }
    if (!next_hop_) {
        next_hop_ = host_.next_hop(Route::primary);
    }
    const MailCommand command{e.sender, e.declared_size, e.eight_bit, e.smtputf8};
    const auto answer = co_await next_hop_->mail(command);
    if (!answer.positive()) {
        e.hop_refusal = local_reply(answer.code, enhanced_or_default(answer),
                                    "Next hop: " + one_line(answer.text));
        reply(*e.hop_refusal);
        co_return false;
    }
    e.hop_mail_sent = true;
    co_return true;
}

void Transaction::report_rcpt(const smtp::Path& recipient) {
    Envelope& e = *envelope_;
    if (e.kind == Envelope::Kind::mail) {
        reply(452, "4.5.3",
              "Report addresses take a transaction of their own; send to " +
                  printable_line(recipient.address, 255) + " in another transaction");
        return;
    }
    const std::uint64_t limit =
        std::min(config_.limits.message_size, reports_->settings().max_size);
    if (e.declared_size > limit) {  // RFC 1870 §6.1: 552 at RCPT for this recipient's limit
        metrics_.report(RelayMetrics::ReportOutcome::too_large);
        reply(552, "5.3.4", "Report messages are limited to " + std::to_string(limit) + " bytes");
        return;
    }
    if (e.kind == Envelope::Kind::undecided) {
        switch (reports_->admit(connection_.address_text)) {
            case ReportIntake::Admission::admitted: break;
            case ReportIntake::Admission::client_limit:
                metrics_.report(RelayMetrics::ReportOutcome::rate_limited);
                reply(450, "4.7.1",
                      "Too many reports from your address this hour; try again later");
                return;
            case ReportIntake::Admission::relay_limit:
                metrics_.report(RelayMetrics::ReportOutcome::rate_limited);
                reply(450, "4.7.1", "Too many reports this hour; try again later");
                return;
        }
        e.kind = Envelope::Kind::reports;
    }
    e.recipients.push_back(recipient.address);
    reply(250, "2.1.5", "Recipient OK: report address");
}

void Transaction::data(const smtp::Command& c) {
    if (!envelope_) {
        reply(503, "5.5.1", "Need MAIL before DATA");
        return;
    }
    if (envelope_->recipients.empty()) {
        reply(554, "5.5.1", "No valid recipients");
        return;
    }
    if (!c.argument.empty()) {
        reply(501, "5.5.4", "Syntax: DATA");
        return;
    }
    reply(354, "", "End data with <CR><LF>.<CR><LF>");
    data_ = std::make_unique<DataState>(config_.limits.line_length);
    data_->message.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(
        envelope_->declared_size > 0 ? envelope_->declared_size + 1024 : 65536, message_limit())));
}

void Transaction::starttls(const smtp::Command& c) {
    if (!connection_.tls_offered) {
        reply(502, "5.5.1", "STARTTLS is not offered here");
        return;
    }
    if (tls_active_) {
        reply(503, "5.5.1", "TLS is already active");
        return;
    }
    if (!c.argument.empty()) {
        reply(501, "5.5.4", "Syntax: STARTTLS");
        return;
    }
    if (envelope_) {
        reply(503, "5.5.1", "A mail transaction is in progress");
        return;
    }
    reply(220, "2.0.0", "Ready to start TLS");
    // Whatever the client pipelined after STARTTLS was sent in clear text: it must not be
    // taken as coming through TLS (CVE-2011-0411).
    in_ = smtp::LineBuffer(config_.limits.command_line);
    tls_requested_ = true;
}

awaitable<void> Transaction::auth(const smtp::Command& c) {
    if (!ehlo_) {
        reply(503, "5.5.1", "Send EHLO first");
        co_return;
    }
    if (auth_client_ != nullptr) {
        reply(503, "5.5.1", "Already authenticated");
        co_return;
    }
    if (envelope_) {
        reply(503, "5.5.1", "AUTH is not allowed in a mail transaction");
        co_return;
    }
    if (!tls_active_ && !connection_.plain_auth) {
        reply(538, "5.7.11", "Encryption required for requested authentication mechanism");
        co_return;
    }
    if (!auth_offered()) {
        reply(502, "5.5.1", "AUTH is not offered here");
        co_return;
    }
    auto exchange = std::make_unique<AuthExchange>();
    auto step = exchange->start(c.argument);
    auth_ = std::move(exchange);
    co_await auth_step(std::move(step));
}

awaitable<void> Transaction::auth_step(AuthExchange::Step step) {
    using Kind = AuthExchange::Step::Kind;
    if (step.kind == Kind::prompt) {
        reply(step.reply);
        co_return;  // auth_ waits for the client's line
    }
    auth_.reset();
    if (step.kind == Kind::refuse) {
        reply(step.reply);
        co_return;
    }
    const Client* candidate = config_.client(step.user);
    const bool sent = co_await send_now();
    if (!sent) {
        base::wipe(step.password);
        co_return;
    }
    const bool ok = co_await host_.verify_password(candidate, step.password);
    base::wipe(step.password);
    if (!ok) {
        if (++auth_failures_ >= config_.limits.auth_failures) {
            close_after_reply(421, "4.7.0", config_.hostname + " Too many failed authentications");
        } else {
            reply(535, "5.7.8", "Authentication credentials invalid");
        }
        co_return;
    }
    auth_client_ = candidate;
    reply(235, "2.7.0", "Authentication successful");
}

}  // namespace dkim::relayd
