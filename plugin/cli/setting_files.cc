#include "plugin/cli/setting_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace derma::cli {
namespace {

// "FILE (set by ORIGIN)", how every message here names a file.
std::string Named(const Setting& file) {
  return absl::StrCat(file.value, " (set by ", file.origin, ")");
}

absl::Status Refuse(const Setting& file, absl::string_view what, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(what, " ", Named(file), ": ", problem));
}

// The whole of a file (a pipe too, e.g. --token_file=<(pass show station-7)); not a folder.
absl::StatusOr<std::string> ReadWhole(const Setting& file, absl::string_view what,
                                      struct stat* info) {
  if (stat(file.value.c_str(), info) != 0) return Refuse(file, what, std::strerror(errno));
  if (S_ISDIR(info->st_mode)) return Refuse(file, what, "it is a folder");
  std::ifstream in(file.value, std::ios::binary);
  if (!in) return Refuse(file, what, std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return Refuse(file, what, "read failed");
  return text.str();
}

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

Bio MemoryBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

}  // namespace

absl::StatusOr<std::string> ReadCertificatesPem(const Setting& file) {
  struct stat info;
  absl::StatusOr<std::string> text = ReadWhole(file, "certificate file", &info);
  if (!text.ok()) return text.status();
  Bio bio = MemoryBio(*text);
  X509* certificate = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  ERR_clear_error();
  if (certificate == nullptr) {
    return Refuse(file, "certificate file",
                  "holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  }
  X509_free(certificate);
  return text;
}

absl::StatusOr<std::string> ReadPrivateKeyPem(const Setting& file) {
  struct stat info;
  absl::StatusOr<std::string> text = ReadWhole(file, "key file", &info);
  if (!text.ok()) return text.status();
  Bio bio = MemoryBio(*text);
  // An empty passphrase: an encrypted key fails here instead of prompting on the terminal.
  char empty[] = "";
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, empty);
  ERR_clear_error();
  if (key == nullptr) {
    return Refuse(file, "key file", "holds no unencrypted PEM private key");
  }
  EVP_PKEY_free(key);
  return text;
}

absl::Status CheckKeyMatchesCertificate(const std::string& certificate_pem,
                                        const std::string& key_pem, const Setting& cert_file,
                                        const Setting& key_file) {
  Bio cert_bio = MemoryBio(certificate_pem);
  Bio key_bio = MemoryBio(key_pem);
  char empty[] = "";
  X509* certificate = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, empty);
  const bool match =
      certificate != nullptr && key != nullptr && X509_check_private_key(certificate, key) == 1;
  X509_free(certificate);
  EVP_PKEY_free(key);
  ERR_clear_error();
  if (match) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the key in ", Named(key_file), " is not the key of the certificate in ", Named(cert_file)));
}

absl::StatusOr<std::string> ReadTokenFile(const Setting& file) {
  struct stat info;
  absl::StatusOr<std::string> text = ReadWhole(file, "token file", &info);
  if (!text.ok()) return text.status();
  if ((info.st_mode & 077) != 0) {
    return Refuse(file, "token file",
                  absl::StrFormat("other users may read or change it (mode %04o); chmod 600 %s",
                                  info.st_mode & 07777, file.value));
  }
  const std::string token(absl::StripAsciiWhitespace(text->substr(0, text->find('\n'))));
  if (token.empty()) return Refuse(file, "token file", "its first line holds no token");
  return CheckToken(token, Named(file)).ok()
             ? absl::StatusOr<std::string>(token)
             : Refuse(file, "token file",
                      "the token may only hold printable ASCII characters, no blanks");
}

absl::Status CheckToken(absl::string_view token, absl::string_view origin) {
  bool printable = !token.empty();
  for (char c : token) printable = printable && c > ' ' && c < 0x7f;
  if (printable) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the token in ", origin,
      token.empty() ? " is empty" : " may only hold printable ASCII characters, no blanks"));
}

}  // namespace derma::cli
