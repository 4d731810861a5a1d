// signerd's signing profile (dkim/dkim/signing_profile.hpp), rule by rule: blocks made by our
// own MessageSigner pass, each rule refuses what breaks it and says which rule, and every
// accepted block means the same to a verifier (signing_profile_oracle.hpp).
#include "dkim/dkim/signing_profile.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "capturing_signer.hpp"
#include "dkim/dkim/signer.hpp"
#include "signing_profile_oracle.hpp"
#include "test_paths.hpp"

namespace dkim {
namespace {

constexpr std::int64_t kProfileNow = 1'795'694'400;  // 2026-11-26T12:00:00Z

const std::string kMessage =
    "Received: from a by b\r\n"
    "From: Alice <alice@example.com>\r\n"
    "To: Bob <bob@example.net>,\r\n"
    "  Carol <carol@example.net>\r\n"
    "Subject:  Hello   there\r\n"
    "Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "\r\n"
    "Body.\r\n";

// The block a relay sends for kMessage with `options` (x= 7 days unless said otherwise).
std::string profile_block(Canon header_canon = Canon::relaxed,
                          SigningAlgorithm algorithm = SigningAlgorithm::rsa_sha256,
                          std::optional<SignOptions> given = std::nullopt,
                          const std::string& message = kMessage, std::int64_t t = kProfileNow) {
    test::CapturingSigner capture(algorithm);
    SignOptions options;
    options.canonicalization = Canonicalization{header_canon, Canon::relaxed};
    options.expire_after = std::chrono::hours(24 * 7);
    if (given) {
        options = *given;
    }
    MessageSigner signer({SigningKey{"example.com", "s1", &capture, {}}}, options);
    auto split = mail::split_message(message);
    EXPECT_TRUE(split);
    signer.update_body(split->body);
    auto fields = signer.finish(split->header,
                                std::chrono::system_clock::time_point(std::chrono::seconds(t)));
    EXPECT_TRUE(fields) << fields.error().message;
    return capture.captured;
}

Expected<SigningBlock, ProfileViolation> profile_check(
    std::string_view block, SigningAlgorithm a = SigningAlgorithm::rsa_sha256,
    const SigningProfile& profile = {}) {
    return check_signing_block(block, profile, a, kProfileNow);
}

void expect_profile_rule(std::string_view block, ProfileRule rule,
                         SigningAlgorithm a = SigningAlgorithm::rsa_sha256,
                         const SigningProfile& profile = {}) {
    const auto checked = profile_check(block, a, profile);
    ASSERT_FALSE(checked) << "accepted:\n" << block;
    EXPECT_EQ(checked.error().rule, rule) << checked.error().to_string() << "\nblock:\n" << block;
    EXPECT_NE(checked.error().to_string().find("signing profile: " + std::string(to_string(rule))),
              std::string::npos);
}

std::string profile_replace(std::string s, std::string_view from, std::string_view to) {
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from << " not in\n" << s;
    if (at != std::string::npos) {
        s.replace(at, from.size(), to);
    }
    return s;
}

TEST(SigningProfileTest, RelayBlocksPassAndAgreeWithTheVerifier) {
    for (Canon canon : {Canon::relaxed, Canon::simple}) {
        for (auto a : {SigningAlgorithm::rsa_sha256, SigningAlgorithm::ed25519_sha256}) {
            const std::string block = profile_block(canon, a);
            const auto checked = profile_check(block, a);
            ASSERT_TRUE(checked) << checked.error().to_string() << "\n" << block;
            EXPECT_EQ(checked->signature.domain, "example.com");
            EXPECT_EQ(checked->signature.selector, "s1");
            EXPECT_EQ(test::profile_disagreement(block, *checked), "");
            // From, To, Subject, Date, Message-ID, MIME-Version: Received is not signed.
            EXPECT_EQ(checked->fields.size(), 6U);
        }
    }
}

TEST(SigningProfileTest, RepeatedFieldsAreSelectedBottomUp) {
    // Two To fields and two List-Id fields (signed, not oversigned): h= lists each twice
    // (To thrice), and the block holds the last instance first.
    const std::string message =
        "From: a@example.com\r\nTo: first@example.net\r\n"
        "List-Id: one <one.example.com>\r\nTo: second@example.net\r\n"
        "List-Id: two <two.example.com>\r\nSubject: s\r\n\r\nbody\r\n";
    const std::string block =
        profile_block(Canon::simple, SigningAlgorithm::rsa_sha256, std::nullopt, message);
    ASSERT_LT(block.find("To: second"), block.find("To: first"));
    const auto checked = profile_check(block);
    ASSERT_TRUE(checked) << checked.error().to_string() << "\n" << block;
    EXPECT_EQ(test::profile_disagreement(block, *checked), "");
}

TEST(SigningProfileTest, Structure) {
    const std::string good = profile_block();
    expect_profile_rule(good + "\r\n", ProfileRule::structure);  // ends in CRLF
    expect_profile_rule(profile_replace(good, "\r\n", "\n"), ProfileRule::structure);  // bare LF
    expect_profile_rule(profile_replace(good, "\r\n", "\r"), ProfileRule::structure);  // bare CR
    expect_profile_rule(profile_replace(good, "\r\n", "\r\n\r\n"),
                        ProfileRule::structure);              // empty line
    expect_profile_rule(" " + good, ProfileRule::structure);  // continuation first
    expect_profile_rule(profile_replace(good, "from:", "from "),
                        ProfileRule::structure);  // no colon
    expect_profile_rule(profile_replace(good, "from:", "fr\x01om:"), ProfileRule::structure);
    expect_profile_rule("", ProfileRule::structure);
    // The signature field must come last.
    const auto at = good.rfind("dkim-signature:");
    expect_profile_rule(good.substr(at) + "\r\n" + good.substr(0, at - 2), ProfileRule::structure);
    expect_profile_rule(good.substr(0, at - 2), ProfileRule::structure);
}

TEST(SigningProfileTest, BTagIsLastAndEmpty) {
    const std::string good = profile_block();
    expect_profile_rule(good + "AAAA", ProfileRule::b_tag);
    expect_profile_rule(good + " ", ProfileRule::b_tag);
    expect_profile_rule(good.substr(0, good.size() - 2), ProfileRule::b_tag);  // no b= at all
    expect_profile_rule(profile_replace(good, "bh=", "b=; bh="), ProfileRule::b_tag);  // twice
    expect_profile_rule(good + "; b=", ProfileRule::b_tag);
    expect_profile_rule(profile_replace(good, "; b=", "; xb="),
                        ProfileRule::b_tag);  // b= inside another tag
}

TEST(SigningProfileTest, SyntaxAndBodyLength) {
    const std::string good = profile_block();
    expect_profile_rule(profile_replace(good, "v=1", "v=2"), ProfileRule::syntax);
    expect_profile_rule(profile_replace(good, "d=example.com", "d=example..com"),
                        ProfileRule::syntax);
    expect_profile_rule(profile_replace(good, "; b=", "; i=user@elsewhere.example; b="),
                        ProfileRule::syntax);
    expect_profile_rule(profile_replace(good, "; b=", "; l=0; b="), ProfileRule::body_length);
    // White space inside names and values (the review's finding: "sub ject" was read as
    // subject here, as a field that does not exist by dkimpy and Mail::DKIM).
    expect_profile_rule(profile_replace(good, "reply-to:", "reply-t o:"), ProfileRule::syntax);
    expect_profile_rule(profile_replace(good, "h=from:from:", "h=fr om:from:"),
                        ProfileRule::syntax);
    expect_profile_rule(profile_replace(good, "d=example.com", "d=exam ple.com"),
                        ProfileRule::syntax);
    expect_profile_rule(profile_replace(good, "s=s1", "s=s 1"), ProfileRule::syntax);
    expect_profile_rule(profile_replace(good, "x=", "x=1 "), ProfileRule::syntax);
    // FWS around the colons of h= is allowed (RFC 6376's grammar).
    const auto folded = profile_check(profile_replace(good, "h=from:from:", "h=from : from:"));
    EXPECT_TRUE(folded) << folded.error().to_string();
    // i= within d= is fine.
    EXPECT_TRUE(profile_check(profile_replace(good, "; b=", "; i=news@mail.example.com; b=")));
}

TEST(SigningProfileTest, AlgorithmIsTheKeys) {
    expect_profile_rule(profile_block(), ProfileRule::algorithm, SigningAlgorithm::ed25519_sha256);
    expect_profile_rule(profile_block(Canon::relaxed, SigningAlgorithm::ed25519_sha256),
                        ProfileRule::algorithm, SigningAlgorithm::rsa_sha256);
}

TEST(SigningProfileTest, TimestampNearTheClock) {
    const auto at = [](std::int64_t t) {
        return profile_block(Canon::relaxed, SigningAlgorithm::rsa_sha256, std::nullopt, kMessage,
                             t);
    };
    EXPECT_TRUE(profile_check(at(kProfileNow - 300)));
    EXPECT_TRUE(profile_check(at(kProfileNow + 300)));
    expect_profile_rule(at(kProfileNow - 301),
                        ProfileRule::timestamp);  // a stale or replayed block
    expect_profile_rule(at(kProfileNow + 301), ProfileRule::timestamp);
    const std::string good = profile_block();
    expect_profile_rule(profile_replace(good, "t=" + std::to_string(kProfileNow) + "; ", ""),
                        ProfileRule::timestamp);
    SigningProfile wide;
    wide.max_clock_skew = std::chrono::hours(1);
    EXPECT_TRUE(profile_check(at(kProfileNow - 3600), SigningAlgorithm::rsa_sha256, wide));
}

TEST(SigningProfileTest, ExpirationWithinTheLifetime) {
    SignOptions options;
    options.canonicalization = Canonicalization{Canon::relaxed, Canon::relaxed};
    expect_profile_rule(profile_block(Canon::relaxed, SigningAlgorithm::rsa_sha256, options),
                        ProfileRule::expiration);  // no x=
    options.expire_after = std::chrono::hours(24 * 7) + std::chrono::seconds(1);
    expect_profile_rule(profile_block(Canon::relaxed, SigningAlgorithm::rsa_sha256, options),
                        ProfileRule::expiration);
    options.expire_after = std::chrono::hours(1);
    EXPECT_TRUE(
        profile_check(profile_block(Canon::relaxed, SigningAlgorithm::rsa_sha256, options)));
    SigningProfile short_lived;
    short_lived.max_lifetime = std::chrono::hours(1);
    expect_profile_rule(profile_block(), ProfileRule::expiration, SigningAlgorithm::rsa_sha256,
                        short_lived);
}

TEST(SigningProfileTest, ProfileFieldsAreOversigned) {
    SignOptions options;
    options.canonicalization = Canonicalization{Canon::relaxed, Canon::relaxed};
    options.expire_after = std::chrono::hours(1);
    options.oversigned = {"From"};
    // The finding: h=from alone verifies whatever Subject, To or body is added later.
    expect_profile_rule(profile_block(Canon::relaxed, SigningAlgorithm::rsa_sha256, options),
                        ProfileRule::oversigning);
    options.oversigned = {};
    expect_profile_rule(profile_block(Canon::relaxed, SigningAlgorithm::rsa_sha256, options),
                        ProfileRule::oversigning);
    // Listed twice more than present is refused too (exactly once more).
    const std::string good = profile_block();
    expect_profile_rule(profile_replace(good, "h=", "h=subject:"), ProfileRule::field_order);
    // A profile with more fields than the relay oversigns.
    SigningProfile strict;
    strict.oversigned.push_back("list-unsubscribe");
    expect_profile_rule(good, ProfileRule::oversigning, SigningAlgorithm::rsa_sha256, strict);
    strict.oversigned = {"from"};
    EXPECT_TRUE(profile_check(good, SigningAlgorithm::rsa_sha256, strict));
}

TEST(SigningProfileTest, ExactlyOneFrom) {
    // Our signer refuses such a message; a compromised relay sends the block anyway, with
    // From listed once more than the block holds it.
    const std::string two = "from:b@evil.example\r\n" +
                            profile_replace(profile_block(), "h=from:from:", "h=from:from:from:");
    expect_profile_rule(two, ProfileRule::from);
    const std::string none =
        profile_replace(profile_block(), "from:Alice <alice@example.com>\r\n", "");
    expect_profile_rule(profile_replace(none, "h=from:from:", "h=from:"), ProfileRule::from);
}

TEST(SigningProfileTest, NoOtherSignatureField) {
    const std::string good = profile_block();
    expect_profile_rule("dkim-signature:v=1; a=rsa-sha256; d=example.com; s=old; b=AAAA\r\n" + good,
                        ProfileRule::signature_field);
    expect_profile_rule(profile_replace(good, "h=from:", "h=dkim-signature:from:"),
                        ProfileRule::signature_field);
}

TEST(SigningProfileTest, BlockIsWhatHSelects) {
    const std::string good = profile_block();
    // A field that h= does not name.
    expect_profile_rule("x-extra:1\r\n" + good, ProfileRule::field_order);
    // Two fields swapped.
    const auto from = good.find("from:");
    const auto to = good.find("to:");
    const auto subject = good.find("subject:");
    const std::string swapped =
        good.substr(to, subject - to) + good.substr(from, to - from) + good.substr(subject);
    expect_profile_rule(swapped, ProfileRule::field_order);
    // A field after its name was already exhausted in h=: h=from:from then a From below.
    expect_profile_rule(profile_replace(good, "h=from:from:to:to:cc:subject:",
                                        "h=from:from:subject:to:to:cc:subject:"),
                        ProfileRule::field_order);
}

TEST(SigningProfileTest, RelaxedBlocksAreInRelaxedForm) {
    const std::string good = profile_block();
    expect_profile_rule(profile_replace(good, "subject:Hello there", "Subject: Hello there"),
                        ProfileRule::canonical_form);
    expect_profile_rule(profile_replace(good, "subject:Hello there", "subject:Hello  there"),
                        ProfileRule::canonical_form);
    expect_profile_rule(profile_replace(good, "dkim-signature:", "DKIM-Signature: "),
                        ProfileRule::canonical_form);
    // simple: the fields as written.
    const std::string simple = profile_block(Canon::simple);
    EXPECT_NE(simple.find("Subject:  Hello   there"), std::string::npos);
    EXPECT_TRUE(profile_check(simple));
}

TEST(SigningProfileTest, TheFuzzSeedsAreAcceptedOrRefusedAsMeant) {
    // tests/fuzz/corpus/signing_profile: the fuzzer starts from blocks the profile accepts
    // (and the finding's block, refused), so that it explores both sides.
    const std::string dir =
        (dkim::test::test_path("source") / "tests/fuzz/corpus/signing_profile/").string();
    for (const std::string name : {"relaxed", "simple", "repeated", "finding"}) {
        std::ifstream in(dir + name, std::ios::binary);
        ASSERT_TRUE(in) << dir + name;
        std::stringstream text;
        text << in.rdbuf();
        const std::string block = text.str();
        const auto parsed = parse_signing_block(block);
        ASSERT_TRUE(parsed) << name << ": " << parsed.error().to_string();
        const auto checked =
            check_signing_block(block, SigningProfile{}, parsed->signature.algorithm,
                                parsed->signature.timestamp.value_or(0));
        if (name == "finding") {
            ASSERT_FALSE(checked);
            EXPECT_EQ(checked.error().rule, ProfileRule::body_length);
            continue;
        }
        ASSERT_TRUE(checked) << name << ": " << checked.error().to_string();
        EXPECT_EQ(test::profile_disagreement(block, *checked), "") << name;
    }
}

TEST(SigningProfileTest, ParseAloneChecksOnlyStructure) {
    // A key import's test block: structure and syntax, no profile.
    SignOptions options;
    options.canonicalization = Canonicalization{Canon::relaxed, Canon::relaxed};
    options.oversigned = {};
    const std::string block = profile_block(Canon::relaxed, SigningAlgorithm::rsa_sha256, options);
    EXPECT_TRUE(parse_signing_block(block));
    EXPECT_FALSE(parse_signing_block(block + "\r\n"));
}

}  // namespace
}  // namespace dkim
