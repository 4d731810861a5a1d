#include "pg_connection.hpp"

#include <poll.h>

#include <cerrno>
#include <charconv>
#include <chrono>

namespace dkim::jit::detail {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// The server's message, first line only, without libpq's "ERROR:  " prefix.
std::string server_message(PGconn* conn, const PGresult* res) {
    std::string m = res != nullptr ? PQresultErrorMessage(res) : "";
    if (m.empty() && conn != nullptr) {
        m = PQerrorMessage(conn);
    }
    if (const auto nl = m.find('\n'); nl != std::string::npos) {
        m.resize(nl);
    }
    if (m.rfind("ERROR:  ", 0) == 0) {
        m.erase(0, 8);
    }
    return m.empty() ? "no answer from the database" : m;
}

}  // namespace

std::string pg_bytea(const std::string& bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "\\x";
    out.reserve(2 + bytes.size() * 2);
    for (const char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out += kHex[b >> 4];
        out += kHex[b & 0x0f];
    }
    return out;
}

std::string pg_bytes(const char* text) {
    std::string out;
    const std::string_view t(text);
    if (t.size() < 2 || t.substr(0, 2) != "\\x") {
        return out;
    }
    for (std::size_t i = 2; i + 1 < t.size(); i += 2) {
        const int hi = hex_value(t[i]);
        const int lo = hex_value(t[i + 1]);
        if (hi < 0 || lo < 0) {
            return {};
        }
        out += static_cast<char>((hi << 4) | lo);
    }
    return out;
}

std::int64_t pg_int(const PGresult* res, int r, int c) {
    if (PQgetisnull(res, r, c) != 0) {
        return 0;
    }
    const char* v = PQgetvalue(res, r, c);
    std::int64_t out = 0;
    std::from_chars(v, v + std::char_traits<char>::length(v), out);
    return out;
}

PgConnection::PgConnection(std::string conninfo, const std::string* password, int connect_timeout_s,
                           std::string application_name, std::atomic<std::uint64_t>* statements,
                           int answer_timeout_ms)
    : conninfo_(std::move(conninfo)),
      password_(password),
      connect_timeout_s_(connect_timeout_s),
      application_name_(std::move(application_name)),
      statements_(statements),
      answer_timeout_ms_(answer_timeout_ms) {}

PgResult PgConnection::run(const char* sql, bool params, const std::vector<const char*>& values,
                           std::string& error) {
    if (statements_ != nullptr) {
        statements_->fetch_add(1, std::memory_order_relaxed);
    }
    if (answer_timeout_ms_ <= 0) {
        PgResult res(params ? PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr,
                                           values.data(), nullptr, nullptr, 0)
                            : PQexec(conn_, sql));
        if (!res) {
            error = server_message(conn_, nullptr);
        }
        return res;
    }
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(answer_timeout_ms_);
    // Waits until the socket is ready for `events` or the deadline passes (false).
    const auto wait = [this, deadline](short events) {
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return false;
            }
            pollfd fd{PQsocket(conn_), events, 0};
            const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
            if (ready > 0) {
                return true;
            }
            if (ready < 0 && errno != EINTR) {
                return false;
            }
        }
    };
    const auto no_answer = [this, &error] {
        error = "no answer from PostgreSQL within " + std::to_string(answer_timeout_ms_) + " ms";
        drop();  // the server ends the session (and rolls back its transaction) when it notices
        return PgResult();
    };
    // Non-blocking while the statement goes out (a server that reads nothing fills the socket's
    // buffer), blocking again for reading, which waits on poll() first.
    PQsetnonblocking(conn_, 1);
    const int sent = params ? PQsendQueryParams(conn_, sql, static_cast<int>(values.size()),
                                                nullptr, values.data(), nullptr, nullptr, 0)
                            : PQsendQuery(conn_, sql);
    if (sent == 0) {
        error = server_message(conn_, nullptr);
        PQsetnonblocking(conn_, 0);
        return PgResult();
    }
    for (;;) {
        const int flushed = PQflush(conn_);
        if (flushed == 0) {
            break;
        }
        if (flushed < 0) {
            error = server_message(conn_, nullptr);
            PQsetnonblocking(conn_, 0);
            return PgResult();
        }
        if (!wait(POLLIN | POLLOUT)) {
            return no_answer();
        }
        if (PQconsumeInput(conn_) == 0) {
            error = server_message(conn_, nullptr);
            PQsetnonblocking(conn_, 0);
            return PgResult();
        }
    }
    PQsetnonblocking(conn_, 0);
    PgResult answer;
    bool failed = false;
    for (;;) {
        while (PQisBusy(conn_) != 0) {
            if (!wait(POLLIN)) {
                return no_answer();
            }
            if (PQconsumeInput(conn_) == 0) {
                error = server_message(conn_, nullptr);
                return PgResult();
            }
        }
        PgResult next(PQgetResult(conn_));
        if (!next) {
            break;
        }
        const auto status = PQresultStatus(next.get());
        const bool is_error = status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK;
        if (!failed) {  // the first error stays, as PQexec's
            answer = std::move(next);
            failed = is_error;
        }
    }
    if (!answer) {
        error = server_message(conn_, nullptr);
    }
    return answer;
}

PgConnection::~PgConnection() {
    drop();
}

void PgConnection::drop() {
    if (conn_ != nullptr) {
        PQfinish(conn_);
        conn_ = nullptr;
    }
}

bool PgConnection::connected() const {
    return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

Expected<void, std::string> PgConnection::ensure(const char* setup) {
    if (connected() && PQtransactionStatus(conn_) != PQTRANS_UNKNOWN) {
        return {};
    }
    drop();
    const std::string timeout = std::to_string(connect_timeout_s_);
    // The connection string is expanded from "dbname" (expand_dbname); the password is a
    // parameter of its own, never part of a string that an error could echo.
    // A peer that vanishes (a partition drops every packet) must not hold a statement for the
    // kernel's retransmission timeout: keepalives and a user timeout bound it. Given before the
    // connection string, which may set them otherwise.
    const std::string user_timeout = std::to_string(connect_timeout_s_ * 1000);
    std::vector<const char*> keys = {
        "connect_timeout",  "keepalives",       "keepalives_idle",  "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "application_name", "dbname"};
    std::vector<const char*> values = {
        timeout.c_str(),  "1", "1", "1", "3", user_timeout.c_str(), application_name_.c_str(),
        conninfo_.c_str()};
    if (password_ != nullptr && !password_->empty()) {
        // Otherwise: the connection string, ~/.pgpass or a client certificate.
        keys.push_back("password");
        values.push_back(password_->c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = PQconnectdbParams(keys.data(), values.data(), 1);
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
        std::string message = "cannot connect to PostgreSQL: " + server_message(conn_, nullptr);
        drop();
        return unexpected(std::move(message));
    }
    if (setup != nullptr) {
        std::string error;
        PgResult res = run(setup, false, {}, error);
        if (!res) {
            drop();
            return unexpected("cannot set up the PostgreSQL session: " + error);
        }
        const auto status = PQresultStatus(res.get());
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            std::string message =
                "cannot set up the PostgreSQL session: " + server_message(conn_, res.get());
            drop();
            return unexpected(std::move(message));
        }
    }
    return {};
}

Expected<PgResult, std::string> PgConnection::exec(const std::string& sql, const PgParams& params,
                                                   const char* what) {
    if (conn_ == nullptr) {
        return unexpected(std::string("cannot ") + what + ": not connected to PostgreSQL");
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) {
        values.push_back(p ? p->c_str() : nullptr);
    }
    std::string error;
    PgResult res = run(sql.c_str(), true, values, error);
    if (!res) {
        return unexpected(std::string("cannot ") + what + ": " + error);
    }
    const auto status = PQresultStatus(res.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        return unexpected(std::string("cannot ") + what + ": " + server_message(conn_, res.get()));
    }
    return res;
}

}  // namespace dkim::jit::detail
