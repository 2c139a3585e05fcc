#include "tests/bench/pen_client.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/bench/derma_server.h"

namespace derma::bench {
namespace {

constexpr double kDepthsMm[2] = {0.5, 0.6};
constexpr absl::Duration kRenewAfter = absl::Seconds(10);

}  // namespace

PenClient::PenClient(const std::string& derma_address, std::string pen)
    : derma_(v1::DeviceControl::NewStub(NewChannel(derma_address))), pen_(std::move(pen)) {}

absl::Status PenClient::AcquireLease() {
  absl::StatusOr<std::string> lease = AcquireBenchLease(*derma_, pen_);
  renewed_ = absl::Now();
  if (!lease.ok()) return lease.status();
  lease_id_ = *std::move(lease);
  return absl::OkStatus();
}

absl::Status PenClient::RenewLeaseIfOld() {
  if (absl::Now() - renewed_ < kRenewAfter) return absl::OkStatus();
  renewed_ = absl::Now();
  return RenewBenchLease(*derma_, pen_, lease_id_);
}

void PenClient::ReleaseLease() {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::ReleaseLeaseRequest request;
  request.set_name(pen_);
  request.set_lease_id(lease_id_);
  v1::ReleaseLeaseResponse response;
  derma_->ReleaseLease(&context, request, &response);
}

absl::Status PenClient::GetDevice() {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::GetDeviceRequest request;
  request.set_name(pen_);
  v1::GetDeviceResponse response;
  absl::Status status = CallStatus(derma_->GetDevice(&context, request, &response), "GetDevice");
  if (status.ok() && response.device().name() != pen_) {
    return absl::InternalError(absl::StrCat("GetDevice returned ", response.device().name()));
  }
  return status;
}

absl::Status PenClient::Configure() {
  const double depth = kDepthsMm[configure_calls_++ % 2];
  grpc::ClientContext context;
  SetDeadline(context);
  v1::ConfigureRequest request;
  request.set_name(pen_);
  request.set_lease_id(lease_id_);
  request.mutable_settings()->mutable_microneedling()->set_needle_depth_mm(depth);
  v1::ConfigureResponse response;
  absl::Status status = CallStatus(derma_->Configure(&context, request, &response), "Configure");
  const double applied = response.applied_settings().microneedling().needle_depth_mm();
  if (status.ok() && std::abs(applied - depth) > 1e-9) {
    return absl::InternalError(
        absl::StrCat("Configure applied depth ", applied, ", asked ", depth));
  }
  return status;
}

}  // namespace derma::bench
