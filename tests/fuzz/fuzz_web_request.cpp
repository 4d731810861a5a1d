// libFuzzer target: bytes as a browser or API client could send them to dkim-webd. They go
// through the same HTTP parser and limits as on the socket, then through handle() with a
// scripted signerd that accepts any credentials (so every handler and body parser is
// reached). Whatever comes in, the answer must be a well-formed response with the security
// headers, and its JSON must parse. The same bytes are also read as a JSON request body.
#include <rapidjson/document.h>

#include <boost/beast/http.hpp>
#include <cereal/archives/json.hpp>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "handlers.hpp"
#include "json_body.hpp"

namespace {

using namespace dkim;

class AnyoneSigner final : public web::SignerApi {
  public:
    Expected<ipc::Reply, std::string> call(ipc::Request& request) override {
        ipc::Reply reply = std::visit(
            [](auto& r) -> ipc::Reply {
                using T = std::decay_t<decltype(r)>;
                if constexpr (std::is_same_v<T, ipc::WhoAmI>) {
                    return ipc::IdentityReply{"fuzz",
                                              "requester,approver,admin,auditor",
                                              "user",
                                              true,
                                              "session",
                                              1,
                                              1'900'000'000'000,
                                              {true, true, {"sign"}, true, true, true, true, true}};
                } else if constexpr (std::is_same_v<T, ipc::ElevationList>) {
                    ipc::RequestView v;
                    v.id = 1;
                    v.state = "approved";
                    v.reason = "\"<b>\\\x01";
                    return ipc::RequestsReply{{v}};
                } else if constexpr (std::is_same_v<T, ipc::GrantList>) {
                    ipc::GrantView g;
                    g.id = 1;
                    g.request_id = 1;
                    g.state = "active";
                    g.budget = 3;
                    g.uses = 5;
                    return ipc::GrantsReply{{g}};
                } else if constexpr (std::is_same_v<T, ipc::KeyList>) {
                    ipc::KeyView k;
                    k.domain = "example.com";
                    k.selector = "s1";
                    k.algorithm = "ed25519";
                    k.signing = "ed25519-sha256";
                    k.bits = 256;
                    k.dns_name = "s1._domainkey.example.com";
                    k.dns_record = "v=DKIM1; p=x";
                    k.state = "active";
                    ipc::KeysReply reply;
                    reply.keys.push_back(std::move(k));
                    return reply;
                } else if constexpr (std::is_same_v<T, ipc::AuditShow>) {
                    return ipc::AuditReply{{{1, 0, "a", "b", "c", "ok", "r", 0, 0, "d", "00"}}};
                } else if constexpr (std::is_same_v<T, ipc::StatusRequest>) {
                    return ipc::StatusReply{};
                } else if constexpr (std::is_same_v<T, ipc::PinStatusRequest>) {
                    ipc::PinStatusReply s;
                    s.mode = "shares";
                    s.missing = "\"<b>\\\x01";
                    s.set_id = "0a1b2c3d";
                    s.threshold = 2;
                    s.custodians = {{"a", 1, true}, {"b", 2, false}};
                    s.window_ends_ms = 1'795'000'900'000;
                    return s;
                } else if constexpr (std::is_same_v<T, ipc::PinKeyOffer>) {
                    return ipc::PinKeyOfferReply{"k", "p",       "i", "SHA256:x",
                                                 1,   "s\n\x01", "g", "a\n"};
                } else if constexpr (std::is_same_v<T, ipc::SessionCreate> ||
                                     std::is_same_v<T, ipc::ApiTokenCreate>) {
                    return ipc::OkReply{"made", 1, "tok-fuzz"};
                } else {
                    return ipc::OkReply{"ok", 1, ""};
                }
            },
            request);
        ipc::wipe_secrets(request);
        return reply;
    }
};

void check_response(const web::Response& r) {
    const unsigned code = r.result_int();
    if (code < 200 || code > 599 || r["Content-Security-Policy"].empty() ||
        r[boost::beast::http::field::strict_transport_security].empty()) {
        std::abort();
    }
    if (std::string_view(r[boost::beast::http::field::content_type])
            .starts_with("application/json")) {
        rapidjson::Document d;
        d.Parse(r.body().c_str(), r.body().size());
        if (d.HasParseError() || !d.IsObject()) {
            std::abort();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);

    if (auto body = web::JsonBody::parse(bytes)) {
        (void)body->string("user", false, 64);
        (void)body->integer("duration_seconds", false, 60, 86400);
        (void)body->boolean("break_glass");
        (void)body->finish();
    } else if (body.error().message.empty()) {
        std::abort();
    }

    static AnyoneSigner signer;
    static ManualClock clock(from_unix_ms(1'795'000'000'000));
    static web::SessionTable sessions(std::chrono::minutes(30), 64);
    static web::LoginLimiter limiter({1'000'000, 1'000'000, std::chrono::minutes(1)});
    static web::WebMetrics metrics;
    static web::HandlerOptions options;
    static web::Deps deps{signer, sessions, limiter, clock, metrics, options};
    static const std::string csrf = [] {
        web::BrowserSession s;
        s.user = "fuzz";
        s.expires = clock.now() + std::chrono::hours(1);
        return sessions.add("tok-fuzz", s, clock.now());
    }();

    namespace http = boost::beast::http;
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    parser.header_limit(8 * 1024);
    parser.body_limit(16 * 1024);
    boost::beast::error_code ec;
    // Lets inputs refer to the live session and CSRF token without knowing them.
    std::string input(bytes);
    for (const auto& [mark, value] : {std::pair<std::string_view, std::string>{"@CSRF@", csrf},
                                      {"@SESSION@", "__Host-dkim_session=tok-fuzz"}}) {
        for (auto at = input.find(mark); at != std::string::npos; at = input.find(mark)) {
            input.replace(at, mark.size(), value);
        }
    }
    parser.put(boost::asio::buffer(input), ec);
    if (!ec && parser.is_done()) {
        const web::Response response =
            web::handle(parser.get(), web::ClientInfo{"192.0.2.1"}, deps);
        check_response(response);
    } else if (ec) {
        // What the server answers to a request it cannot parse.
        check_response(web::error_response(http::status::bad_request, "bad_request", ec.message()));
    }
    return 0;
}
