#include "tests/bench/estop.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "tests/bench/echo.grpc.pb.h"

namespace derma::bench {
namespace {

// Counts, in `result`, every way `response` falls short of "every device ESTOPPED with its
// output off".
void Check(const v1::EmergencyStopResponse& response, const std::vector<std::string>& names,
           EstopResult& result) {
  absl::flat_hash_set<std::string> seen;
  for (const v1::Device& device : response.devices()) {
    seen.insert(device.name());
    ++result.devices_checked;
    if (device.state() != v1::DEVICE_STATE_ESTOPPED) ++result.not_estopped;
    if (device.latest_sample().output_on()) ++result.outputs_on;
  }
  for (const std::string& name : names) {
    if (!seen.contains(name)) ++result.missing;
  }
}

// Times ListDevices of all `n` devices.
absl::StatusOr<absl::Duration> TimeListDevices(LoadedFleet& fleet, size_t n) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::ListDevicesRequest request;
  request.set_page_size(static_cast<int32_t>(n));
  v1::ListDevicesResponse response;
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = fleet.stub().ListDevices(&context, request, &response);
  const absl::Duration latency = absl::FromChrono(std::chrono::steady_clock::now() - start);
  if (absl::Status s = CallStatus(status, "ListDevices"); !s.ok()) return s;
  return latency;
}

// Times `n` bare Echo calls, appending each latency to `out`.
absl::Status TimeEchoes(Echo::Stub& echo, int n, std::vector<absl::Duration>& out) {
  EchoMessage request;
  request.set_payload("devices/pen-1");
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext context;
    SetDeadline(context);
    EchoMessage response;
    const auto start = std::chrono::steady_clock::now();
    const grpc::Status status = echo.Echo(&context, request, &response);
    out.push_back(absl::FromChrono(std::chrono::steady_clock::now() - start));
    if (absl::Status s = CallStatus(status, "Echo"); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EstopResult> MeasureEmergencyStop(LoadedFleet& fleet, int calls,
                                                 int restart_per_call,
                                                 const std::string& echo_address, int echo_calls) {
  std::unique_ptr<Echo::Stub> echo = Echo::NewStub(NewChannel(echo_address));
  EstopResult result;
  result.calls = calls;
  const size_t n = fleet.names().size();
  result.restarted_per_call = static_cast<int>(std::min<size_t>(restart_per_call, n));
  std::vector<absl::Duration> latencies, list_latencies, echo_latencies;
  size_t next = 0;  // rotating start of the restarted subset
  for (int call = 0; call < calls; ++call) {
    if (call > 0) {
      if (absl::Status s = fleet.RenewLeasesIfOld(); !s.ok()) return s;
      for (int k = 0; k < result.restarted_per_call; ++k, next = (next + 1) % n) {
        if (absl::Status s = fleet.Restart(next); !s.ok()) return s;
      }
    }
    if (absl::Status s = TimeEchoes(*echo, echo_calls, echo_latencies); !s.ok()) return s;
    grpc::ClientContext context;
    SetDeadline(context);
    v1::EmergencyStopRequest request;
    request.set_all_devices(true);
    request.set_view(v1::STOP_RESPONSE_VIEW_SUMMARY);  // name, state, latest sample per device
    v1::EmergencyStopResponse response;
    const auto start = std::chrono::steady_clock::now();
    const grpc::Status status = fleet.stub().EmergencyStop(&context, request, &response);
    latencies.push_back(absl::FromChrono(std::chrono::steady_clock::now() - start));
    if (absl::Status s = CallStatus(status, "EmergencyStop(all_devices)"); !s.ok()) return s;
    Check(response, fleet.names(), result);
    result.response_bytes = response.ByteSizeLong();
    absl::StatusOr<absl::Duration> list = TimeListDevices(fleet, n);
    if (!list.ok()) return list.status();
    list_latencies.push_back(*list);
  }
  result.first = latencies.front();
  result.latency = ComputePercentiles(std::move(latencies));
  result.list_devices = ComputePercentiles(std::move(list_latencies));
  if (!echo_latencies.empty())
    result.echo_under_load = ComputePercentiles(std::move(echo_latencies));
  return result;
}

}  // namespace derma::bench
