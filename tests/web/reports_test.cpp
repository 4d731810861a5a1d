// dkim-webd's reports API against a scripted dkim-reportd (FakeReports, as FakeSigner stands in
// for signerd): who may read and upload, the parameters, reportd's refusals and absence, what
// is sent to reportd, and that its answers reach the client only in the documented shapes.

#include <boost/json.hpp>
#include <map>

#include "dkim/dns/resolver.hpp"
#include "handlers_fixture.hpp"
#include "reverse_dns.hpp"

namespace dkim::test {
namespace {

namespace bj = boost::json;
using reports::channel::Message;

// A scripted dkim-reportd: `answer` sees each request and answers it.
class FakeReports final : public web::ReportsApi {
  public:
    Expected<Message, std::string> call(const Message& request) override {
        requests.push_back(request);
        if (down) {
            return unexpected(std::string("cannot connect to /run/reportd.sock"));
        }
        return answer(request);
    }
    std::function<Message(const Message&)> answer = [](const Message&) {
        Message m;
        m.json["ok"] = true;
        return m;
    };
    std::vector<Message> requests;
    bool down = false;
};

Message ok_with(bj::object fields) {
    Message m;
    m.json = std::move(fields);
    m.json["ok"] = true;
    return m;
}

class ReportsApiTest : public HandlersTest {
  protected:
    ReportsApiTest() { deps.reports = &reports; }
    web::Response get(const std::string& target) {
        return send(verb::get, target, "", with_session(false));
    }
    web::Response upload(const std::string& body, const std::string& type = "application/gzip",
                         const std::string& target = "/api/v1/reports/upload") {
        web::Request req{verb::post, target, 11};
        req.set(field::host, "appliance.test:8443");
        req.set(field::content_type, type);
        req.set(field::cookie, session_cookie);
        req.set("X-CSRF-Token", csrf);
        req.body() = body;
        req.prepare_payload();
        return web::handle(req, web::ClientInfo{"93.184.216.7"}, deps);
    }
    static std::string error_rule(const web::Response& r) {
        auto d = parse(r.body());
        return d.HasMember("error") && d["error"].HasMember("rule") ? d["error"]["rule"].GetString()
                                                                    : "";
    }
    FakeReports reports;
    dns::FakeResolver zone;
    web::ReverseDns reverse_dns{zone, clock};
};

TEST_F(ReportsApiTest, ReadingReportsIsForAuditorsAndAdminsAsTheAuditLogIs) {
    for (const char* roles : {"requester", "approver", "requester,approver"}) {
        login("alice", roles);
        for (const char* path :
             {"/api/v1/reports/dashboard", "/api/v1/reports/findings", "/api/v1/reports/list"}) {
            auto r = get(path);
            EXPECT_EQ(r.result(), status::forbidden) << roles << " " << path;
            EXPECT_EQ(error_rule(r), "role") << r.body();
        }
    }
    EXPECT_TRUE(reports.requests.empty()) << "refused before reportd was asked";
    for (const char* roles : {"auditor", "admin", "approver,auditor"}) {
        login("carol", roles);
        EXPECT_EQ(get("/api/v1/reports/findings").result(), status::ok) << roles;
    }
}

TEST_F(ReportsApiTest, TheMetricsIncludeReportdsOrSayItIsDown) {
    reports.answer = [](const Message& request) {
        EXPECT_EQ(reports::channel::string_member(request.json, "op"), "metrics");
        return ok_with({{"text", "dkim_reportd_submissions 7\n"}});
    };
    login("carol", "auditor");
    auto r = get("/metrics");
    ASSERT_EQ(r.result(), status::ok) << r.body();
    EXPECT_NE(r.body().find("dkim_webd_reportd_up 1\n"), std::string::npos) << r.body();
    EXPECT_NE(r.body().find("dkim_reportd_submissions 7\n"), std::string::npos);
    reports.down = true;
    r = get("/metrics");
    ASSERT_EQ(r.result(), status::ok);
    EXPECT_NE(r.body().find("dkim_webd_reportd_up 0\n"), std::string::npos);
    EXPECT_EQ(r.body().find("dkim_reportd_submissions"), std::string::npos);
}

TEST_F(ReportsApiTest, UploadingIsForAdmins) {
    for (const char* roles : {"auditor", "requester", "approver"}) {
        login("dave", roles);
        auto r = upload("<feedback/>", "text/xml");
        EXPECT_EQ(r.result(), status::forbidden) << roles;
        EXPECT_EQ(error_rule(r), "role") << r.body();
    }
    EXPECT_TRUE(reports.requests.empty());
    login("erin", "admin");
    EXPECT_EQ(upload("<feedback/>", "text/xml").result(), status::ok);
}

TEST_F(ReportsApiTest, TheConsoleLearnsTheReportPermissionsFromMe) {
    const std::pair<const char*, std::pair<bool, bool>> cases[] = {
        {"requester", {false, false}}, {"auditor", {true, false}}, {"admin", {true, true}}};
    for (const auto& [roles, expected] : cases) {
        login("frank", roles);
        auto d = parse(get("/api/v1/me").body());
        EXPECT_EQ(d["me"]["permissions"]["reports"].GetBool(), expected.first) << roles;
        EXPECT_EQ(d["me"]["permissions"]["reports_upload"].GetBool(), expected.second) << roles;
    }
}

TEST_F(ReportsApiTest, WithoutAReportdSocketTheApiSaysReportsAreNotConfigured) {
    deps.reports = nullptr;
    login("carol", "auditor");
    for (const char* path :
         {"/api/v1/reports/dashboard", "/api/v1/reports/findings", "/api/v1/reports/list"}) {
        auto r = get(path);
        EXPECT_EQ(r.result(), status::service_unavailable) << path;
        EXPECT_EQ(error_code(r), "reports_not_configured");
        EXPECT_NE(r.body().find("[reports] socket"), std::string::npos) << r.body();
    }
    login("erin", "admin");
    EXPECT_EQ(error_code(upload("x")), "reports_not_configured");
}

TEST_F(ReportsApiTest, AnUnreachableReportdIs503AndItsRefusalsKeepTheirMeaning) {
    login("carol", "auditor");
    reports.down = true;
    auto down = get("/api/v1/reports/dashboard?domain=example.com");
    EXPECT_EQ(down.result(), status::service_unavailable);
    EXPECT_EQ(error_code(down), "reports_unavailable");
    EXPECT_EQ(down.body().find("/run/"), std::string::npos) << "no socket path to clients";
    reports.down = false;
    const std::pair<const char*, status> refusals[] = {{"invalid", status::bad_request},
                                                       {"unavailable", status::service_unavailable},
                                                       {"forbidden", status::bad_gateway},
                                                       {"something-new", status::bad_gateway}};
    for (const auto& [code, expected] : refusals) {
        reports.answer = [code = code](const Message&) {
            return reports::channel::error(code, "because of " + std::string(code));
        };
        auto r = get("/api/v1/reports/findings");
        EXPECT_EQ(r.result(), expected) << code;
        EXPECT_NE(r.body().find("because of"), std::string::npos) << r.body();
    }
}

TEST_F(ReportsApiTest, ParametersAreCheckedAndNamedBeforeReportdIsAsked) {
    login("carol", "auditor");
    const std::pair<const char*, const char*> bad[] = {
        {"/api/v1/reports/dashboard?domain=exa%20mple.com", "domain"},
        {"/api/v1/reports/dashboard?domain=-bad-.com", "domain"},
        {"/api/v1/reports/dashboard?domain=a..b", "domain"},
        {"/api/v1/reports/findings?from=yesterday", "from"},
        {"/api/v1/reports/findings?until=-5", "until"},
        {"/api/v1/reports/findings?from=1700000000&until=1700000000", "from"},
        {"/api/v1/reports/findings?from=1600000000&until=1700000000", "from"},
        {"/api/v1/reports/list?limit=0", "limit"},
        {"/api/v1/reports/list?limit=1001", "limit"},
        {"/api/v1/reports/list?limit=10x", "limit"},
    };
    for (const auto& [target, name] : bad) {
        auto r = get(target);
        EXPECT_EQ(r.result(), status::bad_request) << target;
        EXPECT_EQ(error_field(r), name) << target << " " << r.body();
    }
    EXPECT_TRUE(reports.requests.empty());

    auto r = get("/api/v1/reports/dashboard?domain=Example.COM&from=1700000000&until=1702592000");
    EXPECT_EQ(r.result(), status::ok) << r.body();
    ASSERT_EQ(reports.requests.size(), 1U);
    const bj::object& sent = reports.requests.back().json;
    EXPECT_EQ(sent.at("op").as_string(), "dashboard");
    EXPECT_EQ(sent.at("domain").as_string(), "example.com") << "lower-cased";
    EXPECT_EQ(sent.at("from").as_int64(), 1'700'000'000);
    EXPECT_EQ(sent.at("until").as_int64(), 1'702'592'000);
    get("/api/v1/reports/list?domain=example.com&limit=5");
    EXPECT_EQ(reports.requests.back().json.at("op").as_string(), "reports");
    EXPECT_EQ(reports.requests.back().json.at("limit").as_int64(), 5);
    get("/api/v1/reports/findings");
    EXPECT_FALSE(reports.requests.back().json.contains("domain")) << "every domain";
}

TEST_F(ReportsApiTest, TheDashboardIsCopiedIntoTheDocumentedShapeOnly) {
    login("carol", "auditor");
    reports.answer = [](const Message&) {
        return ok_with(bj::parse(R"({
          "domain": "example.com", "from": 1700006400, "until": 1700092800,
          "domains": ["example.com", "example.org", 7],
          "daily": [{"domain": "example.com", "day": "2023-11-15", "messages": 120,
                     "dmarc_pass": 100, "dkim_aligned": 98, "spf_aligned": 90,
                     "quarantined": 15, "rejected": 5, "internal": "not for clients"}],
          "signing_available": true,
          "signing": [{"domain": "example.com", "selector": "s1", "day": "2023-11-15",
                       "signed": 90, "reported_pass": 98, "reported_fail": 2}],
          "grants": [{"grant_id": 4, "domain": "example.com", "selector": "*",
                      "start": 1700010000, "end": 1700020000}],
          "sources": [{"source_ip": "93.184.216.25", "messages": 100, "dkim_aligned": 98,
                       "spf_aligned": 90, "spf_pass": 95, "dmarc_pass": 100,
                       "reverse_dns": null}]
        })")
                           .as_object());
    };
    auto r = get("/api/v1/reports/dashboard?domain=example.com");
    ASSERT_EQ(r.result(), status::ok) << r.body();
    auto d = parse(r.body());
    EXPECT_FALSE(d.HasMember("ok"));
    EXPECT_TRUE(d["signing_error"].IsNull());
    EXPECT_EQ(d["domains"].Size(), 2U) << "only strings";
    EXPECT_EQ(d["daily"][0]["quarantined"].GetInt(), 15);
    EXPECT_FALSE(d["daily"][0].HasMember("internal")) << "nothing undocumented passes";
    EXPECT_EQ(d["signing"][0]["signed"].GetInt(), 90);
    EXPECT_EQ(d["grants"][0]["selector"].GetString(), std::string("*"));
    EXPECT_TRUE(d["sources"][0]["reverse_dns"].IsNull());
    EXPECT_EQ(d["sources"][0]["spf_pass"].GetInt(), 95);
}

TEST_F(ReportsApiTest, FindingsKeepTheirEvidence) {
    login("carol", "admin");
    reports.answer = [](const Message&) {
        return ok_with(bj::parse(R"({"from": 1, "until": 86400, "signing_available": false,
          "findings": [{"kind": "replay_suspected", "severity": "critical",
            "domain": "example.com", "selector": "s1", "from": 0, "until": 86400,
            "summary": "more passes than signatures",
            "evidence": {"reported_pass": 5000, "signed": 10,
                         "sources": [{"source_ip": "45.33.32.9", "messages": 4990}]}}]})")
                           .as_object());
    };
    auto d = parse(get("/api/v1/reports/findings?domain=example.com").body());
    ASSERT_EQ(d["findings"].Size(), 1U);
    EXPECT_FALSE(d["signing_available"].GetBool());
    EXPECT_EQ(d["findings"][0]["severity"].GetString(), std::string("critical"));
    EXPECT_EQ(d["findings"][0]["evidence"]["sources"][0]["source_ip"].GetString(),
              std::string("45.33.32.9"));
}

// webd names the sources reportd leaves unnamed: forward-confirmed reverse DNS only, the
// sources with the most messages first, at most 25 new addresses per answer.
TEST_F(ReportsApiTest, SourcesGetTheirForwardConfirmedNamesMostMessagesFirst) {
    deps.reverse_dns = &reverse_dns;
    login("carol", "auditor");
    bj::array sources;
    for (int n = 1; n <= 30; ++n) {
        const std::string ip = "93.184.216." + std::to_string(n);
        zone.add(std::to_string(n) + ".216.184.93.in-addr.arpa", dns::RecordType::ptr,
                 "Host" + std::to_string(n) + ".Example.NET");
        zone.add("host" + std::to_string(n) + ".example.net", dns::RecordType::a, ip);
        sources.push_back(bj::object{{"source_ip", ip}, {"messages", n}, {"reverse_dns", nullptr}});
    }
    // A PTR that its name does not confirm, and an IPv6 source.
    zone.add("9.32.33.45.in-addr.arpa", dns::RecordType::ptr, "mail.bank.example");
    zone.add("mail.bank.example", dns::RecordType::a, "198.51.100.1");
    zone.add("5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.a.2.ip6.arpa",
             dns::RecordType::ptr, "v6.example.net.");
    zone.add("v6.example.net", dns::RecordType::aaaa, "2a01:db8::25");
    sources.push_back(
        bj::object{{"source_ip", "45.33.32.9"}, {"messages", 1000}, {"reverse_dns", nullptr}});
    sources.push_back(
        bj::object{{"source_ip", "2a01:db8::25"}, {"messages", 999}, {"reverse_dns", nullptr}});
    reports.answer = [&sources](const Message&) {
        return ok_with(bj::object{{"domain", "example.com"}, {"sources", sources}});
    };
    auto d = parse(get("/api/v1/reports/dashboard?domain=example.com").body());
    ASSERT_EQ(d["sources"].Size(), 32U);
    std::map<std::string, std::string> names;
    for (const auto& s : d["sources"].GetArray()) {
        names[s["source_ip"].GetString()] =
            s["reverse_dns"].IsNull() ? "" : s["reverse_dns"].GetString();
    }
    EXPECT_EQ(names["45.33.32.9"], "") << "not confirmed: not shown";
    EXPECT_EQ(names["2a01:db8::25"], "v6.example.net");
    EXPECT_EQ(names["93.184.216.30"], "host30.example.net") << "lower-cased";
    EXPECT_EQ(names["93.184.216.8"], "host8.example.net");
    for (const char* small : {"93.184.216.1", "93.184.216.7"}) {
        EXPECT_EQ(names[small], "") << small << ": beyond the 25 biggest";
    }
    // The next answer names more, from the cache and new lookups.
    d = parse(get("/api/v1/reports/dashboard?domain=example.com").body());
    EXPECT_EQ(d["sources"][0]["reverse_dns"].GetString(), std::string("host1.example.net"));

    // The evidence of unknown_source: its sources' reverse_dns, from the same cache.
    reports.answer = [](const Message&) {
        return ok_with(bj::parse(R"({"from": 1, "until": 86400, "signing_available": true,
          "findings": [{"kind": "unknown_source", "severity": "warning", "domain": "example.com",
            "evidence": {"sources": [{"source_ip": "93.184.216.30", "messages": 30,
                                      "reverse_dns": null},
                                     {"source_ip": "45.33.32.9", "messages": 9,
                                      "reverse_dns": null}]}},
            {"kind": "replay_suspected", "severity": "critical", "domain": "example.com",
             "evidence": {"sources": [{"source_ip": "93.184.216.30", "messages": 4990}]}}]})")
                           .as_object());
    };
    const auto lookups = zone.lookups();
    d = parse(get("/api/v1/reports/findings").body());
    ASSERT_EQ(d["findings"].Size(), 2U);
    const auto& unknown = d["findings"][0]["evidence"]["sources"];
    EXPECT_EQ(unknown[0]["reverse_dns"].GetString(), std::string("host30.example.net"));
    EXPECT_TRUE(unknown[1]["reverse_dns"].IsNull());
    EXPECT_FALSE(d["findings"][1]["evidence"]["sources"][0].HasMember("reverse_dns"))
        << "no field is added to evidence that has none";
    EXPECT_EQ(zone.lookups(), lookups) << "all from the cache";

    // [reports] reverse_dns = false: nothing is looked up.
    deps.reverse_dns = nullptr;
    reports.answer = [](const Message&) {
        return ok_with(bj::parse(R"({"sources": [{"source_ip": "93.184.216.99", "messages": 5,
                                                   "reverse_dns": null}]})")
                           .as_object());
    };
    d = parse(get("/api/v1/reports/dashboard").body());
    EXPECT_TRUE(d["sources"][0]["reverse_dns"].IsNull());
    EXPECT_EQ(zone.lookups(), lookups);
}

TEST_F(ReportsApiTest, AnUploadSendsTheBytesAsTheyAreWithWhoSentThem) {
    login("erin", "admin");
    reports.answer = [](const Message&) {
        return ok_with(
            bj::parse(R"({"submission": 3, "reports": 1, "duplicates": 0, "errors": []})")
                .as_object());
    };
    // Split after \x00: "\x00b..." would be one hex escape. Sixteen bytes, a NUL among them.
    static const char kBytes[] =
        "\x1f\x8b\x08\x00"
        "binary\0bytes";
    std::string bytes(kBytes, sizeof kBytes - 1);
    auto r = upload(bytes, "application/gzip", "/api/v1/reports/upload?name=google.com!x.xml.gz");
    ASSERT_EQ(r.result(), status::ok) << r.body();
    auto d = parse(r.body());
    EXPECT_EQ(d["submission"].GetInt(), 3);
    EXPECT_EQ(d["reports"].GetInt(), 1);
    ASSERT_EQ(reports.requests.size(), 1U);
    EXPECT_EQ(reports.requests[0].json.at("op").as_string(), "submit");
    EXPECT_EQ(reports.requests[0].body, bytes);
    const std::string origin(reports.requests[0].json.at("origin").as_string());
    EXPECT_NE(origin.find("erin"), std::string::npos) << origin;
    EXPECT_NE(origin.find("google.com!x.xml.gz"), std::string::npos) << origin;

    // What reportd could not read is said, and the rest is kept.
    reports.answer = [](const Message&) {
        return ok_with(bj::parse(R"({"submission": 4, "reports": 0, "duplicates": 1,
                                     "errors": ["a.xml: XML error at line 5"]})")
                           .as_object());
    };
    d = parse(upload("<feedback>", "text/xml").body());
    EXPECT_EQ(d["errors"][0].GetString(), std::string("a.xml: XML error at line 5"));
    EXPECT_EQ(d["duplicates"].GetInt(), 1);
}

TEST_F(ReportsApiTest, AnUploadIsRefusedInTheShapesAFormOfAnotherSiteCouldSend) {
    login("erin", "admin");
    for (const char* type : {"text/plain", "multipart/form-data; boundary=x",
                             "application/x-www-form-urlencoded", ""}) {
        auto r = upload("<feedback/>", type);
        EXPECT_EQ(r.result(), status::unsupported_media_type) << type;
    }
    for (const char* type : {"application/octet-stream", "application/zip", "message/rfc822",
                             "application/json", "Application/GZIP"}) {
        EXPECT_EQ(upload("x", type).result(), status::ok) << type;
    }
    // The CSRF token and the origin, as for every POST from the console.
    auto no_csrf = send(verb::post, "/api/v1/reports/upload", "",
                        {{"Cookie", session_cookie}, {"Content-Type", "application/gzip"}});
    EXPECT_EQ(no_csrf.result(), status::forbidden);
    EXPECT_EQ(error_code(no_csrf), "csrf");
    auto empty = upload("");
    EXPECT_EQ(empty.result(), status::bad_request);
    EXPECT_EQ(error_code(empty), "invalid_body");
    auto bad_name = upload("x", "application/gzip", "/api/v1/reports/upload?name=a%0d%0ab");
    EXPECT_EQ(error_field(bad_name), "name");
}

}  // namespace
}  // namespace dkim::test
