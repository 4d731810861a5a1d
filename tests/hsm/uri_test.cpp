#include "dkim/hsm/uri.hpp"

#include <gtest/gtest.h>

namespace dkim::hsm {
namespace {

TEST(UriTest, ParsesRfc7512Examples) {
    // RFC 7512 §3 examples.
    auto uri = Pkcs11Uri::parse(
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;"
        "model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=");
    ASSERT_TRUE(uri) << uri.error();
    EXPECT_EQ(uri->token, "The Software PKCS#11 Softtoken");
    EXPECT_EQ(uri->manufacturer, "Snake Oil, Inc.");
    EXPECT_EQ(uri->model, "1.0");
    EXPECT_EQ(uri->object, "my-certificate");
    EXPECT_EQ(uri->type, "cert");
    EXPECT_EQ(uri->serial, "");
    const std::vector<unsigned char> id{0x69, 0x95, 0x3E, 0x5C, 0xF4, 0xBD, 0xEC, 0x91};
    EXPECT_EQ(uri->id, id);

    auto with_query = Pkcs11Uri::parse(
        "pkcs11:object=my-sign-key;type=private?module-name=mypkcs11&pin-source=file:/etc/token");
    ASSERT_TRUE(with_query) << with_query.error();
    EXPECT_EQ(with_query->module_name, "mypkcs11");
    EXPECT_EQ(with_query->pin_source, "file:/etc/token");

    auto slot = Pkcs11Uri::parse("pkcs11:slot-description=Sun%20Metaslot;slot-id=42");
    ASSERT_TRUE(slot) << slot.error();
    EXPECT_EQ(slot->slot_id, 42UL);

    auto empty = Pkcs11Uri::parse("pkcs11:");
    ASSERT_TRUE(empty);
    EXPECT_EQ(*empty, Pkcs11Uri{});
}

TEST(UriTest, RoundTripsThroughCanonicalForm) {
    Pkcs11Uri uri;
    uri.token = "dkim tokens; #1";
    uri.object = "s1._domainkey.example.com";
    uri.type = "private";
    uri.id = std::vector<unsigned char>{0x00, 0xff, 0x10};
    uri.module_path = "/usr/lib/softhsm/libsofthsm2.so";
    const std::string text = uri.to_string();
    EXPECT_EQ(text,
              "pkcs11:token=dkim%20tokens%3B%20%231;object=s1._domainkey.example.com;"
              "type=private;id=%00%FF%10?module-path=/usr/lib/softhsm/libsofthsm2.so");
    auto parsed = Pkcs11Uri::parse(text);
    ASSERT_TRUE(parsed) << parsed.error();
    EXPECT_EQ(*parsed, uri);
}

TEST(UriTest, SchemeIsCaseInsensitive) {
    auto uri = Pkcs11Uri::parse("PKCS11:token=a");
    ASSERT_TRUE(uri);
    EXPECT_EQ(uri->token, "a");
}

TEST(UriTest, KeepsVendorAttributes) {
    auto uri = Pkcs11Uri::parse("pkcs11:token=a;x-vendor=1?x-q=2");
    ASSERT_TRUE(uri) << uri.error();
    ASSERT_EQ(uri->vendor.size(), 1U);
    EXPECT_EQ(uri->vendor[0].first, "x-vendor");
    ASSERT_EQ(uri->vendor_query.size(), 1U);
    EXPECT_EQ(uri->to_string(), "pkcs11:token=a;x-vendor=1?x-q=2");
}

struct BadUri {
    const char* text;
    const char* error_contains;
};
// What ctest's test name shows of a case (CMake 3.25's gtest_discover_tests keeps gtest's
// "# GetParam() = ..." in the name): its text, not the struct's bytes, which hold pointers.
inline void PrintTo(const BadUri& c, std::ostream* os) {
    *os << ::testing::PrintToString(std::string(c.text));
}

class UriRejectTest : public ::testing::TestWithParam<BadUri> {};

TEST_P(UriRejectTest, RefusesWithAClearError) {
    auto uri = Pkcs11Uri::parse(GetParam().text);
    ASSERT_FALSE(uri) << GetParam().text;
    EXPECT_NE(uri.error().find(GetParam().error_contains), std::string::npos) << uri.error();
}

INSTANTIATE_TEST_SUITE_P(
    Errors, UriRejectTest,
    ::testing::Values(BadUri{"token=a", "starts with"},
                      BadUri{"pkcs11:token=a;token=b", "appears twice"},
                      BadUri{"pkcs11:id=%01;id=%02", "appears twice"},
                      BadUri{"pkcs11:colour=blue", "unknown path attribute 'colour'"},
                      BadUri{"pkcs11:token=a?pin-value=1234", "pin-value is refused"},
                      BadUri{"pkcs11:token=a?colour=blue", "unknown query attribute"},
                      BadUri{"pkcs11:token=%4", "truncated percent-encoding"},
                      BadUri{"pkcs11:token=%zz", "invalid percent-encoding"},
                      BadUri{"pkcs11:token=a b", "must be percent-encoded"},
                      BadUri{"pkcs11:token=a/b", "must be percent-encoded"},
                      BadUri{"pkcs11:slot-id=12x", "not a decimal number"},
                      BadUri{"pkcs11:slot-id=", "not a decimal number"},
                      BadUri{"pkcs11:type=toaster", "unknown object type"},
                      BadUri{"pkcs11:token", "not name=value"},
                      BadUri{"pkcs11:=a", "not name=value"},
                      BadUri{"pkcs11:token=a;;model=b", "empty attribute"},
                      BadUri{"pkcs11:tok%65n=a", "invalid character"}),
    [](const auto& param_info) { return "Case" + std::to_string(param_info.index); });

}  // namespace
}  // namespace dkim::hsm
