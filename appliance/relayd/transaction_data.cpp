// The Transaction's DATA phase: the message as it arrives (the decoder, the header section
// and body handed to the policy), the end of data (the policy's decision, the next hop or the
// quarantine hop; for report addresses, dkim-reportd's answer) and the log lines. The command
// phase is in transaction.cpp.
#include <cstdio>

#include "dkim/text/json.hpp"
#include "transaction.hpp"
#include "transaction_state.hpp"

namespace dkim::relayd {

// --- DATA ------------------------------------------------------------------------------------

awaitable<bool> Transaction::feed_data() {
    DataState& d = *data_;
    const auto result =
        d.decoder.feed(in_.pending(), d.message, static_cast<std::size_t>(message_limit()));
    in_.consume(result.consumed);
    // The header section goes to the policy once its empty line has come; from then on the
    // body goes as it comes. A report is not the policy's: it does no work on it (at the end it
    // only names the reporter, report_end_of_data).
    if (!d.decoder.oversized() && !report_transaction()) {
        if (!d.header_seen) {
            if (const auto end = find_header_end(d.message, d.scanned)) {
                d.header_seen = true;
                d.body_start = d.hashed = end->body_start;
                policy_.end_of_header(peer(),
                                      std::string_view(d.message).substr(0, end->header_end));
            }
            d.scanned = d.message.size();
        }
        if (d.header_seen && d.message.size() > d.hashed) {
            policy_.body(std::string_view(d.message).substr(d.hashed));
            d.hashed = d.message.size();
        }
    }
    if (result.status == smtp::DataDecoder::Status::more) {
        co_return false;
    }
    if (result.status == smtp::DataDecoder::Status::bare_newline) {
        metrics_.transaction(RelayMetrics::Outcome::rejected);
        close_after_reply(521, "5.5.2",
                          "Bare CR or LF in the message; lines end in CRLF only (RFC 5321 §2.3.8)");
        co_await reset_transaction();
        co_return true;
    }
    co_await end_of_data();
    co_return true;
}

awaitable<void> Transaction::end_of_data() {
    DataState& d = *data_;
    const auto finished = clock_.monotonic();
    const auto& limits = config_.limits;
    Conclusion c;
    c.size = d.decoder.size();
    auto refuse = [&](int code, std::string_view enhanced, std::string text) {
        c.outcome = RelayMetrics::Outcome::rejected;
        c.code = code;
        c.enhanced = std::string(enhanced);
        c.text = std::move(text);
    };
    if (d.decoder.oversized()) {
        refuse(552, "5.3.4",
               (report_transaction() ? "Report messages are limited to "
                                     : "Message size exceeds the limit of ") +
                   std::to_string(message_limit()) + " bytes");
        if (report_transaction()) {
            metrics_.report(RelayMetrics::ReportOutcome::too_large);
        }
    } else if (d.decoder.line_too_long()) {
        refuse(550, "5.6.0",
               "A line is longer than " + std::to_string(limits.line_length) +
                   " octets (RFC 5322 §2.1.1); it would not reach the recipient with a valid "
                   "signature");
    }
    if (c.code != 0) {
        c.latency = clock_.monotonic() - envelope_->started;
        reply(c.code, c.enhanced, c.text);
        metrics_.transaction(c.outcome);
        metrics_.transaction_latency().observe(clock_.monotonic() - finished);
        policy_.annotate(c);
        log_transaction(c);
        co_await reset_transaction();
        co_return;
    }
    if (!d.header_seen && !report_transaction()) {  // all header, no body
        d.header_seen = true;
        d.body_start = d.hashed = d.message.size();
        policy_.end_of_header(peer(), d.message);
    }
    const bool sent = co_await send_now();
    if (!sent) {
        // The client is gone: it cannot hear the answer and will send again, so nothing is
        // signed or forwarded.
        metrics_.transaction(RelayMetrics::Outcome::aborted);
        c.latency = clock_.monotonic() - envelope_->started;
        policy_.annotate(c);
        log_transaction(c);
        co_await reset_transaction();
        co_return;
    }
    if (report_transaction()) {
        co_await report_end_of_data(c, finished);
        co_return;
    }
    const Peer who = peer();
    const std::string* message = &d.message;
    Delivery delivery =
        co_await policy_.end_of_data(who, *message, d.body_start, d.decoder.eight_bit());
    policy_.annotate(c);
    c.sign_state = delivery.sign_state;
    c.action = delivery.action;
    if (delivery.refusal) {
        c.outcome = delivery.outcome;
        c.code = delivery.refusal->code;
        c.enhanced = delivery.refusal->enhanced;
        c.text = delivery.refusal->text;
    } else {
        const std::string& body = delivery.replacement ? *delivery.replacement : d.message;
        smtp::Reply answer;
        if (delivery.route == Route::quarantine) {
            // The primary hop's transaction is abandoned; the quarantine hop gets MAIL, every
            // RCPT and the message. Any refusal there is the client's answer: nothing is lost.
            co_await next_hop_->reset();
            auto hop = host_.next_hop(Route::quarantine);
            const MailCommand command{envelope_->sender, envelope_->declared_size,
                                      envelope_->eight_bit, envelope_->smtputf8};
            answer = co_await hop->mail(command);
            for (std::size_t i = 0; answer.positive() && i < envelope_->recipients.size(); ++i) {
                answer = co_await hop->rcpt(envelope_->recipients[i]);
            }
            if (answer.positive()) {
                answer = co_await hop->data(delivery.prefix, body, d.decoder.eight_bit());
            } else if (answer.code >= 500) {
                // A refusal by the quarantine hop must not become a permanent bounce.
                answer =
                    local_reply(451, "4.3.0", "Quarantine refused the transaction: " + answer.text);
            }
            co_await hop->quit();
        } else {
            answer = co_await next_hop_->data(delivery.prefix, body, d.decoder.eight_bit());
        }
        c.next_hop = answer.summary();
        if (answer.positive()) {
            metrics_.bytes_out(delivery.prefix.size() + body.size());
            c.outcome = RelayMetrics::Outcome::delivered;
            c.code = 250;
            c.enhanced = "2.0.0";
            c.text = delivery.accepted + " and accepted by the next hop: " + one_line(c.next_hop);
        } else {
            c.outcome = answer.code < 500 ? RelayMetrics::Outcome::deferred_hop
                                          : RelayMetrics::Outcome::rejected;
            c.code = answer.code;
            c.enhanced = enhanced_or_default(answer);
            c.text = "Next hop: " + one_line(answer.text);
        }
    }
    reply(c.code, c.enhanced, c.text);
    metrics_.transaction(c.outcome);
    metrics_.transaction_latency().observe(clock_.monotonic() - finished);
    c.latency = clock_.monotonic() - envelope_->started;
    if (auto line = policy_.log_line(who, connection_.id, transactions_ + 1,
                                     envelope_->recipients.size(), c)) {
        ++transactions_;
        host_.log(*line);
    } else {
        log_transaction(c);
    }
    // When the next hop answered the message its transaction is over: no RSET.
    co_await reset_transaction(!c.next_hop.empty());
}

awaitable<void> Transaction::report_end_of_data(Conclusion& c, MonotonicTime finished) {
    // The bytes as received go to dkim-reportd, with where they came from and who sent them
    // when DKIM says so (the reporter: the From domain with an aligned signature that verified;
    // empty otherwise, which refuses nothing); reportd's answer is the reply. Nothing is added,
    // no verdict decides, and no next hop sees them.
    const std::string origin = "smtp " + connection_.address_text + " <" +
                               printable_line(envelope_->sender, 320) + "> " +
                               printable_line(helo_name_, 255);
    const std::string* o = &origin;
    const std::string* message = &data_->message;
    const std::string reporter = co_await policy_.report_author(*message);
    const std::string* who = &reporter;
    ReportSubmitter* submitter = &reports_->submitter();
    const ReportAnswer answer = co_await submitter->submit(*o, *message, *who);
    const smtp::Reply r = report_reply(answer);
    metrics_.report(report_outcome(answer));
    c.outcome = answer.kind == ReportAnswer::Kind::stored    ? RelayMetrics::Outcome::delivered
                : answer.kind == ReportAnswer::Kind::invalid ? RelayMetrics::Outcome::rejected
                                                             : RelayMetrics::Outcome::deferred_hop;
    c.code = r.code;
    c.enhanced = r.enhanced;
    c.text = r.text;
    reply(r);
    metrics_.transaction(c.outcome);
    metrics_.transaction_latency().observe(clock_.monotonic() - finished);
    c.latency = clock_.monotonic() - envelope_->started;
    const bool stored = answer.kind == ReportAnswer::Kind::stored;
    auto number = [stored](std::int64_t n) { return stored ? std::to_string(n) : "-"; };
    char numbers[64];
    (void)std::snprintf(numbers, sizeof numbers, " size=%llu rcpts=%zu",
                        static_cast<unsigned long long>(c.size), envelope_->recipients.size());
    char latency[48];
    (void)std::snprintf(
        latency, sizeof latency, " latency_ms=%.3f",
        static_cast<double>(
            std::chrono::duration_cast<std::chrono::microseconds>(c.latency).count()) /
            1000.0);
    host_.log(
        "dkim-relayd: report id=" + connection_.id + "." + std::to_string(++transactions_) +
        " ip=" + connection_.address_text +
        " helo=" + text::json_quote(printable_line(helo_name_, 255)) +
        " mail_from=" + text::json_quote(printable_line(envelope_->sender, 320)) +
        " reporter=" + (reporter.empty() ? std::string("-") : printable_line(reporter, 255)) +
        numbers + " submission=" + number(answer.submission) +
        " reports=" + number(answer.reports) + " duplicates=" + number(answer.duplicates) +
        " errors=" + (stored ? std::to_string(answer.errors) : std::string("-")) + " reportd=" +
        text::json_quote(stored ? std::string("stored") : printable_line(answer.reason, 400)) +
        " reply=" + std::to_string(c.code) + latency);
    co_await reset_transaction();
}

void Transaction::log_transaction(const Conclusion& c) {
    const double ms =
        static_cast<double>(
            std::chrono::duration_cast<std::chrono::microseconds>(c.latency).count()) /
        1000.0;
    char numbers[96];
    (void)std::snprintf(numbers, sizeof numbers, " size=%llu rcpts=%zu",
                        static_cast<unsigned long long>(c.size),
                        envelope_ ? envelope_->recipients.size() : 0);
    char latency[48];
    (void)std::snprintf(latency, sizeof latency, " latency_ms=%.3f", ms);
    host_.log("dkim-relayd: txn id=" + connection_.id + "." + std::to_string(++transactions_) +
              " client=" + peer().client_name() + " ip=" + connection_.address_text +
              " from_domain=" + c.from_domain + numbers + " selectors=" + c.selectors +
              " sign=" + c.sign_state +
              " next_hop=" + text::json_quote(c.next_hop.empty() ? "-" : c.next_hop) +
              " reply=" + std::to_string(c.code) + latency);
}

}  // namespace dkim::relayd
