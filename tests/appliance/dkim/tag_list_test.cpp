#include "dkim/dkim/tag_list.hpp"

#include <gtest/gtest.h>

namespace dkim {
namespace {

TEST(TagListTest, ValuesWithFoldingWhiteSpace) {
    auto t = TagList::parse(" v=1;\r\n\ta = rsa-sha256 ; h=from :\r\n to;b=abc\r\n def ;");
    ASSERT_TRUE(t) << t.error();
    ASSERT_EQ(t->tags().size(), 4U);
    EXPECT_EQ(*t->find("v"), "1");
    EXPECT_EQ(*t->find("a"), "rsa-sha256");
    EXPECT_EQ(*t->find("h"), "from :\r\n to");
    EXPECT_EQ(*t->find("b"), "abc\r\n def");
    EXPECT_EQ(strip_fws(*t->find("b")), "abcdef");
    EXPECT_EQ(split_colon_list(*t->find("h")), (std::vector<std::string>{"from", "to"}));
    EXPECT_EQ(t->find("x"), nullptr);
}

TEST(TagListTest, EmptyValueIsAllowed) {
    auto t = TagList::parse("v=DKIM1; p=");
    ASSERT_TRUE(t);
    EXPECT_EQ(*t->find("p"), "");
}

TEST(TagListTest, Rejects) {
    EXPECT_NE(TagList::parse("a=1; a=2").error().find("duplicate tag 'a'"), std::string::npos);
    EXPECT_NE(TagList::parse("a").error().find("without '='"), std::string::npos);
    EXPECT_NE(TagList::parse("1a=x").error().find("start with a letter"), std::string::npos);
    EXPECT_NE(TagList::parse("a=x;;b=y").error().find("start with a letter"), std::string::npos);
    EXPECT_NE(TagList::parse("a=caf\xc3\xa9").error().find("invalid character"), std::string::npos);
    EXPECT_FALSE(TagList::parse(""));
    EXPECT_FALSE(TagList::parse("a=x\r\nb=y"));  // CRLF not followed by WSP is not FWS
}

}  // namespace
}  // namespace dkim
