#include "dkim/text/json.hpp"

#include <gtest/gtest.h>

namespace dkim::text {
namespace {

TEST(JsonQuoteTest, QuotesAndEscapesWhatJsonRequires) {
    EXPECT_EQ(json_quote(""), "\"\"");
    EXPECT_EQ(json_quote("plain text"), "\"plain text\"");
    EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    EXPECT_EQ(json_quote("line\nbreak\r\ttab"), "\"line\\nbreak\\r\\ttab\"");
    EXPECT_EQ(json_quote(std::string_view("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\\u007f\"");
    EXPECT_EQ(json_quote("Gr\xc3\xbc\xc3\x9f"), "\"Gr\xc3\xbc\xc3\x9f\"") << "UTF-8 passes through";
}

}  // namespace
}  // namespace dkim::text
