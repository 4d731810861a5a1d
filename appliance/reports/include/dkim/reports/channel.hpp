#pragma once
// The report daemon's socket (dkim-reportd): the frames of dkim/ipc/frame.hpp with a version of
// their own, each carrying a JSON document (the operation and its arguments, or the answer)
// and, after it, raw bytes (a report mail or file being submitted). The JSON is Boost.JSON's,
// compiled once in this library; relayd, webd and the CLI use it through the same headers.
//
//   payload: | JSON length (u32 BE) | JSON text | body bytes |
//
// Requests: {"op":"submit","origin":"smtp 192.0.2.1 <reporter@example.net>"} + the bytes;
// {"op":"reports"|"dashboard"|"findings"|"sources"|"status", ...}. Answers: {"ok":true,...} or
// {"ok":false,"error":"...","code":"invalid|forbidden|unavailable|..."}.

#include <boost/json.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dkim/expected.hpp"

namespace dkim::reports::channel {

inline constexpr std::uint16_t kVersion = 0x5201;  // not signerd's: a crossed socket says so
inline constexpr std::size_t kMaxJson = std::size_t{1} << 20;
inline constexpr std::size_t kMaxFrame = (std::size_t{72} << 20) + kMaxJson;

struct Message {
    boost::json::object json;
    std::string body;
};

std::string encode(const Message& message);                  // the whole frame, header included
Expected<Message, std::string> decode(std::string payload);  // the body is moved out

// {"ok":false,"error":message,"code":code}
Message error(std::string_view code, std::string_view message);

// A connection to dkim-reportd: one request, one answer. Not shared between threads.
class Client {
  public:
    explicit Client(std::string socket_path,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(60'000));
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client();

    // The answer (which may be {"ok":false,...}), or why there is none.
    Expected<Message, std::string> call(const Message& request);

  private:
    std::string path_;
    std::chrono::milliseconds timeout_;
    int fd_ = -1;
};

// The string member `name` of `o`, or "" when absent or not a string.
std::string string_member(const boost::json::object& o, std::string_view name);
// The integer member `name` of `o`, or `fallback`.
std::int64_t int_member(const boost::json::object& o, std::string_view name,
                        std::int64_t fallback = 0);

}  // namespace dkim::reports::channel
