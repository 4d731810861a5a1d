#include "dkim/provisioning/opendkim.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "dkim/dns/name.hpp"
#include "text.hpp"

namespace dkim::provisioning {

using detail::lower;
namespace {

constexpr std::size_t kMaxLine = 4096;
constexpr std::size_t kMaxEntries = 100'000;

struct Line {
    int number = 0;
    std::string key;
    std::string value;
};

bool space(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// OpenDKIM's "file:" dataset: a key, whitespace, a value; '#' starts a comment; blank lines
// are skipped.
Expected<std::vector<Line>, std::string> read_lines(std::string_view text,
                                                    const std::string& file) {
    std::vector<Line> out;
    int number = 0;
    while (!text.empty()) {
        ++number;
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        const std::string where = file + ":" + std::to_string(number) + ": ";
        if (line.size() > kMaxLine) {
            return unexpected(where + "the line is longer than " + std::to_string(kMaxLine) +
                              " bytes");
        }
        if (const auto hash = line.find('#'); hash != std::string_view::npos) {
            line = line.substr(0, hash);
        }
        line = trim(line);
        if (line.empty()) {
            continue;
        }
        for (const char c : line) {
            if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
                return unexpected(where + "a control character");
            }
        }
        const auto gap = std::find_if(line.begin(), line.end(), space) - line.begin();
        if (static_cast<std::size_t>(gap) == line.size()) {
            return unexpected(where + "'" + std::string(line) + "' has a key but no value");
        }
        if (out.size() == kMaxEntries) {
            return unexpected(where + "more than " + std::to_string(kMaxEntries) + " entries");
        }
        out.push_back({number, std::string(line.substr(0, static_cast<std::size_t>(gap))),
                       std::string(trim(line.substr(static_cast<std::size_t>(gap))))});
    }
    return out;
}

// The domain a signing table pattern is for: "*@example.com", "@example.com", "example.com",
// "user@example.com" give example.com; other wildcards give "".
std::string pattern_domain(const std::string& pattern) {
    const auto at = pattern.rfind('@');
    std::string domain = lower(at == std::string::npos ? pattern : pattern.substr(at + 1));
    if (!dns::is_key_domain(domain)) {  // a wildcard is not a name
        return "";
    }
    return domain;
}

}  // namespace

std::string strip_dataset_prefix(const std::string& value) {
    for (const std::string prefix : {"refile:", "file:"}) {
        if (value.rfind(prefix, 0) == 0) {
            return value.substr(prefix.size());
        }
    }
    return value;
}

Expected<std::vector<KeyTableEntry>, std::string> parse_key_table(std::string_view text,
                                                                  const std::string& file) {
    auto lines = read_lines(text, file);
    if (!lines) {
        return unexpected(lines.error());
    }
    std::vector<KeyTableEntry> out;
    std::set<std::string> names;
    for (const Line& l : *lines) {
        const std::string where = file + ":" + std::to_string(l.number) + ": ";
        const auto first = l.value.find(':');
        const auto second =
            first == std::string::npos ? std::string::npos : l.value.find(':', first + 1);
        if (second == std::string::npos) {
            return unexpected(where + "expected <name> <domain>:<selector>:<key file>");
        }
        KeyTableEntry e;
        e.name = l.key;
        e.domain = lower(l.value.substr(0, first));
        e.selector = lower(l.value.substr(first + 1, second - first - 1));
        e.key = l.value.substr(second + 1);
        e.line = l.number;
        if (e.domain != "%" && !dns::is_key_domain(e.domain)) {
            return unexpected(where + "'" + e.domain + "' is not a domain name");
        }
        if (!dns::is_key_selector(e.selector)) {
            return unexpected(where + "'" + e.selector + "' is not a valid selector");
        }
        // Each part can be valid alone and the pair too long for one DNS name; a "%" domain's
        // pairs are checked by plan_import, which knows the domains.
        if (e.domain != "%") {
            if (const auto problem = dns::key_name_problem(e.domain, e.selector);
                !problem.empty()) {
                return unexpected(where + e.selector + "._domainkey." + e.domain + ": " + problem);
            }
        }
        if (e.key.empty() || e.key.front() != '/') {
            return unexpected(where +
                              "the private key must be given as an absolute file name (a key "
                              "written into the table is not imported: put it in a file)");
        }
        if (!names.insert(e.name).second) {
            return unexpected(where + "the key name '" + e.name + "' is listed twice");
        }
        out.push_back(std::move(e));
    }
    return out;
}

Expected<std::vector<SigningTableEntry>, std::string> parse_signing_table(std::string_view text,
                                                                          const std::string& file) {
    auto lines = read_lines(text, file);
    if (!lines) {
        return unexpected(lines.error());
    }
    std::vector<SigningTableEntry> out;
    for (const Line& l : *lines) {
        if (std::any_of(l.value.begin(), l.value.end(), space)) {
            return unexpected(file + ":" + std::to_string(l.number) +
                              ": expected <pattern> "
                              "<key name>, found more");
        }
        out.push_back({lower(l.key), l.value, l.number});
    }
    return out;
}

Expected<std::vector<ImportItem>, std::string> plan_import(
    const std::vector<KeyTableEntry>& keys, const std::vector<SigningTableEntry>& signing,
    const std::string& key_table_file, const std::string& signing_table_file) {
    std::map<std::string, std::vector<const SigningTableEntry*>> users;
    for (const auto& s : signing) {
        const bool known = std::any_of(keys.begin(), keys.end(),
                                       [&](const auto& k) { return k.name == s.key_name; });
        if (!known) {
            return unexpected(signing_table_file + ":" + std::to_string(s.line) + ": key '" +
                              s.key_name + "' is not in " + key_table_file);
        }
        users[s.key_name].push_back(&s);
    }
    std::vector<ImportItem> out;
    std::set<std::string> seen;  // "selector._domainkey.domain"
    for (const auto& k : keys) {
        const auto& patterns = users[k.name];
        std::vector<std::string> domains;
        if (k.domain == "%") {
            for (const auto* s : patterns) {
                const std::string d = pattern_domain(s->pattern);
                if (d.empty()) {
                    return unexpected(signing_table_file + ":" + std::to_string(s->line) +
                                      ": pattern '" + s->pattern +
                                      "' names no single domain for "
                                      "key '" +
                                      k.name + "' (its domain is %)");
                }
                if (std::find(domains.begin(), domains.end(), d) == domains.end()) {
                    domains.push_back(d);
                }
            }
            if (domains.empty()) {
                return unexpected(key_table_file + ":" + std::to_string(k.line) + ": key '" +
                                  k.name + "' has domain % and no signing table line uses it");
            }
        } else {
            domains.push_back(k.domain);
        }
        for (const auto& d : domains) {
            // The pair as apply.cpp checks it: "ss" and a 240-character domain are each valid,
            // "ss._domainkey." and that domain are 254 characters, not a DNS name.
            if (const auto problem = dns::key_name_problem(d, k.selector); !problem.empty()) {
                return unexpected(key_table_file + ":" + std::to_string(k.line) + ": " +
                                  k.selector + "._domainkey." + d + ": " + problem);
            }
            ImportItem item;
            item.key_name = k.name;
            item.domain = d;
            item.selector = k.selector;
            item.key_file = k.key;
            item.line = k.line;
            if (!seen.insert(k.selector + "._domainkey." + d).second) {
                return unexpected(key_table_file + ":" + std::to_string(k.line) + ": " +
                                  k.selector + "._domainkey." + d + " is listed twice");
            }
            for (const auto* s : patterns) {
                item.patterns.push_back(s->pattern);
                const std::string pd = pattern_domain(s->pattern);
                if (pd.empty()) {
                    item.warnings.push_back("pattern '" + s->pattern +
                                            "' is a wildcard: the relay signs mail by its From "
                                            "domain; configure a [[client]] with its domains");
                } else if (pd != d) {
                    item.warnings.push_back("mail from " + pd + " was signed with d=" + d +
                                            "; the relay signs with the From domain's own keys");
                } else if (s->pattern.find('@') != std::string::npos &&
                           s->pattern.rfind("*@", 0) != 0 && s->pattern.front() != '@') {
                    item.warnings.push_back("pattern '" + s->pattern +
                                            "' names one sender: the relay signs every sender "
                                            "of " +
                                            d + " that a client may send for");
                }
            }
            if (patterns.empty()) {
                item.warnings.push_back("no signing table line uses this key");
            }
            out.push_back(std::move(item));
        }
    }
    return out;
}

Expected<OpenDkimConf, std::string> parse_opendkim_conf(std::string_view text,
                                                        const std::string& file) {
    auto lines = read_lines(text, file);
    if (!lines) {
        return unexpected(lines.error());
    }
    OpenDkimConf conf;
    // Settings whose effect the appliance replaces with its own: named once each.
    const std::map<std::string, std::string, std::less<>> differs = {
        {"canonicalization", "the relay's [signing] canonicalization decides (relaxed/relaxed)"},
        {"signheaders", "signerd's signing profile decides which fields are signed"},
        {"oversignheaders", "signerd's signing profile oversigns From, To, Subject and more"},
        {"signaturealgorithm", "each selector's key decides its algorithm"},
        {"subdomains", "relayd signs a [[domain]] only, not its subdomains"},
        {"externalignorelist", "relayd signs mail of its [[client]] networks and sasl_users only"},
        {"macrolist", "relayd trusts the MTA's {auth_authen} of a client's sasl_users only"},
        {"senderheaders", "relayd signs by the From: field alone"},
        {"on-signatureerror", "relayd answers 451 (tempfail) when it cannot sign"},
        {"minimumkeybits", "verification needs 1024 bits (RFC 8301) and refuses less"},
    };
    std::set<std::string> noted;
    for (const auto& line : *lines) {
        const std::string key = lower(line.key);
        if (key == "socket") {
            conf.socket = line.value;
        } else if (key == "mode") {
            std::string mode = lower(line.value);
            std::sort(mode.begin(), mode.end());  // "vs" is "sv"
            if (mode == "vs") {
                mode = "sv";
            }
            if (mode != "s" && mode != "v" && mode != "sv") {
                return unexpected(file + ":" + std::to_string(line.number) + ": Mode '" +
                                  line.value + "' is not s, v or sv");
            }
            conf.mode = mode;
        } else if (key == "internalhosts") {
            conf.internal_hosts = line.value;
        } else if (key == "keytable") {
            conf.key_table = line.value;
        } else if (key == "signingtable") {
            conf.signing_table = line.value;
        } else if (const auto it = differs.find(key);
                   it != differs.end() && noted.insert(key).second) {
            conf.notes.push_back(line.key + " (" + file + ":" + std::to_string(line.number) +
                                 ") is not carried over: " + it->second);
        }
    }
    return conf;
}

InternalHosts parse_internal_hosts(std::string_view value, std::string_view dataset_text) {
    InternalHosts out;
    std::vector<std::string> entries;
    const std::string named = strip_dataset_prefix(std::string(value));
    const bool dataset = !named.empty() && named.front() == '/';
    if (value.empty()) {
        entries.emplace_back("127.0.0.1");  // opendkim.conf(5): the default
    } else if (dataset) {
        std::size_t count = 0;
        while (!dataset_text.empty() && count++ < kMaxEntries) {
            const auto end = dataset_text.find('\n');
            std::string_view line = dataset_text.substr(0, end);
            dataset_text.remove_prefix(end == std::string_view::npos ? dataset_text.size()
                                                                     : end + 1);
            line = trim(line.substr(0, line.find('#')));
            if (!line.empty()) {
                entries.emplace_back(line);
            }
        }
    } else {
        std::string_view rest = value;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            const std::string_view item = trim(rest.substr(0, comma));
            rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
            if (!item.empty()) {
                entries.emplace_back(item);
            }
        }
    }
    std::set<std::string> seen;
    for (const auto& entry : entries) {
        std::string e = entry;
        if (e.size() > 2 && e.front() == '[' && e.back() == ']') {
            e = e.substr(1, e.size() - 2);
        }
        const auto slash = e.find('/');
        const std::string address = e.substr(0, slash);
        const bool numeric =
            !address.empty() &&
            address.find_first_not_of("0123456789abcdefABCDEF.:") == std::string::npos &&
            (address.find('.') != std::string::npos || address.find(':') != std::string::npos);
        if (!e.empty() && e.front() == '!') {
            out.notes.push_back("InternalHosts exception '" + entry.substr(0, 100) +
                                "' is left out: a [[client]] lists the networks it takes");
        } else if (!numeric) {
            out.notes.push_back("InternalHosts name '" + entry.substr(0, 100) +
                                "' is left out: relayd matches addresses, name its address");
        } else if (seen.insert(e).second) {
            out.networks.push_back(e);
        }
    }
    return out;
}

Expected<MilterSocket, std::string> milter_socket(std::string_view socket) {
    MilterSocket out;
    const std::string s = lower(trim(socket));
    std::string port;
    std::string host;
    if (s.empty() || s.starts_with("local:") || s.starts_with("unix:") || s.front() == '/') {
        out.listen = "127.0.0.1:8891";
        out.postfix = "inet:127.0.0.1:8891";
        out.notes.push_back(
            std::string(s.empty()
                            ? "opendkim.conf names no Socket"
                            : "OpenDKIM listened on the Unix socket " + std::string(trim(socket))) +
            ": dkim-relayd's milter listens on 127.0.0.1:8891, so smtpd_milters names "
            "inet:127.0.0.1:8891 instead (or give it a Unix socket of its own: address = "
            "\"unix:/var/spool/postfix/dkim/milter.sock\" with allowed_users)");
        return out;
    }
    const bool six = s.starts_with("inet6:");
    if (!six && !s.starts_with("inet:")) {
        return unexpected("Socket '" + std::string(trim(socket)).substr(0, 100) +
                          "' is not inet:PORT@HOST, inet6:PORT@HOST or local:PATH");
    }
    const std::string rest = s.substr(six ? 6 : 5);
    const auto at = rest.find('@');
    port = rest.substr(0, at);
    host = at == std::string::npos ? std::string() : rest.substr(at + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) == 0 ||
        std::stoul(port) > 65535) {
        return unexpected("Socket '" + std::string(trim(socket)).substr(0, 100) +
                          "' has no port number");
    }
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (host.empty() || host == "*" || host == "0.0.0.0" || host == "::") {
        out.notes.push_back(
            "OpenDKIM listened on every address: the milter listens on "
            "loopback; for an MTA on another host, listen on an address of "
            "this one and name the MTA in allowed_networks");
        host = six ? "::1" : "127.0.0.1";
    } else if (host == "localhost") {
        host = six ? "::1" : "127.0.0.1";
    }
    out.loopback = host == "::1" || host.starts_with("127.");
    const bool v6 = host.find(':') != std::string::npos;
    out.listen = (v6 ? "[" + host + "]" : host) + ":" + port;
    out.postfix = "inet:" + (v6 ? "[" + host + "]" : host) + ":" + port;
    if (!out.loopback) {
        out.notes.push_back("the milter listens on " + out.listen +
                            ": name the MTA's address in allowed_networks (the default takes "
                            "loopback only)");
    }
    return out;
}

}  // namespace dkim::provisioning
