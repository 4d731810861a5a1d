// The configuration schemas: which paths a declaration covers, the reference it renders, the
// example file it writes, and a reader that refuses to read what is not declared.
#include "dkim/config/schema.hpp"

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <chrono>
#include <stdexcept>

#include "dkim/config/toml_reader.hpp"

namespace {

using dkim::config::KeyDoc;
using dkim::config::Schema;

constexpr KeyDoc kKeys[] = {
    {"hostname", "string", "localhost", "The name | in the banner.", "\"relay.example\""},
    {"listen[]", "tables", "", "Listeners."},
    {"listen[].address", "string", "", "IP:PORT.", "\"127.0.0.1:25\""},
    {"next_hop", "table", "", "Where mail goes."},
    {"next_hop.url", "string", "", "smtp://HOST:PORT.", "\"smtp://127.0.0.1:26\""},
    {"policy.<operation>", "table", "", "Per operation.", "sign"},
    {"policy.<operation>.quorum", "integer 1..16", "1", "Approvers.", "2"},
    {"pin.file", "string", "", "Conditional: no example."},
};
constexpr dkim::config::Placeholder kNames[] = {{"<operation>", "sign key.generate"}};
const Schema kSchema{"test", kKeys, kNames};

TEST(ConfigSchemaTest, DeclaresTheKeysAndTheirArrayElements) {
    EXPECT_TRUE(declares(kSchema, "hostname"));
    EXPECT_TRUE(declares(kSchema, "listen"));
    EXPECT_TRUE(declares(kSchema, "listen[0].address"));
    EXPECT_TRUE(declares(kSchema, "listen[12].address"));
    EXPECT_TRUE(declares(kSchema, "next_hop.url"));
    EXPECT_FALSE(declares(kSchema, "next_hop.host"));
    EXPECT_FALSE(declares(kSchema, "listen[0].port"));
    EXPECT_FALSE(declares(kSchema, "host"));
    EXPECT_FALSE(declares(kSchema, "hostname.x"));
}

TEST(ConfigSchemaTest, APlaceholderStandsForOneOrMoreNames) {
    EXPECT_TRUE(declares(kSchema, "policy.sign.quorum"));
    EXPECT_TRUE(declares(kSchema, "policy.key.generate.quorum"));
    EXPECT_FALSE(declares(kSchema, "policy.key"));  // not a name <operation> stands for
    EXPECT_FALSE(declares(kSchema, "policy.admin.quorum"));
    EXPECT_FALSE(declares(kSchema, "policy.quorum"));
    EXPECT_FALSE(declares(kSchema, "policy.sign.ticket"));
}

TEST(ConfigSchemaTest, TheReferenceHasOneRowPerKey) {
    const std::string md = reference_markdown(kSchema);
    EXPECT_NE(md.find("#### test\n\n| key | type | default | what it does |\n|---|---|---|---|\n"),
              std::string::npos);
    EXPECT_NE(md.find("| `hostname` | string | `localhost` | The name \\| in the banner. |"),
              std::string::npos);
    EXPECT_NE(md.find("| `[[listen]] address` | string | – | IP:PORT. |"), std::string::npos);
    EXPECT_NE(md.find("| `[next_hop] url` |"), std::string::npos);
    EXPECT_NE(md.find("| `[[listen]]` | tables | – | Listeners. |"), std::string::npos);
    EXPECT_NE(md.find("| `[next_hop]` | table |"), std::string::npos);
    EXPECT_NE(md.find("| `[policy.<operation>] quorum` | integer 1..16 | `1` |"),
              std::string::npos);
}

TEST(ConfigSchemaTest, TheExampleHoldsEveryKeyWithAnExample) {
    const std::string toml = example_toml(kSchema);
    EXPECT_EQ(toml,
              "hostname = \"relay.example\"\n"
              "\n[[listen]]\naddress = \"127.0.0.1:25\"\n"
              "\n[next_hop]\nurl = \"smtp://127.0.0.1:26\"\n"
              "\n[policy.sign]\nquorum = 2\n");
    EXPECT_NO_THROW((void)toml::parse(toml));
}

TEST(ConfigSchemaTest, AReaderWithASchemaRefusesUndeclaredKeys) {
    const toml::table t = toml::parse("hostname = \"x\"\n[next_hop]\nurl = \"smtp://a:1\"\n");
    dkim::config::TableReader r(t, "test.toml", "", &kSchema);
    EXPECT_EQ(r.string("hostname").value_or(""), "x");
    auto hop = r.table("next_hop");
    ASSERT_TRUE(hop.has_value());
    EXPECT_EQ(hop->string("url").value_or(""), "smtp://a:1");
    // A parser bug, not a user error: the key is missing from the reference.
    EXPECT_THROW((void)hop->string("port"), std::logic_error);
    EXPECT_THROW((void)r.boolean("debug"), std::logic_error);
    // Without a schema nothing is checked.
    dkim::config::TableReader free(t, "test.toml");
    EXPECT_FALSE(free.boolean("debug").has_value());
}

TEST(ConfigSchemaTest, AZeroDurationIsReadWhereTheMinimumIsZero) {
    // relayd's [limits] greeting_delay: "0s" is no delay (the README's example says so).
    const toml::table t = toml::parse(
        "off = \"0s\"\nms = \"0ms\"\nmixed = \"0m0s\"\nsome = \"250ms\"\nbare = \"0\"\n"
        "below = \"0s\"\n");
    dkim::config::TableReader r(t, "test.toml");
    using std::chrono::milliseconds;
    EXPECT_EQ(r.duration("off", milliseconds(0)), milliseconds(0));
    EXPECT_EQ(r.duration("ms", milliseconds(0)), milliseconds(0));
    EXPECT_EQ(r.duration("mixed", milliseconds(0)), milliseconds(0));
    EXPECT_EQ(r.duration("some", milliseconds(0)), milliseconds(250));
    EXPECT_THROW((void)r.duration("bare", milliseconds(0)), dkim::config::ConfigError);
    // Elsewhere (the default minimum of 1ms) zero stays an error.
    EXPECT_THROW((void)r.duration("below"), dkim::config::ConfigError);
}

}  // namespace
