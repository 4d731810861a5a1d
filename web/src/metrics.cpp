#include "metrics.hpp"

namespace dkim::web {

void WebMetrics::response(unsigned status) {
    const unsigned klass = status / 100;
    responses_.at(klass >= 1 && klass <= 5 ? klass - 1 : 5)++;
}

std::string WebMetrics::render(std::size_t sessions) const {
    std::string out;
    auto counter = [&out](const std::string& name, const std::string& help,
                          const std::string& labels, std::uint64_t value, bool head) {
        if (head) {
            out += "# HELP " + name + " " + help + "\n# TYPE " + name + " counter\n";
        }
        out += name + labels + " " + std::to_string(value) + "\n";
    };
    static constexpr std::array<const char*, 6> kClasses = {"1xx", "2xx", "3xx",
                                                            "4xx", "5xx", "other"};
    for (std::size_t i = 0; i < kClasses.size(); ++i) {
        counter("dkim_webd_responses_total", "HTTP responses by status class",
                std::string("{class=\"") + kClasses.at(i) + "\"}", responses_.at(i).load(), i == 0);
    }
    counter("dkim_webd_logins_total", "login attempts by outcome", "{outcome=\"ok\"}",
            logins_ok_.load(), true);
    counter("dkim_webd_logins_total", "", "{outcome=\"failed\"}", logins_failed_.load(), false);
    counter("dkim_webd_rate_limited_total", "login attempts refused by the rate limit", "",
            rate_limited_.load(), true);
    counter("dkim_webd_csrf_refused_total", "state-changing requests without a valid CSRF token",
            "", csrf_refused_.load(), true);
    counter("dkim_webd_signerd_unreachable_total", "requests that could not reach dkim-signerd", "",
            signerd_unreachable_.load(), true);
    out +=
        "# HELP dkim_webd_sessions browser sessions in the session table\n"
        "# TYPE dkim_webd_sessions gauge\ndkim_webd_sessions " +
        std::to_string(sessions) + "\n";
    latency_.render(out, "dkim_webd_request_seconds", "time to answer an API request");
    return out;
}

}  // namespace dkim::web
