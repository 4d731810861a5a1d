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

// --- PIN custody (issue 23): webd forwards sealed envelopes and never takes a PIN in clear -----

ipc::PinStatusReply shares_status() {
    ipc::PinStatusReply s;
    s.mode = "shares";
    s.ready = false;
    s.logged_in = false;
    s.missing = "2 more of 3 custodians' shares (window ends in 14 min)";
    s.identity_fingerprint = "SHA256:q8Zr1m3sDq0o4pWb9cXk7GxYb2o2c8d6Yl6bq1hS5gE";
    s.set_id = "0a1b2c3d";
    s.threshold = 3;
    s.custodians = {{"carol", 1, true},
                    {"dave", 2, false},
                    {"erin", 3, false},
                    {"frank", 4, false},
                    {"gwen", 5, false}};
    s.window_ends_ms = 1'795'000'840'000;
    return s;
}

TEST_F(HandlersTest, PinCustodyIsShownAsSignerdSaysIt) {
    login("carol", "approver");
    int asked = 0;
    ipc::PinStatusReply status = shares_status();
    signer.answer = [&](ipc::Request& r) -> ipc::Reply {
        if (auto* p = std::get_if<ipc::PinStatusRequest>(&r)) {
            EXPECT_EQ(p->auth.token, "tok-carol");
            ++asked;
            return status;
        }
        return ipc::ErrorReply{ipc::ErrorCode::invalid, "unexpected", 0, {}};
    };
    auto r = send(verb::get, "/api/v1/pin", "", with_session(false));
    ASSERT_EQ(r.result(), status::ok) << r.body();
    EXPECT_EQ(asked, 1);
    auto d = parse(r.body());
    const auto& pin = d["pin"];
    EXPECT_EQ(std::string(pin["mode"].GetString()), "shares");
    EXPECT_FALSE(pin["ready"].GetBool());
    EXPECT_FALSE(pin["logged_in"].GetBool());
    EXPECT_EQ(std::string(pin["missing"].GetString()), status.missing);
    EXPECT_EQ(std::string(pin["identity_fingerprint"].GetString()), status.identity_fingerprint);
    EXPECT_EQ(std::string(pin["set_id"].GetString()), "0a1b2c3d");
    EXPECT_EQ(pin["threshold"].GetUint(), 3U);
    ASSERT_EQ(pin["custodians"].Size(), 5U);
    EXPECT_EQ(std::string(pin["custodians"][0]["name"].GetString()), "carol");
    EXPECT_EQ(pin["custodians"][0]["index"].GetUint(), 1U);
    EXPECT_TRUE(pin["custodians"][0]["submitted"].GetBool());
    EXPECT_FALSE(pin["custodians"][4]["submitted"].GetBool());
    EXPECT_EQ(pin["window_ends_ms"].GetInt64(), 1'795'000'840'000);
    EXPECT_EQ(d["now_ms"].GetInt64(), 1'795'000'000'000);

    // Another mode: no split, no window (null, as every absent value in the API).
    status = ipc::PinStatusReply{};
    status.mode = "sealed";
    status.ready = true;
    status.logged_in = true;
    d = parse(send(verb::get, "/api/v1/pin", "", with_session(false)).body());
    EXPECT_EQ(std::string(d["pin"]["mode"].GetString()), "sealed");
    EXPECT_TRUE(d["pin"]["ready"].GetBool());
    EXPECT_TRUE(d["pin"]["set_id"].IsNull());
    EXPECT_TRUE(d["pin"]["window_ends_ms"].IsNull());
    EXPECT_EQ(d["pin"]["custodians"].Size(), 0U);

    signer.down = true;
    EXPECT_EQ(send(verb::get, "/api/v1/pin", "", with_session(false)).result(),
              status::service_unavailable);
}

TEST_F(HandlersTest, KeyOffersAreAskedForTheCallerAndForwardedWhole) {
    login("bob", "approver");
    std::vector<ipc::PinKeyOffer> asked;
    signer.answer = [&](ipc::Request& r) -> ipc::Reply {
        if (auto* o = std::get_if<ipc::PinKeyOffer>(&r)) {
            asked.push_back(*o);
            if (o->subject == "99") {
                return ipc::ErrorReply{ipc::ErrorCode::conflict,
                                       "approvals bring no PIN: the PIN custody is \"sealed\"",
                                       0,
                                       {}};
            }
            return ipc::PinKeyOfferReply{"k3y-1d_AAAAAAAAA",
                                         "cHVibGljLWtleS1ieXRlcy0zMi1sb25nLi4uLi4uLi4",
                                         "aWRlbnRpdHkta2V5LWJ5dGVzLTMyLWxvbmcuLi4uLi4",
                                         "SHA256:abc",
                                         1'795'000'300'000,
                                         "dkim-appliance pin envelope key v1\npurpose=approve\n",
                                         "c2lnbmF0dXJl",
                                         "dkim-appliance pin envelope v1\npurpose=approve\n"};
        }
        return ipc::ErrorReply{ipc::ErrorCode::invalid, "unexpected", 0, {}};
    };
    auto r = send(verb::post, "/api/v1/pin/key", R"({"purpose":"approve","subject":"7"})",
                  with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    ASSERT_EQ(asked.size(), 1U);
    EXPECT_EQ(asked[0].auth.token, "tok-bob");
    EXPECT_EQ(asked[0].auth.token_kind, "session");
    EXPECT_EQ(asked[0].purpose, "approve");
    EXPECT_EQ(asked[0].subject, "7");
    auto d = parse(r.body());
    EXPECT_EQ(std::string(d["key_id"].GetString()), "k3y-1d_AAAAAAAAA");
    EXPECT_EQ(std::string(d["public_key"].GetString()),
              "cHVibGljLWtleS1ieXRlcy0zMi1sb25nLi4uLi4uLi4");
    EXPECT_EQ(std::string(d["identity"].GetString()),
              "aWRlbnRpdHkta2V5LWJ5dGVzLTMyLWxvbmcuLi4uLi4");
    EXPECT_EQ(std::string(d["fingerprint"].GetString()), "SHA256:abc");
    EXPECT_EQ(d["expires_ms"].GetInt64(), 1'795'000'300'000);
    EXPECT_EQ(std::string(d["statement"].GetString()),
              "dkim-appliance pin envelope key v1\npurpose=approve\n");
    EXPECT_EQ(std::string(d["signature"].GetString()), "c2lnbmF0dXJl");
    EXPECT_EQ(std::string(d["associated_data"].GetString()),
              "dkim-appliance pin envelope v1\npurpose=approve\n");

    // signerd's refusals come back as for every endpoint; bad bodies never reach it.
    r = send(verb::post, "/api/v1/pin/key", R"({"purpose":"approve","subject":"99"})",
             with_session());
    EXPECT_EQ(r.result(), status::conflict);
    asked.clear();
    for (const char* body : {R"({"purpose":"decrypt","subject":"7"})", R"({"subject":"7"})",
                             R"({"purpose":"share"})", R"({"purpose":"share","subject":7})",
                             R"({"purpose":"share","subject":"0a1b2c3d","user":"alice"})"}) {
        r = send(verb::post, "/api/v1/pin/key", body, with_session());
        EXPECT_EQ(r.result(), status::bad_request) << body;
        EXPECT_EQ(error_code(r), "invalid_field") << body;
    }
    EXPECT_EQ(error_field(send(verb::post, "/api/v1/pin/key", R"({"purpose":"x","subject":"7"})",
                               with_session())),
              "purpose");
    EXPECT_EQ(error_code(send(verb::post, "/api/v1/pin/key",
                              R"({"purpose":"approve","subject":"7"})", with_session(false))),
              "csrf");
    EXPECT_TRUE(asked.empty());
}

TEST_F(HandlersTest, SharesAreForwardedSealedAndNeverTakenInClear) {
    login("carol", "approver");
    std::vector<ipc::PinEnvelope> forwarded;
    signer.answer = [&](ipc::Request& r) -> ipc::Reply {
        if (auto* s = std::get_if<ipc::PinShareSubmit>(&r)) {
            EXPECT_EQ(s->auth.token, "tok-carol");
            forwarded.push_back(s->share);
            return ipc::OkReply{"carol's share (1 of 3) accepted; 2 more needed", 0, ""};
        }
        if (std::holds_alternative<ipc::PinStatusRequest>(r)) {
            return shares_status();
        }
        return ipc::ErrorReply{ipc::ErrorCode::invalid, "unexpected", 0, {}};
    };
    const std::string envelope = "v1.ZXBoZW1lcmFs.aXY.Y2lwaGVydGV4dA";
    auto r = send(verb::post, "/api/v1/pin/shares",
                  R"({"share":{"key_id":"AbCd-_0123456789","envelope":")" + envelope + R"("}})",
                  with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    ASSERT_EQ(forwarded.size(), 1U);
    EXPECT_EQ(forwarded[0].key_id, "AbCd-_0123456789");
    EXPECT_EQ(forwarded[0].envelope, envelope);
    auto d = parse(r.body());
    EXPECT_EQ(std::string(d["message"].GetString()),
              "carol's share (1 of 3) accepted; 2 more needed");
    EXPECT_EQ(std::string(d["pin"]["mode"].GetString()), "shares");
    EXPECT_TRUE(d["pin"]["custodians"][0]["submitted"].GetBool());

    // A share in clear (what a custodian types), or anything that is not an envelope, is refused
    // without being quoted, and nothing reaches signerd.
    const std::string share_text =
        "dkimpin1-0a1b2c3d-1-3-mfrg-gzdf-mztq-ojsw-45dt-mfrg-gzdf-mztq-ojsw-45dt-9f86d081";
    forwarded.clear();
    struct Case {
        std::string body;
        std::string field;
    };
    const std::vector<Case> cases = {
        {R"({"share":")" + share_text + R"("})", "share"},
        {R"({"share":{"key_id":"AbCd","envelope":")" + share_text + R"("}})", "share.envelope"},
        {R"({"share":{"key_id":"AbCd","envelope":"v1.)" + share_text + R"( "}})", "share.envelope"},
        {R"({"share":{"key_id":"AbCd","envelope":"v1.)" + std::string(4094, 'A') + R"("}})",
         "share.envelope"},
        {R"({"share":{"key_id":")" + std::string(65, 'A') + R"(","envelope":"v1.AA.AA.AA"}})",
         "share.key_id"},
        {R"({"share":{"key_id":"a/b","envelope":"v1.AA.AA.AA"}})", "share.key_id"},
        {R"({"share":{"envelope":"v1.AA.AA.AA"}})", "share.key_id"},
        {R"({"share":{"key_id":"AbCd"}})", "share.envelope"},
        {R"({"share":{"key_id":"AbCd","envelope":"v1.AA.AA.AA","share":")" + share_text + R"("}})",
         "share.share"},
        {R"({"share":{"key_id":"AbCd","envelope":"v1.AA.AA.AA"},"custodian":"dave"})", "custodian"},
        {R"({})", "share"},
    };
    for (const Case& c : cases) {
        r = send(verb::post, "/api/v1/pin/shares", c.body, with_session());
        EXPECT_EQ(r.result(), status::bad_request) << c.body;
        EXPECT_EQ(error_field(r), c.field) << c.body;
        EXPECT_EQ(r.body().find("mfrg"), std::string::npos) << "not quoted: " << r.body();
    }
    EXPECT_NE(parse(send(verb::post, "/api/v1/pin/shares", cases[0].body, with_session())
                        .body())["error"]["message"]
                  .GetString(),
              std::string())
        << "a message says why";
    EXPECT_TRUE(forwarded.empty());
    // 4096 bytes of envelope text are accepted (custody::max_envelope_text).
    r = send(verb::post, "/api/v1/pin/shares",
             R"({"share":{"key_id":"AbCd","envelope":"v1.)" + std::string(4093, 'A') + R"("}})",
             with_session());
    EXPECT_EQ(r.result(), status::ok) << r.body();
}

TEST_F(HandlersTest, AClearPinIsRefusedAndNeverForwarded) {
    login("bob", "approver");
    std::vector<ipc::ElevationDecide> decided;
    signer.answer = [&](ipc::Request& r) -> ipc::Reply {
        if (auto* d = std::get_if<ipc::ElevationDecide>(&r)) {
            decided.push_back(*d);
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
    signer.calls.clear();
    for (const char* action : {"approve", "deny", "revoke", "cancel"}) {
        for (const char* pin : {R"("user-pin-1234")", "null", "1234", R"({"key_id":"a"})"}) {
            const std::string body =
                std::string(R"({"totp":"654321","reason":"r","pin":)") + pin + "}";
            auto r = send(verb::post, std::string("/api/v1/elevations/4/") + action, body,
                          with_session());
            EXPECT_EQ(r.result(), status::bad_request) << action << " " << body;
            EXPECT_EQ(error_code(r), "invalid_field");
            EXPECT_EQ(error_field(r), "pin");
            auto d = parse(r.body());
            EXPECT_NE(std::string(d["error"]["message"].GetString()).find("must be sealed"),
                      std::string::npos)
                << r.body();
            EXPECT_EQ(r.body().find("user-pin-1234"), std::string::npos) << "never echoed";
        }
    }
    EXPECT_TRUE(decided.empty());
    EXPECT_TRUE(signer.calls.empty()) << "nothing of it reached signerd";

    // The sealed form goes to signerd as it came, with the second factor.
    const std::string sealed =
        R"({"totp":"654321","pin_envelope":{"key_id":"AbCd-_0123456789","envelope":"v1.AA.BB.CC"}})";
    auto r = send(verb::post, "/api/v1/elevations/4/approve", sealed, with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    ASSERT_EQ(decided.size(), 1U);
    EXPECT_EQ(decided[0].action, "approve");
    EXPECT_EQ(decided[0].id, 4);
    EXPECT_EQ(decided[0].auth.totp, "654321");
    EXPECT_EQ(decided[0].pin.key_id, "AbCd-_0123456789");
    EXPECT_EQ(decided[0].pin.envelope, "v1.AA.BB.CC");
    // Without one, the approval carries an empty envelope (custody modes that need none).
    ASSERT_EQ(
        send(verb::post, "/api/v1/elevations/4/approve", R"({"totp":"654321"})", with_session())
            .result(),
        status::ok);
    ASSERT_EQ(decided.size(), 2U);
    EXPECT_TRUE(decided[1].pin.empty());
    // Only an approval takes one; malformed ones are refused naming the member.
    decided.clear();
    const std::string envelope = R"("pin_envelope":{"key_id":"AbCd","envelope":"v1.AA.BB.CC"})";
    EXPECT_EQ(
        error_field(send(verb::post, "/api/v1/elevations/4/deny",
                         R"({"totp":"654321","reason":"no",)" + envelope + "}", with_session())),
        "pin_envelope");
    EXPECT_EQ(error_field(send(verb::post, "/api/v1/elevations/4/cancel", "{" + envelope + "}",
                               with_session())),
              "pin_envelope");
    EXPECT_EQ(
        error_field(send(verb::post, "/api/v1/elevations/4/approve",
                         R"({"totp":"654321","pin_envelope":"user-pin-1234"})", with_session())),
        "pin_envelope");
    EXPECT_EQ(
        error_field(
            send(verb::post, "/api/v1/elevations/4/approve",
                 R"({"totp":"654321","pin_envelope":{"key_id":"AbCd","envelope":"user-pin-1234"}})",
                 with_session())),
        "pin_envelope.envelope");
    EXPECT_TRUE(decided.empty());
}

}  // namespace
}  // namespace dkim::test
