#pragma once
// Internal to dkim_jit: what the SQLite store's files share. sqlite_store.cpp (the store: its
// lock, the commit, the reads, opening), sqlite_rows.cpp (the row each mutation and audit record
// writes) and sqlite_schema.cpp (the tables and their migrations).

#include <sqlite3.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "dkim/jit/store.hpp"

namespace dkim::jit::detail {

class Statement {
  public:
    Statement(sqlite3* db, const char* sql) {
        if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) !=
            SQLITE_OK) {
            stmt_ = nullptr;
        }
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement() { sqlite3_finalize(stmt_); }
    bool ok() const { return stmt_ != nullptr; }

    Statement& reset() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
        next_ = 1;
        return *this;
    }
    Statement& bind(std::int64_t v) {
        sqlite3_bind_int64(stmt_, next_++, v);
        return *this;
    }
    Statement& bind(std::string_view v) {
        sqlite3_bind_text(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Statement& bind_blob(std::string_view v) {
        sqlite3_bind_blob(stmt_, next_++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Statement& bind_null() {
        sqlite3_bind_null(stmt_, next_++);
        return *this;
    }
    template <class T>
    Statement& bind_optional(const std::optional<T>& v) {
        return v ? bind(static_cast<std::int64_t>(*v)) : bind_null();
    }
    // SQLITE_ROW, SQLITE_DONE or an error code.
    int step() { return sqlite3_step(stmt_); }

    std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
    bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
    std::string text(int column) const {
        const auto* p = sqlite3_column_blob(stmt_, column);
        const int n = sqlite3_column_bytes(stmt_, column);
        return p == nullptr ? std::string()
                            : std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
    }

  private:
    sqlite3_stmt* stmt_ = nullptr;
    int next_ = 1;
};

// The database connection and its cache of prepared statements: used by one thread at a time
// (SqliteStore keeps it inside its lock), so that no read lands inside a commit's transaction and
// no statement is stepped by two threads. The row writers are in sqlite_rows.cpp.
class SqliteConnection {
  public:
    SqliteConnection(sqlite3* db, std::string file) : db_(db), file_(std::move(file)) {}
    SqliteConnection(const SqliteConnection&) = delete;
    SqliteConnection& operator=(const SqliteConnection&) = delete;
    ~SqliteConnection() {
        statements_.clear();
        sqlite3_close(db_);
    }

    std::string error(const std::string& what) const {
        return what + ": " + file_ + ": " + sqlite3_errmsg(db_);
    }
    Statement* statement(const char* sql) {
        auto it = statements_.find(sql);
        if (it == statements_.end()) {
            auto stmt = std::make_unique<Statement>(db_, sql);
            if (!stmt->ok()) {
                return nullptr;
            }
            it = statements_.emplace(sql, std::move(stmt)).first;
        }
        return &it->second->reset();
    }
    bool exec(const char* sql) {
        return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
    }
    bool apply(const User& u);
    bool apply(const ApiToken& t);
    bool apply(const Request& r);
    bool apply(const Grant& g);
    bool apply(const GrantUses& g);
    bool apply(const Checkpoint& c);
    bool apply(const KeyRecord& k);
    bool apply(const LoginFailures& f);
    bool apply(const Passkey& p);
    bool apply(const PinShareSet& set);
    bool apply(const ClusterRotation& rotation);
    // Adds to the row of its key and hour (false without an hour: the journal sets it).
    bool apply(const SigningTally& t);
    bool append(const AuditRecord& r);

  private:
    sqlite3* db_;
    std::string file_;
    std::map<const char*, std::unique_ptr<Statement>> statements_;
};

// Creates the tables that are missing and brings an older store to this binary's schema version
// (sqlite_schema.cpp). false, with *err set (sqlite3_free it), on failure.
bool set_up_schema(sqlite3* db, char** err);

}  // namespace dkim::jit::detail
