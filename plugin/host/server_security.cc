#include "plugin/host/server_security.h"

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace derma::host {
namespace {

constexpr unsigned kCertificateRefreshSeconds = 60;

absl::Status Readable(const std::string& path, const char* flag) {
  std::ifstream file(path);
  if (!file) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read ", path));
  return absl::OkStatus();
}

}  // namespace

bool IsLoopback(const std::string& listen) {
  return absl::StartsWith(listen, "127.") || absl::StartsWith(listen, "[::1]:") ||
         absl::StartsWith(listen, "localhost:") || absl::StartsWith(listen, "unix:");
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const SecurityFlags& flags, std::string* warning) {
  const bool tls = !flags.tls_cert.empty() || !flags.tls_key.empty();
  if (!tls) {
    if (!flags.tls_client_ca.empty()) {
      return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
    }
    if (!IsLoopback(flags.listen)) {
      if (!flags.insecure) {
        return absl::InvalidArgumentError(absl::StrCat(
            "refusing to serve plaintext on the network address ", flags.listen,
            ": give --tls_cert and --tls_key (and --tls_client_ca for mTLS), or --insecure"));
      }
      *warning = absl::StrCat("WARNING: serving plaintext (no TLS) on ", flags.listen,
                              " because of --insecure: anyone on the network can read and "
                              "send commands");
    }
    return grpc::InsecureServerCredentials();
  }
  if (flags.tls_cert.empty() || flags.tls_key.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls_cert and --tls_key");
  }
  if (absl::Status s = Readable(flags.tls_cert, "tls_cert"); !s.ok()) return s;
  if (absl::Status s = Readable(flags.tls_key, "tls_key"); !s.ok()) return s;
  if (!flags.tls_client_ca.empty()) {
    if (absl::Status s = Readable(flags.tls_client_ca, "tls_client_ca"); !s.ok()) return s;
  }
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      flags.tls_key, flags.tls_cert, flags.tls_client_ca, kCertificateRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (flags.tls_client_ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace derma::host
