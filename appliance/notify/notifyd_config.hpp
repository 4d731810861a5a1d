#pragma once
// dkim-notifyd's configuration: /etc/dkim-appliance/notifyd.toml. Every key is declared once
// in config_schema(); `dkim-notifyd --config-reference` prints them for the README.

#include <chrono>
#include <filesystem>
#include <string>

#include "dkim/config/schema.hpp"
#include "dkim/expected.hpp"

namespace dkim::notify {

struct Config {
    std::string file;
    std::filesystem::path outbox = "/var/spool/dkim-notify";
    std::string url;
    std::filesystem::path secret_file;
    std::chrono::milliseconds timeout{5000};
    std::chrono::milliseconds poll_interval{1000};
    std::chrono::milliseconds first_backoff{1000};
    std::chrono::milliseconds max_backoff{300'000};
    std::chrono::milliseconds max_age{7LL * 24 * 3600 * 1000};
};

const config::Schema& config_schema();
Expected<Config, std::string> load_config(const std::string& file);

}  // namespace dkim::notify
