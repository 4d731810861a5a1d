#include "dkim/dns/name.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace dkim::dns {
namespace {

// A name of exactly `size` characters: labels of 63 joined by dots, the last one shorter.
std::string name_of_size(std::size_t size) {
    std::string name;
    while (name.size() < size) {
        if (!name.empty()) {
            name += '.';
        }
        name += std::string(std::min<std::size_t>(63, size - name.size()), 'a');
    }
    return name;
}

TEST(DnsNameTest, LabelsAreOneTo63Octets) {
    EXPECT_TRUE(is_valid_label("a"));
    EXPECT_TRUE(is_valid_label(std::string(63, 'a')));
    EXPECT_FALSE(is_valid_label(std::string(64, 'a')));
    EXPECT_FALSE(is_valid_label(""));
    EXPECT_TRUE(is_valid_name(std::string(63, 'a') + ".example"));
    EXPECT_FALSE(is_valid_name(std::string(64, 'a') + ".example"));
}

TEST(DnsNameTest, NamesAreAtMost253Characters) {
    ASSERT_EQ(name_of_size(253).size(), 253U);
    EXPECT_TRUE(is_valid_name(name_of_size(253)));
    EXPECT_FALSE(is_valid_name(name_of_size(254)));
    EXPECT_FALSE(is_valid_name(name_of_size(255))) << "RFC 5321's 255 is wire octets";
    EXPECT_TRUE(is_valid_name(name_of_size(253), {LabelSyntax::any_octet, 2}));
    EXPECT_FALSE(is_valid_name(name_of_size(254), {LabelSyntax::any_octet, 2}));
}

TEST(DnsNameTest, NoEmptyLabelSoNoLeadingDoubledOrTrailingDot) {
    EXPECT_FALSE(is_valid_name(""));
    EXPECT_FALSE(is_valid_name("."));
    EXPECT_FALSE(is_valid_name("example.com.")) << "callers strip the root's dot themselves";
    EXPECT_FALSE(is_valid_name(".example.com"));
    EXPECT_FALSE(is_valid_name("example..com"));
    EXPECT_FALSE(is_valid_name("example.com..", {LabelSyntax::any_octet, 1}));
}

TEST(DnsNameTest, LdhLabelsHaveNoHyphenFirstOrLast) {
    EXPECT_TRUE(is_valid_name("mail-1.example.com"));
    EXPECT_TRUE(is_valid_name("a--b.example"));
    EXPECT_FALSE(is_valid_name("-mail.example.com"));
    EXPECT_FALSE(is_valid_name("mail-.example.com"));
    EXPECT_FALSE(is_valid_name("example.-com"));
    EXPECT_FALSE(is_valid_name("-"));
    EXPECT_TRUE(is_valid_name("Mail.EXAMPLE.com")) << "DNS compares without case";
    EXPECT_TRUE(is_valid_name("123.example")) << "RFC 1123 §2.1: a label may start with a digit";
    EXPECT_FALSE(is_valid_name("exa mple.com"));
    EXPECT_FALSE(is_valid_name("exa*mple.com"));
    EXPECT_FALSE(is_valid_name(std::string("exa\0mple.com", 12)));
}

TEST(DnsNameTest, IdnAreALabelsUnlessUtf8IsAllowed) {
    EXPECT_TRUE(is_valid_name("xn--bcher-kva.example")) << "an A-label is LDH";
    EXPECT_TRUE(is_key_domain("xn--bcher-kva.example"));
    EXPECT_FALSE(is_valid_name("bücher.example"));
    EXPECT_TRUE(is_valid_name("bücher.example", {LabelSyntax::ldh_utf8, 1}));
    EXPECT_FALSE(is_valid_name("-bücher.example", {LabelSyntax::ldh_utf8, 1}));
    EXPECT_FALSE(is_valid_name("b_cher.example", {LabelSyntax::ldh_utf8, 1}));
}

TEST(DnsNameTest, UnderscoreOnlyWhereARuleAllowsIt) {
    EXPECT_FALSE(is_valid_name("a_b.example"));
    EXPECT_TRUE(is_valid_name("a_b.example", {LabelSyntax::ldh_underscore, 1}));
    EXPECT_TRUE(is_valid_name("_dmarc.example", {LabelSyntax::ldh_underscore, 1}));
    EXPECT_FALSE(is_valid_name("a_b-.example", {LabelSyntax::ldh_underscore, 1}));
    EXPECT_TRUE(is_valid_name("a_b.example", {LabelSyntax::any_octet, 1}));
}

TEST(DnsNameTest, MinimumLabels) {
    EXPECT_TRUE(is_valid_name("localhost"));
    EXPECT_FALSE(is_valid_name("localhost", {LabelSyntax::ldh, 2}));
    EXPECT_TRUE(is_valid_name("example.com", {LabelSyntax::ldh, 2}));
}

TEST(DnsNameTest, DkimDomainAndSelectorAsReceived) {
    EXPECT_TRUE(is_valid_domain("example.com"));
    EXPECT_TRUE(is_valid_domain("localhost")) << "d= may be any domain a verifier can look up";
    EXPECT_FALSE(is_valid_domain("a_b.example.com"));
    EXPECT_FALSE(is_valid_domain("-x.example.com"));
    EXPECT_TRUE(is_valid_selector("2026-11.rsa"));
    EXPECT_TRUE(is_valid_selector("s_1")) << "senders use '_' in selectors and DNS resolves it";
    EXPECT_FALSE(is_valid_selector("s1-"));
    EXPECT_FALSE(is_valid_selector(""));
}

TEST(DnsNameTest, KeyNames) {
    EXPECT_TRUE(is_key_domain("mail.example.co.uk"));
    EXPECT_FALSE(is_key_domain("localhost")) << "keys are for mail domains";
    EXPECT_FALSE(is_key_domain("_x.example.com")) << "RFC 6376 d=: no '_'";
    EXPECT_TRUE(is_key_selector("2026-11.rsa"));
    EXPECT_FALSE(is_key_selector("s_1")) << "RFC 6376 §3.1: selectors are sub-domains";
    EXPECT_FALSE(is_key_selector("-s1"));
    EXPECT_FALSE(is_key_selector(std::string(64, 'a')));

    // "<selector>._domainkey.<domain>" within 253: 1 + 12 + 240.
    const std::string domain = std::string(60, 'a') + "." + std::string(60, 'b') + "." +
                               std::string(60, 'c') + "." + std::string(57, 'd');
    ASSERT_EQ(domain.size(), 240U);
    EXPECT_TRUE(fits_key_record_name("s", domain));
    EXPECT_FALSE(fits_key_record_name("ss", domain));
    EXPECT_TRUE(is_key_domain(domain));
    EXPECT_FALSE(is_key_domain("e" + domain)) << "a valid name, too long for any key record";
    EXPECT_TRUE(is_valid_name("e" + domain, kKeyDomain));

    EXPECT_EQ(key_name_problem("example.com", "s1"), "");
    EXPECT_EQ(key_name_problem("Example.COM.", "S1"), "") << "either case, the absolute form";
    EXPECT_EQ(key_name_problem("localhost", "s1"), "domain 'localhost' is not a valid domain name");
    EXPECT_EQ(key_name_problem("example.com", "s_1"),
              "selector 's_1' is not a valid selector (letters, digits, '-', '.')");
    EXPECT_EQ(key_name_problem(domain, "ss"),
              "selector and domain together exceed a DNS name's 253 characters");
    EXPECT_EQ(key_name_problem(domain + ".", "s"), "");
}

}  // namespace
}  // namespace dkim::dns
