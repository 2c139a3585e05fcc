#include "plugin/cli/config_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace derma::cli {
namespace {

// The keys a file may set, and which of them are paths (resolved against the file's folder).
struct Key {
  const char* name;
  std::optional<Setting> ClientSettings::*field;
  bool is_path;
};
constexpr Key kKeys[] = {
    {"target", &ClientSettings::target, false},
    {"tls_ca", &ClientSettings::tls_ca, true},
    {"tls_cert", &ClientSettings::tls_cert, true},
    {"tls_key", &ClientSettings::tls_key, true},
    {"tls_server_name", &ClientSettings::tls_server_name, false},
    {"token_file", &ClientSettings::token_file, true},
};

std::string NonEmptyEnv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

std::string Folder(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string Resolve(const std::string& folder, const std::string& value) {
  if (value.front() == '/' || folder.empty()) return value;
  return folder == "/" ? "/" + value : absl::StrCat(folder, "/", value);
}

std::string KeyList() {
  std::vector<std::string> names;
  for (const Key& key : kKeys) names.push_back(key.name);
  return absl::StrJoin(names, ", ");
}

}  // namespace

std::optional<ConfigFileLocation> FindConfigFile() {
  if (std::string named = NonEmptyEnv("DERMACTL_CONFIG"); !named.empty()) {
    return ConfigFileLocation{named, /*must_exist=*/true};
  }
  if (std::string xdg = NonEmptyEnv("XDG_CONFIG_HOME"); !xdg.empty()) {
    return ConfigFileLocation{xdg + "/derma/dermactl.conf"};
  }
  if (std::string home = NonEmptyEnv("HOME"); !home.empty()) {
    return ConfigFileLocation{home + "/.config/derma/dermactl.conf"};
  }
  return std::nullopt;
}

absl::StatusOr<ClientSettings> ReadConfigFile(const ConfigFileLocation& location) {
  struct stat info {};
  if (stat(location.path.c_str(), &info) != 0 && errno == ENOENT && !location.must_exist) {
    return ClientSettings{};
  }
  std::ifstream file(location.path);
  if (!file || S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the config file ", location.path, ": ",
                     !file ? std::strerror(errno) : "it is a folder"));
  }
  std::stringstream text;
  text << file.rdbuf();
  return ParseConfigText(text.str(), location.path);
}

absl::StatusOr<ClientSettings> ParseConfigText(absl::string_view text, const std::string& path) {
  ClientSettings settings;
  const std::string folder = Folder(path);
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    const std::string where = absl::StrCat(path, ":", number);
    line = absl::StripAsciiWhitespace(line);  // also a Windows line's \r
    if (line.empty() || line.front() == '#') continue;
    const size_t equals = line.find('=');
    if (equals == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected `key = value`, got \"", line, "\""));
    }
    const std::string name(absl::StripTrailingAsciiWhitespace(line.substr(0, equals)));
    const std::string value(absl::StripLeadingAsciiWhitespace(line.substr(equals + 1)));
    const Key* key = nullptr;
    for (const Key& k : kKeys) {
      if (name == k.name) key = &k;
    }
    if (key == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown key \"", name, "\"; known: ", KeyList()));
    }
    if (value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", name, " has no value"));
    }
    std::optional<Setting>& field = settings.*(key->field);
    if (field.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", name, " is already set on line ",
                       field->origin.substr(field->origin.rfind(':') + 1)));
    }
    field = Setting{key->is_path ? Resolve(folder, value) : value, where};
  }
  return settings;
}

absl::StatusOr<ClientSettings> GatherClientSettings(const ClientSettings& flags) {
  ClientSettings from_file;
  if (std::optional<ConfigFileLocation> location = FindConfigFile(); location.has_value()) {
    absl::StatusOr<ClientSettings> read = ReadConfigFile(*location);
    if (!read.ok()) return read.status();
    from_file = *std::move(read);
  }
  ClientSettings from_environment;
  if (std::string target = NonEmptyEnv("DERMA_TARGET"); !target.empty()) {
    from_environment.target = Setting{target, "$DERMA_TARGET"};
  }
  if (std::string token = NonEmptyEnv("DERMA_TOKEN"); !token.empty()) {
    from_environment.token = Setting{token, "$DERMA_TOKEN"};
  }
  return Overlay(Overlay(from_file, from_environment), flags);
}

}  // namespace derma::cli
