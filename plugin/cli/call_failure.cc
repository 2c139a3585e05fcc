#include "plugin/cli/call_failure.h"

#include <cstdio>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace derma::cli {
namespace {

// What gRPC's message says about a connection that failed during set-up, and what it means.
// gRPC (1.51) reports every such failure as UNAVAILABLE "failed to connect to all addresses;
// last error: ..."; only the last error's words tell the cases apart, so each row names words
// that were seen for exactly one cause, and says "most likely" where a cause is inferred.
enum class Tls { kOn, kOff };
enum class ClientCertificate { kAny, kNone, kOffered };
struct TransportFailure {
  Tls tls;
  ClientCertificate client_certificate;
  const char* words[2];  // any of these in gRPC's message, ignoring case
  std::string (*explain)(const TransportFacts& facts);
};

const TransportFailure kTransportFailures[] = {
    {Tls::kOn,
     ClientCertificate::kAny,
     {"certificate verify failed", "certificate_verify_failed"},
     [](const TransportFacts& f) {
       return absl::StrCat(
           "the server's certificate is not trusted: it is not signed by the CA in ", f.ca_file,
           ", or it has expired or is not yet valid");
     }},
    {Tls::kOn,
     ClientCertificate::kAny,
     {"is not in peer certificate", nullptr},
     [](const TransportFacts& f) {
       return absl::StrCat("the server's certificate is not for ",
                           f.server_name.empty()
                               ? absl::StrCat("the host of ", f.target)
                               : absl::StrCat("\"", f.server_name, "\" (--tls_server_name)"),
                           ": it names other hosts. Use a name it lists, as the target or with "
                           "--tls_server_name=NAME");
     }},
    {Tls::kOn,
     ClientCertificate::kAny,
     {"wrong version number", "wrong_version_number"},
     [](const TransportFacts& f) {
       return absl::StrCat("the server at ", f.target,
                           " does not speak TLS (it answered in plaintext): leave the TLS "
                           "settings out to talk to it, or check the port");
     }},
    {Tls::kOn,
     ClientCertificate::kNone,
     {"socket closed", "connection reset"},
     [](const TransportFacts& f) {
       return std::string(
           "the server closed the connection during the TLS handshake: most likely it requires a "
           "client certificate (mTLS) and none was given; pass --tls_cert=FILE and --tls_key=FILE "
           "(or it refuses this client's TLS version or ciphers)");
     }},
    {Tls::kOn,
     ClientCertificate::kOffered,
     {"socket closed", "connection reset"},
     [](const TransportFacts& f) {
       return absl::StrCat(
           "the server closed the connection during the TLS handshake: most likely it does not "
           "trust the client certificate ",
           f.client_certificate,
           " (not signed by the CA of its --tls_client_ca, or expired), or it refuses this "
           "client's TLS version or ciphers");
     }},
    {Tls::kOn,
     ClientCertificate::kAny,
     {"handshake", "ssl"},
     [](const TransportFacts& f) {
       return std::string(
           "the TLS handshake failed. Possible causes: the server's certificate or its name, "
           "the client certificate, or a server that does not speak TLS");
     }},
    {Tls::kOff,
     ClientCertificate::kAny,
     {"socket closed", "connection reset"},
     [](const TransportFacts& f) {
       return absl::StrCat("the server at ", f.target,
                           " closed the connection before answering: most likely it serves TLS "
                           "only; pass --tls_ca=FILE with the CA that signed its certificate");
     }},
};

const TransportFailure* FindTransportFailure(const TransportFacts& facts,
                                             const std::string& message) {
  const std::string lower = absl::AsciiStrToLower(message);
  for (const TransportFailure& row : kTransportFailures) {
    if ((row.tls == Tls::kOn) != facts.tls) continue;
    const bool offered = !facts.client_certificate.empty();
    if (row.client_certificate == ClientCertificate::kNone && offered) continue;
    if (row.client_certificate == ClientCertificate::kOffered && !offered) continue;
    for (const char* words : row.words) {
      if (words != nullptr && absl::StrContains(lower, words)) return &row;
    }
  }
  return nullptr;
}

// The connection could not be set up (UNAVAILABLE or DEADLINE_EXCEEDED not from derma).
int ReportTransportFailure(const Connection& c, const grpc::Status& status) {
  const TransportFailure* failure = FindTransportFailure(c.facts, status.error_message());
  if (failure == nullptr) {
    absl::FPrintF(stderr, "dermactl: cannot reach the derma service: %s\n", status.error_message());
    return kConnectionError;
  }
  absl::FPrintF(stderr, "dermactl: TLS failure: %s\n  gRPC's words: %s\n",
                failure->explain(c.facts), status.error_message());
  return kTlsFailure;
}

// UNAUTHENTICATED or PERMISSION_DENIED: the server's words, then what dermactl knows about why.
int ReportAccessDenied(const Connection& c, const grpc::Status& status,
                       const google::rpc::ErrorInfo& info) {
  absl::FPrintF(stderr, "dermactl: %s: %s\n", info.reason().empty() ? "ERROR" : info.reason(),
                status.error_message());
  const auto& metadata = info.metadata();
  if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    if (metadata.contains("required_role")) {
      absl::FPrintF(stderr, "  this call needs the %s role; %s has the %s role\n",
                    metadata.at("required_role"),
                    metadata.contains("principal") ? metadata.at("principal") : "the caller",
                    metadata.contains("role") ? metadata.at("role") : "a lower");
    }
  } else if (c.facts.token_origin.empty()) {
    absl::FPrintF(stderr,
                  "  no token was sent%s: give one with --token_file=FILE, token_file in the "
                  "config file, or $DERMA_TOKEN\n",
                  c.facts.client_certificate.empty()
                      ? ""
                      : " and the service does not know the client certificate's name");
  } else {
    absl::FPrintF(stderr, "  the service does not accept the token from %s%s\n",
                  c.facts.token_origin,
                  c.facts.client_certificate.empty()
                      ? ""
                      : " (the client certificate is not tried when a token is sent)");
  }
  return kAccessDenied;
}

}  // namespace

int Report(const Connection& c, const grpc::Status& status) {
  google::rpc::Status details;
  google::rpc::ErrorInfo info;
  google::rpc::BadRequest bad_request;
  if (details.ParseFromString(status.error_details())) {
    for (const auto& any : details.details()) {
      if (any.Is<google::rpc::ErrorInfo>()) any.UnpackTo(&info);
      if (any.Is<google::rpc::BadRequest>()) any.UnpackTo(&bad_request);
    }
  }
  const bool from_derma = info.domain() == "derma";
  if (!from_derma && (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)) {
    return ReportTransportFailure(c, status);
  }
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
      status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    return ReportAccessDenied(c, status, info);
  }
  absl::FPrintF(stderr, "dermactl: %s: %s\n", from_derma ? info.reason() : "ERROR",
                status.error_message());
  for (const auto& violation : bad_request.field_violations()) {
    absl::FPrintF(stderr, "  %s: %s\n", violation.field(), violation.description());
  }
  if (info.reason() == "SHUTTING_DOWN") return kConnectionError;
  return kDeviceError;
}

}  // namespace derma::cli
