// OpenDKIM's KeyTable and SigningTable: what is read, what is refused (with file and line),
// and how the tables join into the keys to import.

#include "dkim/provisioning/opendkim.hpp"

#include <gtest/gtest.h>

namespace dkim::provisioning {
namespace {

constexpr const char* kKeyTable =
    "# OpenDKIM key table\n"
    "mail._domainkey.example.com  example.com:mail:/etc/opendkim/keys/example.com/mail.private\n"
    "\n"
    "wild   %:shared:/etc/opendkim/keys/shared.private   # one key, several domains\n";

constexpr const char* kSigningTable =
    "*@example.com     mail._domainkey.example.com\n"
    "*@example.org     wild\n"
    "@example.net      wild\n"
    "boss@example.com  mail._domainkey.example.com\n";

TEST(OpendkimTest, ReadsBothTablesAndJoinsThem) {
    auto keys = parse_key_table(kKeyTable, "KeyTable");
    ASSERT_TRUE(keys) << keys.error();
    ASSERT_EQ(keys->size(), 2U);
    EXPECT_EQ((*keys)[0].domain, "example.com");
    EXPECT_EQ((*keys)[0].selector, "mail");
    EXPECT_EQ((*keys)[0].key, "/etc/opendkim/keys/example.com/mail.private");
    EXPECT_EQ((*keys)[1].domain, "%");
    EXPECT_EQ((*keys)[1].line, 4);
    auto signing = parse_signing_table(kSigningTable, "SigningTable");
    ASSERT_TRUE(signing) << signing.error();
    ASSERT_EQ(signing->size(), 4U);

    auto items = plan_import(*keys, *signing, "KeyTable", "SigningTable");
    ASSERT_TRUE(items) << items.error();
    ASSERT_EQ(items->size(), 3U) << "the % key once per domain that uses it";
    EXPECT_EQ((*items)[0].domain, "example.com");
    EXPECT_EQ((*items)[0].patterns.size(), 2U);
    ASSERT_EQ((*items)[0].warnings.size(), 1U) << "boss@ names one sender";
    EXPECT_EQ((*items)[1].domain, "example.org");
    EXPECT_EQ((*items)[1].selector, "shared");
    EXPECT_EQ((*items)[2].domain, "example.net");
}

TEST(OpendkimTest, MalformedTablesNameFileAndLine) {
    const std::vector<std::pair<std::string, std::string>> key_tables = {
        {"k example.com:mail\n", "KeyTable:1: expected <name> <domain>:<selector>:<key file>"},
        {"\n\nk not_a_domain:mail:/k\n", "KeyTable:3: 'not_a_domain' is not a domain name"},
        {"k example.com:bad_sel:/k\n", "KeyTable:1: 'bad_sel' is not a valid selector"},
        {"k example.com:mail:keys/relative\n", "KeyTable:1: the private key must be given as"},
        {"k example.com:a:/k\nk example.com:b:/k\n", "KeyTable:2: the key name 'k' is listed"},
        {"lonely\n", "KeyTable:1: 'lonely' has a key but no value"},
        {"k example.com:a:/k\x01\n", "KeyTable:1: a control character"},
        {std::string(5000, 'x') + " v\n", "KeyTable:1: the line is longer"},
    };
    for (const auto& [text, says] : key_tables) {
        auto parsed = parse_key_table(text, "KeyTable");
        ASSERT_FALSE(parsed) << text;
        EXPECT_NE(parsed.error().find(says), std::string::npos) << parsed.error();
    }
    auto signing = parse_signing_table("*@example.com k extra\n", "SigningTable");
    ASSERT_FALSE(signing);
    EXPECT_NE(signing.error().find("SigningTable:1:"), std::string::npos);

    auto keys = parse_key_table("k %:s:/k\nj example.com:s:/j\n", "KeyTable");
    ASSERT_TRUE(keys);
    auto unknown =
        plan_import(*keys, *parse_signing_table("*@example.com nope\n", "ST"), "KT", "ST");
    ASSERT_FALSE(unknown);
    EXPECT_NE(unknown.error().find("ST:1: key 'nope' is not in KT"), std::string::npos);
    auto wildcard = plan_import(*keys, *parse_signing_table("*.example.com k\n", "ST"), "KT", "ST");
    ASSERT_FALSE(wildcard);
    EXPECT_NE(wildcard.error().find("names no single domain"), std::string::npos);
    auto unused = plan_import(*keys, {}, "KT", "ST");
    ASSERT_FALSE(unused);
    EXPECT_NE(unused.error().find("KT:1: key 'k' has domain %"), std::string::npos);
}

// A selector and a domain that are each valid but together longer than a DNS name (RFC 1035
// §2.3.4: 255 octets on the wire, 253 characters as text): found by fuzz_opendkim_tables
// with a "%" key, whose domain comes from the signing table.
TEST(OpendkimTest, RefusesASelectorAndDomainTooLongForOneDnsName) {
    const std::string domain = std::string(60, 'a') + "." + std::string(60, 'b') + "." +
                               std::string(60, 'c') + "." + std::string(57, 'd');
    ASSERT_EQ(domain.size(), 240U) << "with selector s, 253 characters: the longest name";

    auto keys = parse_key_table("k %:ss:/k\n", "KT");
    ASSERT_TRUE(keys) << keys.error();
    auto signing = parse_signing_table("*@" + domain + " k\n", "ST");
    ASSERT_TRUE(signing) << signing.error();
    auto items = plan_import(*keys, *signing, "KT", "ST");
    ASSERT_FALSE(items) << "ss._domainkey." << domain << " is 254 characters";
    EXPECT_NE(items.error().find("KT:1: ss._domainkey." + domain), std::string::npos)
        << items.error();
    EXPECT_NE(items.error().find("253"), std::string::npos) << items.error();

    auto longest = parse_key_table("k %:s:/k\n", "KT");
    ASSERT_TRUE(longest) << longest.error();
    auto fits = plan_import(*longest, *signing, "KT", "ST");
    ASSERT_TRUE(fits) << fits.error();
    ASSERT_EQ(fits->size(), 1U);
    EXPECT_EQ((*fits)[0].domain, domain);

    // A key table line with its own domain is refused where it is read.
    auto fixed = parse_key_table("k " + domain + ":ss:/k\n", "KT");
    ASSERT_FALSE(fixed);
    EXPECT_NE(fixed.error().find("KT:1: ss._domainkey." + domain), std::string::npos)
        << fixed.error();
    // And plan_import refuses such an entry even when it was not read by parse_key_table.
    const std::vector<KeyTableEntry> made = {{"k", domain, "ss", "/k", 1}};
    auto joined = plan_import(made, {}, "KT", "ST");
    ASSERT_FALSE(joined);
    EXPECT_NE(joined.error().find("KT:1: ss._domainkey." + domain), std::string::npos)
        << joined.error();
}

TEST(OpendkimTest, DatasetPrefixes) {
    EXPECT_EQ(strip_dataset_prefix("refile:/etc/opendkim/SigningTable"),
              "/etc/opendkim/SigningTable");
    EXPECT_EQ(strip_dataset_prefix("file:/etc/opendkim/KeyTable"), "/etc/opendkim/KeyTable");
    EXPECT_EQ(strip_dataset_prefix("/etc/opendkim/KeyTable"), "/etc/opendkim/KeyTable");
}

// Debian 12's /etc/opendkim.conf with a site's tables, hosts and a few settings of its own.
constexpr const char* kConf =
    "Syslog\t\t\tyes\n"
    "UMask\t\t\t007\n"
    "Canonicalization\trelaxed/simple\n"
    "Mode\t\t\tsv\n"
    "OversignHeaders\t\tFrom\n"
    "KeyTable\t\trefile:/etc/opendkim/KeyTable\n"
    "SigningTable\t\trefile:/etc/opendkim/SigningTable\n"
    "InternalHosts\t\trefile:/etc/opendkim/TrustedHosts\n"
    "Socket\t\t\tlocal:/run/opendkim/opendkim.sock\n"
    "PidFile\t\t\t/run/opendkim/opendkim.pid\n";

TEST(OpendkimConfTest, ReadsTheMilterSettingsAndNamesWhatIsNotCarriedOver) {
    auto conf = parse_opendkim_conf(kConf, "/etc/opendkim.conf");
    ASSERT_TRUE(conf) << conf.error();
    EXPECT_EQ(conf->socket, "local:/run/opendkim/opendkim.sock");
    EXPECT_EQ(conf->mode, "sv");
    EXPECT_EQ(conf->internal_hosts, "refile:/etc/opendkim/TrustedHosts");
    EXPECT_EQ(conf->key_table, "refile:/etc/opendkim/KeyTable");
    EXPECT_EQ(conf->signing_table, "refile:/etc/opendkim/SigningTable");
    ASSERT_EQ(conf->notes.size(), 2u);
    EXPECT_NE(conf->notes[0].find("Canonicalization (/etc/opendkim.conf:3)"), std::string::npos)
        << conf->notes[0];
    EXPECT_NE(conf->notes[1].find("OversignHeaders"), std::string::npos);

    EXPECT_EQ(parse_opendkim_conf("mode VS\n", "c")->mode, "sv");
    EXPECT_EQ(parse_opendkim_conf("# nothing\n", "c")->mode, "sv") << "OpenDKIM's default";
    auto bad = parse_opendkim_conf("Socket inet:8891\nMode x\n", "/etc/opendkim.conf");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("/etc/opendkim.conf:2: Mode 'x'"), std::string::npos) << bad.error();
}

TEST(OpendkimConfTest, InternalHostsBecomeNetworksAndNamesAreLeftOutWithANote) {
    EXPECT_EQ(parse_internal_hosts("").networks, std::vector<std::string>{"127.0.0.1"});
    const auto list =
        parse_internal_hosts("127.0.0.1, ::1, 10.0.0.0/8 ,mail.example.com, !10.0.0.9");
    EXPECT_EQ(list.networks, (std::vector<std::string>{"127.0.0.1", "::1", "10.0.0.0/8"}));
    ASSERT_EQ(list.notes.size(), 2u);
    EXPECT_NE(list.notes[0].find("mail.example.com"), std::string::npos);
    EXPECT_NE(list.notes[1].find("!10.0.0.9"), std::string::npos);
    const auto file =
        parse_internal_hosts("refile:/etc/opendkim/TrustedHosts",
                             "# trusted\n127.0.0.1\nlocalhost\n192.0.2.0/24  # office\n"
                             "[2001:db8::1]\n127.0.0.1\n");
    EXPECT_EQ(file.networks,
              (std::vector<std::string>{"127.0.0.1", "192.0.2.0/24", "2001:db8::1"}));
    ASSERT_EQ(file.notes.size(), 1u);
    EXPECT_NE(file.notes[0].find("localhost"), std::string::npos);
}

TEST(OpendkimConfTest, TheSocketBecomesAListenAddressAndPostfixsMilterLine) {
    auto inet = milter_socket("inet:8891@localhost");
    ASSERT_TRUE(inet) << inet.error();
    EXPECT_EQ(inet->listen, "127.0.0.1:8891");
    EXPECT_EQ(inet->postfix, "inet:127.0.0.1:8891");
    EXPECT_TRUE(inet->loopback);
    EXPECT_TRUE(inet->notes.empty());

    auto local = milter_socket("local:/run/opendkim/opendkim.sock");
    ASSERT_TRUE(local);
    EXPECT_EQ(local->postfix, "inet:127.0.0.1:8891");
    ASSERT_EQ(local->notes.size(), 1u);
    EXPECT_NE(local->notes[0].find("Unix socket"), std::string::npos);

    auto every = milter_socket("inet:12301");
    ASSERT_TRUE(every);
    EXPECT_EQ(every->listen, "127.0.0.1:12301");
    EXPECT_EQ(every->notes.size(), 1u);

    auto v6 = milter_socket("inet6:8891@[::1]");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->listen, "[::1]:8891");
    EXPECT_EQ(v6->postfix, "inet:[::1]:8891");

    auto remote = milter_socket("inet:8891@192.0.2.10");
    ASSERT_TRUE(remote);
    EXPECT_FALSE(remote->loopback);
    EXPECT_EQ(remote->listen, "192.0.2.10:8891");
    EXPECT_NE(remote->notes.at(0).find("allowed_networks"), std::string::npos);

    EXPECT_FALSE(milter_socket("tcp:8891"));
    EXPECT_FALSE(milter_socket("inet:@localhost"));
    EXPECT_FALSE(milter_socket("inet:99999@localhost"));
    EXPECT_FALSE(milter_socket("inet:88a1@localhost"));
}

}  // namespace
}  // namespace dkim::provisioning
