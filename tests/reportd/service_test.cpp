// dkim-reportd's service: who may do what, submissions (stored, read, answered with what was
// found; too many refused), and the queries joined with a fake signing record.

#include "service.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "dkim/clock.hpp"
#include "dkim/ipc/frame.hpp"
#include "report_test_support.hpp"
#include "server.hpp"

namespace dkim::reportd {
namespace {

namespace bj = boost::json;
using reports::channel::Message;
using reports::testing::aggregate_xml;
using reports::testing::report_mail;

class FakeSigning final : public SigningRecord {
  public:
    Expected<ipc::SigningSummaryReply, std::string> summary(std::int64_t from, std::int64_t until,
                                                            const std::string& domain) override {
        asked_domains.push_back(domain);
        asked_from = from;
        asked_until = until;
        if (!available) {
            return unexpected(std::string("cannot connect to signerd.sock"));
        }
        return reply;
    }
    Expected<std::vector<std::pair<std::string, std::string>>, std::string> active_keys(
        const std::vector<std::string>&) override {
        return std::vector<std::pair<std::string, std::string>>{{"example.com", "s1"}};
    }

    bool available = true;
    ipc::SigningSummaryReply reply;
    std::int64_t asked_from = 0;
    std::int64_t asked_until = 0;
    std::vector<std::string> asked_domains;
};

class FakeOutbox final : public FindingSink {
  public:
    Expected<void, std::string> put(const std::string& body, std::int64_t) override {
        if (failing) {
            return unexpected(std::string("outbox full"));
        }
        bodies.push_back(body);
        return {};
    }
    bool failing = false;
    std::vector<std::string> bodies;
};

class ServiceTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("reportd-service-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        auto s = ReportStore::open((dir_ / "reports.db").string());
        ASSERT_TRUE(s) << s.error();
        store_ = std::move(*s);
        config_.max_submissions_per_minute = 5;
        service_ = std::make_unique<Service>(*store_, signing_, clock_, config_, &outbox_);
    }
    void TearDown() override {
        service_.reset();
        store_.reset();
        std::filesystem::remove_all(dir_);
    }
    Message call(PeerKind peer, bj::object json, std::string body = {}) {
        Message m;
        m.json = std::move(json);
        m.body = std::move(body);
        return service_->handle(peer, m);
    }
    static bool ok(const Message& m) { return m.json.at("ok").as_bool(); }
    static std::string code(const Message& m) { return std::string(m.json.at("code").as_string()); }

    std::filesystem::path dir_;
    std::unique_ptr<ReportStore> store_;
    FakeSigning signing_;
    // The reports speak of 2023-11-14/15; "now" is the day after.
    ManualClock clock_{from_unix_ms(std::int64_t{1700092800} * 1000 + 3600 * 1000)};
    Config config_;
    FakeOutbox outbox_;
    std::unique_ptr<Service> service_;
};

TEST_F(ServiceTest, ARelayMaySubmitAndNothingElse) {
    const Message submitted =
        call(PeerKind::relay, {{"op", "submit"}, {"origin", "smtp 192.0.2.9"}}, aggregate_xml(2));
    ASSERT_TRUE(ok(submitted)) << bj::serialize(submitted.json);
    EXPECT_EQ(submitted.json.at("reports").as_uint64(), 1U);
    EXPECT_EQ(submitted.json.at("duplicates").as_uint64(), 0U);
    for (const char* op : {"dashboard", "findings", "reports", "status"}) {
        const Message m = call(PeerKind::relay, {{"op", op}});
        EXPECT_FALSE(ok(m)) << op;
        EXPECT_EQ(code(m), "forbidden") << op;
    }
    EXPECT_TRUE(ok(call(PeerKind::web, {{"op", "status"}})));
    EXPECT_EQ(code(call(PeerKind::admin, {{"op", "drop-tables"}})), "invalid");
}

TEST_F(ServiceTest, ASubmissionNamesWhatCouldNotBeReadAndKeepsTheRest) {
    const Message m =
        call(PeerKind::admin, {{"op", "submit"}, {"origin", "import"}},
             reports::testing::zip_bytes({reports::testing::zip_entry("good.xml", aggregate_xml(1)),
                                          reports::testing::zip_entry("bad.xml", "<feedback>")}));
    ASSERT_TRUE(ok(m));
    EXPECT_EQ(m.json.at("reports").as_uint64(), 1U);
    ASSERT_EQ(m.json.at("errors").as_array().size(), 1U);
    EXPECT_NE(std::string(m.json.at("errors").as_array()[0].as_string()).find("bad.xml"),
              std::string::npos);
    EXPECT_EQ(code(call(PeerKind::admin, {{"op", "submit"}})), "invalid");  // nothing in it
}

TEST_F(ServiceTest, TheOperatorImportsSeveralFilesInOneSubmission) {
    const std::string a = aggregate_xml(2, 1, "a");
    const std::string b = "<feedback>";
    const std::string c = aggregate_xml(3, 1, "c");
    bj::object json{{"op", "submit"},
                    {"parts", bj::array{static_cast<std::int64_t>(a.size()),
                                        static_cast<std::int64_t>(b.size()),
                                        static_cast<std::int64_t>(c.size())}},
                    {"origins", bj::array{"import a", "import b", "import c"}}};
    const Message m = call(PeerKind::admin, json, a + b + c);
    ASSERT_TRUE(ok(m)) << bj::serialize(m.json);
    EXPECT_EQ(m.json.at("reports").as_uint64(), 2U);
    const auto& results = m.json.at("results").as_array();
    ASSERT_EQ(results.size(), 3U);
    EXPECT_EQ(results[1].as_object().at("errors").as_array().size(), 1U);
    EXPECT_EQ(results[2].as_object().at("reports").as_uint64(), 1U);
    // Sizes that do not add up, and parts from the relay, are refused.
    json["parts"] = bj::array{1, 2};
    json["origins"] = bj::array{"x", "y"};
    EXPECT_EQ(code(call(PeerKind::admin, json, a)), "invalid");
    json["parts"] = bj::array{static_cast<std::int64_t>(a.size())};
    json["origins"] = bj::array{"x"};
    EXPECT_EQ(code(call(PeerKind::relay, json, a)), "forbidden");
}

TEST_F(ServiceTest, MetricsCountReportsAndFindings) {
    ASSERT_TRUE(ok(call(PeerKind::relay, {{"op", "submit"}}, aggregate_xml(2, 5))));
    EXPECT_EQ(code(call(PeerKind::relay, {{"op", "metrics"}})), "forbidden");
    const Message m = call(PeerKind::web, {{"op", "metrics"}});
    ASSERT_TRUE(ok(m));
    const std::string text(m.json.at("text").as_string());
    EXPECT_NE(text.find("dkim_reportd_submissions 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("dkim_reportd_reports{kind=\"aggregate\"} 1\n"), std::string::npos);
    EXPECT_NE(
        text.find("dkim_reportd_findings{kind=\"enforcement_readiness\",severity=\"info\"} 1"),
        std::string::npos)
        << text;
    EXPECT_NE(text.find("dkim_reportd_signing_record_available 1"), std::string::npos);
}

TEST_F(ServiceTest, SubmissionsAreRateLimited) {
    for (int i = 0; i < 5; ++i) {
        EXPECT_TRUE(ok(call(PeerKind::relay, {{"op", "submit"}},
                            aggregate_xml(1, 1, "r" + std::to_string(i)))));
    }
    const Message refused = call(PeerKind::relay, {{"op", "submit"}}, aggregate_xml(1, 1, "r9"));
    EXPECT_EQ(code(refused), "unavailable");
    // The operator's imports are not counted.
    EXPECT_TRUE(ok(call(PeerKind::admin, {{"op", "submit"}}, aggregate_xml(1, 1, "admin"))));
    clock_.advance(std::chrono::seconds(61));
    EXPECT_TRUE(ok(call(PeerKind::relay, {{"op", "submit"}}, aggregate_xml(1, 1, "r9"))));
}

TEST_F(ServiceTest, FindingsFailClosedWithoutTheSigningRecord) {
    ASSERT_TRUE(ok(call(PeerKind::relay, {{"op", "submit"}}, aggregate_xml(3, 20))));
    signing_.available = false;
    const Message m = call(PeerKind::web, {{"op", "findings"}});
    ASSERT_TRUE(ok(m));
    EXPECT_FALSE(m.json.at("signing_available").as_bool());
    const auto& findings = m.json.at("findings").as_array();
    ASSERT_FALSE(findings.empty());
    EXPECT_EQ(findings[0].as_object().at("kind").as_string(), "signing_record_unavailable");
    for (const auto& f : findings) {
        EXPECT_NE(f.as_object().at("kind").as_string(), "replay_suspected");
    }
}

TEST_F(ServiceTest, FindingsAndTheDashboardJoinTheSigningRecord) {
    // 60 passes for s1 on 2023-11-14 (the whole UTC day); signerd signed 2 with it under a
    // grant.
    const std::int64_t day_start = 1700000000 / kDay * kDay;
    std::string report = aggregate_xml(3, 20);
    report.replace(report.find("1700000000"), 10, std::to_string(day_start));
    report.replace(report.find("1700086399"), 10, std::to_string(day_start + kDay - 1));
    ASSERT_TRUE(ok(call(PeerKind::relay, {{"op", "submit"}}, report)));
    signing_.reply.hours = {{"example.com", "s1", day_start + 7200, 2, 1}};
    signing_.reply.grants = {{7, "example.com", "s1", day_start, day_start + kDay}};
    signing_.reply.signature_lifetime = 86400;
    const Message f = call(PeerKind::web, {{"op", "findings"}});
    ASSERT_TRUE(ok(f));
    bool replay = false;
    for (const auto& v : f.json.at("findings").as_array()) {
        const auto& o = v.as_object();
        if (o.at("kind").as_string() == "replay_suspected") {
            replay = true;
            EXPECT_EQ(o.at("evidence").as_object().at("signed").as_int64(), 2);
            EXPECT_EQ(o.at("evidence").as_object().at("reported_pass").as_uint64(), 60U);
        }
    }
    EXPECT_TRUE(replay) << bj::serialize(f.json);
    EXPECT_EQ(signing_.asked_domains, std::vector<std::string>{"example.com"});  // one by one

    const Message d = call(PeerKind::web, {{"op", "dashboard"}, {"domain", "example.com"}});
    ASSERT_TRUE(ok(d)) << bj::serialize(d.json);
    EXPECT_TRUE(d.json.at("signing_available").as_bool());
    const auto& signing = d.json.at("signing").as_array();
    ASSERT_EQ(signing.size(), 1U);
    EXPECT_EQ(signing[0].as_object().at("day").as_string(), "2023-11-14");
    EXPECT_EQ(signing[0].as_object().at("signed").as_int64(), 2);
    EXPECT_EQ(signing[0].as_object().at("reported_pass").as_uint64(), 60U);
    EXPECT_EQ(d.json.at("grants").as_array().size(), 1U);
    EXPECT_EQ(d.json.at("daily").as_array().size(), 1U);
    EXPECT_EQ(d.json.at("sources").as_array().size(), 3U);
    EXPECT_EQ(code(call(PeerKind::web, {{"op", "dashboard"}, {"domain", "EXAMPLE.com;"}})),
              "invalid");
}

}  // namespace
}  // namespace dkim::reportd

namespace dkim::reportd {
namespace {

TEST_F(ServiceTest, ANewCriticalFindingIsSpooledOnceForTheWebhook) {
    // Passes for s1 on one whole day with no signature and no grant: signed outside any grant.
    const std::int64_t day_start = 1700000000 / kDay * kDay;
    const auto one_day = [&](const std::string& id) {
        std::string report = aggregate_xml(2, 30, id);
        report.replace(report.find("1700000000"), 10, std::to_string(day_start));
        report.replace(report.find("1700086399"), 10, std::to_string(day_start + kDay - 1));
        return report;
    };
    // Unauthenticated (no reporter vouched for by relayd): a warning, never a webhook.
    ASSERT_TRUE(ok(call(PeerKind::relay, {{"op", "submit"}}, one_day("forged"))));
    service_->after_answer();
    EXPECT_TRUE(outbox_.bodies.empty());
    outbox_.failing = true;
    const bj::object vouched{{"op", "submit"}, {"reporter", "google.com"}};
    ASSERT_TRUE(ok(call(PeerKind::relay, vouched, report_mail(one_day("first")))));
    service_->after_answer();
    EXPECT_TRUE(outbox_.bodies.empty());  // the outbox refused it: not marked as sent
    outbox_.failing = false;
    ASSERT_TRUE(ok(call(PeerKind::relay, vouched, report_mail(one_day("second")))));
    service_->after_answer();
    ASSERT_EQ(outbox_.bodies.size(), 1U);
    const bj::object event = bj::parse(outbox_.bodies[0]).as_object();
    EXPECT_EQ(event.at("type").as_string(), "report.finding");
    EXPECT_EQ(event.at("kind").as_string(), "signed_outside_grant");
    EXPECT_EQ(event.at("severity").as_string(), "critical");
    EXPECT_TRUE(event.at("authenticated").as_bool());
    // Another report of the same day: the same finding is not sent again.
    ASSERT_TRUE(ok(call(PeerKind::relay, vouched, report_mail(one_day("third")))));
    service_->after_answer();
    EXPECT_EQ(outbox_.bodies.size(), 1U);
    // A duplicate stores no report: no findings are looked at.
    ASSERT_TRUE(ok(call(PeerKind::relay, vouched, report_mail(one_day("third")))));
    service_->after_answer();
    EXPECT_EQ(outbox_.bodies.size(), 1U);
}

// Who may name a reporter: relayd and the operator's CLI verify the report mail's DKIM
// signature; webd's uploads are a browser's bytes, so webd naming one is refused. A malformed
// name is refused too; the list shows who vouched for each report.
TEST_F(ServiceTest, OnlyRelayAndAdminPeersNameAReporter) {
    const bj::object named{{"op", "submit"}, {"reporter", "google.com"}};
    const Message web = call(PeerKind::web, named, aggregate_xml(1, 1, "w-1"));
    EXPECT_EQ(web.json.at("code").as_string(), "forbidden");
    const Message upper =
        call(PeerKind::relay, {{"op", "submit"}, {"reporter", "Google.com"}}, aggregate_xml(1));
    EXPECT_EQ(upper.json.at("code").as_string(), "invalid");
    const Message bad =
        call(PeerKind::relay, {{"op", "submit"}, {"reporter", "a..b"}}, aggregate_xml(1));
    EXPECT_EQ(bad.json.at("code").as_string(), "invalid");
    ASSERT_TRUE(ok(call(PeerKind::relay, named, report_mail(aggregate_xml(1, 1, "r-1")))));
    ASSERT_TRUE(ok(call(PeerKind::admin,
                        {{"op", "submit"},
                         {"parts", bj::array{5}},
                         {"origins", bj::array{"x"}},
                         {"reporters", bj::array{"yahoo.com", "extra"}}},
                        "hello")) == false);  // reporters: one per part
    const Message listed = call(PeerKind::admin, {{"op", "reports"}, {"from", 0}}, "");
    ASSERT_TRUE(ok(listed)) << bj::serialize(listed.json);
    const auto& reports = listed.json.at("reports").as_array();
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].at("reporter").as_string(), "google.com");
    EXPECT_TRUE(reports[0].at("authenticated").as_bool());
}

// Through the daemon's socket: a submission over 1 MiB is spooled to an unlinked file beside
// the store as it comes, never held whole in memory (a 51 MB report took 211 MiB before), and
// stored from there; a batch's parts are ranges of that file; a frame cut short stores nothing
// and leaves no file behind.
TEST_F(ServiceTest, ALargeSubmissionIsSpooledThroughTheSocketAndStored) {
    config_.socket = dir_ / "reportd.sock";
    config_.store = dir_ / "reports.db";
    config_.peers[static_cast<std::uint32_t>(::getuid())] = PeerKind::admin;
    auto server = Server::listen(config_, *service_);
    ASSERT_TRUE(server) << server.error();
    std::thread loop([&] { (*server)->run(); });
    struct Stop {  // whatever fails below, the loop ends before the test does
        Server& s;
        std::thread& t;
        ~Stop() {
            s.stop();
            if (t.joinable()) {
                t.join();
            }
        }
    } stop{**server, loop};

    // About 2.5 MB: 6000 records.
    const std::string big = aggregate_xml(6000, 1, "big-1");
    ASSERT_GT(big.size(), std::size_t{2} << 20);
    reports::channel::Client client(config_.socket.string());
    Message one;
    one.json["op"] = "submit";
    one.json["origin"] = "test";
    one.body = big;
    auto answer = client.call(one);
    ASSERT_TRUE(answer) << answer.error();
    EXPECT_TRUE(ok(*answer)) << bj::serialize(answer->json);
    EXPECT_EQ(answer->json.at("reports").as_int64(), 1);

    const std::string second = report_mail(aggregate_xml(6000, 1, "big-2"));
    const std::string third = aggregate_xml(3, 1, "small-3");
    Message batch;
    batch.json["op"] = "submit";
    batch.json["parts"] = bj::array{static_cast<std::int64_t>(second.size()),
                                    static_cast<std::int64_t>(third.size())};
    batch.json["origins"] = bj::array{"a", "b"};
    batch.json["reporters"] = bj::array{"reporter.example", ""};
    batch.body = second + third;
    reports::channel::Client again(config_.socket.string());
    answer = again.call(batch);
    ASSERT_TRUE(answer) << answer.error();
    EXPECT_TRUE(ok(*answer)) << bj::serialize(answer->json);
    EXPECT_EQ(answer->json.at("reports").as_int64(), 2);

    // A frame that promises 3 MiB and ends after 2: nothing stored, no spool file left.
    {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        const std::string path = config_.socket.string();
        std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
        ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
        Message cut;
        cut.json["op"] = "submit";
        cut.body = std::string(std::size_t{3} << 20, 'x');
        const std::string frame = reports::channel::encode(cut);
        ASSERT_TRUE(ipc::write_all(fd, std::string_view(frame).substr(0, std::size_t{2} << 20),
                                   std::chrono::milliseconds(10'000)));
        ::close(fd);
    }
    reports::channel::Client last(config_.socket.string());
    Message status;
    status.json["op"] = "status";
    answer = last.call(status);
    ASSERT_TRUE(answer) << answer.error();
    EXPECT_EQ(answer->json.at("submissions").as_int64(), 3) << bj::serialize(answer->json);

    (*server)->stop();
    loop.join();
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
        const std::string name = entry.path().filename().string();
        EXPECT_TRUE(name.rfind("reports.db", 0) == 0 || name == "reportd.sock")
            << "left behind: " << name;
    }
    const auto listed = store_->reports("example.com", 0, 2000000000, 10);
    ASSERT_EQ(listed.size(), 3U);
    for (const auto& r : listed) {
        EXPECT_EQ(r.reporter, r.report_id == "big-2" ? "reporter.example" : "") << r.report_id;
    }
}

// The store does not keep every report mail ever sent: a submission's bytes go once it was read
// keep_submissions_days ago (checked at most once an hour); the reports read from it stay, and
// a submission left unread is kept whatever its age.
TEST_F(ServiceTest, SubmissionsAreForgottenAfterTheirDaysButTheirReportsStay) {
    config_.keep_submissions_days = 2;
    ASSERT_TRUE(ok(call(PeerKind::admin, {{"op", "submit"}}, aggregate_xml(1, 3, "old-1"))));
    auto unread = store_->add_submission(to_unix_ms(clock_.now()) / 1000, "left unread",
                                         aggregate_xml(1, 3, "unread-1"));
    ASSERT_TRUE(unread);
    service_->after_answer();  // the first check: nothing is two days old yet
    EXPECT_EQ(store_->submission_count(), 2U);
    clock_.advance(std::chrono::hours(24 * 2 + 1));
    ASSERT_TRUE(ok(call(PeerKind::admin, {{"op", "submit"}}, aggregate_xml(1, 3, "new-1"))));
    EXPECT_EQ(service_->forget_old_submissions(), 1U);
    EXPECT_EQ(service_->forget_old_submissions(), 0U) << "within the hour since the last check";
    EXPECT_EQ(store_->submission_count(), 2U);  // the unread one and the new one
    EXPECT_EQ(store_->unread_submissions(), std::vector<std::int64_t>{*unread});
    EXPECT_EQ(store_->reports("example.com", 0, 2000000000, 10).size(), 2U);  // old-1, new-1
}

}  // namespace
}  // namespace dkim::reportd
