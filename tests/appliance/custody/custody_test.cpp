// The PIN custody's cryptography (dkim/custody): envelopes against fixed vectors made by another
// implementation (python3-cryptography: tests/data/custody/make-vectors.py), the identity key's
// signatures likewise, tampering of every part refused, and the PIN's Shamir shares: every 3 of
// 5 rebuild it, 2 do not, the text form's check digits catch a mistyped character, and the share
// files open only with their passphrase.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "dkim/custody/envelope.hpp"
#include "dkim/custody/shares.hpp"
#include "test_paths.hpp"

namespace dkim::test {
namespace {

std::map<std::string, std::string> custody_vectors() {
    std::ifstream in(test_data_path("custody/vectors.txt"));
    std::map<std::string, std::string> out;
    for (std::string key, value; in >> key >> value;) {
        out[key] = value;
    }
    return out;
}

std::vector<unsigned char> from_hex(const std::string& hex) {
    std::vector<unsigned char> out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<unsigned char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return out;
}

std::string text(const hsm::Secret& s) {
    return {reinterpret_cast<const char*>(s.bytes().data()), s.size()};  // NOLINT
}

std::span<const unsigned char> span_of(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};  // NOLINT
}

const std::string kVectorAad =
    "dkim-appliance pin envelope v1\npurpose=approve\nsubject=42\nkey=k1\n";

custody::RecipientKey vector_recipient(const std::map<std::string, std::string>& v) {
    custody::RecipientKey r;
    const auto pub = from_hex(v.at("recipient_public"));
    std::copy(pub.begin(), pub.end(), r.public_key.begin());
    r.private_key = hsm::Secret(from_hex(v.at("recipient_private")));
    return r;
}

TEST(EnvelopeTest, SealsAndOpensThePeerImplementationsVector) {
    const auto v = custody_vectors();
    ASSERT_EQ(v.size(), 10U) << "tests/data/custody/vectors.txt";
    EXPECT_EQ(custody::envelope_associated_data("approve", "42", "k1"), kVectorAad);
    const auto recipient = vector_recipient(v);
    const auto ephemeral = from_hex(v.at("ephemeral_private"));
    const auto iv = from_hex(v.at("iv"));
    const auto plaintext = from_hex(v.at("plaintext"));
    auto sealed = custody::seal_with(plaintext, recipient.public_key, kVectorAad,
                                     std::span<const unsigned char, 32>(ephemeral.data(), 32),
                                     std::span<const unsigned char, 12>(iv.data(), 12));
    ASSERT_TRUE(sealed) << sealed.error();
    EXPECT_EQ(custody::format_envelope(*sealed), v.at("envelope"));

    auto parsed = custody::parse_envelope(v.at("envelope"));
    ASSERT_TRUE(parsed) << parsed.error();
    auto opened = custody::open(*parsed, recipient, kVectorAad);
    ASSERT_TRUE(opened) << opened.error();
    EXPECT_EQ(text(*opened), "pin-7f3a9c2e41");
}

TEST(EnvelopeTest, AnyChangeAndAnyOtherKeyOrPurposeDoesNotOpen) {
    const auto v = custody_vectors();
    const auto recipient = vector_recipient(v);
    const std::string good = v.at("envelope");
    // Every character of each field (the "v1." prefix and the dots aside).
    for (std::size_t i = 3; i < good.size(); ++i) {
        if (good[i] == '.') {
            continue;
        }
        std::string changed = good;
        changed[i] = changed[i] == 'A' ? 'B' : 'A';
        auto parsed = custody::parse_envelope(changed);
        if (!parsed) {
            continue;  // a non-canonical last character is refused by the parser already
        }
        auto opened = custody::open(*parsed, recipient, kVectorAad);
        ASSERT_FALSE(opened) << "position " << i;
        EXPECT_EQ(opened.error(), "the envelope does not open");
    }
    auto parsed = custody::parse_envelope(good);
    ASSERT_TRUE(parsed);
    EXPECT_FALSE(
        custody::open(*parsed, recipient, custody::envelope_associated_data("approve", "43", "k1")))
        << "sealed for request 42";
    EXPECT_FALSE(
        custody::open(*parsed, recipient, custody::envelope_associated_data("share", "42", "k1")));
    auto other = custody::generate_recipient_key();
    ASSERT_TRUE(other);
    EXPECT_FALSE(custody::open(*parsed, *other, kVectorAad));
    // A low-order point as the ephemeral key (all zeros): no shared secret.
    custody::Envelope zero = *parsed;
    zero.ephemeral.fill(0);
    EXPECT_FALSE(custody::open(zero, recipient, kVectorAad));
}

TEST(EnvelopeTest, TheParserIsStrict) {
    const std::string good = custody_vectors().at("envelope");
    EXPECT_TRUE(custody::parse_envelope(good));
    for (const std::string& bad :
         {std::string(), std::string("v2") + good.substr(2), good + ".", good + "=",
          good.substr(0, good.rfind('.')), std::string("v1..."), good + std::string(5000, 'A'),
          "v1." + std::string(43, 'A') + ".AAAAAAAAAAAAAAAA.AAAA"}) {
        EXPECT_FALSE(custody::parse_envelope(bad)) << bad;
    }
    auto e = custody::parse_envelope(good);
    ASSERT_TRUE(e);
    EXPECT_EQ(custody::format_envelope(*e), good);
}

TEST(EnvelopeTest, SealAndOpenRoundTripWithFreshKeys) {
    auto r = custody::generate_recipient_key();
    ASSERT_TRUE(r);
    const std::string pin = "a PIN of some length 1234567890";
    auto a = custody::seal(span_of(pin), r->public_key, "aad");
    auto b = custody::seal(span_of(pin), r->public_key, "aad");
    ASSERT_TRUE(a && b);
    EXPECT_NE(custody::format_envelope(*a), custody::format_envelope(*b)) << "fresh each time";
    auto opened = custody::open(*a, *r, "aad");
    ASSERT_TRUE(opened);
    EXPECT_EQ(text(*opened), pin);
    EXPECT_FALSE(custody::seal({}, r->public_key, "aad")) << "nothing to seal";
}

TEST(IdentityKeyTest, VerifiesThePeerImplementationsSignatureAndItsOwn) {
    const auto v = custody_vectors();
    custody::PublicKey identity{};
    const auto pub = from_hex(v.at("identity_public"));
    std::copy(pub.begin(), pub.end(), identity.begin());
    const auto statement_bytes = from_hex(v.at("statement"));
    const std::string statement(statement_bytes.begin(), statement_bytes.end());
    const auto signature = from_hex(v.at("signature"));
    custody::PublicKey recipient{};
    const auto rpub = from_hex(v.at("recipient_public"));
    std::copy(rpub.begin(), rpub.end(), recipient.begin());
    EXPECT_EQ(custody::key_offer_statement("approve", "42", "bob", "k1", recipient, 1795694700000),
              statement);
    EXPECT_TRUE(custody::verify_identity_signature(identity, span_of(statement), signature));
    EXPECT_EQ(custody::fingerprint(identity), v.at("fingerprint"));
    std::string other = statement;
    other[other.find("user=bob")] = 'U';
    EXPECT_FALSE(custody::verify_identity_signature(identity, span_of(other), signature));

    const auto dir =
        std::filesystem::temp_directory_path() / ("dkim-identity-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path = (dir / "id.pem").string();
    auto made = custody::IdentityKey::load_or_create(path);
    ASSERT_TRUE(made) << made.error();
    EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    auto again = custody::IdentityKey::load_or_create(path);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->public_key(), made->public_key()) << "the same key after a restart";
    const auto sig = again->sign(span_of(statement));
    EXPECT_TRUE(custody::verify_identity_signature(made->public_key(), span_of(statement), sig));
    std::filesystem::permissions(path, std::filesystem::perms::group_read,
                                 std::filesystem::perm_options::add);
    auto readable = custody::IdentityKey::load_or_create(path);
    ASSERT_FALSE(readable);
    EXPECT_NE(readable.error().find(path), std::string::npos);
    std::filesystem::remove_all(dir);
}

// --- shares
// ---------------------------------------------------------------------------------------

std::vector<custody::Share> three_of_five(const std::string& pin = "1234-5678") {
    auto shares = custody::split_pin(hsm::Secret::from_string(pin), 3, 5, "0a1b2c3d");
    EXPECT_TRUE(shares) << (shares ? "" : shares.error());
    return shares ? std::move(*shares) : std::vector<custody::Share>{};
}

TEST(ShamirTest, EveryThreeOfFiveRebuildThePinAndTwoDoNot) {
    const auto shares = three_of_five();
    ASSERT_EQ(shares.size(), 5U);
    for (std::size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(shares[i].index, i + 1);
        EXPECT_EQ(shares[i].threshold, 3);
        EXPECT_EQ(shares[i].data.size(), 48U) << "1 + 9 + at least 32, to a multiple of 16";
        for (std::size_t j = i + 1; j < 5; ++j) {
            for (std::size_t k = j + 1; k < 5; ++k) {
                auto pin = custody::combine_pin({&shares[i], &shares[j], &shares[k]});
                ASSERT_TRUE(pin) << pin.error();
                EXPECT_EQ(text(*pin), "1234-5678");
            }
            auto two = custody::combine_pin({&shares[i], &shares[j]});
            ASSERT_FALSE(two);
            EXPECT_EQ(two.error(), "2 shares of 3 needed");
        }
    }
    auto all = custody::combine_pin({&shares[0], &shares[1], &shares[2], &shares[3], &shares[4]});
    ASSERT_TRUE(all);
    EXPECT_EQ(text(*all), "1234-5678");
    EXPECT_FALSE(custody::combine_pin({&shares[0], &shares[0], &shares[1]})) << "twice";
    // Two splits of the same PIN do not mix, and their shares differ (fresh coefficients and
    // padding).
    const auto other = three_of_five();
    EXPECT_FALSE(shares[0].data.equals(other[0].data));
    auto mixed = custody::combine_pin({&shares[0], &shares[1], &other[2]});
    EXPECT_TRUE(!mixed || text(*mixed) != "1234-5678");
}

TEST(ShamirTest, TheTextFormRoundTripsAndItsCheckDigitsCatchATypo) {
    const auto shares = three_of_five();
    const std::string t = text(custody::format_share(shares[1]));
    EXPECT_TRUE(t.starts_with("dkimpin1-0a1b2c3d-2-3-")) << t;
    auto parsed = custody::parse_share(t);
    ASSERT_TRUE(parsed) << parsed.error();
    EXPECT_TRUE(parsed->data.equals(shares[1].data));
    EXPECT_EQ(custody::share_commitment(*parsed), custody::share_commitment(shares[1]));
    // Upper case, spaces and line breaks are read as the same share.
    std::string loose;
    for (char c : t) {
        loose += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (c == '-') {
            loose += " \n";
        }
    }
    EXPECT_TRUE(custody::parse_share(loose));
    // Every single substitution inside the data.
    const std::size_t data_start = t.find('-', 20) + 1;
    const std::size_t data_end = t.rfind('-');
    int caught = 0;
    for (std::size_t i = data_start; i < data_end; ++i) {
        if (t[i] == '-') {
            continue;
        }
        std::string typo = t;
        typo[i] = t[i] == 'a' ? 'b' : 'a';
        auto bad = custody::parse_share(typo);
        ASSERT_FALSE(bad) << i;
        if (bad.error().find("check digits do not match") != std::string::npos) {
            ++caught;
        }
        EXPECT_EQ(bad.error().find(typo.substr(data_start, 8)), std::string::npos);
    }
    EXPECT_GT(caught, 70);
    // The last data character's lowest bit lies past the data (48 bytes are 384 bits in 77
    // characters of 5): set, it decodes to the same bytes, yet it is a typo and refused.
    {
        constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz234567";
        std::string typo = t;
        typo[data_end - 1] = kAlphabet[kAlphabet.find(t[data_end - 1]) ^ 1U];
        auto bad = custody::parse_share(typo);
        ASSERT_FALSE(bad);
        EXPECT_NE(bad.error().find("last data character"), std::string::npos) << bad.error();
    }
    for (const std::string& bad :
         {std::string("dkimpin1"), t.substr(0, t.size() - 1), "dkimpin2" + t.substr(8),
          std::string(3000, 'a'), "dkimpin1-0a1b2c3d-0-3-" + t.substr(22),
          "dkimpin1-0a1b2c3d-2-1-" + t.substr(22)}) {
        EXPECT_FALSE(custody::parse_share(bad)) << bad.substr(0, 40);
    }
}

TEST(ShamirTest, ShareFilesOpenOnlyWithTheirPassphrase) {
    const auto shares = three_of_five();
    const auto pass = hsm::Secret::from_string("correct horse battery");
    auto file = custody::encrypt_share_file(shares[3], "dave", pass, 1U << 10U);
    ASSERT_TRUE(file) << file.error();
    EXPECT_EQ(file->find(text(custody::format_share(shares[3])).substr(22, 16)), std::string::npos);
    auto opened = custody::decrypt_share_file(*file, pass);
    ASSERT_TRUE(opened) << opened.error();
    EXPECT_EQ(opened->custodian, "dave");
    EXPECT_TRUE(opened->share.data.equals(shares[3].data));
    auto wrong = custody::decrypt_share_file(*file, hsm::Secret::from_string("wrong horse"));
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error(), "the passphrase does not open it");
    std::string renamed = *file;
    renamed.replace(renamed.find("\"dave\""), 6, "\"erin\"");
    EXPECT_FALSE(custody::decrypt_share_file(renamed, pass)) << "the custodian is authenticated";
    std::string costly = *file;
    costly.replace(costly.find("\"n\":1024"), 8, "\"n\":1073741824");
    EXPECT_FALSE(custody::decrypt_share_file(costly, pass)) << "a hostile cost is refused";
    // Found by fuzz_custody: a cost that is not a number is refused, not thrown.
    for (const char* cost :
         {"\"n\":\"nex\"", "\"n\":99999999999999999999999", "\"n\":01024", "\"n\":-1024"}) {
        std::string odd = *file;
        odd.replace(odd.find("\"n\":1024"), 8, cost);
        auto refused = custody::decrypt_share_file(odd, pass);
        ASSERT_FALSE(refused) << cost;
        EXPECT_EQ(refused.error(), "not a share file of this appliance") << cost;
    }
}

}  // namespace
}  // namespace dkim::test
