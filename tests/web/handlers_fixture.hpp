#pragma once
// dkim-webd's handlers as a pure function: no sockets, a scripted signerd, a ManualClock. The
// fixture the handler tests share (handlers_test.cpp: sessions, authentication, bodies;
// resources_test.cpp: keys and DNS, elevations, health, the OpenAPI document).

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cereal/archives/json.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "handlers.hpp"
#include "json_body.hpp"
#include "sessions.hpp"

namespace dkim::test {
namespace {

// The tests name these often (using-declarations: nothing else enters the namespace).
using web::http::field;
using web::http::status;
using web::http::verb;

// A scripted signerd: `answer` sees each request (secrets still in it) and replies.
class FakeSigner final : public web::SignerApi {
  public:
    Expected<ipc::Reply, std::string> call(ipc::Request& request) override {
        calls.push_back(request.index());
        if (down) {
            ipc::wipe_secrets(request);
            return unexpected(std::string("cannot connect"));
        }
        ipc::Reply reply = answer(request);
        ipc::wipe_secrets(request);
        return reply;
    }
    std::function<ipc::Reply(ipc::Request&)> answer = [](ipc::Request&) {
        return ipc::Reply{ipc::ErrorReply{ipc::ErrorCode::invalid, "not scripted", 0, {}}};
    };
    std::vector<std::size_t> calls;
    bool down = false;
};

rapidjson::Document parse(const std::string& body) {
    rapidjson::Document d;
    d.Parse(body.c_str());
    EXPECT_FALSE(d.HasParseError()) << body;
    return d;
}

class HandlersTest : public ::testing::Test {
  protected:
    web::Response send(verb method, const std::string& target, const std::string& body = "",
                       std::vector<std::pair<std::string, std::string>> headers = {}) {
        web::Request req{method, target, 11};
        req.set(field::host, "appliance.test:8443");
        if (!body.empty()) {
            req.set(field::content_type, "application/json");
        }
        for (const auto& [k, v] : headers) {
            req.set(k, v);
        }
        req.body() = body;
        req.prepare_payload();
        return web::handle(req, web::ClientInfo{"192.0.2.7"}, deps);
    }
    // Logs in as `user` against a signerd that accepts "right-password" and hands out "tok-<user>".
    std::string login(const std::string& user, const std::string& roles = "requester") {
        signer.answer = [user, roles](ipc::Request& r) -> ipc::Reply {
            if (auto* s = std::get_if<ipc::SessionCreate>(&r)) {
                if (s->auth.password != "right-password") {
                    return ipc::ErrorReply{
                        ipc::ErrorCode::unauthenticated, "wrong user name or password", 0, {}};
                }
                return ipc::OkReply{"session", 7, "tok-" + s->auth.user};
            }
            if (auto* w = std::get_if<ipc::WhoAmI>(&r)) {
                if (w->auth.token != "tok-" + user) {
                    return ipc::ErrorReply{ipc::ErrorCode::unauthenticated, "bad token", 0, {}};
                }
                return ipc::IdentityReply{
                    user, roles, "user", false, "session", 7, 1'800'000'000'000, {}};
            }
            return ipc::ErrorReply{ipc::ErrorCode::invalid, "not scripted", 0, {}};
        };
        auto r = send(verb::post, "/api/v1/session",
                      R"({"user":")" + user + R"(","password":"right-password"})");
        EXPECT_EQ(r.result(), status::created) << r.body();
        auto doc = parse(r.body());
        csrf = doc["session"]["csrf_token"].GetString();
        const std::string cookie(r[field::set_cookie]);
        session_cookie = cookie.substr(0, cookie.find(';'));
        return session_cookie;
    }
    std::vector<std::pair<std::string, std::string>> with_session(bool with_csrf = true) {
        std::vector<std::pair<std::string, std::string>> h{{"Cookie", session_cookie}};
        if (with_csrf) {
            h.emplace_back("X-CSRF-Token", csrf);
        }
        return h;
    }
    static std::string error_code(const web::Response& r) {
        auto d = parse(r.body());
        return d.HasMember("error") ? d["error"]["code"].GetString() : "";
    }
    static std::string error_field(const web::Response& r) {
        auto d = parse(r.body());
        return d.HasMember("error") && d["error"].HasMember("field")
                   ? d["error"]["field"].GetString()
                   : "";
    }

    FakeSigner signer;
    ManualClock clock{from_unix_ms(1'795'000'000'000)};
    web::SessionTable sessions{std::chrono::minutes(30), 100};
    web::LoginLimiter limiter{web::LoginLimiter::Limits{10, 3, std::chrono::minutes(5)}};
    web::WebMetrics metrics;
    web::HandlerOptions options;
    web::Deps deps{signer, sessions, limiter, clock, metrics, options};
    std::string csrf;
    std::string session_cookie;
};

}  // namespace
}  // namespace dkim::test
