// CredentialsStore: who may call derma, loaded from a tokens file. Only SHA-256 hashes of
// bearer tokens are stored, never the tokens. One entry per line:
//
//   # kind  credential                        principal   role
//   token   sha256:<64 hex digits>            alice       operator
//   cert    robot-7                           robot-7     operator   # mTLS subject CN
//
// `sha256sum` makes a hash: printf %s "$TOKEN" | sha256sum. Layer: plugin/auth.
// Immutable after Load: thread-safe.
#ifndef DERMA_PLUGIN_AUTH_CREDENTIALS_STORE_H_
#define DERMA_PLUGIN_AUTH_CREDENTIALS_STORE_H_

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "plugin/auth/policy.h"

namespace derma::auth {

struct Principal {
  std::string name;
  Role role;
};

class CredentialsStore {
 public:
  // Parses the file (LF or CRLF line ends). INVALID_ARGUMENT starting "tokens file PATH" and
  // naming the line for a bad entry, and both lines for a hash or common name listed twice.
  static absl::StatusOr<CredentialsStore> Load(const std::string& path);
  static absl::StatusOr<CredentialsStore> Parse(const std::string& text, const std::string& path);

  // The principal of a bearer token (compared by hash), if any.
  std::optional<Principal> FindToken(const std::string& token) const;
  // The principal of a verified client certificate's common name, if any.
  std::optional<Principal> FindCertificate(const std::string& common_name) const;
  size_t size() const { return tokens_.size() + certificates_.size(); }

 private:
  absl::flat_hash_map<std::string, Principal> tokens_;        // by lowercase hex SHA-256
  absl::flat_hash_map<std::string, Principal> certificates_;  // by subject CN
};

// Lowercase hex SHA-256 of `text`.
std::string Sha256Hex(const std::string& text);

}  // namespace derma::auth

#endif  // DERMA_PLUGIN_AUTH_CREDENTIALS_STORE_H_
