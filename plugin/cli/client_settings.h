// The connection settings dermactl gathers from its config file, the environment and its
// command line, each remembering where it came from so that an error can name its origin.
// Layer: plugin/cli. Plain data; not thread-safe.
#ifndef DERMA_PLUGIN_CLI_CLIENT_SETTINGS_H_
#define DERMA_PLUGIN_CLI_CLIENT_SETTINGS_H_

#include <optional>
#include <string>

namespace derma::cli {

// One value and its origin: "--tls_ca", "$DERMA_TARGET" or "FILE:LINE".
struct Setting {
  std::string value;
  std::string origin;
};

// Every connection setting; unset ones are std::nullopt. Paths are as given on the command line
// (relative to the working directory) or already resolved against the config file's folder.
struct ClientSettings {
  std::optional<Setting> target;
  std::optional<Setting> tls_ca;
  std::optional<Setting> tls_cert;
  std::optional<Setting> tls_key;
  std::optional<Setting> tls_server_name;
  std::optional<Setting> token_file;
  std::optional<Setting> token;  // the token itself: only from $DERMA_TOKEN
};

// `over`'s set fields replace `base`'s. token_file and token are one choice, the token's
// source: either set in `over` replaces both of `base`'s.
inline ClientSettings Overlay(ClientSettings base, const ClientSettings& over) {
  if (over.token_file.has_value() || over.token.has_value()) {
    base.token_file = over.token_file;
    base.token = over.token;
  }
  for (auto [field, from] : {std::pair{&base.target, &over.target},
                             {&base.tls_ca, &over.tls_ca},
                             {&base.tls_cert, &over.tls_cert},
                             {&base.tls_key, &over.tls_key},
                             {&base.tls_server_name, &over.tls_server_name}}) {
    if (from->has_value()) *field = *from;
  }
  return base;
}

}  // namespace derma::cli

#endif  // DERMA_PLUGIN_CLI_CLIENT_SETTINGS_H_
