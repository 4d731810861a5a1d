// dkim-appliance key list | generate through dkim-signerd (main.cpp keeps their offline,
// token-direct forms), and the keys as signerd reports them for the other key commands
// (signerd_keys.hpp).

#include "signerd_keys.hpp"

#include <cereal/archives/json.hpp>
#include <cereal/types/vector.hpp>
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "dkim/dns/record_text.hpp"

namespace dkim::cli {

namespace {

struct KeyViewJson {
    const ipc::KeyView& k;
    template <class Archive>
    void save(Archive& archive) const {
        archive(cereal::make_nvp("domain", k.domain), cereal::make_nvp("selector", k.selector),
                cereal::make_nvp("algorithm", k.algorithm), cereal::make_nvp("bits", k.bits),
                cereal::make_nvp("state", k.state), cereal::make_nvp("managed", k.managed),
                cereal::make_nvp("origin", k.origin),
                cereal::make_nvp("created", time_text(k.created_ms)),
                cereal::make_nvp("activated", time_text(k.activated_ms)),
                cereal::make_nvp("retire_after", time_text(k.retire_after_ms)),
                cereal::make_nvp("retired", time_text(k.retired_ms)),
                cereal::make_nvp("dns_name", k.dns_name),
                cereal::make_nvp("dns_record", k.dns_record));
    }
};

void print_keys_json(const std::vector<ipc::KeyView>& keys, const std::string& message = "") {
    {
        cereal::JSONOutputArchive archive(std::cout);
        if (!message.empty()) {
            archive(cereal::make_nvp("message", message));
        }
        archive.setNextName("keys");
        archive.startNode();
        archive.makeArray();
        for (const auto& k : keys) {
            archive(KeyViewJson{k});
        }
        archive.finishNode();
    }
    std::cout << "\n";
}

void print_keys_table(const std::vector<ipc::KeyView>& keys) {
    if (keys.empty()) {
        std::cout << "no DKIM keys\n";
        return;
    }
    std::size_t dw = 6;
    std::size_t sw = 8;
    for (const auto& k : keys) {
        dw = std::max(dw, k.domain.size());
        sw = std::max(sw, k.selector.size());
    }
    const auto line = [&](const std::string& d, const std::string& s, const std::string& a,
                          const std::string& bits, const std::string& created,
                          const std::string& state) {
        std::cout << std::left << std::setw(static_cast<int>(dw) + 2) << d
                  << std::setw(static_cast<int>(sw) + 2) << s << std::setw(11) << a << std::setw(6)
                  << bits << std::setw(22) << created << state << "\n";
    };
    line("DOMAIN", "SELECTOR", "ALGORITHM", "SIZE", "CREATED", "STATE");
    for (const auto& k : keys) {
        std::string state = k.state + (k.managed ? "" : " (unmanaged)");
        if (k.state == "retiring") {
            state += " until " + time_text(k.retire_after_ms);
        }
        line(k.domain, k.selector, k.algorithm, std::to_string(k.bits), time_text(k.created_ms),
             state);
    }
}

}  // namespace

Expected<std::vector<ipc::KeyView>, std::string> fetch_keys(const Common& c) {
    auto auth = credentials(c);
    if (!auth) {
        return unexpected(std::string("no credentials"));
    }
    auto reply = ask_signerd(c, ipc::KeyList{std::move(*auth)});
    if (!reply) {
        return unexpected(reply.error());
    }
    const auto* keys = std::get_if<ipc::KeysReply>(&*reply);
    if (keys == nullptr) {
        return unexpected(std::string("unexpected reply from dkim-signerd"));
    }
    return keys->keys;
}

Expected<ipc::ClusterStatusReply, std::string> cluster_status(const Common& common) {
    auto auth = credentials(common);
    if (!auth) {
        return unexpected(std::string("no credentials"));
    }
    auto reply = ask_signerd(common, ipc::ClusterStatusRequest{std::move(*auth)});
    if (!reply) {
        return unexpected(reply.error());
    }
    if (const auto* e = std::get_if<ipc::ErrorReply>(&*reply)) {
        return unexpected(e->message);
    }
    const auto* status = std::get_if<ipc::ClusterStatusReply>(&*reply);
    if (status == nullptr) {
        return unexpected(std::string("unexpected reply from dkim-signerd"));
    }
    return *status;
}

std::vector<provisioning::DomainKey> domain_keys(const std::vector<ipc::KeyView>& keys,
                                                 const std::string& domain) {
    std::vector<provisioning::DomainKey> out;
    for (const auto& k : keys) {
        if (k.domain != domain) {
            continue;
        }
        // signerd takes a key's record from the token only: a key the registry lists (the
        // database's) that the token does not hold has none, and nothing to publish.
        if (k.dns_record.empty() &&
            provisioning::should_be_published({k.selector, k.algorithm, k.state, k.dns_record})) {
            std::cerr << "dkim-appliance: " << k.dns_name << " is " << k.state
                      << " in signerd's key registry but the token holds no such key: not "
                         "listed\n";
            continue;
        }
        out.push_back({k.selector, k.algorithm, k.state, k.dns_record});
    }
    return out;
}

std::vector<provisioning::KeyStatus> key_statuses(const std::vector<ipc::KeyView>& keys,
                                                  const std::string& domain) {
    std::vector<provisioning::KeyStatus> out;
    for (const auto& k : keys) {
        if (k.domain == domain) {
            out.push_back({k.selector, k.algorithm, k.state, k.managed, k.activated_ms,
                           k.retire_after_ms, k.dns_record, k.retired_ms});
        }
    }
    return out;
}

int print_keys_reply(const ipc::Reply& reply, bool json) {
    const auto* keys = std::get_if<ipc::KeysReply>(&reply);
    if (keys == nullptr) {
        return fail("unexpected reply from dkim-signerd");
    }
    if (json) {
        print_keys_json(keys->keys, keys->message);
        return 0;
    }
    std::cout << keys->message << "\n";
    print_keys_table(keys->keys);
    return 0;
}

int list_through_signerd(const Common& common, bool json) {
    auto keys = fetch_keys(common);
    if (!keys) {
        return fail(keys.error());
    }
    if (json) {
        print_keys_json(*keys);
    } else {
        print_keys_table(*keys);
    }
    return 0;
}

int generate_through_signerd(const Common& common, const std::string& domain,
                             const std::string& selector, const std::string& algorithm, bool json) {
    auto auth = credentials(common);
    if (!auth) {
        return kUsage;
    }
    auto reply =
        ask_signerd(common, ipc::KeyGenerate{std::move(*auth), domain, selector, algorithm, false});
    if (!reply) {
        return fail(reply.error());
    }
    const int code = print_keys_reply(*reply, json);
    if (const auto* made = std::get_if<ipc::KeysReply>(&*reply); made && !json) {
        for (const auto& k : made->keys) {
            std::cout << "publish: " << dns::zone_line(k.dns_name, k.dns_record) << "\n";
        }
    }
    return code;
}

}  // namespace dkim::cli
