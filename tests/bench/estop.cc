#include "tests/bench/estop.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "tests/bench/echo.grpc.pb.h"

namespace derma::bench {
namespace {

// Counts, in `result`, every way `devices` fall short of "every device ESTOPPED with its output
// off".
void Check(const google::protobuf::RepeatedPtrField<v1::Device>& devices,
           const std::vector<std::string>& names, EstopResult& result) {
  absl::flat_hash_set<std::string> seen;
  for (const v1::Device& device : devices) {
    seen.insert(device.name());
    ++result.devices_checked;
    if (device.state() != v1::DEVICE_STATE_ESTOPPED) ++result.not_estopped;
    if (device.latest_sample().output_on()) ++result.outputs_on;
  }
  for (const std::string& name : names) {
    if (!seen.contains(name)) ++result.missing;
  }
}

// ListDevices of all `n` devices, timed.
absl::StatusOr<absl::Duration> TimeListDevices(LoadedFleet& fleet, size_t n,
                                               v1::ListDevicesResponse& response) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::ListDevicesRequest request;
  request.set_page_size(static_cast<int32_t>(n));
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

// One EmergencyStop(all_devices) in `view`: its response time, and its time in the server (the
// growth of the plugin's all-devices stop total, as no other stop runs meanwhile).
struct TimedStop {
  absl::Duration response_time;
  absl::Duration in_server;
  bool recorded = false;  // the in-server count grew by exactly one
  v1::EmergencyStopResponse response;
};

absl::StatusOr<TimedStop> Stop(LoadedFleet& fleet, v1::StopResponseView view) {
  const EmergencyStopTimes& times = fleet.plugin().emergency_stop_times();
  const DurationHistogram::Totals before = times.totals(StopScope::kAll);
  grpc::ClientContext context;
  SetDeadline(context);
  v1::EmergencyStopRequest request;
  request.set_all_devices(true);
  request.set_view(view);
  TimedStop stop;
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = fleet.stub().EmergencyStop(&context, request, &stop.response);
  stop.response_time = absl::FromChrono(std::chrono::steady_clock::now() - start);
  if (absl::Status s = CallStatus(status, "EmergencyStop(all_devices)"); !s.ok()) return s;
  const DurationHistogram::Totals after = times.totals(StopScope::kAll);
  stop.in_server = after.sum - before.sum;
  stop.recorded = after.count == before.count + 1;
  return stop;
}

}  // namespace

std::string StopViewName(v1::StopResponseView view) {
  switch (view) {
    case v1::STOP_RESPONSE_VIEW_FULL:
      return "FULL";
    case v1::STOP_RESPONSE_VIEW_SUMMARY:
      return "SUMMARY";
    case v1::STOP_RESPONSE_VIEW_COUNT:
      return "COUNT";
    default:
      return absl::StrCat("view ", static_cast<int>(view));
  }
}

absl::StatusOr<EstopResult> MeasureEmergencyStop(LoadedFleet& fleet, const EstopOptions& options) {
  std::unique_ptr<Echo::Stub> echo = Echo::NewStub(NewChannel(options.echo_address));
  EstopResult result;
  result.calls = options.calls;
  const size_t n = fleet.names().size();
  result.restarted_per_call = static_cast<int>(std::min<size_t>(options.restart_per_call, n));
  std::vector<absl::Duration> in_server, list_latencies, echo_latencies;
  std::array<std::vector<absl::Duration>, kStopViews.size()> responses;
  size_t next = 0;  // rotating start of the restarted subset
  for (int call = 0; call < options.calls; ++call) {
    if (call > 0) {
      if (absl::Status s = fleet.RenewLeasesIfOld(); !s.ok()) return s;
      for (int k = 0; k < result.restarted_per_call; ++k, next = (next + 1) % n) {
        if (absl::Status s = fleet.Restart(next); !s.ok()) return s;
      }
    }
    if (absl::Status s = TimeEchoes(*echo, options.echo_calls, echo_latencies); !s.ok()) return s;
    const size_t v = static_cast<size_t>(call) % kStopViews.size();
    absl::StatusOr<TimedStop> stop = Stop(fleet, kStopViews[v]);
    if (!stop.ok()) return stop.status();
    if (!stop->recorded) ++result.unrecorded;
    if (stop->response.stopped_count() != n) ++result.bad_counts;
    result.response_bytes[v] = stop->response.ByteSizeLong();
    if (call == 0) {
      result.first = stop->response_time;
      result.first_in_server = stop->in_server;
    } else {
      responses[v].push_back(stop->response_time);
      in_server.push_back(stop->in_server);
    }
    v1::ListDevicesResponse list;
    absl::StatusOr<absl::Duration> list_time = TimeListDevices(fleet, n, list);
    if (!list_time.ok()) return list_time.status();
    list_latencies.push_back(*list_time);
    // A COUNT response has no devices (it must not): the devices as ListDevices shows them
    // right after the call, when nothing has restarted them, are what is checked instead.
    if (kStopViews[v] == v1::STOP_RESPONSE_VIEW_COUNT) {
      if (stop->response.devices_size() != 0) ++result.bad_counts;
      Check(list.devices(), fleet.names(), result);
    } else {
      Check(stop->response.devices(), fleet.names(), result);
    }
  }
  if (!in_server.empty()) result.in_server = ComputePercentiles(std::move(in_server));
  for (size_t v = 0; v < kStopViews.size(); ++v) {
    if (!responses[v].empty()) result.response[v] = ComputePercentiles(std::move(responses[v]));
  }
  result.list_devices = ComputePercentiles(std::move(list_latencies));
  if (!echo_latencies.empty()) {
    result.echo_under_load = ComputePercentiles(std::move(echo_latencies));
  }
  return result;
}

}  // namespace derma::bench
