// dkim-webd's handlers: security headers, the console's files, sessions, authentication and
// CSRF, bodies, signerd's refusals, the login limit, and secrets in what is sent to signerd.

#include "handlers_fixture.hpp"

namespace dkim::test {
namespace {

using namespace std::chrono_literals;

TEST_F(HandlersTest, EveryResponseCarriesTheSecurityHeaders) {
    for (const auto& r :
         {send(verb::get, "/"), send(verb::get, "/api/v1/me"), send(verb::get, "/nothing")}) {
        EXPECT_NE(r[field::strict_transport_security].find("max-age="), std::string::npos);
        EXPECT_NE(r["Content-Security-Policy"].find("default-src 'none'"), std::string::npos);
        EXPECT_EQ(r["Content-Security-Policy"].find("unsafe-inline"), std::string::npos);
        EXPECT_EQ(r["X-Content-Type-Options"], "nosniff");
        EXPECT_EQ(r["X-Frame-Options"], "DENY");
    }
}

TEST_F(HandlersTest, TheConsoleIsPublicAndTheApiIsNot) {
    auto page = send(verb::get, "/");
    EXPECT_EQ(page.result(), status::ok);
    EXPECT_NE(page.body().find("<script src=\"/app.js\""), std::string::npos);
    EXPECT_EQ(page.body().find("<script>"), std::string::npos) << "no inline script";
    EXPECT_EQ(send(verb::get, "/app.js").result(), status::ok);
    for (const std::string& route : web::route_table()) {
        const std::string method = route.substr(0, route.find(' '));
        std::string path = route.substr(route.find(' ') + 1);
        // The logins (password, passkey) and the passkey login's challenge need no session.
        if (route == "GET /healthz" || route == "POST /api/v1/session" ||
            route == "POST /api/v1/session/passkey" ||
            route == "POST /api/v1/session/passkey/challenge") {
            continue;
        }
        for (const char* p : {"{id}", "{domain}", "{credential_id}"}) {
            if (const auto at = path.find(p); at != std::string::npos) {
                path.replace(at, std::string(p).size(), "1");
            }
        }
        const auto r = send(web::http::string_to_verb(method), path, method == "GET" ? "" : "{}");
        EXPECT_EQ(r.result(), status::unauthorized) << route;
        EXPECT_EQ(error_code(r), "unauthenticated") << route;
    }
    EXPECT_TRUE(signer.calls.empty()) << "nothing reached signerd without credentials";
}

TEST_F(HandlersTest, LoginSetsAHostOnlyStrictCookieAndTheCsrfTokenGuardsChanges) {
    login("alice");
    auto r = send(verb::post, "/api/v1/session", R"({"user":"alice","password":"right-password"})");
    const std::string cookie(r[field::set_cookie]);
    EXPECT_EQ(cookie.rfind("__Host-dkim_session=tok-alice;", 0), 0U);
    for (const char* attribute : {"Path=/", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age="}) {
        EXPECT_NE(cookie.find(attribute), std::string::npos) << attribute;
    }
    signer.calls.clear();
    const std::string body =
        R"({"operation":"sign","domain":"example.com","duration_seconds":600,"reason":"x"})";
    auto no_csrf = send(verb::post, "/api/v1/elevations", body, with_session(false));
    EXPECT_EQ(no_csrf.result(), status::forbidden);
    EXPECT_EQ(error_code(no_csrf), "csrf");
    auto wrong = send(verb::post, "/api/v1/elevations", body,
                      {{"Cookie", session_cookie}, {"X-CSRF-Token", std::string(64, 'a')}});
    EXPECT_EQ(wrong.result(), status::forbidden);
    auto other_origin = send(
        verb::post, "/api/v1/elevations", body,
        {{"Cookie", session_cookie}, {"X-CSRF-Token", csrf}, {"Origin", "https://evil.example"}});
    EXPECT_EQ(error_code(other_origin), "origin");
    EXPECT_TRUE(signer.calls.empty()) << "refused before signerd was asked";
    // A GET needs no CSRF token.
    EXPECT_EQ(send(verb::get, "/api/v1/me", "", with_session(false)).result(), status::ok);
}

TEST_F(HandlersTest, SessionsEndByIdleTimeAndAtLogout) {
    login("alice");
    clock.advance(29min);
    EXPECT_EQ(send(verb::get, "/api/v1/me", "", with_session()).result(), status::ok);
    clock.advance(31min);
    EXPECT_EQ(send(verb::get, "/api/v1/me", "", with_session()).result(), status::unauthorized)
        << "idle for longer than session_idle";
    login("alice");
    signer.answer = [](ipc::Request& r) -> ipc::Reply {
        EXPECT_TRUE(std::holds_alternative<ipc::SessionEnd>(r));
        return ipc::OkReply{"session ended", 7, ""};
    };
    auto out = send(verb::delete_, "/api/v1/session", "", with_session());
    EXPECT_EQ(out.result(), status::ok);
    EXPECT_NE(std::string(out[field::set_cookie]).find("Max-Age=0"), std::string::npos);
    EXPECT_EQ(send(verb::get, "/api/v1/me", "", with_session()).result(), status::unauthorized);
}

// Issue 18, finding 6: a console session token sent as "Authorization: Bearer" must not
// escape session_idle. webd refuses a session token it knows as a Bearer token without asking
// signerd, and marks every Bearer token "api" so that signerd refuses a session token webd has
// forgotten (idle, logged out, restarted). The scripted signerd below answers as signerd's
// Directory does for token kinds (tests/appliance/jit/credentials_test.cpp checks that part).
TEST_F(HandlersTest, ASessionTokenIsNoBearerTokenAndCannotOutliveTheIdleTimeout) {
    login("alice");
    const std::string session_token = session_cookie.substr(session_cookie.find('=') + 1);
    ASSERT_EQ(session_token, "tok-alice");
    std::vector<std::string> kinds_seen;
    signer.answer = [&](ipc::Request& r) -> ipc::Reply {
        const ipc::Credentials* auth = std::visit(
            [](auto& request) -> const ipc::Credentials* {
                if constexpr (requires { request.auth; }) {
                    return &request.auth;
                } else {
                    return nullptr;
                }
            },
            r);
        if (auth == nullptr) {
            return ipc::ErrorReply{ipc::ErrorCode::invalid, "not scripted", 0, {}};
        }
        kinds_seen.push_back(auth->token_kind);
        const bool ok = (auth->token == "tok-alice" && auth->token_kind != "api") ||
                        (auth->token == "dkt_robot" && auth->token_kind != "session");
        if (!ok) {
            return ipc::ErrorReply{ipc::ErrorCode::unauthenticated, "authentication failed", 0, {}};
        }
        if (!std::holds_alternative<ipc::WhoAmI>(r)) {
            return ipc::ErrorReply{ipc::ErrorCode::invalid, "not scripted", 0, {}};
        }
        if (auth->token == "tok-alice") {
            return ipc::IdentityReply{"alice", "requester",       "user", false, "session",
                                      7,       1'800'000'000'000, {}};
        }
        return ipc::IdentityReply{"ci", "requester", "user", false, "api", 3, 0, {}};
    };
    const std::vector<std::pair<std::string, std::string>> as_bearer = {
        {"Authorization", "Bearer " + session_token}};

    signer.calls.clear();
    auto fresh = send(verb::get, "/api/v1/me", "", as_bearer);
    EXPECT_EQ(fresh.result(), status::unauthorized) << "refused even while the session is fresh";
    EXPECT_EQ(error_code(fresh), "unauthenticated");
    EXPECT_TRUE(signer.calls.empty()) << "webd knows the session and refuses it itself";
    ASSERT_EQ(send(verb::get, "/api/v1/me", "", with_session(false)).result(), status::ok);
    EXPECT_EQ(kinds_seen.back(), "session") << "the cookie's token is sent as a session token";

    // Idle past session_idle (30 minutes here): the cookie is refused, and so is the Bearer.
    clock.advance(31min);
    EXPECT_EQ(send(verb::get, "/api/v1/me", "", with_session(false)).result(),
              status::unauthorized);
    signer.calls.clear();
    kinds_seen.clear();
    const auto idle = send(verb::get, "/api/v1/me", "", as_bearer);
    EXPECT_EQ(idle.result(), status::unauthorized) << idle.body();
    for (const std::string& kind : kinds_seen) {
        EXPECT_EQ(kind, "api") << "a Bearer token reaches signerd only as an API token";
    }
    const auto state_change =
        send(verb::post, "/api/v1/elevations",
             R"({"operation":"sign","domain":"example.com","duration_seconds":600,"reason":"x"})",
             as_bearer);
    EXPECT_EQ(state_change.result(), status::unauthorized) << state_change.body();

    // A webd that never saw the session (restarted): signerd is what refuses it.
    web::SessionTable empty{30min, 100};
    web::Deps restarted{signer, empty, limiter, clock, metrics, options};
    web::Request req{verb::get, "/api/v1/me", 11};
    req.set(field::host, "appliance.test:8443");
    req.set(field::authorization, "Bearer " + session_token);
    kinds_seen.clear();
    EXPECT_EQ(web::handle(req, web::ClientInfo{"192.0.2.7"}, restarted).result(),
              status::unauthorized);
    ASSERT_EQ(kinds_seen, std::vector<std::string>{"api"});

    // An API token still works as a Bearer token, sent as "api".
    kinds_seen.clear();
    EXPECT_EQ(send(verb::get, "/api/v1/me", "", {{"Authorization", "Bearer dkt_robot"}}).result(),
              status::ok);
    EXPECT_EQ(kinds_seen, std::vector<std::string>{"api"});
}

// The console shows only what its user may use: login and GET /api/v1/me carry the
// permissions signerd computes (ipc::Permissions), asked anew on every GET /api/v1/me rather
// than kept with the session, so that a change of roles or policy shows at the next load.
TEST_F(HandlersTest, MeCarriesSignerdsPermissionsAskedAnewEachTime) {
    ipc::Permissions now_allowed;
    now_allowed.request = true;
    now_allowed.revoke_own = true;
    std::string roles = "requester";
    signer.answer = [&](ipc::Request& r) -> ipc::Reply {
        if (std::holds_alternative<ipc::SessionCreate>(r)) {
            return ipc::OkReply{"session", 7, "tok-dave"};
        }
        if (std::holds_alternative<ipc::WhoAmI>(r)) {
            return ipc::IdentityReply{
                "dave", roles, "user", true, "session", 7, 1'800'000'000'000, now_allowed};
        }
        return ipc::ErrorReply{ipc::ErrorCode::invalid, "not scripted", 0, {}};
    };
    const auto permissions_in = [](const rapidjson::Value& identity) {
        std::vector<std::string> out;
        const auto& p = identity["permissions"];
        for (const char* flag : {"request", "break_glass", "revoke_own", "revoke_any", "cancel_any",
                                 "audit", "users"}) {
            EXPECT_TRUE(p.HasMember(flag) && p[flag].IsBool()) << flag;
            if (p.HasMember(flag) && p[flag].IsBool() && p[flag].GetBool()) {
                out.emplace_back(flag);
            }
        }
        EXPECT_TRUE(p.HasMember("approve") && p["approve"].IsArray());
        if (p.HasMember("approve") && p["approve"].IsArray()) {
            for (const auto& op : p["approve"].GetArray()) {
                out.push_back(std::string("approve:") + op.GetString());
            }
        }
        return out;
    };
    auto made =
        send(verb::post, "/api/v1/session", R"({"user":"dave","password":"right-password"})");
    ASSERT_EQ(made.result(), status::created) << made.body();
    auto doc = parse(made.body());
    EXPECT_EQ(permissions_in(doc["session"]), (std::vector<std::string>{"request", "revoke_own"}));
    const std::string cookie(made[field::set_cookie]);
    const std::vector<std::pair<std::string, std::string>> as_dave = {
        {"Cookie", cookie.substr(0, cookie.find(';'))}};

    // An admin adds the approver and auditor roles, and the policy names dave for key.retire.
    roles = "approver,auditor,requester";
    now_allowed.approve = {"sign", "key.retire"};
    now_allowed.audit = true;
    now_allowed.users = true;
    auto me = send(verb::get, "/api/v1/me", "", as_dave);
    ASSERT_EQ(me.result(), status::ok) << me.body();
    doc = parse(me.body());
    EXPECT_EQ(permissions_in(doc["me"]),
              (std::vector<std::string>{"request", "revoke_own", "audit", "users", "approve:sign",
                                        "approve:key.retire"}));
    EXPECT_EQ(doc["me"]["roles"].Size(), 3U);

    // And takes them away again: the next load shows less.
    now_allowed = ipc::Permissions{};
    roles = "";
    doc = parse(send(verb::get, "/api/v1/me", "", as_dave).body());
    EXPECT_TRUE(permissions_in(doc["me"]).empty());
}

TEST_F(HandlersTest, BadBodiesAreRefusedNamingTheField) {
    login("alice");
    struct Case {
        std::string body;
        std::string code;
        std::string field;
    };
    const std::vector<Case> cases = {
        {"[1]", "invalid_body", ""},
        {"{\"operation\":", "invalid_body", ""},
        {R"({"operation":"sign","domain":"example.com","duration_seconds":"1h","reason":"x"})",
         "invalid_field", "duration_seconds"},
        {R"({"operation":"sign","domain":"example.com","duration_seconds":5,"reason":"x"})",
         "invalid_field", "duration_seconds"},
        {R"({"operation":"sign","domain":"example.com","duration_seconds":600})", "invalid_field",
         "reason"},
        {R"({"operation":"sign","domain":"example.com","duration_seconds":600,"reason":"x","x":1})",
         "invalid_field", "x"},
        {R"({"operation":"sign","domain":"example.com","duration_seconds":600,"reason":"a\u0007"})",
         "invalid_field", "reason"},
        {R"({"domain":"a","domain":"b"})", "invalid_field", "domain"},
        {"{\"reason\":\"\xc3\x28\"}", "invalid_body", ""},
        {std::string("{\"a\":1}\0", 8), "invalid_body", ""},
    };
    signer.calls.clear();
    for (const Case& c : cases) {
        auto r = send(verb::post, "/api/v1/elevations", c.body, with_session());
        EXPECT_EQ(r.result(), status::bad_request) << c.body;
        EXPECT_EQ(error_code(r), c.code) << c.body;
        EXPECT_EQ(error_field(r), c.field) << c.body;
    }
    EXPECT_TRUE(signer.calls.empty());
    auto plain =
        send(verb::post, "/api/v1/elevations", "{}",
             {{"Cookie", session_cookie}, {"X-CSRF-Token", csrf}, {"Content-Type", "text/plain"}});
    EXPECT_EQ(plain.result(), status::unsupported_media_type);
}

TEST_F(HandlersTest, SignerdRefusalsMapToStatusesWithTheRule) {
    login("dave", "requester,approver");
    const std::vector<std::pair<ipc::ErrorReply, status>> cases = {
        {{ipc::ErrorCode::forbidden, "nobody may approve their own request", 0, "self_approval"},
         status::forbidden},
        {{ipc::ErrorCode::forbidden, "request 1 has its quorum", 0, "quorum_met"},
         status::forbidden},
        {{ipc::ErrorCode::conflict, "request 1 is denied, not pending", 0, {}}, status::conflict},
        {{ipc::ErrorCode::not_found, "no request 1", 0, {}}, status::not_found},
        {{ipc::ErrorCode::unavailable, "the audit log cannot be written", 0, {}},
         status::service_unavailable},
        {{ipc::ErrorCode::locked, "no active grant", 0, {}}, status::locked},
        {{ipc::ErrorCode::protocol, "bad frame", 0, {}}, status::bad_gateway},
        {{ipc::ErrorCode::unknown, "a newer signerd's code", 0, {}}, status::bad_gateway},
    };
    for (const auto& [refusal, expected] : cases) {
        signer.answer = [refusal = refusal](ipc::Request& r) -> ipc::Reply {
            if (auto* d = std::get_if<ipc::ElevationDecide>(&r)) {
                EXPECT_EQ(d->auth.token, "tok-dave");
                EXPECT_EQ(d->auth.totp, "123456");
                return refusal;
            }
            return ipc::ErrorReply{ipc::ErrorCode::invalid, "unexpected", 0, {}};
        };
        auto r = send(verb::post, "/api/v1/elevations/1/approve", R"({"totp":"123456"})",
                      with_session());
        EXPECT_EQ(r.result(), expected) << ipc::to_string(refusal.code);
        auto d = parse(r.body());
        EXPECT_EQ(std::string(d["error"]["code"].GetString()), ipc::to_string(refusal.code));
        EXPECT_EQ(std::string(d["error"]["message"].GetString()), refusal.message);
        EXPECT_EQ(d["error"].HasMember("rule"), !refusal.rule.empty());
    }
    signer.down = true;
    auto r =
        send(verb::post, "/api/v1/elevations/1/approve", R"({"totp":"123456"})", with_session());
    EXPECT_EQ(r.result(), status::service_unavailable);
    EXPECT_EQ(error_code(r), "signerd_unavailable");
}

TEST_F(HandlersTest, LoginsAreRateLimitedPerUser) {
    signer.answer = [](ipc::Request&) -> ipc::Reply {
        return ipc::ErrorReply{
            ipc::ErrorCode::unauthenticated, "wrong user name or password", 0, {}};
    };
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(
            send(verb::post, "/api/v1/session", R"({"user":"bob","password":"guess"})").result(),
            status::unauthorized);
    }
    auto limited = send(verb::post, "/api/v1/session", R"({"user":"bob","password":"guess"})");
    EXPECT_EQ(limited.result(), status::too_many_requests);
    EXPECT_GT(std::stoi(std::string(limited[field::retry_after])), 0);
    EXPECT_EQ(signer.calls.size(), 3U) << "the limited attempt never reached signerd";
    clock.advance(5min);
    EXPECT_EQ(send(verb::post, "/api/v1/session", R"({"user":"bob","password":"guess"})").result(),
              status::unauthorized)
        << "the window has passed";
}

TEST_F(HandlersTest, MethodsAndPaths) {
    auto r = send(verb::put, "/api/v1/elevations");
    EXPECT_EQ(r.result(), status::method_not_allowed);
    EXPECT_EQ(r[field::allow], "POST, GET");
    EXPECT_EQ(send(verb::get, "/api/v1/nothing").result(), status::not_found);
    EXPECT_EQ(send(verb::post, "/").result(), status::method_not_allowed);
    EXPECT_EQ(send(verb::get, "/api/v1/elevations/1/approve/x").result(), status::not_found);
}

TEST_F(HandlersTest, BearerTokensNeedNoCsrfAndAreForwarded) {
    signer.answer = [](ipc::Request& r) -> ipc::Reply {
        if (auto* w = std::get_if<ipc::WhoAmI>(&r)) {
            if (w->auth.token != "dkt_robot") {
                return ipc::ErrorReply{ipc::ErrorCode::unauthenticated, "unknown token", 0, {}};
            }
            return ipc::IdentityReply{"ci", "requester", "user", false, "api", 3, 0, {}};
        }
        return ipc::ErrorReply{ipc::ErrorCode::invalid, "unexpected", 0, {}};
    };
    auto r = send(verb::get, "/api/v1/me", "", {{"Authorization", "Bearer dkt_robot"}});
    ASSERT_EQ(r.result(), status::ok) << r.body();
    auto d = parse(r.body());
    EXPECT_EQ(std::string(d["me"]["auth"].GetString()), "api");
    EXPECT_TRUE(d["me"]["csrf_token"].IsNull());
    EXPECT_TRUE(d["me"]["expires_ms"].IsNull());
    EXPECT_EQ(send(verb::get, "/api/v1/me", "", {{"Authorization", "Basic eDp5"}}).result(),
              status::unauthorized);
    EXPECT_EQ(send(verb::get, "/api/v1/openapi.json", "", {{"Authorization", "Bearer dkt_robot"}})
                  .result(),
              status::ok);
    EXPECT_EQ(send(verb::get, "/api/v1/openapi.json", "", {{"Authorization", "Bearer dkt_forged"}})
                  .result(),
              status::unauthorized)
        << "signerd checks the token for every API resource";
}

TEST_F(HandlersTest, SecretsLeaveNoCopyInTheRequestsSent) {
    login("bob", "approver");
    std::string seen_totp;
    signer.answer = [&](ipc::Request& r) -> ipc::Reply {
        if (auto* d = std::get_if<ipc::ElevationDecide>(&r)) {
            seen_totp = d->auth.totp;
            return ipc::OkReply{"request 4 approved: grant 2 active", 2, ""};
        }
        if (std::holds_alternative<ipc::ElevationList>(r)) {
            ipc::RequestView v;
            v.id = 4;
            v.state = "approved";
            return ipc::RequestsReply{{v}};
        }
        if (std::holds_alternative<ipc::GrantList>(r)) {
            return ipc::GrantsReply{};
        }
        return ipc::ErrorReply{ipc::ErrorCode::invalid, "unexpected", 0, {}};
    };
    auto r =
        send(verb::post, "/api/v1/elevations/4/approve", R"({"totp":"654321"})", with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    EXPECT_EQ(seen_totp, "654321");
    EXPECT_EQ(r.body().find("654321"), std::string::npos) << "the code is not echoed";
}

}  // namespace
}  // namespace dkim::test
