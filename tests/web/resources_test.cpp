// dkim-webd's handlers for resources: DNS records, elevations and grants, health, and the
// OpenAPI document against the route table.

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "handlers_fixture.hpp"
#include "test_paths.hpp"

namespace dkim::test {
namespace {

// The fixture of handlers_fixture.hpp under a name of this file's own: that header's fixture is
// in an anonymous namespace, one class per translation unit, and GoogleTest refuses two classes
// under one suite name when the files are not compiled as one (a build without unity batches).
class ResourcesTest : public HandlersTest {};

TEST_F(ResourcesTest, DnsRecordsComeFromTheTokensKeysAndTheConfiguredAddresses) {
    options.dns.outbound_addresses = {"192.0.2.25", "2001:db8::/64"};
    options.dns.dmarc_rua = "mailto:reports@example.com";
    login("alice");
    const std::string long_record = "v=DKIM1; k=rsa; p=" + std::string(400, 'A');
    signer.answer = [&](ipc::Request& r) -> ipc::Reply {
        if (std::holds_alternative<ipc::ClusterStatusRequest>(r)) {
            return ipc::ClusterStatusReply{};  // a single appliance
        }
        EXPECT_TRUE(std::holds_alternative<ipc::KeyList>(r));
        const auto key = [](std::string domain, std::string algorithm, std::string signing,
                            std::uint32_t bits, std::string record) {
            ipc::KeyView k;
            k.domain = std::move(domain);
            k.selector = "s1";
            k.algorithm = std::move(algorithm);
            k.signing = std::move(signing);
            k.bits = bits;
            k.dns_name = "s1._domainkey." + k.domain;
            k.dns_record = std::move(record);
            k.state = "active";
            return k;
        };
        ipc::KeysReply reply;
        reply.keys = {
            key("example.com", "rsa-2048", "rsa-sha256", 2048, long_record),
            key("other.example", "ed25519", "ed25519-sha256", 256, "v=DKIM1; k=ed25519; p=x")};
        return reply;
    };
    auto r = send(verb::get, "/api/v1/domains/Example.COM/dns", "", with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    auto d = parse(r.body());
    const auto& records = d["records"];
    ASSERT_EQ(records.Size(), 3U);
    EXPECT_EQ(std::string(records[0]["value"].GetString()), long_record);
    EXPECT_EQ(std::string(records[0]["zone_line"].GetString()),
              "s1._domainkey.example.com. IN TXT ( \"" + long_record.substr(0, 255) + "\" \"" +
                  long_record.substr(255) + "\" )")
        << "split into 255-byte character-strings";
    EXPECT_EQ(std::string(records[1]["value"].GetString()),
              "v=spf1 ip4:192.0.2.25 ip6:2001:db8::/64 -all");
    EXPECT_EQ(std::string(records[2]["name"].GetString()), "_dmarc.example.com");
    EXPECT_EQ(std::string(records[2]["value"].GetString()),
              "v=DMARC1; p=none; rua=mailto:reports@example.com; adkim=r; aspf=r");
    EXPECT_EQ(send(verb::get, "/api/v1/domains/none.example/dns", "", with_session()).result(),
              status::not_found);

    // Where reports go: ruf=, the TLS-RPT record, an external report domain's authorization.
    options.dns.dmarc_ruf = "mailto:failures@reports.example.net";
    options.dns.tlsrpt_rua = "mailto:tls@example.com";
    r = send(verb::get, "/api/v1/domains/example.com/dns", "", with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    d = parse(r.body());
    const auto& all = d["records"];
    ASSERT_EQ(all.Size(), 5U) << r.body();
    EXPECT_EQ(std::string(all[2]["value"].GetString()),
              "v=DMARC1; p=none; rua=mailto:reports@example.com; "
              "ruf=mailto:failures@reports.example.net; adkim=r; aspf=r");
    EXPECT_EQ(std::string(all[3]["kind"].GetString()), "tlsrpt");
    EXPECT_EQ(std::string(all[3]["name"].GetString()), "_smtp._tls.example.com");
    EXPECT_EQ(std::string(all[3]["value"].GetString()), "v=TLSRPTv1; rua=mailto:tls@example.com");
    EXPECT_EQ(std::string(all[4]["kind"].GetString()), "dmarc-report");
    EXPECT_EQ(std::string(all[4]["name"].GetString()),
              "example.com._report._dmarc.reports.example.net");
    EXPECT_EQ(std::string(all[4]["zone_line"].GetString()),
              "example.com._report._dmarc.reports.example.net. IN TXT ( \"v=DMARC1\" )");
    EXPECT_EQ(send(verb::get, "/api/v1/domains/a..b/dns", "", with_session()).result(),
              status::bad_request);
}

// Issue 19: a request that an active grant covers is listed as superseded, with the grant.
TEST_F(ResourcesTest, SupersededRequestsAreListedWithTheGrantThatCoversThem) {
    login("bob", "approver");
    signer.answer = [](ipc::Request& r) -> ipc::Reply {
        if (std::holds_alternative<ipc::ElevationList>(r)) {
            ipc::RequestView relay;
            relay.id = 1;
            relay.state = "superseded";
            relay.decided_by = "signerd";
            relay.filed_by_signer = true;
            relay.superseded_by = 7;
            ipc::RequestView waiting;
            waiting.id = 2;
            waiting.state = "pending";
            return ipc::RequestsReply{{relay, waiting}};
        }
        if (std::holds_alternative<ipc::GrantList>(r)) {
            return ipc::GrantsReply{};
        }
        return ipc::ErrorReply{ipc::ErrorCode::invalid, "unexpected", 0, {}};
    };
    auto r = send(verb::get, "/api/v1/elevations?state=superseded", "", with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    auto d = parse(r.body());
    ASSERT_EQ(d["elevations"].Size(), 1U);
    EXPECT_EQ(d["elevations"][0]["id"].GetInt64(), 1);
    EXPECT_EQ(std::string(d["elevations"][0]["state"].GetString()), "superseded");
    EXPECT_EQ(d["elevations"][0]["superseded_by"].GetInt64(), 7);
    r = send(verb::get, "/api/v1/elevations?state=pending", "", with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    d = parse(r.body());
    ASSERT_EQ(d["elevations"].Size(), 1U);
    EXPECT_EQ(d["elevations"][0]["id"].GetInt64(), 2);
    EXPECT_TRUE(d["elevations"][0]["superseded_by"].IsNull()) << "null unless superseded";
}

// Issue 22: a renewal is listed with the grant it renews and when that grant ends; its grant,
// approved while the old one is active, is scheduled and names the grant it follows. (A suite of
// its own: handlers_test.cpp's HandlersTest is another class, and gtest refuses two fixture
// classes under one suite name.)
class RenewalListingTest : public HandlersTest {};
TEST_F(RenewalListingTest, RenewalsAreListedWithTheGrantTheyRenewAndScheduledGrants) {
    login("bob", "approver");
    signer.answer = [](ipc::Request& r) -> ipc::Reply {
        if (std::holds_alternative<ipc::ElevationList>(r)) {
            ipc::RequestView renewal;
            renewal.id = 3;
            renewal.state = "approved";
            renewal.renews = 1;
            renewal.renews_expires_ms = 1'795'698'000'000;
            ipc::RequestView plain;
            plain.id = 4;
            plain.state = "pending";
            return ipc::RequestsReply{{renewal, plain}};
        }
        if (std::holds_alternative<ipc::GrantList>(r)) {
            ipc::GrantView next;
            next.id = 2;
            next.request_id = 3;
            next.state = "scheduled";
            next.starts_ms = 1'795'698'000'000;
            next.renews = 1;
            return ipc::GrantsReply{{next}};
        }
        return ipc::ErrorReply{ipc::ErrorCode::invalid, "unexpected", 0, {}};
    };
    auto r = send(verb::get, "/api/v1/elevations?state=all", "", with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    auto d = parse(r.body());
    ASSERT_EQ(d["elevations"].Size(), 2U);
    const auto& plain = d["elevations"][0];  // newest first
    EXPECT_TRUE(plain["renews"].IsNull()) << "null unless a renewal";
    EXPECT_TRUE(plain["renews_expires_ms"].IsNull());
    const auto& renewal = d["elevations"][1];
    EXPECT_EQ(renewal["renews"].GetInt64(), 1);
    EXPECT_EQ(renewal["renews_expires_ms"].GetInt64(), 1'795'698'000'000);
    EXPECT_EQ(std::string(renewal["grant"]["state"].GetString()), "scheduled");
    EXPECT_EQ(renewal["grant"]["renews"].GetInt64(), 1);
    r = send(verb::get, "/api/v1/grants", "", with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    d = parse(r.body());
    ASSERT_EQ(d["grants"].Size(), 1U);
    EXPECT_EQ(std::string(d["grants"][0]["state"].GetString()), "scheduled");
    EXPECT_EQ(d["grants"][0]["starts_ms"].GetInt64(), 1'795'698'000'000);
}

TEST_F(ResourcesTest, HealthzSaysWhetherSignerdAnswers) {
    signer.answer = [](ipc::Request&) -> ipc::Reply { return ipc::StatusReply{}; };
    EXPECT_EQ(send(verb::get, "/healthz").result(), status::ok);
    signer.answer = [](ipc::Request&) -> ipc::Reply {
        ipc::StatusReply s;
        s.audit_failure = "disk full";
        return s;
    };
    EXPECT_EQ(send(verb::get, "/healthz").result(), status::service_unavailable);
    signer.down = true;
    EXPECT_EQ(send(verb::get, "/healthz").result(), status::service_unavailable);
}

// A cluster node's DNS page lists the other nodes' keys of the domain too (each node signs with
// its own selectors), from their tokens' records as the registry holds them; its own come from
// its token, and a key of another domain, a retired one or one without a record is left out.
TEST_F(ResourcesTest, AClusterNodesDnsRecordsListEveryNodesKeys) {
    login("alice");
    signer.answer = [&](ipc::Request& r) -> ipc::Reply {
        if (std::holds_alternative<ipc::ClusterStatusRequest>(r)) {
            ipc::ClusterStatusReply c;
            c.cluster = true;
            c.node = "mx1";
            c.keys = {{"mx1", "example.com", "a1", "rsa-2048", "unmanaged", "v=DKIM1; p=MINE"},
                      {"mx2", "example.com", "b1", "rsa-2048", "unmanaged", "v=DKIM1; p=B1"},
                      {"mx2", "example.com", "b0", "rsa-2048", "retired", "v=DKIM1; p=OLD"},
                      {"mx2", "other.example", "b1", "ed25519", "active", "v=DKIM1; p=X"},
                      {"mx3", "example.com", "c1", "ed25519", "active", ""}};
            return c;
        }
        ipc::KeyView k;
        k.domain = "example.com";
        k.selector = "a1";
        k.algorithm = "rsa-2048";
        k.dns_name = "a1._domainkey.example.com";
        k.dns_record = "v=DKIM1; p=MINE";
        k.state = "active";
        ipc::KeysReply reply;
        reply.keys = {k};
        return reply;
    };
    auto r = send(verb::get, "/api/v1/domains/example.com/dns", "", with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    auto d = parse(r.body());
    std::vector<std::string> dkim;
    for (const auto& rec : d["records"].GetArray()) {
        if (std::string(rec["kind"].GetString()) == "dkim") {
            dkim.push_back(std::string(rec["name"].GetString()) + "=" + rec["value"].GetString());
        }
    }
    EXPECT_EQ(dkim, (std::vector<std::string>{"a1._domainkey.example.com=v=DKIM1; p=MINE",
                                              "b1._domainkey.example.com=v=DKIM1; p=B1"}));
}

// GET /api/v1/cluster: signerd's answer as JSON, the nodes (a gone one marked) and the keys by
// node; a single appliance says so.
TEST_F(ResourcesTest, TheClusterViewShowsTheNodesAndTheirKeys) {
    login("alice");
    bool cluster = true;
    signer.answer = [&](ipc::Request& r) -> ipc::Reply {
        EXPECT_TRUE(std::holds_alternative<ipc::ClusterStatusRequest>(r));
        ipc::ClusterStatusReply c;
        c.cluster = cluster;
        if (cluster) {
            c.node = "mx1";
            c.lease_ms = 5000;
            c.now_ms = 1'000'000;
            c.nodes = {{"mx1",
                        "0.1.0",
                        1,
                        999'500,
                        "logged-in",
                        2,
                        {"example.com/a1:rsa-2048"},
                        false,
                        true,
                        true},
                       {"mx2", "0.1.0", 1, 980'000, "logged-out", 0, {}, true, false, false}};
            c.keys = {{"mx1", "example.com", "a1", "rsa-2048", "unmanaged", "v=DKIM1; p=A"}};
        }
        return c;
    };
    auto r = send(verb::get, "/api/v1/cluster", "", with_session());
    ASSERT_EQ(r.result(), status::ok) << r.body();
    auto d = parse(r.body());
    EXPECT_TRUE(d["cluster"].GetBool());
    EXPECT_EQ(std::string(d["node"].GetString()), "mx1");
    ASSERT_EQ(d["nodes"].Size(), 2U);
    EXPECT_TRUE(d["nodes"][0]["self"].GetBool());
    EXPECT_EQ(std::string(d["nodes"][0]["selectors"][0].GetString()), "example.com/a1:rsa-2048");
    EXPECT_TRUE(d["nodes"][1]["gone"].GetBool());
    EXPECT_TRUE(d["nodes"][0]["records_verified"].GetBool());
    EXPECT_FALSE(d["nodes"][1]["records_verified"].GetBool());
    EXPECT_EQ(std::string(d["keys"][0]["dns_record"].GetString()), "v=DKIM1; p=A");
    cluster = false;
    auto single = parse(send(verb::get, "/api/v1/cluster", "", with_session()).body());
    EXPECT_FALSE(single["cluster"].GetBool());
    EXPECT_EQ(single["nodes"].Size(), 0U);
    EXPECT_EQ(send(verb::get, "/api/v1/cluster").result(), status::unauthorized);
}

// The OpenAPI document and the route table list the same operations.
TEST(OpenApiTest, TheDocumentMatchesTheRoutes) {
    std::ifstream in(dkim::test::test_path("openapi"));
    std::stringstream text;
    text << in.rdbuf();
    rapidjson::Document doc;
    doc.Parse(text.str().c_str());
    ASSERT_FALSE(doc.HasParseError());
    EXPECT_EQ(std::string(doc["openapi"].GetString()).substr(0, 2), "3.");
    std::set<std::string> documented;
    for (const auto& path : doc["paths"].GetObject()) {
        for (const auto& op : path.value.GetObject()) {
            std::string method = op.name.GetString();
            std::transform(method.begin(), method.end(), method.begin(),
                           [](char c) { return static_cast<char>(std::toupper(c)); });
            documented.insert(method + " " + path.name.GetString());
            EXPECT_TRUE(op.value.HasMember("responses")) << method << " " << path.name.GetString();
        }
    }
    const auto routes = web::route_table();
    const std::set<std::string> handled(routes.begin(), routes.end());
    EXPECT_EQ(documented, handled);
}

}  // namespace
}  // namespace dkim::test
