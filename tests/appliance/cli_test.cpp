// End-to-end tests of `dkim-appliance` on a SoftHSM2 token store made for this binary, with
// OpenSC's pkcs11-tool and the openssl command as independent peers: our CLI generates the
// keys and renders the DNS records; pkcs11-tool reads the key attributes and signs; openssl
// verifies with the public key taken from our DNS record.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <fstream>
#include <regex>

#include "openssl_verify.hpp"
#include "softhsm_environment.hpp"
#include "test_paths.hpp"

namespace dkim::test {
namespace {

struct CliRun {
    int status;
    std::string output;
};

std::string quote(const std::string& arg) {
    std::string out = "'";
    for (const char c : arg) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

CliRun cli(const std::vector<std::string>& args) {
    std::string command = quote(test_path("cli").string());
    for (const auto& arg : args) {
        command += " " + quote(arg);
    }
    CliRun run{};
    run.status = run_command(command, &run.output);
    return run;
}

std::string write(const std::string& name, const std::string& content, int mode = 0600) {
    const auto path = SoftHsmEnvironment::get().directory() / name;
    std::ofstream(path) << content;
    std::filesystem::permissions(path, static_cast<std::filesystem::perms>(mode));
    return path.string();
}

// The p= value of a zone line, as a PEM SubjectPublicKeyInfo for the openssl command.
std::string pem_from_zone_line(const std::string& zone_line, bool ed25519) {
    std::string value;
    const std::regex quoted("\"([^\"]*)\"");
    for (std::sregex_iterator it(zone_line.begin(), zone_line.end(), quoted), end; it != end;
         ++it) {
        value += (*it)[1].str();
    }
    const auto p = value.find("p=");
    EXPECT_NE(p, std::string::npos) << zone_line;
    std::vector<unsigned char> der = base64_decode(value.substr(p + 2));
    if (ed25519) {
        // RFC 8410 SubjectPublicKeyInfo prefix for a 32-byte Ed25519 key.
        const std::vector<unsigned char> prefix{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
        EXPECT_EQ(der.size(), 32U);
        der.insert(der.begin(), prefix.begin(), prefix.end());
    }
    std::string b64(4 * ((der.size() + 2) / 3) + 1, '\0');
    b64.resize(static_cast<std::size_t>(EVP_EncodeBlock(
        reinterpret_cast<unsigned char*>(b64.data()), der.data(), static_cast<int>(der.size()))));
    std::string pem = "-----BEGIN PUBLIC KEY-----\n";
    for (std::size_t at = 0; at < b64.size(); at += 64) {
        pem += b64.substr(at, 64) + "\n";
    }
    return pem + "-----END PUBLIC KEY-----\n";
}

class CliTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        so_pin_ = write("so.pin", "so-secret-1\n");
        pin_ = write("user.pin", "user-secret-1\n");
        const CliRun init = cli({"token", "init", "--module", SoftHsmEnvironment::module_path(),
                                 "--label", "dkim", "--so-pin-file", so_pin_, "--pin-file", pin_});
        ASSERT_EQ(init.status, 0) << init.output;
        ASSERT_NE(init.output.find("initialised token 'dkim' in slot "), std::string::npos);
    }
    static std::vector<std::string> token_args() {
        return {"--module", SoftHsmEnvironment::module_path(), "--token", "dkim"};
    }
    static std::vector<std::string> with(std::vector<std::string> head,
                                         const std::vector<std::string>& tail) {
        head.insert(head.end(), tail.begin(), tail.end());
        return head;
    }
    static std::string pkcs11_tool(const std::string& args) {
        std::string output;
        EXPECT_EQ(run_command("pkcs11-tool --module " + SoftHsmEnvironment::module_path() +
                                  " --token-label dkim " + args,
                              &output),
                  0)
            << output;
        return output;
    }

    static inline std::string so_pin_;
    static inline std::string pin_;
};

TEST_F(CliTest, GeneratesKeysThatOtherToolsSeeAsProtectedAndVerify) {
    const CliRun rsa = cli(with(
        {"key", "generate"},
        with(token_args(), {"--pin-file", pin_, "--domain", "example.com", "--selector", "rsa1"})));
    ASSERT_EQ(rsa.status, 0) << rsa.output;
    EXPECT_NE(rsa.output.find("generated rsa-2048 key rsa1._domainkey.example.com in token 'dkim'"),
              std::string::npos)
        << rsa.output;
    const CliRun ed =
        cli(with({"key", "generate"},
                 with(token_args(), {"--pin-file", pin_, "--domain", "example.com", "--selector",
                                     "ed1", "--algorithm", "ed25519", "--json"})));
    ASSERT_EQ(ed.status, 0) << ed.output;
    EXPECT_NE(ed.output.find("\"algorithm\": \"ed25519\""), std::string::npos) << ed.output;
    EXPECT_NE(ed.output.find("\"private_key\": \"protected\""), std::string::npos) << ed.output;
    EXPECT_NE(ed.output.find("\"dns_record\": \"v=DKIM1; k=ed25519; p="), std::string::npos);

    const CliRun list = cli(with({"key", "list"}, with(token_args(), {"--pin-file", pin_})));
    ASSERT_EQ(list.status, 0) << list.output;
    EXPECT_TRUE(std::regex_search(
        list.output, std::regex("example\\.com +ed1 +ed25519 +[0-9a-f]{32} +protected")))
        << list.output;
    EXPECT_TRUE(std::regex_search(
        list.output, std::regex("example\\.com +rsa1 +rsa-2048 +[0-9a-f]{32} +protected")))
        << list.output;
    const CliRun json = cli(with({"key", "list", "--json"}, token_args()));
    ASSERT_EQ(json.status, 0) << json.output;
    EXPECT_NE(json.output.find("\"private_keys_checked\": false"), std::string::npos);
    EXPECT_NE(json.output.find("\"private_key\": \"not checked (no PIN given)\""),
              std::string::npos);

    // OpenSC sees the same protection, independently of our code.
    const std::string objects =
        pkcs11_tool("--login --pin user-secret-1 --list-objects --type privkey");
    for (const std::string label : {"rsa1._domainkey.example.com", "ed1._domainkey.example.com"}) {
        const auto at = objects.find("label:      " + label);
        ASSERT_NE(at, std::string::npos) << objects;
        const std::string block = objects.substr(at, 300);
        EXPECT_NE(block.find("Usage:      sign\n"), std::string::npos) << block;
        EXPECT_NE(block.find("Access:     sensitive, always sensitive, never extractable, local"),
                  std::string::npos)
            << block;
    }

    // pkcs11-tool signs with our keys; openssl verifies with the key from our DNS record.
    const std::string data = write("data.txt", "from:someone@example.com\r\n");
    for (const bool ed25519 : {false, true}) {
        const std::string selector = ed25519 ? "ed1" : "rsa1";
        const CliRun record =
            cli(with({"dns", "record"},
                     with(token_args(), {"--domain", "example.com", "--selector", selector})));
        ASSERT_EQ(record.status, 0) << record.output;
        const std::string pem =
            write(selector + ".pem", pem_from_zone_line(record.output, ed25519));
        const std::string signature =
            (SoftHsmEnvironment::get().directory() / (selector + ".sig")).string();
        // Select by CKA_ID: pkcs11-tool 0.23's --label lookup fails for EdDSA keys (it gives
        // CKR_MECHANISM_INVALID even for keys it generated itself).
        const std::regex id_pattern(
            "\"selector\": \"" + selector +
            "\",\\s*\"algorithm\": \"[^\"]+\",\\s*\"id\": \"([0-9a-f]{32})\"");
        std::smatch id;
        ASSERT_TRUE(std::regex_search(json.output, id, id_pattern)) << json.output;
        pkcs11_tool("--login --pin user-secret-1 --sign --mechanism " +
                    std::string(ed25519 ? "EDDSA" : "SHA256-RSA-PKCS") + " --id " + id[1].str() +
                    " -i " + data + " -o " + signature);
        std::string output;
        const std::string verify = ed25519 ? "openssl pkeyutl -verify -pubin -inkey " + pem +
                                                 " -rawin -in " + data + " -sigfile " + signature
                                           : "openssl dgst -sha256 -verify " + pem +
                                                 " -signature " + signature + " " + data;
        EXPECT_EQ(run_command(verify, &output), 0) << verify << "\n" << output;
        EXPECT_NE(output.find(ed25519 ? "Signature Verified Successfully" : "Verified OK"),
                  std::string::npos)
            << output;
    }
}

TEST_F(CliTest, DnsRecordIsOneZoneLineSplitIntoStringsOf255) {
    ASSERT_EQ(cli(with({"key", "generate"},
                       with(token_args(), {"--pin-file", pin_, "--domain", "big.example",
                                           "--selector", "r4096", "--algorithm", "rsa-4096"})))
                  .status,
              0);
    const CliRun record = cli(with(
        {"dns", "record"}, with(token_args(), {"--domain", "big.example", "--selector", "r4096"})));
    ASSERT_EQ(record.status, 0) << record.output;
    std::smatch match;
    ASSERT_TRUE(std::regex_match(
        record.output, match,
        std::regex("r4096\\._domainkey\\.big\\.example\\. IN TXT \\(( \"[^\"]*\")+ \\)\n")))
        << record.output;
    std::size_t strings = 0;
    const std::regex quoted("\"([^\"]*)\"");
    for (std::sregex_iterator it(record.output.begin(), record.output.end(), quoted), end;
         it != end; ++it, ++strings) {
        EXPECT_LE((*it)[1].length(), 255);
        if (strings == 0) {
            EXPECT_EQ((*it)[1].str().rfind("v=DKIM1; k=rsa; p=MIICIjAN", 0), 0U);
            EXPECT_EQ((*it)[1].length(), 255);
        }
    }
    EXPECT_EQ(strings, 3U) << "a 4096-bit key's record needs three strings";
}

TEST_F(CliTest, OptionsComeFromATomlFileAndTheCommandLineWins) {
    const std::string config =
        write("dkim.toml", "module = \"" + SoftHsmEnvironment::module_path() +
                               "\"\ntoken = \"dkim\"\npin-file = \"" + pin_ +
                               "\"\n\n[key.generate]\nalgorithm = \"ed25519\"\n");
    const CliRun ed =
        cli({"--config", config, "key", "generate", "--domain", "conf.example", "--selector", "a"});
    ASSERT_EQ(ed.status, 0) << ed.output;
    EXPECT_NE(ed.output.find("generated ed25519 key a._domainkey.conf.example"), std::string::npos)
        << ed.output;
    const CliRun rsa = cli({"key", "generate", "--config", config, "--domain", "conf.example",
                            "--selector", "b", "--algorithm", "rsa-2048"});
    ASSERT_EQ(rsa.status, 0) << rsa.output;
    EXPECT_NE(rsa.output.find("generated rsa-2048 key b._domainkey.conf.example"),
              std::string::npos)
        << rsa.output;
    const CliRun record =
        cli({"--config", config, "dns", "record", "--domain", "conf.example", "--selector", "a"});
    EXPECT_EQ(record.status, 0) << record.output;
}

TEST_F(CliTest, ConfigErrorsNameFileLineAndKey) {
    const std::string unknown = write("unknown.toml", "module = \"/x.so\"\ntokne = \"dkim\"\n");
    CliRun run = cli({"--config", unknown, "key", "list"});
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.output, "dkim-appliance: configuration error: " + unknown +
                              ":2:1: key 'tokne': no command has an option --tokne\n");

    const std::string bad_value = write("bad.toml", "\n[key.generate]\nalgorithm = \"rsa-1024\"\n");
    run = cli({"--config", bad_value, "key", "generate"});
    EXPECT_EQ(run.status, 2);
    EXPECT_NE(run.output.find(bad_value + ":3:13: key 'key.generate.algorithm': "),
              std::string::npos)
        << run.output;
    EXPECT_NE(run.output.find("rsa-1024"), std::string::npos) << run.output;

    const std::string wrong_section =
        write("section.toml", "[key.list]\nalgorithm = \"ed25519\"\n");
    run = cli({"--config", wrong_section, "key", "list"});
    EXPECT_EQ(run.status, 2);
    EXPECT_NE(run.output.find(wrong_section +
                              ":2:1: key 'key.list.algorithm': command 'key.list' has no option "
                              "--algorithm"),
              std::string::npos)
        << run.output;

    const std::string no_command = write("nocmd.toml", "[key.delete]\nselector = \"x\"\n");
    run = cli({"--config", no_command, "key", "list"});
    EXPECT_EQ(run.status, 2);
    EXPECT_NE(run.output.find("there is no command 'key.delete'"), std::string::npos) << run.output;

    const std::string syntax = write("syntax.toml", "module = \"/x.so\"\ntoken = dkim\n");
    run = cli({"--config", syntax, "key", "list"});
    EXPECT_EQ(run.status, 2);
    EXPECT_NE(run.output.find(syntax + ":2:"), std::string::npos) << run.output;

    const std::string array = write("array.toml", "token = [\"a\", \"b\"]\n");
    run = cli({"--config", array, "key", "list"});
    EXPECT_EQ(run.status, 2);
    EXPECT_NE(run.output.find(":1:9: key 'token': expected one value, not a list"),
              std::string::npos)
        << run.output;
}

TEST_F(CliTest, FailuresGiveClearErrorsAndExitCodes) {
    CliRun run =
        cli(with({"key", "list"}, {"--module", "/nonexistent/module.so", "--token", "dkim"}));
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.output,
              "dkim-appliance: module /nonexistent/module.so could not be loaded: No such "
              "file or directory\n");

    run = cli(
        with({"key", "list"}, {"--module", SoftHsmEnvironment::module_path(), "--token", "nope"}));
    EXPECT_EQ(run.status, 1);
    EXPECT_EQ(run.output.rfind("dkim-appliance: token 'nope' not found in module " +
                                   SoftHsmEnvironment::module_path() + "; slots present: ",
                               0),
              0U)
        << run.output;
    EXPECT_NE(run.output.find("'dkim'"), std::string::npos) << run.output;

    run = cli(with({"dns", "record"},
                   with(token_args(), {"--domain", "example.com", "--selector", "x"})));
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("no key for selector 'x' of domain 'example.com'"),
              std::string::npos);

    const std::string wrong = write("wrong.pin", "not-the-pin\n");
    run = cli(with({"key", "list"}, with(token_args(), {"--pin-file", wrong})));
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("(CKR_PIN_INCORRECT from C_Login)"), std::string::npos) << run.output;
    EXPECT_EQ(run.output.find("not-the-pin"), std::string::npos);

    const std::string readable = write("readable.pin", "user-secret-1\n", 0644);
    run = cli(with({"key", "list"}, with(token_args(), {"--pin-file", readable})));
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("other users may read it (mode 0644)"), std::string::npos);

    run = cli(with({"key", "generate"},
                   with(token_args(),
                        {"--pin-file", pin_, "--domain", "example.com", "--selector", "bad_sel"})));
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("selector 'bad_sel' is not a valid selector"), std::string::npos);

    run = cli({"key", "generate", "--token", "dkim"});
    EXPECT_EQ(run.status, 2) << "usage errors exit with 2";
    EXPECT_NE(run.output.find("--domain is required"), std::string::npos) << run.output;

    run =
        cli({"key", "generate", "--pin-file", pin_, "--domain", "example.com", "--selector", "s1"});
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("--pin-file (offline generation) needs --token"), std::string::npos)
        << run.output;

    run = cli({"key", "generate", "--socket", "/nonexistent/signerd.sock", "--domain",
               "example.com", "--selector", "s1"});
    EXPECT_EQ(run.status, 1) << "without --pin-file the key is made through signerd";
    EXPECT_NE(run.output.find("/nonexistent/signerd.sock"), std::string::npos) << run.output;

    run = cli({"token", "init", "--module", SoftHsmEnvironment::module_path(), "--label", "dkim2",
               "--so-pin-file", so_pin_, "--pin-file", so_pin_});
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("the SO PIN and the user PIN must differ"), std::string::npos)
        << "same file twice";
    const std::string other = write("other.pin", "other-secret\n");
    run = cli({"token", "init", "--module", SoftHsmEnvironment::module_path(), "--label", "dkim",
               "--so-pin-file", so_pin_, "--pin-file", other});
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("token 'dkim' already exists"), std::string::npos) << run.output;

    run = cli({"--help"});
    EXPECT_EQ(run.status, 0);
}

}  // namespace
}  // namespace dkim::test

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    dkim::test::SoftHsmEnvironment::create({});
    return RUN_ALL_TESTS();
}

namespace dkim::test {
namespace {

// `sign` and `verify` on files: stdout only (stderr dropped) for the signed message.
CliRun cli_stdin(const std::vector<std::string>& args, const std::string& input_file,
                 bool keep_stderr = false) {
    std::string command = quote(test_path("cli").string());
    for (const auto& arg : args) {
        command += " " + quote(arg);
    }
    command += " < " + quote(input_file) + (keep_stderr ? "" : " 2>/dev/null");
    CliRun run{};
    run.status = run_command(command, &run.output);
    return run;
}

TEST_F(CliTest, SignKeepsTheInputsLineEndingsAndBytes) {
    for (const auto& [selector, algorithm] :
         {std::pair{"mail-rsa", "rsa-2048"}, std::pair{"mail-ed", "ed25519"}}) {
        const CliRun made =
            cli(with({"key", "generate"},
                     with(token_args(), {"--pin-file", pin_, "--domain", "cli.example",
                                         "--selector", selector, "--algorithm", algorithm})));
        ASSERT_EQ(made.status, 0) << made.output;
    }
    const std::vector<std::string> sign =
        with({"sign"}, with(token_args(), {"--pin-file", pin_, "--domain", "cli.example",
                                           "--selector", "mail-rsa", "--selector", "mail-ed"}));
    const std::string lf = "From: a@cli.example\nTo: b@example.net\nSubject: hi\n\nbody\n";
    CliRun run = cli_stdin(sign, write("lf.eml", lf));
    ASSERT_EQ(run.status, 0) << run.output;
    EXPECT_EQ(run.output.find('\r'), std::string::npos) << "LF in, LF out";
    EXPECT_EQ(run.output.rfind("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;", 0), 0U);
    EXPECT_NE(run.output.find("\nDKIM-Signature: v=1; a=ed25519-sha256;"), std::string::npos);
    EXPECT_EQ(run.output.substr(run.output.size() - lf.size()), lf) << "message bytes unchanged";

    const std::string crlf = "From: a@cli.example\r\nSubject: hi\r\n\r\nbody\r\n";
    run = cli_stdin(with(sign, {"--canonicalization", "simple/simple", "--expire-after", "7d"}),
                    write("crlf.eml", crlf));
    ASSERT_EQ(run.status, 0) << run.output;
    EXPECT_NE(run.output.find("c=simple/simple;"), std::string::npos);
    EXPECT_NE(run.output.find(" x="), std::string::npos);
    const std::string fields = run.output.substr(0, run.output.size() - crlf.size());
    EXPECT_EQ(fields.find("\n"), fields.find("\r\n") + 1) << "CRLF in, CRLF out";
    EXPECT_EQ(run.output.substr(fields.size()), crlf);
}

TEST_F(CliTest, SignAndVerifyFailuresAndExitCodes) {
    const std::vector<std::string> sign = with(
        {"sign"}, with(token_args(),
                       {"--pin-file", pin_, "--domain", "cli.example", "--selector", "absent"}));
    const std::string message = write("m.eml", "From: a@cli.example\n\nbody\n");
    CliRun run = cli_stdin(sign, message, true);
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("no key for selector 'absent'"), std::string::npos) << run.output;

    run = cli_stdin(with(sign, {"--canonicalization", "loose"}), message, true);
    EXPECT_EQ(run.status, 2) << run.output;

    const std::string no_from = write("nofrom.eml", "To: b@example.net\n\nbody\n");
    const CliRun made =
        cli(with({"key", "generate"},
                 with(token_args(), {"--pin-file", pin_, "--domain", "cli.example", "--selector",
                                     "fail-ed", "--algorithm", "ed25519"})));
    ASSERT_EQ(made.status, 0) << made.output;
    run = cli_stdin(with({"sign"}, with(token_args(), {"--pin-file", pin_, "--domain",
                                                       "cli.example", "--selector", "fail-ed"})),
                    no_from, true);
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("message has no From field; not signed"), std::string::npos)
        << run.output;

    const std::string broken = write("broken.eml", "From: a@cli.example\nno colon\n\nbody\n");
    run = cli_stdin({"verify", "--dns-server", "127.0.0.1:9"}, broken, true);
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("message: header line 2: header line without a colon"),
              std::string::npos)
        << run.output;

    run = cli_stdin({"verify", "--dns-server", "not-an-address"}, message, true);
    EXPECT_EQ(run.status, 2);
    EXPECT_NE(run.output.find("invalid DNS server address"), std::string::npos) << run.output;

    run = cli_stdin({"verify", "--dns-server", "127.0.0.1:9", "--authserv-id", "mx.test"}, message);
    EXPECT_EQ(run.status, 1) << "no signature passes";
    EXPECT_EQ(run.output,
              "Authentication-Results: mx.test;\n\tdkim=none reason=\"message not signed\"\n");
}

// A signature whose key cannot be fetched (nothing answers DNS on the discard port) is a
// temporary error, and `verify` says so without passing anything.
TEST_F(CliTest, VerifyWithoutDnsIsTemperror) {
    const CliRun made =
        cli(with({"key", "generate"},
                 with(token_args(), {"--pin-file", pin_, "--domain", "cli.example", "--selector",
                                     "nodns", "--algorithm", "ed25519"})));
    ASSERT_EQ(made.status, 0) << made.output;
    const CliRun signed_run =
        cli_stdin(with({"sign"}, with(token_args(), {"--pin-file", pin_, "--domain", "cli.example",
                                                     "--selector", "nodns"})),
                  write("plain.eml", "From: a@cli.example\n\nbody\n"));
    ASSERT_EQ(signed_run.status, 0);
    const CliRun run = cli_stdin({"verify", "--dns-server", "127.0.0.1:9", "--dns-timeout-ms",
                                  "300", "--authserv-id", "mx.test"},
                                 write("signed.eml", signed_run.output));
    EXPECT_EQ(run.status, 1);
    EXPECT_NE(run.output.find("dkim=temperror"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("header.s=nodns"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace dkim::test
