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

// --- the milter settings (opendkim.conf(5)) --------------------------------------------------

// What a milter replacement needs of opendkim.conf: its socket, mode, internal hosts and
// tables. Keywords are case-insensitive; the others are left alone (the file holds settings
// the appliance decides its own way: canonicalization, headers, key files), and named in
// `notes` when they change what is signed.
struct OpenDkimConf {
    std::string socket;          // "inet:8891@localhost", "local:/run/opendkim/opendkim.sock"
    std::string mode = "sv";     // s (sign), v (verify), sv (both); OpenDKIM's default
    std::string internal_hosts;  // a list ("127.0.0.1, 10.0.0.0/8") or a dataset ("refile:/...")
    std::string key_table;
    std::string signing_table;
    std::vector<std::string> notes;
};
Expected<OpenDkimConf, std::string> parse_opendkim_conf(std::string_view text,
                                                        const std::string& file);

// InternalHosts: OpenDKIM's default (127.0.0.1) when `value` is empty, else a comma-separated
// list, or (`dataset_text`, when the value names a file) one host per line. Addresses and
// networks become [[client]] networks; host names and "!" exceptions are left out with a note
// (relayd matches addresses only).
struct InternalHosts {
    std::vector<std::string> networks;
    std::vector<std::string> notes;
};
InternalHosts parse_internal_hosts(std::string_view value, std::string_view dataset_text = {});

// The milter listener that replaces OpenDKIM's Socket: relayd's listen address and the address
// Postfix's smtpd_milters names for it ("inet:127.0.0.1:8891").
struct MilterSocket {
    std::string listen;
    std::string postfix;
    bool loopback = true;  // else allowed_networks must name the MTA
    std::vector<std::string> notes;
};
Expected<MilterSocket, std::string> milter_socket(std::string_view socket);

}  // namespace dkim::provisioning
