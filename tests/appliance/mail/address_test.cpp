#include "dkim/mail/address.hpp"

#include <gtest/gtest.h>

namespace dkim::mail {
namespace {

std::vector<std::string> domains(std::string_view value) {
    auto d = mailbox_domains(value);
    return d ? *d : std::vector<std::string>{"error: " + d.error()};
}

TEST(MailboxDomainsTest, TheFormsOfRfc5322) {
    EXPECT_EQ(domains("alice@Example.COM"), std::vector<std::string>{"example.com"});
    EXPECT_EQ(domains("Alice <alice@example.com>"), std::vector<std::string>{"example.com"});
    EXPECT_EQ(domains(R"("Smith, Alice <x@evil.example>" <alice@example.com>)"),
              std::vector<std::string>{"example.com"})
        << "a display name cannot smuggle another address";
    EXPECT_EQ(domains("alice@example.com (Alice <x@evil.example>)"),
              std::vector<std::string>{"example.com"})
        << "nor can a comment";
    EXPECT_EQ(domains("a@one.example, B <b@two.example>"),
              (std::vector<std::string>{"one.example", "two.example"}));
    EXPECT_EQ(domains("Team: a@one.example, b@two.example;"),
              (std::vector<std::string>{"one.example", "two.example"}));
    EXPECT_EQ(domains("<@route.example:alice@example.com>"),
              std::vector<std::string>{"example.com"});
    EXPECT_EQ(domains(R"("a@b"@example.com)"), std::vector<std::string>{"example.com"});
}

TEST(MailboxDomainsTest, UnusableValuesAreErrors) {
    for (const char* bad :
         {"", "Alice", "alice@", "<alice@example.com", "a@exa mple.com",
          "(unclosed comment a@b.example", "Undisclosed:;", "\"unclosed@b.example"}) {
        EXPECT_FALSE(mailbox_domains(bad)) << bad;
    }
}

}  // namespace
}  // namespace dkim::mail
