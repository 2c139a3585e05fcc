// Reads the files dermactl's connection settings name — the TLS CA, client certificate and key
// (checked with OpenSSL) and the token file — before any connection, so that a wrong file is a
// usage error naming it and where it was set rather than a vague failure later. Layer:
// plugin/cli. Thread-safe (no state).
#ifndef DERMA_PLUGIN_CLI_SETTING_FILES_H_
#define DERMA_PLUGIN_CLI_SETTING_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "plugin/cli/client_settings.h"

namespace derma::cli {

// The text of `file`, which must hold at least one PEM certificate that OpenSSL can parse.
// Errors (InvalidArgument) here and below name the file and the setting's origin.
absl::StatusOr<std::string> ReadCertificatesPem(const Setting& file);

// The text of `file`, which must hold a PEM private key (unencrypted).
absl::StatusOr<std::string> ReadPrivateKeyPem(const Setting& file);

// OK when the first certificate in `certificate_pem` is the one for the key in `key_pem`.
absl::Status CheckKeyMatchesCertificate(const std::string& certificate_pem,
                                        const std::string& key_pem, const Setting& cert_file,
                                        const Setting& key_file);

// The token in the token file: its first line without surrounding blanks. Refused: a file other
// users may access (any group or other permission bit: chmod 600 it), an empty token, and one
// with a character outside printable ASCII or a blank inside it.
absl::StatusOr<std::string> ReadTokenFile(const Setting& file);

// OK when `token` can be sent as `authorization: Bearer <token>`: not empty, printable ASCII,
// no blanks. `origin` names where it came from.
absl::Status CheckToken(absl::string_view token, absl::string_view origin);

}  // namespace derma::cli

#endif  // DERMA_PLUGIN_CLI_SETTING_FILES_H_
