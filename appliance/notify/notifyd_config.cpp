#include "notifyd_config.hpp"

#include <toml++/toml.h>

#include "dkim/config/toml_reader.hpp"
#include "webhook_post.hpp"

namespace dkim::notify {

namespace {

// Every key dkim-notifyd reads (the parser may read no other; --config-reference prints them).
constexpr config::KeyDoc kNotifydKeys[] = {
    {"outbox", "string", "/var/spool/dkim-notify",
     "The folder dkim-signerd spools its events to ([webhook] outbox in signerd.toml).",
     "\"/var/spool/dkim-notify\""},
    {"url", "string", "", "The webhook: an http:// or https:// URL (required).",
     "\"https://hooks.example.net/dkim\""},
    {"secret_file", "string", "",
     "The HMAC-SHA256 key's file (required; on the appliance the unit's webhook-key credential).",
     "\"/run/credentials/dkim-notifyd.service/webhook-key\""},
    {"timeout", "duration", "5s", "One delivery: connect, TLS, request and answer.", "\"5s\""},
    {"poll_interval", "duration", "1s", "How often the outbox is looked at for new events.",
     "\"1s\""},
    {"first_backoff", "duration", "1s",
     "The wait after a failed delivery; it doubles with each failure in a row.", "\"1s\""},
    {"max_backoff", "duration", "5m", "The longest wait between two tries.", "\"5m\""},
    {"max_age", "duration", "7d",
     "An event not delivered within this long is dropped (and the log says so).", "\"7d\""},
};

}  // namespace

const config::Schema& config_schema() {
    static const config::Schema schema{"dkim-notifyd: /etc/dkim-appliance/notifyd.toml",
                                       kNotifydKeys};
    return schema;
}

Expected<Config, std::string> load_config(const std::string& file) {
    try {
        const toml::table root = config::parse_toml_file(file);
        config::TableReader r(root, file, "", &config_schema());
        Config c;
        c.file = file;
        c.outbox = r.string("outbox").value_or(c.outbox.string());
        if (c.outbox.is_relative()) {
            r.fail("outbox", "expected an absolute path");
        }
        const auto url = r.string("url");
        if (!url || !valid_webhook_url(*url)) {
            r.fail("url", "expected the webhook's http:// or https:// URL");
        }
        c.url = *url;
        const auto secret = r.string("secret_file");
        if (!secret) {
            r.fail("secret_file", "webhooks are signed: the HMAC key's file is required");
        }
        c.secret_file = *secret;
        c.timeout = r.duration("timeout", std::chrono::milliseconds(100)).value_or(c.timeout);
        c.poll_interval =
            r.duration("poll_interval", std::chrono::milliseconds(50)).value_or(c.poll_interval);
        c.first_backoff =
            r.duration("first_backoff", std::chrono::milliseconds(50)).value_or(c.first_backoff);
        c.max_backoff =
            r.duration("max_backoff", std::chrono::milliseconds(50)).value_or(c.max_backoff);
        if (c.max_backoff < c.first_backoff) {
            r.fail("max_backoff", "must be at least first_backoff");
        }
        c.max_age = r.duration("max_age", std::chrono::minutes(1)).value_or(c.max_age);
        r.finish();
        return c;
    } catch (const config::ConfigError& e) {
        return unexpected(std::string(e.what()));
    }
}

}  // namespace dkim::notify
