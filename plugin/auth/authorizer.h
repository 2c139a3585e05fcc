// Authorizer: who is calling and may they? Reads the caller's bearer token ("authorization:
// Bearer <token>" metadata) or, when the call sends no authorization metadata and under mTLS,
// the verified client certificate's common name (a call that sends authorization is identified
// by its token alone: an unknown token is refused even over a known certificate), finds the
// principal in the CredentialsStore and checks the method against the one
// authorization table (policy.h) — before anything about the request is looked at, so a caller
// who may not see a device never learns whether it exists. Without a store (no tokens file),
// every caller is the principal "local" with the admin role: for development on loopback only
// (dermad refuses other addresses without TLS). Layer: plugin/auth. Thread-safe.
#ifndef DERMA_PLUGIN_AUTH_AUTHORIZER_H_
#define DERMA_PLUGIN_AUTH_AUTHORIZER_H_

#include <atomic>
#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "plugin/auth/credentials_store.h"

namespace derma::auth {

class Authorizer {
 public:
  explicit Authorizer(std::optional<CredentialsStore> store) : store_(std::move(store)) {}

  // The caller, or UNAUTHENTICATED (reason UNAUTHENTICATED) / PERMISSION_DENIED (reason
  // PERMISSION_DENIED, metadata principal, role, required_role).
  absl::StatusOr<Principal> Authorize(const grpc::ServerContextBase& context,
                                      absl::string_view method) const;

  bool enabled() const { return store_.has_value(); }
  uint64_t unauthenticated_count() const { return unauthenticated_.load(); }
  uint64_t denied_count() const { return denied_.load(); }

 private:
  std::optional<Principal> Identify(const grpc::ServerContextBase& context) const;

  const std::optional<CredentialsStore> store_;
  mutable std::atomic<uint64_t> unauthenticated_{0};
  mutable std::atomic<uint64_t> denied_{0};
};

}  // namespace derma::auth

#endif  // DERMA_PLUGIN_AUTH_AUTHORIZER_H_
