// dkim-appliance pin status | split | submit | lock: PIN custody through dkim-signerd.
//
// `pin split` is the ceremony of the "shares" custody: the first split brings the PIN (read
// here, never on the command line); signerd splits it and answers with one share per custodian,
// which this command hands out one at a time: printed (on a terminal, each after the previous
// holder pressed Enter, the screen cleared in between), or written to one file per custodian,
// encrypted to a passphrase that custodian types. A re-split (a custodian leaves) sends no PIN:
// signerd splits the one a quorum rebuilt. `pin submit` seals a custodian's share to a key
// signerd offers (pin_envelope.hpp) and submits it with the custodian's credentials.

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <system_error>

#include "commands.hpp"
#include "dkim/base/wipe.hpp"
#include "dkim/custody/shares.hpp"
#include "dkim/hsm/secret.hpp"
#include "pin_envelope.hpp"
#include "signerd_connection.hpp"

namespace dkim::cli {

namespace {

// One line of standard input as a Secret (at most `max` bytes), after `prompt` without echo on a
// terminal.
std::optional<hsm::Secret> read_secret_line(const std::string& prompt, std::size_t max,
                                            std::string& error) {
    auto line = read_secret_from_stdin(prompt, max);
    if (!line) {
        error = "expected one line on standard input (at most " + std::to_string(max) + " bytes)";
    }
    return line;
}

// A file's content as a Secret, with hsm::Secret::from_file's checks (not readable by others).
Expected<hsm::Secret, std::string> secret_file(const std::string& path) {
    auto s = hsm::Secret::from_file(path);
    if (!s) {
        return unexpected(s.error().to_string());
    }
    return std::move(*s);
}

std::string_view text_of(const hsm::Secret& s) {
    return {reinterpret_cast<const char*>(s.bytes().data()), s.size()};  // NOLINT
}

// Writes `content` to a new file (never over an existing one), mode 0600.
Expected<void, std::string> write_new_file(const std::filesystem::path& path,
                                           const std::string& content) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return unexpected(path.string() + ": " + std::generic_category().message(errno));
    }
    std::size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            const std::string why = std::generic_category().message(errno);
            ::close(fd);
            return unexpected(path.string() + ": " + why);
        }
        done += static_cast<std::size_t>(n);
    }
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!synced) {
        return unexpected(path.string() + ": fsync failed");
    }
    return {};
}

std::vector<std::string> split_names(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream in(list);
    for (std::string name; std::getline(in, name, ',');) {
        if (!name.empty()) {
            out.push_back(name);
        }
    }
    return out;
}

Expected<ipc::PinStatusReply, std::string> pin_status(const Common& c, ipc::Credentials auth) {
    auto reply = ask_signerd(c, ipc::PinStatusRequest{std::move(auth)});
    if (!reply) {
        return unexpected(reply.error());
    }
    const auto* status = std::get_if<ipc::PinStatusReply>(&*reply);
    if (status == nullptr) {
        return unexpected(std::string("signerd answered pin status with something else"));
    }
    return *status;
}

struct SplitArgs {
    std::string custodians;
    std::uint32_t threshold = 0;
    std::string pin_file;
    std::string out_dir;
    std::string passphrase_dir;
    std::string passphrase_suffix;  // up's: <passphrase_dir>/<custodian>.password
    std::uint64_t scrypt_n = 1U << 17U;
};

// Hands one share to its custodian; the share text is wiped by the caller.
Expected<void, std::string> hand_out(const SplitArgs& a, const ipc::PinSharesReply& split,
                                     const ipc::PinShareOut& s, bool last) {
    if (a.out_dir.empty()) {
        std::cout << s.custodian << ": share " << s.index << " of " << split.shares.size()
                  << " (any " << split.threshold << " unlock), split " << split.set_id << "\n"
                  << s.share << "\n\n"
                  << std::flush;
        if (::isatty(STDOUT_FILENO) == 1 && ::isatty(STDIN_FILENO) == 1 && !last) {
            std::cerr << "Press Enter once " << s.custodian
                      << " has written it down; the screen is cleared." << std::flush;
            std::string ignored;
            std::getline(std::cin, ignored);
            std::cout << "\033[2J\033[3J\033[H" << std::flush;
        }
        return {};
    }
    hsm::Secret passphrase;
    if (!a.passphrase_dir.empty()) {
        auto p = secret_file(
            (std::filesystem::path(a.passphrase_dir) / (s.custodian + a.passphrase_suffix))
                .string());
        if (!p) {
            return unexpected(s.custodian + "'s passphrase: " + p.error());
        }
        passphrase = std::move(*p);
    } else {
        std::string error;
        auto p = read_secret_line(
            s.custodian + ", type your passphrase for share " + std::to_string(s.index) + ": ",
            1024, error);
        auto again = p ? read_secret_line("again: ", 1024, error) : std::nullopt;
        if (!p || !again) {
            return unexpected(s.custodian + "'s passphrase: " + error);
        }
        if (!p->equals(*again)) {
            return unexpected(s.custodian + "'s two passphrases differ");
        }
        passphrase = std::move(*p);
    }
    if (passphrase.size() < 8) {
        return unexpected(s.custodian + "'s passphrase: at least 8 characters");
    }
    auto share = custody::parse_share(s.share);
    if (!share) {
        return unexpected("signerd's share for " + s.custodian + ": " + share.error());
    }
    auto file = custody::encrypt_share_file(*share, s.custodian, passphrase, a.scrypt_n);
    if (!file) {
        return unexpected(file.error());
    }
    const auto path = std::filesystem::path(a.out_dir) / (s.custodian + ".share");
    if (auto written = write_new_file(path, *file); !written) {
        return unexpected(written.error());
    }
    std::cout << s.custodian << ": share " << s.index << " written to " << path.string()
              << " (encrypted to " << s.custodian << "'s passphrase): hand it over, then delete it"
              << "\n";
    return {};
}

int run_split(const Common& c, const SplitArgs& a) {
    auto auth = credentials(c);
    if (!auth) {
        return kUsage;
    }
    auto status = pin_status(c, *auth);
    if (!status) {
        auth->wipe();
        return fail(status.error());
    }
    if (!a.out_dir.empty()) {
        std::error_code ec;
        if (!std::filesystem::is_directory(a.out_dir, ec)) {
            auth->wipe();
            return fail("--out " + a.out_dir + ": not a folder");
        }
    }
    ipc::PinSplit request{*auth, "", a.threshold, split_names(a.custodians)};
    auth->wipe();
    if (status->set_id.empty()) {
        // The first split: the PIN, from a file or standard input.
        std::optional<hsm::Secret> pin;
        if (!a.pin_file.empty()) {
            auto p = secret_file(a.pin_file);
            if (!p) {
                return fail("--pin-file: " + p.error());
            }
            pin = std::move(*p);
        } else {
            std::string error;
            pin = read_secret_line("token PIN: ", custody::max_pin_size, error);
            if (!pin) {
                return fail("the PIN: " + error);
            }
        }
        request.pin = std::string(text_of(*pin));
    } else {
        std::cerr << "re-splitting split " << status->set_id
                  << ": signerd splits the PIN a quorum rebuilt\n";
    }
    auto reply = ask_signerd(c, std::move(request));
    if (!reply) {
        return fail(reply.error());
    }
    auto* split = std::get_if<ipc::PinSharesReply>(&*reply);
    if (split == nullptr) {
        return fail("signerd answered the split with something else");
    }
    int code = 0;
    for (std::size_t i = 0; i < split->shares.size(); ++i) {
        if (code == 0) {
            if (auto given = hand_out(a, *split, split->shares[i], i + 1 == split->shares.size());
                !given) {
                code = fail(given.error() +
                            "; the split is made: hand out the rest again with a re-split after "
                            "a quorum, or start over");
            }
        }
        base::wipe(split->shares[i].share);
    }
    if (code == 0) {
        std::cout << "split " << split->set_id << ": " << split->threshold << " of "
                  << split->shares.size() << " custodians unlock the token\n";
    }
    return code;
}

}  // namespace

int split_pin_for_up(const UpPinSplit& request, bool& split) {
    split = false;
    Common c;
    c.socket = request.socket;
    auto auth = credentials(c);
    if (!auth) {
        return kUsage;
    }
    auto status = pin_status(c, std::move(*auth));
    if (!status) {
        return fail(status.error());
    }
    if (!status->set_id.empty()) {
        return 0;  // split before: the custodians hold their shares
    }
    // Share files of an earlier split that this signerd does not have (a new signerd.db): the
    // split writes new files only (O_EXCL).
    for (const auto& name : split_names(request.custodians)) {
        std::error_code ec;
        std::filesystem::remove(std::filesystem::path(request.out_dir) / (name + ".share"), ec);
    }
    SplitArgs a;
    a.custodians = request.custodians;
    a.threshold = request.threshold;
    a.pin_file = request.pin_file;
    a.out_dir = request.out_dir;
    a.passphrase_dir = request.passphrase_dir;
    a.passphrase_suffix = request.passphrase_suffix;
    const int code = run_split(c, a);
    split = code == 0;
    return code;
}

void add_pin_share_commands(CLI::App& pin, int& exit_code) {
    auto c = std::make_shared<Common>();

    CLI::App* show = pin.add_subcommand(
        "status", "the PIN custody in force and what is missing before the token can log in");
    add_common(show, *c);
    show->callback([&exit_code, c] {
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        auto s = pin_status(*c, std::move(*auth));
        if (!s) {
            exit_code = fail(s.error());
            return;
        }
        std::cout << "custody: " << s->mode << "\n"
                  << "ready: " << (s->ready ? "yes" : "no")
                  << (s->logged_in ? " (the token is logged in)" : "") << "\n";
        if (!s->missing.empty()) {
            std::cout << "missing: " << s->missing << "\n";
        }
        std::cout << "signerd identity: " << s->identity_fingerprint << "\n";
        if (!s->set_id.empty()) {
            std::cout << "split " << s->set_id << ": any " << s->threshold << " of "
                      << s->custodians.size() << "\n";
            for (const auto& h : s->custodians) {
                std::cout << "  " << h.name << " (share " << h.index << ")"
                          << (h.submitted ? ": submitted" : "") << "\n";
            }
            if (s->window_ends_ms != 0) {
                std::cout << "the submitted shares are wiped at " << time_text(s->window_ends_ms)
                          << " unless the quorum is reached\n";
            }
        }
        exit_code = 0;
    });

    auto a = std::make_shared<SplitArgs>();
    CLI::App* split = pin.add_subcommand(
        "split", "split the token PIN among custodians, M of N (PIN custody \"shares\")");
    add_common(split, *c);
    split->add_option("--custodians", a->custodians, "the custodians' user names, comma-separated")
        ->required();
    split->add_option("--threshold", a->threshold, "how many custodians unlock (M)")->required();
    split->add_option("--pin-file", a->pin_file,
                      "the first split: the token PIN (else read from standard input)");
    split->add_option("--out", a->out_dir,
                      "write each share to <folder>/<custodian>.share, encrypted to a "
                      "passphrase the custodian types (else each is printed once)");
    split->add_option("--passphrase-dir", a->passphrase_dir,
                      "with --out: the custodians' passphrases in <folder>/<custodian> (for "
                      "automation; else each custodian types one)");
    split->add_option("--scrypt-n", a->scrypt_n, "scrypt's cost for share files")
        ->capture_default_str()
        ->group("");
    split->callback([&exit_code, c, a] { exit_code = run_split(*c, *a); });

    auto share_file = std::make_shared<std::string>();
    auto passphrase_file = std::make_shared<std::string>();
    auto identity = std::make_shared<std::string>();
    CLI::App* submit = pin.add_subcommand(
        "submit", "submit your share of the token PIN (as --user), sealed to signerd");
    add_common(submit, *c);
    submit->add_option("--share-file", *share_file,
                       "a share file of `pin split --out` (with --passphrase-file, or the "
                       "passphrase typed); else the share's text is read from standard input");
    submit->add_option("--passphrase-file", *passphrase_file, "the share file's passphrase");
    submit->add_option("--signerd-identity", *identity,
                       "refuse unless signerd's identity key has this fingerprint");
    submit->callback([&exit_code, c, share_file, passphrase_file, identity] {
        auto auth = credentials(*c);
        if (!auth) {
            exit_code = kUsage;
            return;
        }
        auto status = pin_status(*c, *auth);
        if (!status || status->set_id.empty()) {
            auth->wipe();
            exit_code = fail(status ? "the PIN was never split" : status.error());
            return;
        }
        std::optional<hsm::Secret> text;
        std::string error;
        if (!share_file->empty()) {
            std::ifstream in(*share_file);
            std::stringstream json;
            json << in.rdbuf();
            std::optional<hsm::Secret> passphrase;
            if (!passphrase_file->empty()) {
                auto p = secret_file(*passphrase_file);
                if (p) {
                    passphrase = std::move(*p);
                } else {
                    error = p.error();
                }
            } else {
                passphrase = read_secret_line("passphrase: ", 1024, error);
            }
            if (passphrase) {
                auto opened = custody::decrypt_share_file(json.str(), *passphrase);
                if (opened) {
                    text = custody::format_share(opened->share);
                } else {
                    error = opened.error();
                }
            }
        } else {
            text = read_secret_line("your share: ", 4096, error);
        }
        if (!text) {
            auth->wipe();
            exit_code = fail("the share: " + error);
            return;
        }
        auto sealed = seal_to_signerd(*c, *auth, "share", status->set_id, *text, *identity);
        text->wipe();
        if (!sealed) {
            auth->wipe();
            exit_code = fail(sealed.error());
            return;
        }
        exit_code = call(*c, ipc::PinShareSubmit{*auth, std::move(*sealed)});
        auth->wipe();
    });

    auto reason = std::make_shared<std::string>();
    CLI::App* lock = pin.add_subcommand(
        "lock", "forget the PIN in signerd's memory and log the token out (custody \"shares\")");
    add_common(lock, *c);
    lock->add_option("--reason", *reason, "why")->required();
    lock->callback([&exit_code, c, reason] {
        auto auth = credentials(*c);
        exit_code = auth ? call(*c, ipc::PinLock{*auth, *reason}) : kUsage;
    });
}

}  // namespace dkim::cli
