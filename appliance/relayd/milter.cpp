#include "milter.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>

#include "dkim/mail/authentication_results.hpp"
#include "dkim/mail/header.hpp"
#include "dkim/text/json.hpp"
#include "transaction.hpp"

namespace dkim::relayd {

namespace {

namespace cmd = milter::command;
namespace rep = milter::reply;
namespace st = milter::step;

// What the listener asks of the MTA: headers with their leading space, no RCPT, DATA or
// unknown commands, and no reply to the steps where it never refuses (each only when the MTA
// offers it). It answers MAIL (to let mail it will not touch go at once), the end of the
// header section (the same, once From: is known) and the end of the message.
constexpr std::uint32_t kWantedSteps = st::header_leading_space | st::no_rcpt | st::no_unknown |
                                       st::no_data | st::no_reply_connect | st::no_reply_helo |
                                       st::no_reply_header | st::no_reply_body | st::no_reply_rcpt |
                                       st::no_reply_unknown | st::no_reply_data;
// Headers in and out, and the hold queue for quarantine = "next_hop" (a milter cannot route).
constexpr std::uint32_t kNeededActions =
    milter::action::add_headers | milter::action::change_headers;
constexpr std::uint32_t kWantedActions = kNeededActions | milter::action::quarantine;

// Line ends inside a field value as a milter sends them: LF (the MTA writes its own).
std::string milter_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] == '\r' && i + 1 < value.size() && value[i + 1] == '\n') {
            continue;
        }
        out.push_back(value[i]);
    }
    return out;
}

// The fields of a block ("Name: value\r\n\tmore\r\nOther: ...\r\n"), each as name and value
// (the value from just after the colon, continuation lines kept).
std::vector<std::pair<std::string, std::string>> split_fields(std::string_view block) {
    std::vector<std::pair<std::string, std::string>> out;
    std::size_t at = 0;
    while (at < block.size()) {
        std::size_t end = at;
        for (;;) {
            const auto crlf = block.find("\r\n", end);
            if (crlf == std::string_view::npos) {
                end = block.size();
                break;
            }
            end = crlf + 2;
            if (end >= block.size() || (block[end] != ' ' && block[end] != '\t')) {
                break;
            }
        }
        std::string_view field = block.substr(at, end - at);
        if (field.size() >= 2 && field.substr(field.size() - 2) == "\r\n") {
            field.remove_suffix(2);
        }
        const auto colon = field.find(':');
        if (colon != std::string_view::npos) {
            out.emplace_back(std::string(field.substr(0, colon)),
                             std::string(field.substr(colon + 1)));
        }
        at = end;
    }
    return out;
}

}  // namespace

struct MilterConversation::Message {
    Mode mode = Mode::pass;
    const Client* client = nullptr;
    std::string auth_user;
    smtp::Path sender;
    std::size_t fields = 0;             // header fields so far
    std::uint32_t results = 0;          // Authentication-Results fields so far
    std::vector<std::uint32_t> forged;  // which of them claim our authserv-id
    std::string text;                   // the header section, then the body
    std::size_t body_start = 0;
    bool header_done = false;
    bool too_big = false;
    bool last_cr = false;    // the body's last byte so far was CR
    std::string passed_why;  // set: the message goes on untouched, for this reason
    MonotonicTime started;
};

MilterConversation::MilterConversation(const Config& config, std::string id,
                                       MilterPolicies policies, MilterHost& host,
                                       RelayMetrics& metrics, const Clock& clock)
    : config_(config),
      id_(std::move(id)),
      policies_(policies),
      host_(host),
      metrics_(metrics),
      clock_(clock) {
    if (config_.inbound) {
        ours_ = mail::ascii_lowercase(config_.inbound->authserv_id);
        if (!ours_.empty() && ours_.back() == '.') {
            ours_.pop_back();
        }
    }
}

MilterConversation::~MilterConversation() = default;

awaitable<void> MilterConversation::receive(std::string_view bytes) {
    reader_.feed(bytes);
    while (!closing_) {
        auto next = reader_.next();
        if (!next) {
            fail(next.error().message);
            co_return;
        }
        if (!*next) {
            co_return;
        }
        co_await packet(**next);
    }
}

void MilterConversation::input_ended(bool timed_out) {
    if (message_) {
        metrics_.transaction(RelayMetrics::Outcome::aborted);
        log_message("aborted", timed_out ? "the MTA went quiet" : "the MTA closed the connection",
                    0);
        end_message();
    }
    closing_ = true;
}

void MilterConversation::fail(const std::string& why) {
    host_.log("dkim-relayd: milter id=" + id_ + ": protocol error: " + why + "; closing");
    abandon_message();
    closing_ = true;
}

void MilterConversation::answer(std::uint32_t no_reply_step, char reply) {
    if (no_reply_step == 0 || (steps_ & no_reply_step) == 0) {
        output_ += milter::encode(reply);
    }
}

Peer MilterConversation::peer() const {
    Peer p;
    p.address_text = address_text_;
    p.helo = helo_;
    p.client = message_ ? message_->client : network_client_;
    return p;
}

awaitable<void> MilterConversation::packet(const milter::Packet& p) {
    if (!negotiated_ && p.command != cmd::option_negotiation) {
        fail("the first packet is not an option negotiation");
        co_return;
    }
    switch (p.command) {
        case cmd::option_negotiation: negotiate(p.data); break;
        case cmd::macro: macros(p.data); break;
        case cmd::connect:
            connect(p.data);
            if (!closing_) {
                answer(st::no_reply_connect, rep::continue_);
            }
            break;
        case cmd::helo:
            if (auto args = milter::parse_strings(p.data); !args) {
                fail(args.error().message);
            } else {
                helo_ = args->empty() ? std::string() : args->front().substr(0, 255);
                answer(st::no_reply_helo, rep::continue_);
            }
            break;
        case cmd::mail: co_await mail(p.data); break;
        case cmd::rcpt: answer(st::no_reply_rcpt, rep::continue_); break;
        case cmd::data: answer(st::no_reply_data, rep::continue_); break;
        case cmd::unknown: answer(st::no_reply_unknown, rep::continue_); break;
        case cmd::header:
            header(p.data);
            if (!closing_) {
                answer(st::no_reply_header, rep::continue_);
            }
            break;
        case cmd::end_of_header: end_of_header(); break;
        case cmd::body:
            body(p.data);
            if (!closing_) {
                answer(st::no_reply_body, rep::continue_);
            }
            break;
        case cmd::end_of_body: co_await end_of_body(p.data); break;
        case cmd::abort:
            abandon_message();
            auth_user_.clear();
            queue_id_.clear();
            break;  // no reply
        case cmd::quit:
            abandon_message();
            closing_ = true;
            break;
        case cmd::quit_new_connection:
            // The MTA reuses the connection for another SMTP client: forget this one.
            abandon_message();
            auth_user_.clear();
            queue_id_.clear();
            hostname_.clear();
            address_text_.clear();
            network_client_ = nullptr;
            helo_.clear();
            break;
        default: fail("an unknown command"); break;
    }
}

void MilterConversation::negotiate(std::string_view data) {
    auto offer = milter::parse_negotiation(data);
    if (!offer) {
        fail(offer.error().message);
        return;
    }
    if (offer->version < 2) {
        fail("the MTA speaks milter protocol version " + std::to_string(offer->version) +
             " (2 to 6 are understood)");
        return;
    }
    if ((offer->actions & kNeededActions) != kNeededActions) {
        fail("the MTA does not let a milter add and change header fields");
        return;
    }
    milter::Negotiation ours;
    ours.version = std::min(offer->version, milter::kVersion);
    ours.actions = offer->actions & kWantedActions;
    ours.steps = offer->steps & kWantedSteps;
    actions_ = ours.actions;
    steps_ = ours.steps;
    negotiated_ = true;
    output_ += milter::encode_negotiation(ours);
}

void MilterConversation::macros(std::string_view data) {
    auto parsed = milter::parse_macros(data);
    if (!parsed) {
        fail(parsed.error().message);
        return;
    }
    // Only what is used is kept (an MTA sends a MACRO packet before every command): the AUTH
    // user of the MAIL stage's macros, and the queue id of any stage.
    if (parsed->for_command == cmd::mail) {
        auth_user_.clear();
    }
    for (const auto& [name, value] : parsed->values) {
        if (name == "{auth_authen}" && parsed->for_command == cmd::mail) {
            auth_user_ = value.substr(0, 256);  // longer than any sasl_users entry: no match
        } else if (name == "i") {
            queue_id_ = value.substr(0, 64);
        }
    }
}

void MilterConversation::connect(std::string_view data) {
    auto c = milter::parse_connect(data);
    if (!c) {
        fail(c.error().message);
        return;
    }
    hostname_ = c->hostname.substr(0, 255);
    address_text_.clear();
    network_client_ = nullptr;
    if (c->family == milter::Connect::Family::ipv4 || c->family == milter::Connect::Family::ipv6) {
        // Sendmail writes IPv6 addresses as "IPv6:2001:db8::1".
        std::string_view text = c->address;
        if (text.size() > 5 && mail::iequals(text.substr(0, 5), "IPv6:")) {
            text.remove_prefix(5);
        }
        error_code ec;
        const auto ip = asio::ip::make_address(std::string(text), ec);
        if (!ec) {
            address_text_ = ip.to_string();
            network_client_ = config_.client_for(
                ip.is_v4() ? asio::ip::make_address_v6(asio::ip::v4_mapped, ip.to_v4()).to_bytes()
                           : ip.to_v6().to_bytes());
        }
    }
}

awaitable<void> MilterConversation::mail(std::string_view data) {
    auto args = milter::parse_strings(data);
    if (!args) {
        fail(args.error().message);
        co_return;
    }
    abandon_message();  // a MAIL without an ABORT after the last message: start over
    message_ = std::make_unique<Message>();
    Message& m = *message_;
    m.started = clock_.monotonic();
    ++messages_;
    if (!args->empty()) {
        // Postfix's sendmail(1) submissions give the address without its brackets.
        const std::string& arg = args->front();
        auto path = smtp::parse_mail_from("FROM:" + (arg.starts_with('<') ? arg : "<" + arg + ">"));
        if (path) {
            m.sender = std::move(*path);
        }
    }
    m.auth_user = auth_user_;
    // An authenticated user decides the client (none when no client names it: a webmail's
    // users on the client's own address are not that client); else the address does.
    m.client = m.auth_user.empty() ? network_client_ : config_.client_for_user(m.auth_user);
    if (policies_.signing != nullptr && m.client != nullptr) {
        m.mode = Mode::sign;
    } else if (policies_.verifying != nullptr && address_text_.empty()) {
        // No client address (Sendmail's local submissions: family 'L' or unknown): nothing came
        // from the network to check, and SPF without an address would defer it for ever. It
        // goes on untouched, results claiming our authserv-id removed at its end.
        m.passed_why = "the MTA gave no client address (a local submission)";
        metrics_.transaction(RelayMetrics::Outcome::delivered);
        log_message("untouched", m.passed_why, 0);
    } else if (policies_.verifying != nullptr) {
        m.mode = Mode::verify;
        const Peer p = peer();
        auto refused = co_await policies_.verifying->mail(p, m.sender);
        if (refused) {
            output_ += milter::encode_reply_code(refused->code, refused->enhanced, refused->text);
            metrics_.transaction(RelayMetrics::Outcome::deferred_signer);
            log_message("refused", refused->text, refused->code);
            end_message();
            co_return;
        }
    } else {
        m.passed_why = m.auth_user.empty()
                           ? "the client " + (address_text_.empty() ? "-" : address_text_) +
                                 " is no configured client"
                           : "the user is no configured client";
        metrics_.transaction(RelayMetrics::Outcome::delivered);
        log_message("untouched", m.passed_why, 0);
        output_ += milter::encode(rep::accept);
        end_message();
        co_return;
    }
    answer(st::no_reply_mail, rep::continue_);
}

void MilterConversation::header(std::string_view data) {
    auto h = milter::parse_header(data);
    if (!h) {
        fail(h.error().message);
        return;
    }
    if (!message_) {
        return;  // not in a message (it went on untouched): nothing to keep
    }
    if (message_->header_done) {
        fail("a header field after the end of the header section");
        return;
    }
    Message& m = *message_;
    std::string line = h->name + ":";
    if ((steps_ & st::header_leading_space) == 0 && !h->value.empty() && h->value[0] != ' ' &&
        h->value[0] != '\t') {
        line += ' ';  // the MTA dropped the space after the colon
    }
    // Continuation lines as the message has them on the wire: CRLF, then the white space.
    for (std::size_t i = 0; i < h->value.size(); ++i) {
        if (h->value[i] == '\n' && (i == 0 || h->value[i - 1] != '\r')) {
            line += '\r';
        }
        line += h->value[i];
    }
    line += "\r\n";
    if (m.text.size() + line.size() > config_.limits.message_size ||
        ++m.fields > kMilterMaxFields) {
        m.too_big = true;
        m.text.clear();
        m.forged.clear();
        return;
    }
    m.text += line;
    if (mail::iequals(h->name, "Authentication-Results")) {
        ++m.results;
        const auto claimed = mail::authserv_id_of(h->value);
        if (claimed && *claimed == ours_) {
            m.forged.push_back(m.results);
        }
    }
}

void MilterConversation::end_of_header() {
    if (!message_) {
        answer(st::no_reply_end_of_header, rep::continue_);
        return;
    }
    Message& m = *message_;
    m.header_done = true;
    if (m.too_big) {
        answer(st::no_reply_end_of_header, rep::continue_);
        return;
    }
    const std::string section = m.text;
    m.text += "\r\n";
    m.body_start = m.text.size();
    if (m.mode == Mode::sign) {
        SigningPolicy* signing = policies_.signing;
        const Peer p = peer();
        signing->end_of_header(p, section);
        if (auto why = signing->not_signed_because(p)) {
            m.passed_why = *why;
            Conclusion c;
            signing->annotate(c);
            metrics_.transaction(RelayMetrics::Outcome::delivered);
            log_message("untouched", m.passed_why, 0);
            // Fields claiming our authserv-id go from every message (end_of_body); without
            // any, the MTA may stop sending this one.
            if ((steps_ & st::no_reply_end_of_header) == 0 && m.forged.empty()) {
                output_ += milter::encode(rep::accept);
                end_message();
                return;
            }
            answer(st::no_reply_end_of_header, rep::continue_);
            return;
        }
    }
    answer(st::no_reply_end_of_header, rep::continue_);
}

void MilterConversation::body(std::string_view chunk) {
    if (!message_ || !message_->passed_why.empty()) {
        return;
    }
    Message& m = *message_;
    if (m.too_big) {
        return;
    }
    // The body as it is on the wire: CRLF line ends (an MTA that sends LF alone gets them
    // made CRLF, as it will send the message on).
    std::string normal;
    normal.reserve(chunk.size());
    for (const char ch : chunk) {
        if (ch == '\n' && !m.last_cr) {
            normal += '\r';
        }
        normal += ch;
        m.last_cr = ch == '\r';
    }
    if (m.text.size() + normal.size() > config_.limits.message_size) {
        m.too_big = true;
        m.text.clear();
        m.forged.clear();
        return;
    }
    m.text += normal;
    if (m.mode == Mode::sign) {
        policies_.signing->body(normal);
    }
}

awaitable<void> MilterConversation::end_of_body(std::string_view chunk) {
    if (!message_) {
        output_ += milter::encode(rep::continue_);
        co_return;
    }
    if (!chunk.empty()) {
        body(chunk);
    }
    Message& m = *message_;
    // Too big before untouched: the forged fields of a header over the limits were not all
    // counted, so they could not all be removed.
    if (m.too_big) {
        output_ += milter::encode_reply_code(
            552, "5.3.4",
            "Message too big for the DKIM milter (" + std::to_string(config_.limits.message_size) +
                " bytes and " + std::to_string(kMilterMaxFields) + " header fields at most)");
        metrics_.transaction(RelayMetrics::Outcome::rejected);
        log_message("refused", "over the message size limit", 552);
        end_message();
        co_return;
    }
    if (!m.passed_why.empty()) {  // decided at the end of the header section, untouched
        if (remove_forged_results()) {
            output_ += milter::encode(rep::continue_);
            end_message();
        }
        co_return;
    }
    if (!m.header_done) {  // no EOH (the MTA was told it need not send one): the body is all
        end_of_header();
        if (!message_) {
            co_return;
        }
    }
    if (!co_await host_.flush(output_)) {
        closing_ = true;
        co_return;
    }
    const Peer p = peer();
    MailPolicy* policy = m.mode == Mode::sign ? static_cast<MailPolicy*>(policies_.signing)
                                              : static_cast<MailPolicy*>(policies_.verifying);
    Delivery d = co_await policy->end_of_data(p, m.text, m.body_start, false);
    if (!message_) {
        co_return;
    }
    if (d.refusal) {
        const smtp::Reply& r = *d.refusal;
        if (m.mode == Mode::sign && d.outcome == RelayMetrics::Outcome::rejected) {
            // Not for signing after all (say, no key for its From: domain): untouched.
            metrics_.transaction(RelayMetrics::Outcome::delivered);
            log_message("untouched", r.text, 0);
            output_ += milter::encode(rep::continue_);
        } else {
            metrics_.transaction(d.outcome);
            log_message(r.transient() ? "deferred" : "refused", r.text, r.code);
            output_ += milter::encode_reply_code(r.code, r.enhanced, r.text);
        }
        end_message();
        co_return;
    }
    if (!remove_forged_results()) {
        co_return;
    }
    // The new fields on top, in their order (each insertion at 0 goes above the last).
    const auto fields = split_fields(d.prefix);
    for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
        std::string value = milter_value(it->second);
        if ((steps_ & st::header_leading_space) == 0 && !value.empty() && value[0] == ' ') {
            value.erase(0, 1);  // the MTA puts ": " itself
        }
        output_ += milter::encode_insert_header(0, it->first, value);
    }
    if (d.route == Route::quarantine && (actions_ & milter::action::quarantine) != 0) {
        output_ += milter::encode_quarantine(d.action.empty() ? "quarantine" : "DMARC quarantine");
    }
    metrics_.transaction(RelayMetrics::Outcome::delivered);
    log_message(m.mode == Mode::sign ? "signed" : d.action.c_str(), "", 250);
    output_ += milter::encode(rep::continue_);
    end_message();
}

bool MilterConversation::remove_forged_results() {
    Message& m = *message_;
    if (m.forged.size() > kMilterMaxForgedResults) {
        // Each removal costs the MTA a pass over the header (Postfix: seconds for thousands);
        // no real message carries more than a few.
        output_ += milter::encode_reply_code(
            550, "5.7.1",
            "Too many Authentication-Results fields claiming " + config_.inbound->authserv_id);
        metrics_.transaction(RelayMetrics::Outcome::rejected);
        log_message("refused", "too many forged Authentication-Results fields", 550);
        end_message();
        return false;
    }
    // From the last, so that the earlier ones keep their numbers.
    for (auto it = m.forged.rbegin(); it != m.forged.rend(); ++it) {
        output_ += milter::encode_change_header(*it, "Authentication-Results", "");
    }
    return true;
}

void MilterConversation::abandon_message() {
    if (message_) {
        metrics_.transaction(RelayMetrics::Outcome::aborted);
        end_message();
    }
}

void MilterConversation::end_message() {
    if (policies_.signing != nullptr) {
        policies_.signing->reset();
    }
    if (policies_.verifying != nullptr) {
        policies_.verifying->reset();
    }
    message_.reset();
}

void MilterConversation::log_message(const char* outcome, const std::string& detail, int code) {
    Conclusion c;
    const char* mode = "pass";
    if (message_) {
        if (message_->mode == Mode::sign && policies_.signing != nullptr) {
            policies_.signing->annotate(c);
            mode = "sign";
        } else if (message_->mode == Mode::verify) {
            mode = "verify";
        }
    }
    const double ms =
        message_ ? static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                           clock_.monotonic() - message_->started)
                                           .count()) /
                       1000.0
                 : 0.0;
    char numbers[64];
    (void)std::snprintf(numbers, sizeof numbers, " reply=%d latency_ms=%.3f", code, ms);
    const Peer p = peer();
    const std::string& queue_id = queue_id_;
    host_.log(
        "dkim-relayd: milter id=" + id_ + "." + std::to_string(messages_) +
        // The MTA's queue id: Postfix's smtpd has one only after the first recipient.
        " queue_id=" + (queue_id.empty() ? std::string("-") : text::json_quote(queue_id)) +
        " mode=" + mode + " client=" + p.client_name() +
        " ip=" + (address_text_.empty() ? "-" : address_text_) + " from_domain=" + c.from_domain +
        " selectors=" + c.selectors + " outcome=" + outcome +
        (detail.empty() ? std::string() : " why=" + text::json_quote(one_line(detail))) + numbers);
}

}  // namespace dkim::relayd

// --- the session -----------------------------------------------------------------------------

namespace dkim::relayd {

using namespace std::chrono_literals;

std::string milter_refusal(const Listener& listener, tcp::socket& socket) {
    error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    // An MTA host that vanished (no FIN) frees its slot when keepalive finds it gone.
    socket.set_option(asio::socket_base::keep_alive(true), ec);
    const auto remote = socket.remote_endpoint(ec);
    if (ec) {
        return "the peer's address cannot be read";
    }
    const auto ip = remote.address();
    const auto bytes = ip.is_v4()
                           ? asio::ip::make_address_v6(asio::ip::v4_mapped, ip.to_v4()).to_bytes()
                           : ip.to_v6().to_bytes();
    return listener.allows(bytes)
               ? std::string()
               : ip.to_string() + " is not one of the listener's allowed_networks";
}

std::string milter_refusal(const Listener& listener, asio::local::stream_protocol::socket& socket) {
    ucred peer{};
    socklen_t size = sizeof peer;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) {
        return "the peer's user cannot be read";
    }
    const bool allowed = std::find(listener.allowed_uids.begin(), listener.allowed_uids.end(),
                                   peer.uid) != listener.allowed_uids.end();
    return allowed
               ? std::string()
               : "uid " + std::to_string(peer.uid) + " is not one of the listener's allowed_users";
}

MilterSession::MilterSession(RelayContext& relay, const Listener& listener,
                             asio::generic::stream_protocol::socket socket,
                             const std::string& refusal)
    : relay_(relay),
      socket_(std::move(socket)),
      watchdog_(socket_.get_executor()),
      id_("m" + session_hex_id(relay.id_salt, ++relay.next_session)),
      tcp_(listener.unix_path.empty()) {
    allowed_ = refusal.empty();
    if (!allowed_) {
        log("dkim-relayd: milter id=" + id_ + ": " + refusal + "; closing");
    }
    error_code ec;
    socket_.non_blocking(true, ec);
    const Config& config = relay.config;
    MilterPolicies policies;
    if (listener.signs()) {
        signing_ = std::make_unique<SigningPolicy>(config, relay.signing, relay.metrics,
                                                   relay.clock, Blocking(&relay.workers));
        policies.signing = signing_.get();
    }
    if (listener.verifies() && relay.inbound != nullptr) {
        verifying_ = std::make_unique<VerifyingPolicy>(
            config, *relay.inbound, relay.metrics, relay.clock, Blocking(relay.inbound_workers));
        policies.verifying = verifying_.get();
    }
    conversation_ = std::make_unique<MilterConversation>(config, id_, policies, *this,
                                                         relay.metrics, relay.clock);
}

MilterSession::~MilterSession() {
    if (counted_) {
        --relay_.milter_connections;
        relay_.metrics.connection_closed();
    }
}

void MilterSession::start() {
    auto self = shared_from_this();
    asio::co_spawn(
        socket_.get_executor(),
        [self]() -> awaitable<void> {
            const std::function<void()> on_expiry = [self] {
                self->timed_out_ = true;
                error_code ignored;
                self->socket_.close(ignored);
            };
            co_await self->watchdog_.run(on_expiry);
        },
        asio::detached);
    asio::co_spawn(
        socket_.get_executor(),
        [self]() -> awaitable<void> {
            try {
                co_await self->run();
            } catch (const std::exception& e) {
                self->log("dkim-relayd: milter id=" + self->id_ + ": " + e.what());
            }
            error_code ignored;
            self->socket_.close(ignored);
            self->watchdog_.stop();
        },
        asio::detached);
}

void MilterSession::log(const std::string& line) {
    (void)std::fprintf(stderr, "%s\n", line.c_str());
}

awaitable<void> MilterSession::write(std::string& bytes) {
    if (bytes.empty() || broken_) {
        bytes.clear();
        co_return;
    }
    watchdog_.arm(relay_.config.limits.command_timeout);
    error_code ec;
    co_await asio::async_write(socket_, asio::buffer(bytes),
                               asio::redirect_error(asio::use_awaitable, ec));
    watchdog_.disarm();
    relay_.metrics.bytes_out(bytes.size());
    bytes.clear();
    if (ec) {
        broken_ = true;
    }
}

awaitable<bool> MilterSession::flush(std::string& output) {
    co_await write(output);
    co_return !broken_;
}

awaitable<void> MilterSession::run() {
    if (!allowed_) {
        co_return;
    }
    const Limits& limits = relay_.config.limits;
    relay_.metrics.connection_opened();
    counted_ = true;
    // Counted apart from the SMTP listeners' connections: mail clients on the internet cannot
    // take the MTA's places.
    if (++relay_.milter_connections > limits.connections) {
        relay_.metrics.connection_refused();
        log("dkim-relayd: milter id=" + id_ + ": too many connections; closing");
        co_return;
    }
    while (!conversation_->closing() && !broken_) {
        std::string out = conversation_->take_output();
        co_await write(out);
        if (broken_) {
            break;
        }
        // Silence between packets is the MTA waiting for its client (kMilterIdleTimeout); a
        // packet begun must be whole within the command timeout of its first byte, however
        // slowly the rest drips in.
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            packet_due_ - relay_.clock.monotonic());
        watchdog_.arm(
            conversation_->mid_packet()
                ? std::max(left, 1ms)
                : std::chrono::duration_cast<std::chrono::milliseconds>(kMilterIdleTimeout));
        error_code ec;
        std::size_t n = 0;
        do {
            co_await socket_.async_wait(asio::socket_base::wait_read,
                                        asio::redirect_error(asio::use_awaitable, ec));
            if (!ec) {
                n = socket_.read_some(asio::buffer(relay_.scratch), ec);
            }
        } while (ec == asio::error::would_block || ec == asio::error::try_again);
        watchdog_.disarm();
        if (ec || n == 0) {
            conversation_->input_ended(timed_out_);
            break;
        }
        relay_.metrics.bytes_in(n);
        // ACK at once: the MTA writes the steps it was told need no reply (headers, body)
        // back to back, and with Nagle on its side each small write would wait for our
        // delayed ACK (40 ms a message, measured: 19 messages/s on one session instead of 180).
        // Linux clears the flag after a while, so it is set again after every read.
        if (tcp_) {
            const int quick = 1;
            (void)::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &quick,
                               sizeof quick);
        }
        const bool was_mid_packet = conversation_->mid_packet();
        const MonotonicTime received = relay_.clock.monotonic();
        co_await conversation_->receive(std::string_view(relay_.scratch.data(), n));
        if (conversation_->mid_packet() && !was_mid_packet) {
            packet_due_ = received + limits.command_timeout;
        }
    }
    std::string out = conversation_->take_output();
    co_await write(out);
}

}  // namespace dkim::relayd
