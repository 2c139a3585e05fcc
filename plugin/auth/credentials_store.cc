#include "plugin/auth/credentials_store.h"

#include <openssl/sha.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace derma::auth {

std::string Sha256Hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char byte : digest) {
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 15]);
  }
  return out;
}

absl::StatusOr<CredentialsStore> CredentialsStore::Load(const std::string& path) {
  std::ifstream file(path);
  if (!file)
    return absl::InvalidArgumentError(absl::StrCat("tokens file ", path, ": cannot read it"));
  std::stringstream text;
  text << file.rdbuf();
  return Parse(text.str(), path);
}

absl::StatusOr<CredentialsStore> CredentialsStore::Parse(const std::string& text,
                                                         const std::string& path) {
  CredentialsStore store;
  // The line each credential came from: one listed twice is refused, naming both lines.
  absl::flat_hash_map<std::string, int> token_lines, certificate_lines;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    absl::ConsumeSuffix(&line, "\r");  // a file written on Windows (CRLF) reads the same
    line = line.substr(0, line.find('#'));
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (fields.empty()) continue;
    auto bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokens file ", path, ":", line_number, ": ", what));
    };
    auto first_use = [&](absl::flat_hash_map<std::string, int>& lines, const std::string& key,
                         absl::string_view what) {
      auto [it, inserted] = lines.emplace(key, line_number);
      if (inserted) return absl::OkStatus();
      return bad(absl::StrCat(what, " is already listed on line ", it->second,
                              "; each may be listed once"));
    };
    if (fields[0] == "token") {
      if (fields.size() != 4) return bad("expected: token sha256:<hex> <principal> <role>");
      absl::string_view hash = fields[1];
      if (!absl::ConsumePrefix(&hash, "sha256:") || hash.size() != 64 ||
          !std::all_of(hash.begin(), hash.end(), absl::ascii_isxdigit)) {
        return bad("the credential must be sha256: and 64 hex digits (never a plain token)");
      }
      std::optional<Role> role = ParseRole(fields[3]);
      if (!role.has_value()) return bad("role must be viewer, operator or admin");
      const std::string key = absl::AsciiStrToLower(hash);
      if (absl::Status s = first_use(token_lines, key, "this token hash"); !s.ok()) return s;
      store.tokens_[key] = {std::string(fields[2]), *role};
    } else if (fields[0] == "cert") {
      if (fields.size() != 4) return bad("expected: cert <common name> <principal> <role>");
      std::optional<Role> role = ParseRole(fields[3]);
      if (!role.has_value()) return bad("role must be viewer, operator or admin");
      const std::string key(fields[1]);
      if (absl::Status s = first_use(certificate_lines, key, "this certificate name"); !s.ok()) {
        return s;
      }
      store.certificates_[key] = {std::string(fields[2]), *role};
    } else {
      return bad(absl::StrCat("unknown kind \"", fields[0], "\" (token or cert)"));
    }
  }
  return store;
}

std::optional<Principal> CredentialsStore::FindToken(const std::string& token) const {
  auto it = tokens_.find(Sha256Hex(token));
  if (it == tokens_.end()) return std::nullopt;
  return it->second;
}

std::optional<Principal> CredentialsStore::FindCertificate(const std::string& common_name) const {
  auto it = certificates_.find(common_name);
  if (it == certificates_.end()) return std::nullopt;
  return it->second;
}

}  // namespace derma::auth
