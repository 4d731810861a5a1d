#include "dkim/provisioning/dns_record.hpp"

namespace dkim::provisioning {

std::string dkim_record_value(const hsm::PublicKey& key) {
    return "v=DKIM1; k=" + std::string(hsm::to_string(key.type)) + "; p=" + key.dkim_p_value();
}

std::vector<std::string> split_character_strings(const std::string& value, std::size_t max) {
    std::vector<std::string> strings;
    for (std::size_t at = 0; at < value.size(); at += max) {
        strings.push_back(value.substr(at, max));
    }
    if (strings.empty()) {
        strings.emplace_back();
    }
    return strings;
}

std::string zone_line(const std::string& name, const std::string& value) {
    std::string line = name + ". IN TXT (";
    for (const auto& part : split_character_strings(value)) {
        line += " \"";
        for (const char c : part) {
            if (c == '"' || c == '\\') {
                line += '\\';
            }
            line += c;
        }
        line += '"';
    }
    return line + " )";
}

std::string render_zone_line(const hsm::KeyName& name, const hsm::PublicKey& key) {
    return zone_line(name.label(), dkim_record_value(key));
}

}  // namespace dkim::provisioning
