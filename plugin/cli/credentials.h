// How dermactl connects: from its gathered settings (client_settings.h) to the channel
// credentials, the TLS server name, and the bearer token every call carries; and the rules that
// keep a token safe (never sent in plaintext beyond loopback). Layer: plugin/cli. Thread-safe
// (no state; the token interceptor only reads its token).
#ifndef DERMA_PLUGIN_CLI_CREDENTIALS_H_
#define DERMA_PLUGIN_CLI_CREDENTIALS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/client_interceptor.h"
#include "plugin/cli/client_settings.h"

namespace derma::cli {

inline constexpr char kDefaultTarget[] = "127.0.0.1:50051";

// What dermactl connects with, for the words of an error message.
struct TransportFacts {
  std::string target;
  bool tls = false;                // TLS with the CA of `ca_file`
  std::string ca_file;             // "FILE (from ORIGIN)"
  std::string client_certificate;  // mTLS: "FILE (set by ORIGIN)"; empty when none is offered
  std::string server_name;         // --tls_server_name; empty: the target's host is checked
  std::string token_origin;        // where the token came from; empty when none is sent
};

// Everything needed to open the channel, read and checked before any connection.
struct ChannelPlan {
  std::string target;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string server_name_override;  // empty: none
  std::string token;                 // empty: no authorization metadata
  TransportFacts facts;
};

// Reads every file `settings` names and checks the combination: tls_cert and tls_key together
// and only with tls_ca; tls_server_name only with tls_ca; no token in plaintext to a target that
// is not loopback. Errors (InvalidArgument) are usage errors naming the file or setting.
absl::StatusOr<ChannelPlan> PlanChannel(const ClientSettings& settings);

// True when `target` ("HOST:PORT", "[V6]:PORT", "dns:///HOST:PORT", "ipv4:ADDR:PORT",
// "unix:PATH"...) can only reach this machine: localhost, 127.0.0.0/8, ::1, a unix socket.
bool IsLoopbackTarget(absl::string_view target);

// Interceptors that add `authorization: Bearer <token>` to every call on a channel.
std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
BearerTokenInterceptors(const std::string& token);

}  // namespace derma::cli

#endif  // DERMA_PLUGIN_CLI_CREDENTIALS_H_
