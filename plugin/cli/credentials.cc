#include "plugin/cli/credentials.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "plugin/cli/setting_files.h"

namespace derma::cli {
namespace {

std::string Named(const Setting& s) { return absl::StrCat(s.value, " (set by ", s.origin, ")"); }

absl::Status Usage(absl::string_view text) { return absl::InvalidArgumentError(text); }

// Checks which TLS settings go together; OK when the combination is complete.
absl::Status CheckTlsCombination(const ClientSettings& s) {
  if (s.tls_cert.has_value() != s.tls_key.has_value()) {
    const Setting& given = s.tls_cert.has_value() ? *s.tls_cert : *s.tls_key;
    return Usage(absl::StrCat(s.tls_cert.has_value() ? "tls_cert" : "tls_key", " (set by ",
                              given.origin, ") needs ",
                              s.tls_cert.has_value() ? "tls_key" : "tls_cert",
                              " too: a client certificate is used with its key"));
  }
  if (!s.tls_ca.has_value()) {
    for (const auto* tls_only : {&s.tls_cert, &s.tls_server_name}) {
      if (tls_only->has_value()) {
        return Usage(absl::StrCat((*tls_only)->origin, " needs tls_ca (--tls_ca=FILE): TLS is on ",
                                  "only with a CA to trust"));
      }
    }
  }
  return absl::OkStatus();
}

// The TLS credentials of `s` (tls_ca set), reading and checking each file.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsCredentials(const ClientSettings& s) {
  grpc::SslCredentialsOptions options;
  absl::StatusOr<std::string> ca = ReadCertificatesPem(*s.tls_ca);
  if (!ca.ok()) return ca.status();
  options.pem_root_certs = *std::move(ca);
  if (s.tls_cert.has_value()) {
    absl::StatusOr<std::string> cert = ReadCertificatesPem(*s.tls_cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPrivateKeyPem(*s.tls_key);
    if (!key.ok()) return key.status();
    if (absl::Status match = CheckKeyMatchesCertificate(*cert, *key, *s.tls_cert, *s.tls_key);
        !match.ok()) {
      return match;
    }
    options.pem_cert_chain = *std::move(cert);
    options.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(options);
}

class BearerTokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string& header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", header_);
    }
    methods->Proceed();
  }

 private:
  const std::string& header_;
};

class BearerTokenInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(const std::string& token)
      : header_(absl::StrCat("Bearer ", token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new BearerTokenInterceptor(header_);
  }

 private:
  const std::string header_;
};

}  // namespace

absl::StatusOr<ChannelPlan> PlanChannel(const ClientSettings& settings) {
  if (absl::Status combination = CheckTlsCombination(settings); !combination.ok()) {
    return combination;
  }
  ChannelPlan plan;
  plan.target = settings.target.has_value() ? settings.target->value : kDefaultTarget;
  plan.facts.target = plan.target;
  if (settings.tls_ca.has_value()) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> tls = TlsCredentials(settings);
    if (!tls.ok()) return tls.status();
    plan.credentials = *std::move(tls);
    plan.facts.tls = true;
    plan.facts.ca_file = Named(*settings.tls_ca);
    if (settings.tls_cert.has_value()) plan.facts.client_certificate = Named(*settings.tls_cert);
    if (settings.tls_server_name.has_value()) {
      plan.server_name_override = settings.tls_server_name->value;
      plan.facts.server_name = plan.server_name_override;
    }
  } else {
    plan.credentials = grpc::InsecureChannelCredentials();
  }
  if (settings.token_file.has_value()) {
    absl::StatusOr<std::string> token = ReadTokenFile(*settings.token_file);
    if (!token.ok()) return token.status();
    plan.token = *std::move(token);
    plan.facts.token_origin = absl::StrCat("the token file ", Named(*settings.token_file));
  } else if (settings.token.has_value()) {
    if (absl::Status valid = CheckToken(settings.token->value, settings.token->origin);
        !valid.ok()) {
      return valid;
    }
    plan.token = settings.token->value;
    plan.facts.token_origin = settings.token->origin;
  }
  if (!plan.token.empty() && !plan.facts.tls && !IsLoopbackTarget(plan.target)) {
    return Usage(absl::StrCat(
        "refusing to send the token from ", plan.facts.token_origin, " in plaintext to ",
        plan.target, ", which is not a loopback address: anyone on the way could read it. Turn ",
        "TLS on with --tls_ca=FILE (or tls_ca in the config file)"));
  }
  return plan;
}

bool IsLoopbackTarget(absl::string_view target) {
  if (absl::StartsWith(target, "unix:") || absl::StartsWith(target, "unix-abstract:")) return true;
  if (!absl::ConsumePrefix(&target, "dns:///") && !absl::ConsumePrefix(&target, "dns:")) {
    absl::ConsumePrefix(&target, "ipv4:") || absl::ConsumePrefix(&target, "ipv6:");
  }
  if (target.find(',') != absl::string_view::npos) return false;  // several addresses: be strict
  std::string host;
  if (absl::ConsumePrefix(&target, "[")) {
    host = std::string(target.substr(0, target.find(']')));
  } else if (target.find(':') == target.rfind(':')) {
    host = std::string(target.substr(0, target.find(':')));  // HOST or HOST:PORT
  } else {
    host = std::string(target);  // a bare IPv6 address
  }
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  unsigned char address[16];
  if (inet_pton(AF_INET, host.c_str(), address) == 1) return address[0] == 127;
  if (inet_pton(AF_INET6, host.c_str(), address) == 1) {
    static constexpr unsigned char kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                                     0, 0, 0, 0, 0, 0, 0, 1};
    return std::equal(address, address + 16, kLoopback6);
  }
  return false;
}

std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
BearerTokenInterceptors(const std::string& token) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> out;
  if (!token.empty()) out.push_back(std::make_unique<BearerTokenInterceptorFactory>(token));
  return out;
}

}  // namespace derma::cli
