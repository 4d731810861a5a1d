#include "systemd_creds.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>
#include <utility>
#include <vector>

#include "dkim/base/wipe.hpp"
#include "up_unique_fd.hpp"

namespace dkim::cli {

namespace {

namespace fs = std::filesystem;
using up::UniqueFd;

std::string errno_message(int error) {
    return std::error_code(error, std::system_category()).message();
}

// What systemd-creds said on standard error, on one line, at most 600 bytes.
std::string said(int memfd) {
    std::string text;
    if (::lseek(memfd, 0, SEEK_SET) == 0) {
        std::array<char, 600> buffer{};
        const ssize_t n = ::read(memfd, buffer.data(), buffer.size());
        if (n > 0) {
            text.assign(buffer.data(), static_cast<std::size_t>(n));
        }
    }
    for (char& c : text) {
        if (c == '\n') {
            c = ' ';
        }
    }
    while (!text.empty() && text.back() == ' ') {
        text.pop_back();
    }
    return text;
}

// systemd-creds ARGS with standard input `in`, output `out`, errors into a memfd; its pid.
struct Started {
    pid_t pid = -1;
    UniqueFd errors;
};

Expected<Started, std::string> start(const CredentialKeys& keys, std::vector<std::string> args,
                                     int in, int out) {
    UniqueFd errors(::memfd_create("systemd-creds-errors", MFD_CLOEXEC));
    if (!errors) {
        return unexpected("cannot run " + keys.program + ": " + errno_message(errno));
    }
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view v(*e);
        if (keys.host_key.empty() || v.rfind("SYSTEMD_CREDENTIAL_SECRET=", 0) != 0) {
            env.emplace_back(v);
        }
    }
    if (!keys.host_key.empty()) {
        env.push_back("SYSTEMD_CREDENTIAL_SECRET=" + keys.host_key.string());
    }
    args.insert(args.begin(), keys.program);
    std::vector<char*> argv;
    std::vector<char*> envp;
    argv.reserve(args.size() + 1);
    envp.reserve(env.size() + 1);
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    for (auto& e : env) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in, STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, errors.get(), STDERR_FILENO);
    pid_t pid = -1;
    const int spawned =
        ::posix_spawnp(&pid, keys.program.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
        return unexpected(
            "cannot run " + keys.program + ": " + errno_message(spawned) +
            (spawned == ENOENT ? " (systemd-creds is in Debian's systemd package)" : ""));
    }
    return Started{pid, std::move(errors)};
}

// Waits for it; "" when it exited with 0, else what went wrong in its words.
std::string finish(const CredentialKeys& keys, const Started& started, const std::string& what) {
    int status = 0;
    while (::waitpid(started.pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return what + ": " + keys.program + ": " + errno_message(errno);
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return "";
    }
    std::string why = said(started.errors.get());
    if (why.empty()) {
        why = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                : "killed by signal " + std::to_string(WTERMSIG(status));
    }
    return what + ": " + keys.program + ": " + why;
}

std::string hex(const unsigned char* data, std::size_t size) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < size; ++i) {
        out += digits[data[i] >> 4U];
        out += digits[data[i] & 15U];
    }
    return out;
}

}  // namespace

Expected<void, std::string> seal_credential(const hsm::Secret& secret, const std::string& name,
                                            const std::string& with_key, const fs::path& output,
                                            const CredentialKeys& keys, uid_t uid, gid_t gid) {
    const std::string what = "cannot seal the credential " + output.string();
    // The secret goes into the pipe before systemd-creds starts: at most Secret::max_size
    // bytes, which the pipe holds whole, so no write can block or meet a closed reader.
    std::array<int, 2> pipe{-1, -1};
    if (::pipe2(pipe.data(), O_CLOEXEC) != 0) {
        return unexpected(what + ": " + errno_message(errno));
    }
    UniqueFd read_end(pipe[0]);
    UniqueFd write_end(pipe[1]);
    const auto bytes = secret.bytes();
    if (bytes.size() > hsm::Secret::max_size ||
        ::write(write_end.get(), bytes.data(), bytes.size()) !=
            static_cast<ssize_t>(bytes.size())) {
        return unexpected(what + ": the secret does not fit the pipe");
    }
    write_end.reset();

    const fs::path folder = output.has_parent_path() ? output.parent_path() : fs::path(".");
    std::string temporary = (folder / ("." + output.filename().string() + ".XXXXXX")).string();
    UniqueFd file(::mkostemp(temporary.data(), O_CLOEXEC));
    if (!file) {
        return unexpected(what + ": " + errno_message(errno));
    }
    const auto discard = [&](const std::string& why) {
        ::unlink(temporary.c_str());
        return unexpected(why);
    };
    if (::fchmod(file.get(), 0600) != 0 || ::fchown(file.get(), uid, gid) != 0) {
        return discard(what + ": " + errno_message(errno));
    }
    auto started = start(keys, {"encrypt", "--name=" + name, "--with-key=" + with_key, "-", "-"},
                         read_end.get(), file.get());
    if (!started) {
        return discard(started.error());
    }
    read_end.reset();
    if (auto failed = finish(keys, *started, what); !failed.empty()) {
        return discard(failed);
    }
    struct stat st {};
    if (::fstat(file.get(), &st) != 0 || st.st_size == 0) {
        return discard(what + ": " + keys.program + " wrote nothing");
    }
    if (::fsync(file.get()) != 0 || ::rename(temporary.c_str(), output.c_str()) != 0) {
        return discard(what + ": " + errno_message(errno));
    }
    UniqueFd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir) {
        (void)::fsync(dir.get());
    }
    return {};
}

Expected<hsm::Secret, std::string> open_credential(const fs::path& credential,
                                                   const std::string& name,
                                                   const CredentialKeys& keys) {
    const std::string what = "cannot open the credential " + credential.string();
    std::array<int, 2> pipe{-1, -1};
    if (::pipe2(pipe.data(), O_CLOEXEC) != 0) {
        return unexpected(what + ": " + errno_message(errno));
    }
    UniqueFd read_end(pipe[0]);
    UniqueFd write_end(pipe[1]);
    UniqueFd nothing(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!nothing) {
        return unexpected(what + ": /dev/null: " + errno_message(errno));
    }
    auto started =
        start(keys, {"decrypt", "--name=" + name, "--newline=no", credential.string(), "-"},
              nothing.get(), write_end.get());
    if (!started) {
        return unexpected(started.error());
    }
    write_end.reset();
    // Read whole (a PIN is small), then one copy into the secret's locked pages.
    std::array<unsigned char, hsm::Secret::max_size + 1> buffer{};
    std::size_t size = 0;
    bool too_long = false;
    for (;;) {
        std::array<unsigned char, 256> chunk{};
        const ssize_t n = ::read(read_end.get(), chunk.data(), chunk.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        const auto got = static_cast<std::size_t>(n);
        if (size + got > buffer.size()) {
            too_long = true;
        } else {
            std::memcpy(buffer.data() + size, chunk.data(), got);
            size += got;
        }
        base::secure_wipe(chunk.data(), chunk.size());
    }
    const std::string failed = finish(keys, *started, what);
    hsm::Secret secret(std::span(buffer.data(), size));
    base::secure_wipe(buffer.data(), buffer.size());
    if (!failed.empty()) {
        return unexpected(failed);
    }
    if (too_long || size > hsm::Secret::max_size) {
        return unexpected(what + ": longer than " + std::to_string(hsm::Secret::max_size) +
                          " bytes");
    }
    if (size == 0) {
        return unexpected(what + ": empty");
    }
    return secret;
}

std::string sealed_with(const fs::path& credential) {
    // The header's first 16 bytes name the sealing (systemd's creds-util.h): base64, so the
    // first 24 characters hold 18 bytes.
    std::ifstream in(credential, std::ios::binary);
    std::array<char, 24> text{};
    if (!in.read(text.data(), text.size())) {
        return "";
    }
    std::array<unsigned char, 18> header{};
    if (EVP_DecodeBlock(header.data(), reinterpret_cast<const unsigned char*>(text.data()),
                        static_cast<int>(text.size())) != 18) {
        return "";
    }
    const std::string id = hex(header.data(), 16);
    for (const auto& [known, says] :
         {std::pair{"5a1c6a86df9d4096b1d5a65e0862f19a", "the host key"},
          {"0c7cc07b117645919c4b0bea08bc20fe", "the TPM2"},
          {"93a894094874449090caf2fc93cab553", "the host key and the TPM2"},
          {"058469daf6f54324800549da0f8ea2fb", "no key (tpm2-absent)"}}) {
        if (id == known) {
            return says;
        }
    }
    return "";
}

}  // namespace dkim::cli
