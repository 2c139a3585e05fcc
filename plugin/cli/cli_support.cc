#include "plugin/cli/cli_support.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/support/log.h"

namespace derma::cli {

std::atomic<bool> g_interrupted{false};

namespace {

void SwallowGrpcLog(gpr_log_func_args*) {}

}  // namespace

Connection Connect(const ChannelPlan& plan) {
  // gRPC logs a failed handshake or connection attempt on stderr in its own words (and more than
  // once); dermactl reports the failed call instead. $GRPC_VERBOSITY keeps them for debugging.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function(SwallowGrpcLog);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (!plan.server_name_override.empty()) args.SetSslTargetNameOverride(plan.server_name_override);
  Connection connection;
  connection.facts = plan.facts;
  connection.channel = grpc::experimental::CreateCustomChannelWithInterceptors(
      plan.target, plan.credentials, args, BearerTokenInterceptors(plan.token));
  connection.devices = v1::DeviceControl::NewStub(connection.channel);
  connection.simulator = sim::v1::Simulator::NewStub(connection.channel);
  return connection;
}

std::unique_ptr<grpc::ClientContext> Call(bool stream) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!stream) context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

std::string Json(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

std::string DeviceName(const std::string& arg) {
  return absl::StartsWith(arg, "devices/") ? arg : "devices/" + arg;
}

LeaseKeeper::LeaseKeeper(v1::DeviceControl::Stub& stub, const std::string& device)
    : stub_(stub), device_(device) {
  char host[256] = "host";
  gethostname(host, sizeof(host) - 1);
  v1::AcquireLeaseRequest request;
  request.set_name(device_);
  request.set_holder(absl::StrFormat("dermactl@%s", host));
  request.set_ttl_s(kTtlS);
  v1::AcquireLeaseResponse response;
  status_ = stub_.AcquireLease(Call().get(), request, &response);
  if (!status_.ok()) return;
  lease_id_ = response.lease().lease_id();
  renewer_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(kTtlS / 3))) {
      v1::RenewLeaseRequest renew;
      renew.set_name(device_);
      renew.set_lease_id(lease_id_);
      renew.set_ttl_s(kTtlS);
      v1::RenewLeaseResponse renewed;
      (void)stub_.RenewLease(Call().get(), renew, &renewed);
    }
  });
}

LeaseKeeper::~LeaseKeeper() {
  if (!status_.ok()) return;
  stop_.Notify();
  renewer_.join();
  v1::ReleaseLeaseRequest request;
  request.set_name(device_);
  request.set_lease_id(lease_id_);
  v1::ReleaseLeaseResponse response;
  (void)stub_.ReleaseLease(Call().get(), request, &response);
}

}  // namespace derma::cli
