// ServerSecurity: dermad's transport security from its flags. TLS from a certificate and key,
// mTLS when a client CA is given (client certificates required and verified), both through
// gRPC's file-watcher provider so replaced certificate files are picked up without a restart
// (checked every 60 s). Secure by default: a non-loopback listen address without TLS is
// refused unless `insecure` is set. Layer: plugin/host. Pure functions; thread-safe.
#ifndef DERMA_PLUGIN_HOST_SERVER_SECURITY_H_
#define DERMA_PLUGIN_HOST_SERVER_SECURITY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"

namespace derma::host {

struct SecurityFlags {
  std::string listen;
  std::string tls_cert;       // PEM certificate chain
  std::string tls_key;        // PEM private key
  std::string tls_client_ca;  // PEM CA bundle; set = mTLS
  bool insecure = false;      // allow plaintext on a non-loopback address
};

// True for 127.0.0.0/8, [::1] and localhost listen addresses.
bool IsLoopback(const std::string& listen);

// The server credentials for `flags`, or INVALID_ARGUMENT saying what is wrong (a key without
// a certificate, an unreadable file, plaintext on a network address without --insecure).
// `warning` is set when plaintext was allowed on a network address.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const SecurityFlags& flags, std::string* warning);

}  // namespace derma::host

#endif  // DERMA_PLUGIN_HOST_SERVER_SECURITY_H_
