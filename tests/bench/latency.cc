#include "tests/bench/latency.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "derma/v1/device_control.grpc.pb.h"
#include "tests/bench/derma_server.h"
#include "tests/bench/echo.grpc.pb.h"

namespace derma::bench {
namespace {

constexpr double kDepthsMm[2] = {0.5, 0.6};
constexpr absl::Duration kLeaseTtl = absl::Seconds(60);
constexpr absl::Duration kRenewAfter = absl::Seconds(10);

// Makes `n` calls of `call` (returning absl::Status), appending each latency to `out` when set.
template <typename Call>
absl::Status TimeCalls(int n, std::vector<absl::Duration>* out, Call call) {
  for (int i = 0; i < n; ++i) {
    const auto start = std::chrono::steady_clock::now();
    absl::Status status = call();
    if (out != nullptr) out->push_back(absl::FromChrono(std::chrono::steady_clock::now() - start));
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

class Clients {
 public:
  Clients(const std::string& echo_address, const std::string& derma_address, std::string pen)
      : echo_(Echo::NewStub(NewChannel(echo_address))),
        derma_(v1::DeviceControl::NewStub(NewChannel(derma_address))),
        pen_(std::move(pen)) {
    echo_request_.set_payload("devices/pen-1");  // about the size of a GetDeviceRequest
  }

  absl::Status AcquireLease() {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::AcquireLeaseRequest request;
    request.set_name(pen_);
    request.set_holder("derma_bench");
    request.set_ttl_s(absl::ToDoubleSeconds(kLeaseTtl));
    v1::AcquireLeaseResponse response;
    absl::Status status = CallStatus(derma_->AcquireLease(&context, request, &response),
                                     absl::StrCat("AcquireLease ", pen_));
    lease_id_ = response.lease().lease_id();
    renewed_ = absl::Now();
    return status;
  }

  absl::Status RenewLeaseIfOld() {
    if (absl::Now() - renewed_ < kRenewAfter) return absl::OkStatus();
    grpc::ClientContext context;
    SetDeadline(context);
    v1::RenewLeaseRequest request;
    request.set_name(pen_);
    request.set_lease_id(lease_id_);
    request.set_ttl_s(absl::ToDoubleSeconds(kLeaseTtl));
    v1::RenewLeaseResponse response;
    renewed_ = absl::Now();
    return CallStatus(derma_->RenewLease(&context, request, &response), "RenewLease");
  }

  void ReleaseLease() {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::ReleaseLeaseRequest request;
    request.set_name(pen_);
    request.set_lease_id(lease_id_);
    v1::ReleaseLeaseResponse response;
    derma_->ReleaseLease(&context, request, &response);
  }

  absl::Status Echo() {
    grpc::ClientContext context;
    SetDeadline(context);
    EchoMessage response;
    return CallStatus(echo_->Echo(&context, echo_request_, &response), "Echo");
  }

  absl::Status GetDevice() {
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

  // Alternates between two depths so every call really changes the applied settings.
  absl::Status Configure() {
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

 private:
  std::unique_ptr<Echo::Stub> echo_;
  std::unique_ptr<v1::DeviceControl::Stub> derma_;
  const std::string pen_;
  EchoMessage echo_request_;
  std::string lease_id_;
  absl::Time renewed_;
  uint64_t configure_calls_ = 0;
};

}  // namespace

absl::StatusOr<LatencyResult> MeasureLatency(const std::string& echo_address,
                                             const std::string& derma_address,
                                             const std::string& pen,
                                             const LatencyOptions& options) {
  Clients clients(echo_address, derma_address, pen);
  if (absl::Status s = clients.AcquireLease(); !s.ok()) return s;
  std::vector<absl::Duration> echo, get_device, configure;
  // One round: `n` calls of each method, in turn.
  auto round = [&](int n, bool measure) {
    absl::Status s = clients.RenewLeaseIfOld();
    if (s.ok()) s = TimeCalls(n, measure ? &echo : nullptr, [&] { return clients.Echo(); });
    if (s.ok()) {
      s = TimeCalls(n, measure ? &get_device : nullptr, [&] { return clients.GetDevice(); });
    }
    if (s.ok()) {
      s = TimeCalls(n, measure ? &configure : nullptr, [&] { return clients.Configure(); });
    }
    return s;
  };
  absl::Status status = round(options.warmup, /*measure=*/false);
  for (int done = 0; status.ok() && done < options.calls; done += options.block) {
    status = round(std::min(options.block, options.calls - done), /*measure=*/true);
  }
  clients.ReleaseLease();
  if (!status.ok()) return status;
  return LatencyResult{ComputePercentiles(std::move(echo)),
                       ComputePercentiles(std::move(get_device)),
                       ComputePercentiles(std::move(configure))};
}

}  // namespace derma::bench
