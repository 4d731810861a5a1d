#pragma once
// The Transaction's inner state, shared by transaction.cpp (commands) and
// transaction_data.cpp (DATA).

#include <optional>
#include <string>
#include <vector>

#include "transaction.hpp"

namespace dkim::relayd {

struct Transaction::Envelope {
    // Whom the transaction is for, decided by its first accepted recipient.
    enum class Kind : std::uint8_t { undecided, mail, reports };
    Kind kind = Kind::undecided;
    bool hop_mail_sent = false;              // the next hop has this transaction's MAIL
    std::optional<smtp::Reply> hop_refusal;  // its refusal of that MAIL
    std::string sender;
    std::string sender_domain;
    std::vector<std::string> recipients;
    std::uint64_t declared_size = 0;
    bool eight_bit = false;
    bool smtputf8 = false;
    MonotonicTime started;
};

struct Transaction::DataState {
    explicit DataState(std::size_t line_length) : decoder(line_length) {}
    smtp::DataDecoder decoder;
    std::string message;
    bool header_seen = false;
    std::size_t body_start = 0;
    std::size_t hashed = 0;
    std::size_t scanned = 0;
};

}  // namespace dkim::relayd
