#include "dkim/provisioning/dns_record.hpp"

#include "dkim/dns/record_text.hpp"

namespace dkim::provisioning {

std::string dkim_record_value(const hsm::PublicKey& key) {
    return dns::dkim_key_record_text(hsm::to_string(key.type), key.dkim_p_value());
}

std::string render_zone_line(const hsm::KeyName& name, const hsm::PublicKey& key) {
    return dns::zone_line(name.label(), dkim_record_value(key));
}

}  // namespace dkim::provisioning
