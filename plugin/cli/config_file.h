// dermactl's config file: where it is and how its `key = value` lines read. Layer: plugin/cli.
// Thread-safe (reads the environment and the file; no state).
//
// The file is $DERMACTL_CONFIG when that is set and not empty (it must then exist), else
// $XDG_CONFIG_HOME/derma/dermactl.conf when XDG_CONFIG_HOME is set and not empty, else
// $HOME/.config/derma/dermactl.conf; either of the last two may be absent. One setting a line,
// `key = value`, blanks around both ignored; blank lines and lines whose first non-blank
// character is `#` are skipped (a `#` after a value is part of the value). Keys: target, tls_ca,
// tls_cert, tls_key, tls_server_name, token_file, each at most once. A relative path is relative
// to the file's folder; `~` is not expanded.
#ifndef DERMA_PLUGIN_CLI_CONFIG_FILE_H_
#define DERMA_PLUGIN_CLI_CONFIG_FILE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "plugin/cli/client_settings.h"

namespace derma::cli {

struct ConfigFileLocation {
  std::string path;
  bool must_exist = false;  // named by $DERMACTL_CONFIG
};

// Where the config file is, from the environment; nullopt when neither DERMACTL_CONFIG,
// XDG_CONFIG_HOME nor HOME is set.
std::optional<ConfigFileLocation> FindConfigFile();

// The settings in the file at `location`; none when it is absent and need not exist. Errors
// (InvalidArgument) name FILE or FILE:LINE.
absl::StatusOr<ClientSettings> ReadConfigFile(const ConfigFileLocation& location);

// The settings in `text`, read from `path` (for origins, messages and relative paths).
absl::StatusOr<ClientSettings> ParseConfigText(absl::string_view text, const std::string& path);

// dermactl's settings in order of precedence: `flags` (the command line) over the environment
// ($DERMA_TARGET; $DERMA_TOKEN when set and not empty) over the config file. Errors are the
// config file's.
absl::StatusOr<ClientSettings> GatherClientSettings(const ClientSettings& flags);

}  // namespace derma::cli

#endif  // DERMA_PLUGIN_CLI_CONFIG_FILE_H_
