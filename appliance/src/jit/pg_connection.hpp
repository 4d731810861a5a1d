#pragma once
// One libpq connection, reconnected on demand, with statements counted. Parameters travel as
// text (bytea as "\x" hex); results are read as text. Not thread-safe: each user of the store
// owns one, or locks it.

#include <libpq-fe.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::jit::detail {

struct PgResultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

using PgParams = std::vector<std::optional<std::string>>;

// "\x0a1b..." for a bytea parameter, and back.
std::string pg_bytea(const std::string& bytes);
std::string pg_bytes(const char* text);

class PgConnection {
  public:
    // answer_timeout_ms > 0 bounds the wait for the server's answer to each statement on the
    // client's side (a server that is alive but does not answer: a stuck disk, a stopped
    // process, a stalled pooler, which keepalives and the TCP user timeout do not see): the
    // statement fails and the connection is dropped. 0: libpq's blocking calls.
    PgConnection(std::string conninfo, const std::string* password, int connect_timeout_s,
                 std::string application_name, std::atomic<std::uint64_t>* statements,
                 int answer_timeout_ms = 0);
    PgConnection(const PgConnection&) = delete;
    PgConnection& operator=(const PgConnection&) = delete;
    ~PgConnection();

    // Connects if not connected (or the connection broke). `setup` runs after each new
    // connection (LISTEN, session settings).
    Expected<void, std::string> ensure(const char* setup = nullptr);
    bool connected() const;
    void drop();

    // One statement; an error names `what` and the server's message (never a parameter).
    Expected<PgResult, std::string> exec(const std::string& sql, const PgParams& params,
                                         const char* what);
    Expected<PgResult, std::string> exec(const std::string& sql, const char* what) {
        return exec(sql, {}, what);
    }
    PGconn* raw() { return conn_; }

  private:
    std::string conninfo_;
    const std::string* password_;
    int connect_timeout_s_;
    std::string application_name_;
    std::atomic<std::uint64_t>* statements_;
    int answer_timeout_ms_;
    PGconn* conn_ = nullptr;

    // Sends `sql` (with `values` as text parameters when `params`; else a simple query, which
    // may hold several statements) and reads the answer: the first error, else the last result.
    // Null, with `error` set, when there is no answer within answer_timeout_ms_ (the connection
    // is dropped then) or the connection fails.
    PgResult run(const char* sql, bool params, const std::vector<const char*>& values,
                 std::string& error);
};

// Reads column `c` of row `r` as text (empty for NULL).
inline std::string pg_text(const PGresult* res, int r, int c) {
    return PQgetisnull(res, r, c) != 0 ? std::string() : std::string(PQgetvalue(res, r, c));
}
inline bool pg_null(const PGresult* res, int r, int c) {
    return PQgetisnull(res, r, c) != 0;
}
std::int64_t pg_int(const PGresult* res, int r, int c);
inline bool pg_bool(const PGresult* res, int r, int c) {
    return PQgetisnull(res, r, c) == 0 && PQgetvalue(res, r, c)[0] == 't';
}

}  // namespace dkim::jit::detail
