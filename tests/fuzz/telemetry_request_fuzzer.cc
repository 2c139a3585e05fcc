// Fuzz target: StreamTelemetry requests. The input is a text-format
// derma.v1.StreamTelemetryRequest, checked with ParseTelemetryRequest (the validation
// TelemetryStream runs before it subscribes) against a fleet of four simulated devices; an
// accepted request then subscribes to a TelemetryFanout as the stream does, and two seconds of
// 100 Hz samples from every device are published and drained. Each name is also resolved as a
// run's device (FindRunDevice, used by WatchRun and CancelRun). Checked on every input:
//   - a refused request is INVALID_ARGUMENT (INVALID_FIELD, naming the field) or NOT_FOUND
//     (DEVICE_NOT_FOUND);
//   - an accepted one lists each named device once, in first-mention order, and its interval is
//     the requested one, within 0–3600 s;
//   - the subscription delivers samples of every wanted device and no other, all of them when
//     the interval is 0, and otherwise never two of one device closer than the interval.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "plugin/core/device_manager.h"
#include "plugin/core/executor.h"
#include "plugin/errors/errors.h"
#include "plugin/service/telemetry_request.h"
#include "sim/registry.h"
#include "tests/fuzz/fuzz_support.h"

namespace derma::fuzz {
namespace {

constexpr int kSamplesPerDevice = 200;
constexpr int64_t kSamplePeriodUs = 10000;

// Four devices behind a DeviceManager; only name lookups are used, so nothing is initialized
// and no executor thread exists. Immutable after construction.
struct Fleet {
  Fleet() : manager(executor, DeviceContext{clock, fanout, runs}) {
    for (const config::v1::DeviceConfig& config : CatalogueDevices()) {
      absl::StatusOr<std::unique_ptr<sim::SimDevice>> driver = sim::CreateSimDevice({config, 1});
      DERMA_FUZZ_CHECK(driver.ok(), driver.status().ToString());
      const absl::Status added = manager.AddDevice(config.id(), *std::move(driver));
      DERMA_FUZZ_CHECK(added.ok(), added.ToString());
    }
  }
  ManualExecutor executor;
  VirtualClock clock;
  TelemetryFanout fanout;
  RunRegistry runs;
  DeviceManager manager;
};

const DeviceManager& Devices() {
  static const Fleet* fleet = new Fleet();
  return fleet->manager;
}

void CheckRefusal(const absl::Status& status) {
  const v1::ErrorReason reason = ReasonOf(status);
  DERMA_FUZZ_CHECK((status.code() == absl::StatusCode::kInvalidArgument &&
                    reason == v1::ERROR_REASON_INVALID_FIELD && !ViolationsOf(status).empty()) ||
                       (status.code() == absl::StatusCode::kNotFound &&
                        reason == v1::ERROR_REASON_DEVICE_NOT_FOUND),
                   status.ToString());
}

void CheckPlan(const v1::StreamTelemetryRequest& request,
               const service::TelemetryRequestPlan& plan) {
  std::vector<uint32_t> expected;
  for (const std::string& name : request.names()) {
    absl::StatusOr<uint32_t> index = Devices().Find(name);
    DERMA_FUZZ_CHECK(index.ok(), name + ": accepted but not found");
    if (std::find(expected.begin(), expected.end(), *index) == expected.end()) {
      expected.push_back(*index);
    }
  }
  DERMA_FUZZ_CHECK(plan.devices == expected, "devices differ from the names' first mentions");
  const double interval = request.sample_interval_s();
  DERMA_FUZZ_CHECK(
      interval >= 0 && interval <= 3600 && plan.sample_interval == absl::Seconds(interval),
      absl::StrCat(interval, " s became ", absl::FormatDuration(plan.sample_interval)));
}

void CheckDelivery(const service::TelemetryRequestPlan& plan) {
  SubscriptionOptions options;
  options.devices = plan.devices;
  options.sample_interval = plan.sample_interval;
  TelemetryFanout fanout;
  std::shared_ptr<TelemetrySubscription> subscription = fanout.Subscribe(options);
  const uint32_t count = static_cast<uint32_t>(Devices().size());
  for (int i = 1; i <= kSamplesPerDevice; ++i) {
    for (uint32_t d = 0; d < count; ++d) {
      Sample sample;
      sample.device_index = d;
      sample.sequence = i;
      sample.device_time_us = 1767225600000000 + i * kSamplePeriodUs;
      fanout.Publish(sample);
    }
  }
  const int64_t interval_us = absl::ToInt64Microseconds(plan.sample_interval);
  absl::flat_hash_map<uint32_t, std::vector<int64_t>> delivered;
  for (const TelemetryEntry& entry : subscription->Drain(1 << 20).entries) {
    const uint32_t d = entry.sample.device_index;
    DERMA_FUZZ_CHECK(plan.devices.empty() || std::find(plan.devices.begin(), plan.devices.end(),
                                                       d) != plan.devices.end(),
                     absl::StrCat("sample of unwanted device ", d));
    delivered[d].push_back(entry.sample.device_time_us);
  }
  std::vector<uint32_t> wanted = plan.devices;
  if (wanted.empty()) {
    for (uint32_t d = 0; d < count; ++d) wanted.push_back(d);
  }
  DERMA_FUZZ_CHECK(
      delivered.size() == wanted.size(),
      absl::StrCat(delivered.size(), " devices delivered, ", wanted.size(), " wanted"));
  for (uint32_t d : wanted) {
    const std::vector<int64_t>& times = delivered[d];
    DERMA_FUZZ_CHECK(!times.empty(), absl::StrCat("nothing delivered for device ", d));
    if (interval_us == 0) {
      DERMA_FUZZ_CHECK(times.size() == kSamplesPerDevice, absl::StrCat(times.size(), " samples"));
    }
    for (size_t i = 1; i < times.size(); ++i) {
      DERMA_FUZZ_CHECK(times[i] - times[i - 1] >= interval_us,
                       absl::StrCat("samples ", times[i] - times[i - 1], " us apart, interval ",
                                    interval_us, " us"));
    }
  }
}

}  // namespace
}  // namespace derma::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace derma::fuzz;
  derma::v1::StreamTelemetryRequest request;
  if (!ParseText({reinterpret_cast<const char*>(data), size}, &request)) return -1;
  for (const std::string& name : request.names()) {
    absl::StatusOr<uint32_t> as_run = Devices().FindRunDevice(name);
    if (!as_run.ok()) CheckRefusal(as_run.status());
  }
  absl::StatusOr<derma::service::TelemetryRequestPlan> plan =
      derma::service::ParseTelemetryRequest(Devices(), request);
  if (!plan.ok()) {
    CheckRefusal(plan.status());
    return 0;
  }
  CheckPlan(request, *plan);
  CheckDelivery(*plan);
  return 0;
}
