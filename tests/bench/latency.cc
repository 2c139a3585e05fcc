#include "tests/bench/latency.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/bench/derma_server.h"
#include "tests/bench/echo.grpc.pb.h"
#include "tests/bench/pen_client.h"

namespace derma::bench {
namespace {

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
      : echo_(Echo::NewStub(NewChannel(echo_address))), pen_(derma_address, std::move(pen)) {
    echo_request_.set_payload("devices/pen-1");  // about the size of a GetDeviceRequest
  }

  PenClient& pen() { return pen_; }

  absl::Status Echo() {
    grpc::ClientContext context;
    SetDeadline(context);
    EchoMessage response;
    return CallStatus(echo_->Echo(&context, echo_request_, &response), "Echo");
  }

 private:
  std::unique_ptr<Echo::Stub> echo_;
  PenClient pen_;
  EchoMessage echo_request_;
};

}  // namespace

absl::StatusOr<LatencyResult> MeasureLatency(const std::string& echo_address,
                                             const std::string& derma_address,
                                             const std::string& pen,
                                             const LatencyOptions& options) {
  Clients clients(echo_address, derma_address, pen);
  if (absl::Status s = clients.pen().AcquireLease(); !s.ok()) return s;
  std::vector<absl::Duration> echo, get_device, configure;
  // One round: `n` calls of each method, in turn.
  auto round = [&](int n, bool measure) {
    absl::Status s = clients.pen().RenewLeaseIfOld();
    if (s.ok()) s = TimeCalls(n, measure ? &echo : nullptr, [&] { return clients.Echo(); });
    if (s.ok()) {
      s = TimeCalls(n, measure ? &get_device : nullptr, [&] { return clients.pen().GetDevice(); });
    }
    if (s.ok()) {
      s = TimeCalls(n, measure ? &configure : nullptr, [&] { return clients.pen().Configure(); });
    }
    return s;
  };
  absl::Status status = round(options.warmup, /*measure=*/false);
  for (int done = 0; status.ok() && done < options.calls; done += options.block) {
    status = round(std::min(options.block, options.calls - done), /*measure=*/true);
  }
  clients.pen().ReleaseLease();
  if (!status.ok()) return status;
  return LatencyResult{ComputePercentiles(std::move(echo)),
                       ComputePercentiles(std::move(get_device)),
                       ComputePercentiles(std::move(configure))};
}

}  // namespace derma::bench
