#include "plugin/auth/authorizer.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpcpp/security/auth_context.h"
#include "plugin/errors/errors.h"

namespace derma::auth {

std::optional<Principal> Authorizer::Identify(const grpc::ServerContextBase& context) const {
  // A call that sends `authorization` is identified by it alone: an unknown token is refused
  // even over a known client certificate, so a revoked token never quietly acts as the
  // certificate's principal.
  const auto [first, end] = context.client_metadata().equal_range("authorization");
  if (first != end) {
    for (auto it = first; it != end; ++it) {
      absl::string_view value(it->second.data(), it->second.size());
      if (absl::ConsumePrefix(&value, "Bearer ") || absl::ConsumePrefix(&value, "bearer ")) {
        if (std::optional<Principal> p = store_->FindToken(std::string(value))) return p;
      }
    }
    return std::nullopt;
  }
  if (std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
      auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const grpc::string_ref& cn : auth->FindPropertyValues("x509_common_name")) {
      if (std::optional<Principal> p = store_->FindCertificate(std::string(cn.data(), cn.size()))) {
        return p;
      }
    }
  }
  return std::nullopt;
}

absl::StatusOr<Principal> Authorizer::Authorize(const grpc::ServerContextBase& context,
                                                absl::string_view method) const {
  if (!store_.has_value()) return Principal{"local", Role::kAdmin};
  const std::optional<Role> required = RequiredRole(method);
  std::optional<Principal> principal = Identify(context);
  if (!required.has_value()) return principal.value_or(Principal{"anonymous", Role::kViewer});
  if (!principal.has_value()) {
    unauthenticated_.fetch_add(1);
    if (context.client_metadata().count("authorization") > 0) {
      return MakeError(absl::StatusCode::kUnauthenticated, v1::ERROR_REASON_UNAUTHENTICATED,
                       "the authorization sent is not accepted: not \"Bearer <token>\" with a "
                       "token from the service's tokens file (a client certificate is not "
                       "consulted when authorization is sent)");
    }
    return MakeError(absl::StatusCode::kUnauthenticated, v1::ERROR_REASON_UNAUTHENTICATED,
                     "no valid credentials: send \"authorization: Bearer <token>\" with a token "
                     "from the service's tokens file, or a client certificate it knows");
  }
  if (principal->role < *required) {
    denied_.fetch_add(1);
    return MakeError(
        absl::StatusCode::kPermissionDenied, v1::ERROR_REASON_PERMISSION_DENIED,
        absl::StrCat(principal->name, " (", RoleName(principal->role), ") may not call ", method,
                     ": it needs the ", RoleName(*required), " role"),
        {{"principal", principal->name},
         {"role", RoleName(principal->role)},
         {"required_role", RoleName(*required)}});
  }
  return *principal;
}

}  // namespace derma::auth
