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

}  // namespace derma::bench
