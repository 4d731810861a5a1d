#include "dkim/config/toml_defaults.hpp"

#include <toml++/toml.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace dkim::config {
namespace {

std::string where(const std::filesystem::path& file, const toml::source_region& source) {
    return file.string() + ":" + std::to_string(source.begin.line) + ":" +
           std::to_string(source.begin.column);
}

// Options that a file may not set: the file itself and help.
bool settable(const CLI::Option* option) {
    return option != nullptr && option->get_configurable() && !option->get_lnames().empty() &&
           option->get_lnames().front() != "config" && option->get_lnames().front() != "help";
}

CLI::Option* own_option(CLI::App* app, const std::string& name) {
    CLI::Option* option = app->get_option_no_throw("--" + name);
    return settable(option) ? option : nullptr;
}

void collect_apps(CLI::App* app, std::vector<CLI::App*>& apps) {
    apps.push_back(app);
    for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
        collect_apps(sub, apps);
    }
}

dkim::Expected<std::string, std::string> scalar_text(const toml::node& node) {
    if (const auto* text = node.as_string()) {
        return text->get();
    }
    if (const auto* integer = node.as_integer()) {
        return std::to_string(integer->get());
    }
    if (const auto* boolean = node.as_boolean()) {
        return std::string(boolean->get() ? "true" : "false");
    }
    if (const auto* floating = node.as_floating_point()) {
        std::ostringstream out;
        out << floating->get();
        return out.str();
    }
    return dkim::unexpected(std::string("expected a string, number or boolean"));
}

// A scalar, or an array of scalars for an option that takes several values (CLI11 reads
// "[a,b]" as the list a, b).
dkim::Expected<std::string, std::string> value_text(const CLI::Option* option,
                                                    const toml::node& node) {
    const auto* array = node.as_array();
    if (array == nullptr) {
        return scalar_text(node);
    }
    if (option->get_items_expected_max() <= 1) {
        return dkim::unexpected(std::string("expected one value, not a list"));
    }
    std::string out = "[";
    for (const toml::node& item : *array) {
        auto text = scalar_text(item);
        if (!text) {
            return text;
        }
        if (text->find(',') != std::string::npos) {
            return dkim::unexpected("list items cannot hold ',': '" + *text + "'");
        }
        out += (out.size() > 1 ? "," : "") + *text;
    }
    return out + "]";
}

dkim::Expected<void, std::string> set_default(CLI::Option* option, const toml::node& node,
                                              const std::string& key,
                                              const std::filesystem::path& file) {
    auto text = value_text(option, node);
    if (!text) {
        return dkim::unexpected(where(file, node.source()) + ": key '" + key +
                                "': " + text.error());
    }
    try {
        option->run_callback_for_default(true);
        option->default_val(*text);
    } catch (const CLI::Error& error) {
        return dkim::unexpected(where(file, node.source()) + ": key '" + key +
                                "': " + error.what());
    }
    // The file satisfies a required option; the command line may still override it.
    option->required(false);
    return {};
}

enum class Only { keys, tables, all };

dkim::Expected<void, std::string> apply_table(CLI::App& root, CLI::App* app,
                                              const toml::table& table, const std::string& prefix,
                                              const std::filesystem::path& file, Only only) {
    for (const auto& [raw_key, node] : table) {
        if ((only == Only::keys && node.is_table()) || (only == Only::tables && !node.is_table())) {
            continue;
        }
        const std::string key(raw_key.str());
        const std::string path = prefix.empty() ? key : prefix + "." + key;
        if (node.is_table()) {
            CLI::App* sub = nullptr;
            try {
                sub = app->get_subcommand(key);
            } catch (const CLI::OptionNotFound&) {
                sub = nullptr;
            }
            if (sub == nullptr) {
                return dkim::unexpected(where(file, raw_key.source()) + ": table [" + path +
                                        "]: there is no command '" + path + "'");
            }
            auto ok = apply_table(root, sub, *node.as_table(), path, file, Only::all);
            if (!ok) {
                return ok;
            }
            continue;
        }
        if (app == &root) {
            // A top-level key applies to every command that has an option of that name.
            std::vector<CLI::App*> apps;
            collect_apps(&root, apps);
            bool known = false;
            for (CLI::App* candidate : apps) {
                if (CLI::Option* option = own_option(candidate, key)) {
                    known = true;
                    auto ok = set_default(option, node, key, file);
                    if (!ok) {
                        return ok;
                    }
                }
            }
            if (!known) {
                return dkim::unexpected(where(file, raw_key.source()) + ": key '" + key +
                                        "': no command has an option --" + key);
            }
            continue;
        }
        CLI::Option* option = own_option(app, key);
        if (option == nullptr) {
            return dkim::unexpected(where(file, raw_key.source()) + ": key '" + path +
                                    "': command '" + prefix + "' has no option --" + key);
        }
        auto ok = set_default(option, node, path, file);
        if (!ok) {
            return ok;
        }
    }
    return {};
}

}  // namespace

std::optional<std::string> find_config_argument(int argc, const char* const* argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--") {
            break;
        }
        if (arg == "--config" && i + 1 < argc) {
            return std::string(argv[i + 1]);
        }
        if (arg.rfind("--config=", 0) == 0) {
            return std::string(arg.substr(9));
        }
    }
    return std::nullopt;
}

namespace {

dkim::Expected<void, std::string> apply_parsed(CLI::App& app, const toml::table& table,
                                               const std::filesystem::path& file) {
    // Sections are applied after top-level keys, so that a value in [key.generate] beats a
    // top-level one whatever the order of the file.
    if (auto ok = apply_table(app, &app, table, "", file, Only::keys); !ok) {
        return ok;
    }
    return apply_table(app, &app, table, "", file, Only::tables);
}

}  // namespace

dkim::Expected<void, std::string> apply_toml_defaults(CLI::App& app,
                                                      const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return dkim::unexpected(file.string() + ": cannot be read");
    }
    std::stringstream content;
    content << in.rdbuf();
    return apply_toml_defaults(app, content.str(), file);
}

dkim::Expected<void, std::string> apply_toml_defaults(CLI::App& app, std::string_view document,
                                                      const std::filesystem::path& file) {
    // Debian's toml++ is built with exceptions: the parse error becomes a value here.
    toml::table table;
    try {
        table = toml::parse(document, file.string());
    } catch (const toml::parse_error& error) {
        if (error.source().begin.line == 0) {
            return dkim::unexpected(file.string() + ": " + std::string(error.description()));
        }
        return dkim::unexpected(where(file, error.source()) + ": " +
                                std::string(error.description()));
    }
    return apply_parsed(app, table, file);
}

}  // namespace dkim::config
