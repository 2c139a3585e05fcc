#include "plugin/cli/cli_support.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace derma::cli {

std::atomic<bool> g_interrupted{false};

Connection Connect(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  Connection connection;
  connection.channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  connection.devices = v1::DeviceControl::NewStub(connection.channel);
  connection.simulator = sim::v1::Simulator::NewStub(connection.channel);
  return connection;
}

std::unique_ptr<grpc::ClientContext> Call(bool stream) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!stream) context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

int Report(const grpc::Status& status) {
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
    absl::FPrintF(stderr, "dermactl: cannot reach the derma service: %s\n", status.error_message());
    return kConnectionError;
  }
  absl::FPrintF(stderr, "dermactl: %s: %s\n", from_derma ? info.reason() : "ERROR",
                status.error_message());
  for (const auto& violation : bad_request.field_violations()) {
    absl::FPrintF(stderr, "  %s: %s\n", violation.field(), violation.description());
  }
  if (info.reason() == "SHUTTING_DOWN") return kConnectionError;
  return kDeviceError;
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
