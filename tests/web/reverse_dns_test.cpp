// dkim-webd's reverse DNS of report sources (web/src/reverse_dns.hpp) over a FakeResolver and
// a ManualClock: only forward-confirmed names, validated and lower-cased; IPv4 and IPv6; the
// cache (answers and failures, its expiry and its bound); the per-request budget of addresses
// and DNS time.

#include "reverse_dns.hpp"

#include <gtest/gtest.h>

#include "dkim/clock.hpp"
#include "dkim/dns/resolver.hpp"
#include "dkim/net/ip_address.hpp"

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
    // 93.184.216.<n> <-> host<n>.example.net, both ways.
    void host(int n) {
        const std::string ip = "93.184.216." + std::to_string(n);
        const std::string name = "host" + std::to_string(n) + ".example.net";
        zone.add(std::to_string(n) + ".216.184.93.in-addr.arpa", RecordType::ptr, name);
        zone.add(name, RecordType::a, ip);
    }

    dns::FakeResolver zone;
    ManualClock clock{from_unix_ms(1'795'000'000'000)};
    SlowResolver resolver{zone, clock};
    web::ReverseDns rdns{resolver, clock};
};

TEST_F(ReverseDnsTest, AForwardConfirmedNameIsShownLowerCasedWithoutTheRootDot) {
    zone.add("25.216.184.93.in-addr.arpa", RecordType::ptr, "Mail.Example.NET.");
    zone.add("mail.example.net", RecordType::a, "198.51.100.1");
    zone.add("mail.example.net", RecordType::a, "93.184.216.25");
    EXPECT_EQ(name_of("93.184.216.25"), "mail.example.net");
}

TEST_F(ReverseDnsTest, APtrThatTheNameDoesNotConfirmIsNotShown) {
    // Anyone may write paypal.com into the PTR of their own address.
    zone.add("66.216.184.93.in-addr.arpa", RecordType::ptr, "smtp.paypal.com");
    zone.add("smtp.paypal.com", RecordType::a, "45.33.32.10");
    EXPECT_EQ(name_of("93.184.216.66"), std::nullopt);
    // A name without A records, or that does not exist.
    zone.add("67.216.184.93.in-addr.arpa", RecordType::ptr, "nowhere.example");
    EXPECT_EQ(name_of("93.184.216.67"), std::nullopt);
    zone.add("68.216.184.93.in-addr.arpa", RecordType::ptr, "host68.example.net");
    zone.add("host68.example.net", RecordType::aaaa, "2a01:db8::68");
    EXPECT_EQ(name_of("93.184.216.68"), std::nullopt) << "an IPv4 source needs an A record";
    EXPECT_EQ(name_of("93.184.216.99"), std::nullopt) << "no PTR at all";
}

TEST_F(ReverseDnsTest, OfSeveralPtrNamesTheFirstConfirmedOneIsShown) {
    zone.add("30.216.184.93.in-addr.arpa", RecordType::ptr, "liar.example.com");
    zone.add("30.216.184.93.in-addr.arpa", RecordType::ptr, "real.example.org");
    zone.add("liar.example.com", RecordType::a, "45.33.32.1");
    zone.add("real.example.org", RecordType::a, "93.184.216.30");
    EXPECT_EQ(name_of("93.184.216.30"), "real.example.org");
}

TEST_F(ReverseDnsTest, NamesThatAreNotHostNamesAreNotShown) {
    for (const char* bad :
         {"localhost", "bad name.example", "<script>.example", "a..b.example", "-x.example", ""}) {
        zone.clear("31.216.184.93.in-addr.arpa");
        zone.clear(bad);
        zone.add("31.216.184.93.in-addr.arpa", RecordType::ptr, bad);
        zone.add(bad, RecordType::a, "93.184.216.31");
        web::ReverseDns fresh(resolver, clock);
        auto budget = fresh.budget();
        EXPECT_EQ(fresh.name("93.184.216.31", budget), std::nullopt) << bad;
    }
    EXPECT_EQ(web::reverse_dns_name("MX_1.Example.com."), "mx_1.example.com");
    EXPECT_EQ(web::reverse_dns_name(std::string(250, 'a') + ".example"), std::nullopt);
}

// Private, documentation and other special-purpose addresses are never looked up: no name the
// world could give them exists, and a report's sender naming 10.0.0.5 would otherwise learn
// (through the console) what the appliance's own reverse zones say.
TEST_F(ReverseDnsTest, SpecialPurposeAddressesAreNeverLookedUp) {
    for (const char* address :
         {"10.0.0.5", "172.16.9.1", "192.168.1.1", "127.0.0.1", "169.254.1.1", "100.64.0.1",
          "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "224.0.0.1", "255.255.255.255",
          "0.1.2.3", "::1", "fe80::1", "fd00::1", "2001:db8::1", "ff02::1", "::ffff:10.0.0.5"}) {
        zone.add(net::IpAddress::parse(address)->unmapped().reverse_name(), RecordType::ptr,
                 "inside.corp.example");
        zone.add("inside.corp.example", RecordType::a, address);
        EXPECT_EQ(name_of(address), std::nullopt) << address;
        EXPECT_FALSE(web::globally_reachable(*net::IpAddress::parse(address))) << address;
    }
    EXPECT_EQ(zone.lookups(), 0U);
    for (const char* address : {"93.184.216.34", "8.8.8.8", "2a00:1450::1", "2606:4700::1111"}) {
        EXPECT_TRUE(web::globally_reachable(*net::IpAddress::parse(address))) << address;
    }
}

TEST_F(ReverseDnsTest, IPv6SourcesAreLookedUpUnderIp6ArpaAndConfirmedByAAAA) {
    zone.add("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.a.2.ip6.arpa",
             RecordType::ptr, "v6.example.net");
    zone.add("v6.example.net", RecordType::aaaa, "2a01:db8::1");
    EXPECT_EQ(name_of("2A01:DB8:0::1"), "v6.example.net");
    zone.add("v6.example.net", RecordType::a, "93.184.216.40");
    zone.add("2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.a.2.ip6.arpa",
             RecordType::ptr, "v6.example.net");
    EXPECT_EQ(name_of("2a01:db8::2"), std::nullopt) << "its AAAA records do not include it";
    // An IPv4-mapped address is its IPv4 address.
    host(41);
    EXPECT_EQ(name_of("::ffff:93.184.216.41"), "host41.example.net");
    EXPECT_EQ(name_of("not an address"), std::nullopt);
}

TEST_F(ReverseDnsTest, FailuresAndTimeoutsShowNoNameAndAreRetriedSoonerThanAnswers) {
    zone.set_status("50.216.184.93.in-addr.arpa", LookupStatus::temporary_failure);
    EXPECT_EQ(name_of("93.184.216.50"), std::nullopt);
    zone.add("51.216.184.93.in-addr.arpa", RecordType::ptr, "host51.example.net");
    zone.set_status("host51.example.net", LookupStatus::temporary_failure);
    EXPECT_EQ(name_of("93.184.216.51"), std::nullopt) << "unconfirmed while the name fails";
    const auto before = zone.lookups();
    zone.clear("50.216.184.93.in-addr.arpa");
    zone.clear("host51.example.net");
    host(50);
    host(51);
    EXPECT_EQ(name_of("93.184.216.50"), std::nullopt) << "the failure is cached for a while";
    EXPECT_EQ(name_of("93.184.216.51"), std::nullopt);
    EXPECT_EQ(zone.lookups(), before);
    clock.advance(std::chrono::minutes(5));
    EXPECT_EQ(name_of("93.184.216.50"), "host50.example.net") << "and retried after five minutes";
    EXPECT_EQ(name_of("93.184.216.51"), "host51.example.net");
}

TEST_F(ReverseDnsTest, AnswersAndTheirAbsenceAreCachedForAnHour) {
    host(60);
    EXPECT_EQ(name_of("93.184.216.60"), "host60.example.net");
    EXPECT_EQ(name_of("93.184.216.61"), std::nullopt);
    const auto lookups = zone.lookups();
    host(61);
    zone.clear("60.216.184.93.in-addr.arpa");
    clock.advance(std::chrono::minutes(59));
    EXPECT_EQ(name_of("93.184.216.60"), "host60.example.net");
    EXPECT_EQ(name_of("93.184.216.61"), std::nullopt) << "no name is an answer too";
    EXPECT_EQ(zone.lookups(), lookups) << "all from the cache";
    clock.advance(std::chrono::minutes(1));
    EXPECT_EQ(name_of("93.184.216.60"), std::nullopt);
    EXPECT_EQ(name_of("93.184.216.61"), "host61.example.net");
}

TEST_F(ReverseDnsTest, TheCacheIsBoundedOldestOut) {
    web::ReverseDnsLimits limits;
    limits.cache_entries = 3;
    web::ReverseDns small(resolver, clock, limits);
    for (int n = 1; n <= 5; ++n) {
        host(n);
        auto budget = small.budget();
        EXPECT_EQ(small.name("93.184.216." + std::to_string(n), budget),
                  "host" + std::to_string(n) + ".example.net");
        EXPECT_LE(small.cached(), 3U);
    }
    const auto lookups = zone.lookups();
    auto budget = small.budget();
    small.name("93.184.216.5", budget);
    EXPECT_EQ(zone.lookups(), lookups) << "the newest is kept";
    small.name("93.184.216.1", budget);
    EXPECT_EQ(zone.lookups(), lookups + 2) << "the oldest was dropped: PTR and A again";
}

TEST_F(ReverseDnsTest, ARequestResolvesAtMost25NewAddressesButAnswersFromTheCacheFreely) {
    for (int n = 1; n <= 30; ++n) {
        host(n);
    }
    auto budget = rdns.budget();
    int named = 0;
    for (int n = 1; n <= 30; ++n) {
        named += rdns.name("93.184.216." + std::to_string(n), budget).has_value() ? 1 : 0;
    }
    EXPECT_EQ(named, 25);
    EXPECT_EQ(zone.lookups(), 50U) << "a PTR and an A query for each of the 25";
    budget = rdns.budget();
    named = 0;
    for (int n = 1; n <= 30; ++n) {
        named += rdns.name("93.184.216." + std::to_string(n), budget).has_value() ? 1 : 0;
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
        named += rdns.name("93.184.216." + std::to_string(n), budget).has_value() ? 1 : 0;
    }
    EXPECT_EQ(named, 3) << "2 s: three addresses and a PTR of the fourth";
    EXPECT_LE(clock.monotonic() - start, std::chrono::milliseconds(2400));
    EXPECT_EQ(zone.lookups(), 7U);
    // The fourth, cut off between its PTR and its A query, was not cached as nameless.
    resolver.delay = Duration(0);
    budget = rdns.budget();
    EXPECT_EQ(rdns.name("93.184.216.4", budget), "host4.example.net");
}

}  // namespace
}  // namespace dkim::test
