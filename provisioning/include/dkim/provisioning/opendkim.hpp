#pragma once
// Migration from OpenDKIM: its KeyTable and SigningTable (opendkim.conf(5), "file:" and
// "refile:" datasets), read strictly so that nothing is imported half-understood. Errors name
// the file and the line.
//
//   KeyTable:      <key name>  <domain>:<selector>:<private key file>   ("%" as domain: the
//                                                                        signing table's)
//   SigningTable:  <pattern>   <key name>                                (refile patterns:
//                                                                        "*@example.com")

#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim::provisioning {

struct KeyTableEntry {
    std::string name;
    std::string domain;  // lower case, or "%"
    std::string selector;
    std::string key;  // the private key file
    int line = 0;
};

struct SigningTableEntry {
    std::string pattern;  // "*@example.com", "example.com", "user@example.com"
    std::string key_name;
    int line = 0;
};

// `file` names the table in errors ("/etc/opendkim/KeyTable:12: ...").
Expected<std::vector<KeyTableEntry>, std::string> parse_key_table(std::string_view text,
                                                                  const std::string& file);
Expected<std::vector<SigningTableEntry>, std::string> parse_signing_table(std::string_view text,
                                                                          const std::string& file);

// One key to import, with the From patterns that OpenDKIM signed with it.
struct ImportItem {
    std::string key_name;
    std::string domain;
    std::string selector;
    std::string key_file;
    std::vector<std::string> patterns;
    std::vector<std::string> warnings;  // what the appliance does differently
    int line = 0;                       // in the KeyTable
};

// Joins the tables: every signing table line must name a key of the key table; a "%" domain
// takes each domain of the patterns that use it (one item per domain). Keys no pattern uses
// are imported too (with a warning): OpenDKIM may have used them through other means.
Expected<std::vector<ImportItem>, std::string> plan_import(
    const std::vector<KeyTableEntry>& keys, const std::vector<SigningTableEntry>& signing,
    const std::string& key_table_file, const std::string& signing_table_file);

// "refile:/etc/opendkim/SigningTable" -> "/etc/opendkim/SigningTable" (the dataset prefixes
// of opendkim.conf); other values unchanged.
std::string strip_dataset_prefix(const std::string& value);

}  // namespace dkim::provisioning
