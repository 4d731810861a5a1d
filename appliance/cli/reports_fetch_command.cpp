// dkim-appliance reports fetch-imap: report mail fetched from an IMAP mailbox and handed to
// dkim-reportd, each message marked (\Seen, deleted or moved) only after reportd answered that
// its bytes are durably stored.
//
// libcurl makes the connection: TCP, TLS with the peer's certificate and name verified always
// (imaps://, or imap:// with STARTTLS required: never a cleartext login), and the login. It is
// used with CURLOPT_CONNECT_ONLY, which stops after the login; the commands after it are ours,
// over curl_easy_send/curl_easy_recv, because libcurl's own FETCH asks for BODY[] (which sets
// \Seen before anything is stored) and drops a custom command's literals. What the server says
// is untrusted and read by dkim_imap (appliance/imap: caps on lines and literals, fuzzed).
//
// The password comes from a file that other users cannot read (like the PIN files), is never
// printed, and is wiped from our memory once libcurl has it (libcurl keeps its own copy until
// the handle is cleaned up).
//
// Exit codes: 0 every fetched message stored; 2 some message refused (too large, or reportd
// called it invalid: left unmarked and named on standard error); 1 failed (the IMAP server or
// dkim-reportd unreachable, a protocol error: the run stops and marks nothing further).

#include <curl/curl.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/imap/response.hpp"
#include "dkim/reports/channel.hpp"
#include "reports_reporter.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {
namespace {

constexpr const char* kFetchReportdSocket = "/run/dkim-appliance/reportd.sock";
constexpr std::uint64_t kFetchMaxMessage = std::uint64_t{64} << 20;
constexpr int kFetchIdleTimeoutMs = 60'000;

struct FetchImapArgs {
    std::string url;
    std::string user;
    std::string password_file;
    std::string socket = kFetchReportdSocket;
    std::string after_store = "seen";
    std::string ca_file;
    int max_messages = 1000;
    bool json = false;
    ReporterArgs reporter;
};

struct CurlGlobal {
    CurlGlobal() { ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }
    ~CurlGlobal() { curl_global_cleanup(); }
    CurlGlobal(const CurlGlobal&) = delete;
    CurlGlobal& operator=(const CurlGlobal&) = delete;
    bool ok = false;
};

// One IMAP connection: libcurl's, after its login; our commands and the server's responses.
class FetchImapSession {
  public:
    FetchImapSession() : curl_(curl_easy_init()) {}
    ~FetchImapSession() {
        if (curl_ != nullptr) {
            curl_easy_cleanup(curl_);
        }
    }
    FetchImapSession(const FetchImapSession&) = delete;
    FetchImapSession& operator=(const FetchImapSession&) = delete;

    // Connects, verifies the server and logs in. `password` is wiped here, whatever happens.
    Expected<void, std::string> open(const imap::Url& url, const std::string& user,
                                     std::string& password, const std::string& ca_file) {
        if (curl_ == nullptr) {
            base::wipe(password);
            return unexpected(std::string("libcurl: no handle"));
        }
        char error[CURL_ERROR_SIZE] = {};
        const std::string server = url.server();
        bool set = curl_easy_setopt(curl_, CURLOPT_URL, server.c_str()) == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "imap,imaps") == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_CONNECT_ONLY, 1L) == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL)) ==
                       CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_SSLVERSION,
                                    static_cast<long>(CURL_SSLVERSION_TLSv1_2)) == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, 30'000L) == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 120'000L) == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error) == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_USERNAME, user.c_str()) == CURLE_OK &&
                   curl_easy_setopt(curl_, CURLOPT_PASSWORD, password.c_str()) == CURLE_OK;
        base::wipe(password);  // libcurl copied it
        if (set && !ca_file.empty()) {
            set = curl_easy_setopt(curl_, CURLOPT_CAINFO, ca_file.c_str()) == CURLE_OK;
        }
        if (!set) {
            return unexpected(
                std::string("libcurl refused an option (is it built with IMAP "
                            "and TLS?)"));
        }
        const CURLcode rc = curl_easy_perform(curl_);
        // The deadline was for the connection and login; ours are per command.
        (void)curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 0L);
        (void)curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, nullptr);
        if (rc != CURLE_OK) {
            return unexpected(describe(rc, error, url));
        }
        curl_socket_t socket = CURL_SOCKET_BAD;
        if (curl_easy_getinfo(curl_, CURLINFO_ACTIVESOCKET, &socket) != CURLE_OK ||
            socket == CURL_SOCKET_BAD) {
            return unexpected(std::string("libcurl gave no connection after the login"));
        }
        socket_ = socket;
        return {};
    }

    // Sends "TAG command" and reads responses until its completion; untagged responses go to
    // `untagged`. An error when the connection broke or the server did not answer OK.
    Expected<imap::Completion, std::string> command(
        const std::string& text,
        const std::function<Expected<void, std::string>(imap::Response&)>& untagged = {}) {
        const std::string tag = "F" + std::to_string(++tags_);
        auto sent = send(tag + " " + text + "\r\n");
        if (!sent) {
            return unexpected(std::move(sent).error());
        }
        const std::string verb = text.substr(0, text.find(' ', text.find(' ') + 1));
        while (true) {
            auto response = receive();
            if (!response) {
                return unexpected(std::move(response).error());
            }
            imap::Response& r = *response;
            if (r.kind == imap::Response::Kind::continuation) {
                return unexpected(verb + ": the server asked for more than the command");
            }
            if (r.kind == imap::Response::Kind::untagged) {
                if (imap::untagged_keyword(r) == "BYE") {
                    bye_ = imap::printable(r.text);
                }
                if (untagged) {
                    if (auto handled = untagged(r); !handled) {
                        return unexpected(verb + ": " + std::move(handled).error());
                    }
                }
                continue;
            }
            if (r.tag != tag) {
                return unexpected(verb + ": a completion for a command we did not send");
            }
            auto completion = imap::parse_completion(r);
            if (!completion) {
                return unexpected(verb + ": " + std::move(completion).error());
            }
            if (completion->status != "OK") {
                return unexpected(verb + ": the server answered " + completion->status + " " +
                                  imap::printable(completion->text));
            }
            return completion;
        }
    }

  private:
    static std::string describe(CURLcode rc, const char* error, const imap::Url& url) {
        const std::string where = url.server();
        const std::string detail = error[0] != '\0' ? error : curl_easy_strerror(rc);
        switch (rc) {
            case CURLE_PEER_FAILED_VERIFICATION:
            case CURLE_SSL_CACERT_BADFILE:
            case CURLE_SSL_CONNECT_ERROR:
            case CURLE_SSL_CERTPROBLEM:
                return where + ": the server's TLS certificate was not accepted (" + detail +
                       "); nothing was fetched. For a private CA, give --ca-file";
            case CURLE_USE_SSL_FAILED:
                return where + ": the server does not offer STARTTLS; no cleartext login";
            case CURLE_LOGIN_DENIED: return where + ": the server refused the login for this user";
            default: return where + ": " + detail;
        }
    }

    Expected<void, std::string> send(const std::string& bytes) {
        std::size_t done = 0;
        while (done < bytes.size()) {
            std::size_t n = 0;
            const CURLcode rc = curl_easy_send(curl_, bytes.data() + done, bytes.size() - done, &n);
            if (rc == CURLE_AGAIN) {
                if (auto ready = wait(POLLOUT); !ready) {
                    return ready;
                }
                continue;
            }
            if (rc != CURLE_OK) {
                return unexpected(std::string("sending to the server: ") + curl_easy_strerror(rc));
            }
            done += n;
        }
        return {};
    }

    Expected<imap::Response, std::string> receive() {
        while (true) {
            auto next = reader_.next();
            if (!next) {
                return unexpected("the server's response: " + std::move(next).error());
            }
            if (*next) {
                return std::move(**next);
            }
            char chunk[65536];
            std::size_t n = 0;
            const CURLcode rc = curl_easy_recv(curl_, chunk, sizeof chunk, &n);
            if (rc == CURLE_AGAIN) {
                if (auto ready = wait(POLLIN); !ready) {
                    return unexpected(std::move(ready).error());
                }
                continue;
            }
            if (rc != CURLE_OK) {
                return unexpected(std::string("reading from the server: ") +
                                  curl_easy_strerror(rc));
            }
            if (n == 0) {
                return unexpected("the server closed the connection" +
                                  (bye_.empty() ? std::string() : " (BYE " + bye_ + ")"));
            }
            reader_.feed(std::string_view(chunk, n));
        }
    }

    Expected<void, std::string> wait(short events) {
        pollfd p{};
        p.fd = socket_;
        p.events = events;
        const int rc = ::poll(&p, 1, kFetchIdleTimeoutMs);
        if (rc == 0) {
            return unexpected(std::string("the server did not answer within 60 s"));
        }
        if (rc < 0 && errno != EINTR) {
            return unexpected("poll: " + std::generic_category().message(errno));
        }
        return {};
    }

    CURL* curl_;
    curl_socket_t socket_ = CURL_SOCKET_BAD;
    imap::ResponseReader reader_;
    unsigned tags_ = 0;
    std::string bye_;
};

// The password from its file (not readable by others, like a PIN file) into `password`, which
// is left empty (wiped) on an error; checked for what would break the login, never printed.
// An out-parameter rather than a returned value: no moved-from copy is left behind unwiped.
Expected<void, std::string> fetch_read_password(const std::string& path, std::string& password) {
    std::string error;
    password = read_secret(path, error);
    if (!error.empty()) {
        base::wipe(password);
        const std::string prefix = "PIN file ";
        if (error.compare(0, prefix.size(), prefix) == 0) {
            error = "password file " + error.substr(prefix.size());
        }
        return unexpected(error);
    }
    if (password.empty() || password.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
        base::wipe(password);
        return unexpected("password file " + path +
                          ": empty, or holds a line break or NUL inside the password");
    }
    return {};
}

struct FetchImapTally {
    std::size_t stored = 0;
    std::size_t reports = 0;
    std::size_t duplicates = 0;
    std::size_t refused = 0;
};

int run_fetch_imap(const FetchImapArgs& args) {
    auto url = imap::parse_url(args.url);
    if (!url) {
        return fail(url.error());
    }
    auto after = imap::parse_after_store(args.after_store);
    if (!after) {
        return fail(after.error());
    }
    auto check = ReporterCheck::open(args.reporter);
    if (!check) {
        return fail(check.error());
    }
    if (args.user.empty() ||
        args.user.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
        return fail("--user: expected a user name");
    }
    std::string password;
    if (auto read = fetch_read_password(args.password_file, password); !read) {
        return fail(read.error());
    }
    const CurlGlobal curl_global;
    if (!curl_global.ok) {
        base::wipe(password);
        return fail("libcurl could not be initialised");
    }
    FetchImapSession session;
    if (auto opened = session.open(*url, args.user, password, args.ca_file); !opened) {
        return fail(opened.error());
    }
    const std::string where = url->host + "/" + url->mailbox;
    const std::string mailbox = *imap::quote_mailbox(url->mailbox);

    std::set<std::string> capabilities;
    auto capability = session.command("CAPABILITY", [&](imap::Response& r) {
        if (imap::untagged_keyword(r) == "CAPABILITY") {
            auto parsed = imap::parse_capability(r);
            if (!parsed) {
                return Expected<void, std::string>(unexpected(std::move(parsed).error()));
            }
            capabilities = std::move(*parsed);
        }
        return Expected<void, std::string>{};
    });
    if (!capability) {
        return fail(where + ": " + capability.error());
    }
    if (auto selected = session.command("SELECT " + mailbox); !selected) {
        return fail(where + ": " + selected.error());
    }
    std::vector<std::uint32_t> uids;
    auto searched = session.command("UID SEARCH UNSEEN UNDELETED", [&](imap::Response& r) {
        if (imap::untagged_keyword(r) == "SEARCH") {
            auto parsed = imap::parse_search(r);
            if (!parsed) {
                return Expected<void, std::string>(unexpected(std::move(parsed).error()));
            }
            uids.insert(uids.end(), parsed->begin(), parsed->end());
        }
        return Expected<void, std::string>{};
    });
    if (!searched) {
        return fail(where + ": " + searched.error());
    }
    std::sort(uids.begin(), uids.end());
    uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
    if (uids.size() > static_cast<std::size_t>(args.max_messages)) {
        uids.resize(static_cast<std::size_t>(args.max_messages));
    }

    const bool has_move = capabilities.count("MOVE") > 0;
    const bool has_uidplus = capabilities.count("UIDPLUS") > 0;
    bool told_no_expunge = false;
    reports::channel::Client reportd(args.socket);
    FetchImapTally tally;
    std::vector<std::string> problems;
    const auto refuse = [&](std::uint32_t uid, const std::string& why) {
        ++tally.refused;
        problems.push_back(where + " uid " + std::to_string(uid) + ": " + why + " (left unmarked)");
        if (args.json) {
            boost::json::object line;
            line["uid"] = uid;
            line["refused"] = why;
            std::cout << boost::json::serialize(line) << "\n";
        }
    };

    for (const std::uint32_t uid : uids) {
        const std::string id = std::to_string(uid);
        // The size first: a message over the cap is not downloaded at all.
        std::optional<std::uint64_t> size;
        auto sized =
            session.command("UID FETCH " + id + " (UID RFC822.SIZE)", [&](imap::Response& r) {
                if (imap::untagged_keyword(r) != "FETCH") {
                    return Expected<void, std::string>{};
                }
                auto f = imap::parse_fetch(r);
                if (!f) {
                    return Expected<void, std::string>(unexpected(std::move(f).error()));
                }
                if (f->uid == uid && f->size) {
                    size = f->size;
                }
                return Expected<void, std::string>{};
            });
        if (!sized) {
            return fail(where + ": " + sized.error());
        }
        if (!size) {
            continue;  // gone since the search (expunged by another client)
        }
        if (*size > kFetchMaxMessage) {
            refuse(uid, "larger than 64 MiB (" + std::to_string(*size) + " bytes)");
            continue;
        }
        // BODY.PEEK[]: reading the message does not set \Seen.
        std::optional<std::string> body;
        auto fetched =
            session.command("UID FETCH " + id + " (UID BODY.PEEK[])", [&](imap::Response& r) {
                if (imap::untagged_keyword(r) != "FETCH") {
                    return Expected<void, std::string>{};
                }
                auto f = imap::parse_fetch(r);
                if (!f) {
                    return Expected<void, std::string>(unexpected(std::move(f).error()));
                }
                if (f->uid == uid && f->body) {
                    body = std::move(f->body);
                }
                return Expected<void, std::string>{};
            });
        if (!fetched) {
            return fail(where + ": " + fetched.error());
        }
        if (!body) {
            continue;  // gone since the search
        }
        if (body->size() > kFetchMaxMessage) {
            refuse(uid, "larger than 64 MiB");
            continue;
        }

        // Who sent it, when DKIM says so (reports_reporter.hpp); none refuses nothing.
        const std::string reporter = (*check)->reporter(*body);
        reports::channel::Message request;
        request.json["op"] = "submit";
        request.json["origin"] = "imap " + where + " uid " + id;
        if (!reporter.empty()) {
            request.json["reporter"] = reporter;
        }
        request.body = std::move(*body);
        auto answer = reportd.call(request);
        if (!answer) {
            return fail("dkim-reportd: " + answer.error() + "; stopped, uid " + id +
                        " and the rest left unmarked");
        }
        const auto& j = answer->json;
        if (!j.contains("ok") || !j.at("ok").is_bool() || !j.at("ok").as_bool()) {
            const std::string code = reports::channel::string_member(j, "code");
            const std::string why = reports::channel::string_member(j, "error");
            if (code == "forbidden" || code == "unavailable") {
                return fail("dkim-reportd: " + why + "; stopped, uid " + id +
                            " and the rest left unmarked");
            }
            refuse(uid, "dkim-reportd refused it: " + why);
            continue;
        }

        // Stored: now, and only now, the message is marked.
        std::string marked = "seen";
        auto seen = session.command("UID STORE " + id + " +FLAGS.SILENT (\\Seen)");
        if (!seen) {
            return fail(where + ": stored as submission " +
                        std::to_string(reports::channel::int_member(j, "submission")) +
                        " but not marked: " + seen.error());
        }
        if (after->action == imap::AfterStore::Action::move) {
            const std::string folder = *imap::quote_mailbox(after->folder);
            Expected<imap::Completion, std::string> moved = imap::Completion{};
            if (has_move) {
                moved = session.command("UID MOVE " + id + " " + folder);
            } else {
                moved = session.command("UID COPY " + id + " " + folder);
            }
            if (!moved) {
                return fail(where + ": stored and marked \\Seen, not moved: " + moved.error());
            }
            marked = "moved to " + after->folder;
        }
        const bool remove = after->action == imap::AfterStore::Action::remove ||
                            (after->action == imap::AfterStore::Action::move && !has_move);
        if (remove) {
            auto deleted = session.command("UID STORE " + id + " +FLAGS.SILENT (\\Deleted)");
            if (!deleted) {
                return fail(where + ": stored, not deleted: " + deleted.error());
            }
            if (has_uidplus) {
                if (auto expunged = session.command("UID EXPUNGE " + id); !expunged) {
                    return fail(where + ": stored and flagged \\Deleted, not expunged: " +
                                expunged.error());
                }
            } else if (!told_no_expunge) {
                told_no_expunge = true;
                std::cerr << "dkim-appliance: " << where
                          << ": the server has no UIDPLUS; stored messages are flagged "
                             "\\Deleted and left for its expunge\n";
            }
            if (after->action == imap::AfterStore::Action::remove) {
                marked = "deleted";
            }
        }

        ++tally.stored;
        const auto n = static_cast<std::size_t>(reports::channel::int_member(j, "reports"));
        const auto d = static_cast<std::size_t>(reports::channel::int_member(j, "duplicates"));
        tally.reports += n;
        tally.duplicates += d;
        if (args.json) {
            boost::json::object line = j;
            line.erase("ok");
            line["uid"] = uid;
            line["marked"] = marked;
            if (!reporter.empty()) {
                line["reporter"] = reporter;
            }
            std::cout << boost::json::serialize(line) << "\n";
        } else {
            std::cout << where << " uid " << id << ": " << n << " reports stored, " << d
                      << " already stored"
                      << (reporter.empty() ? std::string() : ", reporter=" + reporter) << "; "
                      << marked << "\n";
        }
        if (const auto* errors = j.if_contains("errors"); errors != nullptr && errors->is_array()) {
            for (const auto& e : errors->as_array()) {
                if (e.is_string()) {
                    std::cerr << "dkim-appliance: " << where << " uid " << id << ": "
                              << imap::printable(std::string_view(e.as_string())) << "\n";
                }
            }
        }
    }
    (void)session.command("LOGOUT");
    std::cout.flush();
    for (const std::string& p : problems) {
        std::cerr << "dkim-appliance: " << p << "\n";
    }
    if (!args.json) {
        std::cout << where << ": " << tally.stored << " messages stored (" << tally.reports
                  << " reports, " << tally.duplicates << " already stored), " << tally.refused
                  << " refused\n";
    }
    return tally.refused > 0 ? kUsage : 0;
}

}  // namespace

void add_reports_fetch_command(CLI::App& app, int& exit_code) {
    CLI::App* reports = app.get_subcommand("reports");
    auto args = std::make_shared<FetchImapArgs>();
    CLI::App* fetch = reports->add_subcommand(
        "fetch-imap",
        "Fetch unseen report mail from an IMAP mailbox (TLS verified) into dkim-reportd, marking "
        "each message only after it is stored; exit 2 if any was refused");
    fetch
        ->add_option("--url", args->url,
                     "imaps://HOST[:PORT]/MAILBOX, or imap://... with STARTTLS required")
        ->required();
    fetch->add_option("--user", args->user, "the IMAP user")->required();
    fetch
        ->add_option("--password-file", args->password_file,
                     "file holding the IMAP password (not readable by others)")
        ->required();
    fetch->add_option("--reportd-socket", args->socket, "dkim-reportd's socket")
        ->capture_default_str();
    fetch
        ->add_option("--after-store", args->after_store,
                     "what to do with a stored message: seen, delete or move:FOLDER")
        ->capture_default_str();
    fetch->add_option("--ca-file", args->ca_file,
                      "PEM file of the CA that signed the server's certificate (a private CA)");
    fetch->add_option("--max-messages", args->max_messages, "fetch at most this many per run")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    fetch->add_flag("--json", args->json, "one JSON object per message, one per line");
    add_reporter_options(fetch, args->reporter);
    fetch->callback([&exit_code, args] { exit_code = run_fetch_imap(*args); });
}

}  // namespace dkim::cli
