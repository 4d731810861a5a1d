// dkim-webd's reverse DNS of report sources (web/src/reverse_dns.hpp) over a FakeResolver and
// a ManualClock: only forward-confirmed names, validated and lower-cased; IPv4 and IPv6; the
// cache (answers and failures, its expiry and its bound); the per-request budget of addresses
// and DNS time.

#include "reverse_dns.hpp"

#include <gtest/gtest.h>

#include "dkim/clock.hpp"
#include "dkim/dns/resolver.hpp"

namespace dkim::test {
namespace {

using dns::LookupStatus;
using dns::RecordType;

// A resolver whose every lookup takes `delay` on the ManualClock.
class SlowResolver final : public dns::Resolver {
  public:
    SlowResolver(dns::Resolver& inner, ManualClock& clock) : inner_(inner), clock_(clock) {}
    dns::Answer lookup(std::string_view name, RecordType type) override {
        clock_.advance(delay);
        return inner_.lookup(name, type);
    }
    Duration delay{0};

  private:
    dns::Resolver& inner_;
    ManualClock& clock_;
};

class ReverseDnsTest : public ::testing::Test {
  protected:
    std::optional<std::string> name_of(std::string_view address) {
        auto budget = rdns.budget();
        return rdns.name(address, budget);
    }
    // 192.0.2.<n> <-> host<n>.example.net, both ways.
    void host(int n) {
        const std::string ip = "192.0.2." + std::to_string(n);
        const std::string name = "host" + std::to_string(n) + ".example.net";
        zone.add(std::to_string(n) + ".2.0.192.in-addr.arpa", RecordType::ptr, name);
        zone.add(name, RecordType::a, ip);
    }

    dns::FakeResolver zone;
    ManualClock clock{from_unix_ms(1'795'000'000'000)};
    SlowResolver resolver{zone, clock};
    web::ReverseDns rdns{resolver, clock};
};

TEST_F(ReverseDnsTest, AForwardConfirmedNameIsShownLowerCasedWithoutTheRootDot) {
    zone.add("25.2.0.192.in-addr.arpa", RecordType::ptr, "Mail.Example.NET.");
    zone.add("mail.example.net", RecordType::a, "198.51.100.1");
    zone.add("mail.example.net", RecordType::a, "192.0.2.25");
    EXPECT_EQ(name_of("192.0.2.25"), "mail.example.net");
}

TEST_F(ReverseDnsTest, APtrThatTheNameDoesNotConfirmIsNotShown) {
    // Anyone may write paypal.com into the PTR of their own address.
    zone.add("66.2.0.192.in-addr.arpa", RecordType::ptr, "smtp.paypal.com");
    zone.add("smtp.paypal.com", RecordType::a, "203.0.113.10");
    EXPECT_EQ(name_of("192.0.2.66"), std::nullopt);
    // A name without A records, or that does not exist.
    zone.add("67.2.0.192.in-addr.arpa", RecordType::ptr, "nowhere.example");
    EXPECT_EQ(name_of("192.0.2.67"), std::nullopt);
    zone.add("68.2.0.192.in-addr.arpa", RecordType::ptr, "host68.example.net");
    zone.add("host68.example.net", RecordType::aaaa, "2001:db8::68");
    EXPECT_EQ(name_of("192.0.2.68"), std::nullopt) << "an IPv4 source needs an A record";
    EXPECT_EQ(name_of("192.0.2.99"), std::nullopt) << "no PTR at all";
}

TEST_F(ReverseDnsTest, OfSeveralPtrNamesTheFirstConfirmedOneIsShown) {
    zone.add("30.2.0.192.in-addr.arpa", RecordType::ptr, "liar.example.com");
    zone.add("30.2.0.192.in-addr.arpa", RecordType::ptr, "real.example.org");
    zone.add("liar.example.com", RecordType::a, "203.0.113.1");
    zone.add("real.example.org", RecordType::a, "192.0.2.30");
    EXPECT_EQ(name_of("192.0.2.30"), "real.example.org");
}

TEST_F(ReverseDnsTest, NamesThatAreNotHostNamesAreNotShown) {
    for (const char* bad :
         {"localhost", "bad name.example", "<script>.example", "a..b.example", "-x.example", ""}) {
        zone.clear("31.2.0.192.in-addr.arpa");
        zone.clear(bad);
        zone.add("31.2.0.192.in-addr.arpa", RecordType::ptr, bad);
        zone.add(bad, RecordType::a, "192.0.2.31");
        web::ReverseDns fresh(resolver, clock);
        auto budget = fresh.budget();
        EXPECT_EQ(fresh.name("192.0.2.31", budget), std::nullopt) << bad;
    }
    EXPECT_EQ(web::reverse_dns_name("MX_1.Example.com."), "mx_1.example.com");
    EXPECT_EQ(web::reverse_dns_name(std::string(250, 'a') + ".example"), std::nullopt);
}

TEST_F(ReverseDnsTest, IPv6SourcesAreLookedUpUnderIp6ArpaAndConfirmedByAAAA) {
    zone.add("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
             RecordType::ptr, "v6.example.net");
    zone.add("v6.example.net", RecordType::aaaa, "2001:db8::1");
    EXPECT_EQ(name_of("2001:DB8:0::1"), "v6.example.net");
    zone.add("v6.example.net", RecordType::a, "192.0.2.40");
    zone.add("2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
             RecordType::ptr, "v6.example.net");
    EXPECT_EQ(name_of("2001:db8::2"), std::nullopt) << "its AAAA records do not include it";
    // An IPv4-mapped address is its IPv4 address.
    host(41);
    EXPECT_EQ(name_of("::ffff:192.0.2.41"), "host41.example.net");
    EXPECT_EQ(name_of("not an address"), std::nullopt);
}

TEST_F(ReverseDnsTest, FailuresAndTimeoutsShowNoNameAndAreRetriedSoonerThanAnswers) {
    zone.set_status("50.2.0.192.in-addr.arpa", LookupStatus::temporary_failure);
    EXPECT_EQ(name_of("192.0.2.50"), std::nullopt);
    zone.add("51.2.0.192.in-addr.arpa", RecordType::ptr, "host51.example.net");
    zone.set_status("host51.example.net", LookupStatus::temporary_failure);
    EXPECT_EQ(name_of("192.0.2.51"), std::nullopt) << "unconfirmed while the name fails";
    const auto before = zone.lookups();
    zone.clear("50.2.0.192.in-addr.arpa");
    zone.clear("host51.example.net");
    host(50);
    host(51);
    EXPECT_EQ(name_of("192.0.2.50"), std::nullopt) << "the failure is cached for a while";
    EXPECT_EQ(name_of("192.0.2.51"), std::nullopt);
    EXPECT_EQ(zone.lookups(), before);
    clock.advance(std::chrono::minutes(5));
    EXPECT_EQ(name_of("192.0.2.50"), "host50.example.net") << "and retried after five minutes";
    EXPECT_EQ(name_of("192.0.2.51"), "host51.example.net");
}

TEST_F(ReverseDnsTest, AnswersAndTheirAbsenceAreCachedForAnHour) {
    host(60);
    EXPECT_EQ(name_of("192.0.2.60"), "host60.example.net");
    EXPECT_EQ(name_of("192.0.2.61"), std::nullopt);
    const auto lookups = zone.lookups();
    host(61);
    zone.clear("60.2.0.192.in-addr.arpa");
    clock.advance(std::chrono::minutes(59));
    EXPECT_EQ(name_of("192.0.2.60"), "host60.example.net");
    EXPECT_EQ(name_of("192.0.2.61"), std::nullopt) << "no name is an answer too";
    EXPECT_EQ(zone.lookups(), lookups) << "all from the cache";
    clock.advance(std::chrono::minutes(1));
    EXPECT_EQ(name_of("192.0.2.60"), std::nullopt);
    EXPECT_EQ(name_of("192.0.2.61"), "host61.example.net");
}

TEST_F(ReverseDnsTest, TheCacheIsBoundedOldestOut) {
    web::ReverseDnsLimits limits;
    limits.cache_entries = 3;
    web::ReverseDns small(resolver, clock, limits);
    for (int n = 1; n <= 5; ++n) {
        host(n);
        auto budget = small.budget();
        EXPECT_EQ(small.name("192.0.2." + std::to_string(n), budget),
                  "host" + std::to_string(n) + ".example.net");
        EXPECT_LE(small.cached(), 3U);
    }
    const auto lookups = zone.lookups();
    auto budget = small.budget();
    small.name("192.0.2.5", budget);
    EXPECT_EQ(zone.lookups(), lookups) << "the newest is kept";
    small.name("192.0.2.1", budget);
    EXPECT_EQ(zone.lookups(), lookups + 2) << "the oldest was dropped: PTR and A again";
}

TEST_F(ReverseDnsTest, ARequestResolvesAtMost25NewAddressesButAnswersFromTheCacheFreely) {
    for (int n = 1; n <= 30; ++n) {
        host(n);
    }
    auto budget = rdns.budget();
    int named = 0;
    for (int n = 1; n <= 30; ++n) {
        named += rdns.name("192.0.2." + std::to_string(n), budget).has_value() ? 1 : 0;
    }
    EXPECT_EQ(named, 25);
    EXPECT_EQ(zone.lookups(), 50U) << "a PTR and an A query for each of the 25";
    budget = rdns.budget();
    named = 0;
    for (int n = 1; n <= 30; ++n) {
        named += rdns.name("192.0.2." + std::to_string(n), budget).has_value() ? 1 : 0;
    }
    EXPECT_EQ(named, 30) << "the next request names the other five";
    EXPECT_EQ(zone.lookups(), 60U);
}

TEST_F(ReverseDnsTest, ARequestSpendsAtMostItsTimeBudgetOnDns) {
    for (int n = 1; n <= 10; ++n) {
        host(n);
    }
    resolver.delay = std::chrono::milliseconds(300);  // a slow upstream: 600 ms an address
    auto budget = rdns.budget();
    const auto start = clock.monotonic();
    int named = 0;
    for (int n = 1; n <= 10; ++n) {
        named += rdns.name("192.0.2." + std::to_string(n), budget).has_value() ? 1 : 0;
    }
    EXPECT_EQ(named, 3) << "2 s: three addresses and a PTR of the fourth";
    EXPECT_LE(clock.monotonic() - start, std::chrono::milliseconds(2400));
    EXPECT_EQ(zone.lookups(), 7U);
    // The fourth, cut off between its PTR and its A query, was not cached as nameless.
    resolver.delay = Duration(0);
    budget = rdns.budget();
    EXPECT_EQ(rdns.name("192.0.2.4", budget), "host4.example.net");
}

}  // namespace
}  // namespace dkim::test
