#include "dkim/provisioning/dns_record.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

namespace dkim::provisioning {
namespace {

hsm::PublicKey ed25519_key() {
    hsm::PublicKey key;
    key.type = hsm::KeyType::ed25519;
    // RFC 8463 Appendix A.2's example public key (brisbane._domainkey.football.example.com).
    const std::string b64 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    key.raw.resize(32);
    EVP_DecodeBlock(key.raw.data(), reinterpret_cast<const unsigned char*>(b64.data()), 44);
    key.raw.resize(32);
    return key;
}

TEST(DnsRecordTest, Ed25519RecordMatchesRfc8463Example) {
    EXPECT_EQ(dkim_record_value(ed25519_key()),
              "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
    auto name = hsm::KeyName::make("football.example.com", "brisbane");
    ASSERT_TRUE(name);
    EXPECT_EQ(render_zone_line(*name, ed25519_key()),
              "brisbane._domainkey.football.example.com. IN TXT ( \"v=DKIM1; k=ed25519; "
              "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\" )");
}

TEST(DnsRecordTest, RsaRecordCarriesTheSubjectPublicKeyInfo) {
    hsm::PublicKey key;
    key.type = hsm::KeyType::rsa;
    key.spki_der = {0x30, 0x82, 0x01, 0x22};
    EXPECT_EQ(dkim_record_value(key), "v=DKIM1; k=rsa; p=MIIBIg==");
}

}  // namespace
}  // namespace dkim::provisioning
