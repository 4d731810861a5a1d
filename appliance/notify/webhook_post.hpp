#pragma once
// One signed webhook delivery, shared by dkim-signerd's in-process webhook (development) and
// dkim-notifyd (the appliance, where signerd has no network):
//
//   POST <url>
//   Content-Type: application/json
//   X-DKIM-Signerd-Timestamp: 1790000000
//   X-DKIM-Signerd-Signature: v1=<hex HMAC-SHA256(key, timestamp + "." + body)>
//
// The timestamp is the delivery's (receivers refuse old ones). The key never leaves this
// function: it is in no error text and no log line.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "dkim/clock.hpp"

namespace dkim::notify {

// "v1=<hex>" over timestamp + "." + body.
std::string webhook_signature(std::string_view key, std::int64_t timestamp, std::string_view body);

// Whether `url` is an http:// or https:// URL with a host.
bool valid_webhook_url(const std::string& url);

// POSTs `body` to `url` signed with `key` and timestamped `now`, within `timeout` (connect,
// TLS with the system's CAs and the host name checked, request and answer). "" when the
// receiver answered 2xx, else why not (no secret in it).
std::string post_signed(const std::string& url, std::string_view key, const std::string& body,
                        std::chrono::milliseconds timeout, TimePoint now);

}  // namespace dkim::notify
