#include "tests/bench/derma_server.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace derma::bench {

absl::StatusOr<std::unique_ptr<DermaServer>> DermaServer::Start(
    const config::v1::FleetConfig& config, PluginOptions options) {
  absl::StatusOr<std::unique_ptr<Plugin>> plugin = Plugin::Create(config, std::move(options));
  if (!plugin.ok()) return plugin.status();
  std::unique_ptr<DermaServer> server(new DermaServer());
  server->plugin_ = *std::move(plugin);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server->plugin_->Register(builder);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || port == 0) {
    return absl::UnavailableError("derma: cannot serve on 127.0.0.1:0");
  }
  server->address_ = absl::StrCat("127.0.0.1:", port);
  server->plugin_->Start();
  return server;
}

DermaServer::~DermaServer() {
  plugin_->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
}

absl::Status CallStatus(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

absl::StatusOr<std::string> AcquireBenchLease(v1::DeviceControl::Stub& stub,
                                              const std::string& device) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::AcquireLeaseRequest request;
  request.set_name(device);
  request.set_holder("derma_bench");
  request.set_ttl_s(absl::ToDoubleSeconds(kBenchLeaseTtl));
  v1::AcquireLeaseResponse response;
  absl::Status status = CallStatus(stub.AcquireLease(&context, request, &response),
                                   absl::StrCat("AcquireLease ", device));
  if (!status.ok()) return status;
  return response.lease().lease_id();
}

absl::Status RenewBenchLease(v1::DeviceControl::Stub& stub, const std::string& device,
                             const std::string& lease_id) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::RenewLeaseRequest request;
  request.set_name(device);
  request.set_lease_id(lease_id);
  request.set_ttl_s(absl::ToDoubleSeconds(kBenchLeaseTtl));
  v1::RenewLeaseResponse response;
  return CallStatus(stub.RenewLease(&context, request, &response),
                    absl::StrCat("RenewLease ", device));
}

}  // namespace derma::bench
