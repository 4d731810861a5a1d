// The shared PostgreSQL store's test fixture (dkim_cluster_test: pg_store_test.cpp and
// pg_attack_test.cpp). The ctest fixture cluster.postgres starts a server
// (tests/integration/pg_server.py: its own initdb, TLS verified, a password role) and names it in
// DKIM_TEST_PG; each test makes a database of its own. A Node is one signerd's worth of engine on
// that database: store, journal, authority, directory and key registry.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "dkim/jit/authority.hpp"
#include "dkim/jit/directory.hpp"
#include "dkim/jit/journal.hpp"
#include "dkim/jit/shared_store.hpp"

namespace dkim::test::pg {

inline std::string read_line(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);
    return line;
}

// The fixture's server: connection string (to database "postgres") and the role's password.
struct PgFixture {
    std::string conninfo;
    std::string password;
    bool present = false;

    static const PgFixture& get() {
        static const PgFixture f = [] {
            PgFixture out;
            // NOLINTNEXTLINE(concurrency-mt-unsafe): read before any thread starts
            const char* dir = std::getenv("DKIM_TEST_PG");
            if (dir == nullptr) {
                return out;
            }
            out.conninfo = read_line(std::filesystem::path(dir) / "conninfo");
            out.password = read_line(std::filesystem::path(dir) / "password");
            out.present = !out.conninfo.empty();
            return out;
        }();
        return f;
    }

    // A new, empty database; its connection string.
    std::string create_database(const std::string& prefix = "t") const {
        static std::atomic<int> counter{0};
        std::random_device random;
        const std::string name = prefix + "_" + std::to_string(random() % 1000000) + "_" +
                                 std::to_string(counter++) + "_" + std::to_string(::getpid());
        const std::string admin = conninfo + " password=" + password;
        PGconn* c = PQconnectdb(admin.c_str());
        if (PQstatus(c) != CONNECTION_OK) {
            std::string e = PQerrorMessage(c);
            PQfinish(c);
            throw std::runtime_error("cannot reach the fixture's server: " + e);
        }
        PGresult* r = PQexec(c, ("CREATE DATABASE " + name).c_str());
        const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        std::string e = PQresultErrorMessage(r);
        PQclear(r);
        PQfinish(c);
        if (!ok) {
            throw std::runtime_error("CREATE DATABASE: " + e);
        }
        std::string out = conninfo;
        out.replace(out.find("dbname=postgres"), std::string("dbname=postgres").size(),
                    "dbname=" + name);
        return out;
    }
};

// A session as the fixture's role (the nodes' role: a database writer as SECURITY.md's threat
// row allows).
class Session {
  public:
    explicit Session(const std::string& conninfo) {
        const std::string with = conninfo + " password=" + PgFixture::get().password;
        conn_ = PQconnectdb(with.c_str());
        if (PQstatus(conn_) != CONNECTION_OK) {
            std::string e = PQerrorMessage(conn_);
            close();
            throw std::runtime_error(e);
        }
    }
    ~Session() { close(); }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    void close() {
        if (conn_ != nullptr) {
            PQfinish(conn_);
            conn_ = nullptr;
        }
    }
    // The first value, "" for a command, "error: ..." for an error.
    std::string run(const std::string& sql, const std::vector<std::string>& params = {}) {
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& p : params) {
            values.push_back(p.c_str());
        }
        PGresult* r = params.empty()
                          ? PQexec(conn_, sql.c_str())
                          : PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                                         nullptr, values.data(), nullptr, nullptr, 0);
        std::string out;
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
            out = PQgetvalue(r, 0, 0);
        } else if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            out = std::string("error: ") + PQresultErrorMessage(r);
        }
        PQclear(r);
        return out;
    }

  private:
    PGconn* conn_ = nullptr;
};

// Runs `sql` on `conninfo` as the fixture's role; its first value ("error: ..." for an error).
inline std::string query(const std::string& conninfo, const std::string& sql) {
    Session s(conninfo);
    return s.run(sql);
}

// One signerd's worth of engine on the shared store.
struct Node {
    Node(const std::string& conninfo, const std::string& name, jit::Policy policy) {
        jit::PostgresOptions o;
        o.conninfo = conninfo;
        o.password = PgFixture::get().password;
        o.node = name;
        auto opened = jit::open_postgres_store(o);
        if (!opened) {
            throw std::runtime_error(opened.error());
        }
        store = std::move(*opened);
        auto state = store->load();
        if (!state) {
            throw std::runtime_error(state.error());
        }
        journal = std::make_unique<jit::Journal>(*store, state->audit_seq, state->audit_head);
        authority = std::make_unique<jit::Authority>(*journal, policy, *state);
        directory =
            std::make_unique<jit::Directory>(*journal, *state, jit::PasswordCost::minimal());
        keys = std::make_unique<jit::KeyRegistry>(state->keys);
    }
    // As ClusterNode::reload_locked applies a snapshot: then tells the store which version the
    // memory holds.
    void apply(const jit::StoredState& state) {
        authority->reload(state);
        directory->reload(state);
        keys->reload(state.keys);
        store->adopt(state.version);
    }
    // As ClusterNode::reload_locked does.
    void reload() {
        store->begin_reload();
        auto state = store->load();
        ASSERT_TRUE(state) << state.error();
        apply(*state);
    }
    // As ClusterNode::decide begins each decision: under the cluster's lock, reloads only when
    // the store's version moved past the memory's.
    void sync() {
        auto behind = store->lock_decisions();
        ASSERT_TRUE(behind) << behind.error();
        if (*behind) {
            reload();
        }
        store->unlock_decisions();
    }

    std::unique_ptr<jit::SharedStore> store;
    std::unique_ptr<jit::Journal> journal;
    std::unique_ptr<jit::Authority> authority;
    std::unique_ptr<jit::Directory> directory;
    std::unique_ptr<jit::KeyRegistry> keys;
};

}  // namespace dkim::test::pg
