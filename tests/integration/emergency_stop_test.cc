// EmergencyStop's response views and its in-server timing, through a real server: the COUNT
// view carries the count and no device, stopped_count is set in every view, and every stop is
// recorded once, in its scope, in derma_emergency_stop_duration_seconds (as a scrape exports
// it).
#include <map>
#include <string>

#include "plugin/metrics/emergency_stop_collector.h"
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using Stub = v1::DeviceControl::Stub;

using EmergencyStopTest = ServerFixture;

// derma_emergency_stop_duration_seconds' sample count per scope label, as a scrape shows it.
std::map<std::string, uint64_t> StopCounts(const Plugin& plugin) {
  std::map<std::string, uint64_t> counts;
  metrics::EmergencyStopCollector collector(plugin.emergency_stop_times());
  for (const prometheus::MetricFamily& family : collector.Collect()) {
    if (family.name != "derma_emergency_stop_duration_seconds") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        if (label.name == "scope") counts[label.value] = metric.histogram.sample_count;
      }
    }
  }
  return counts;
}

v1::EmergencyStopResponse StopAll(Stub& control, v1::StopResponseView view) {
  v1::EmergencyStopRequest request;
  request.set_all_devices(true);
  request.set_view(view);
  v1::EmergencyStopResponse response;
  EXPECT_THAT(Invoke(control, &Stub::EmergencyStop, request, &response), IsOk());
  return response;
}

TEST_F(EmergencyStopTest, CountViewOfAllDevicesCarriesTheCountAndNoDevice) {
  ASSERT_THAT(Start(kPen, Lease(kPen)), IsOk());
  ASSERT_THAT(Start(kStim, Lease(kStim)), IsOk());
  Advance(1);
  const v1::EmergencyStopResponse response = StopAll(*control_, v1::STOP_RESPONSE_VIEW_COUNT);
  EXPECT_EQ(response.stopped_count(), static_cast<uint32_t>(kDeviceCount));
  EXPECT_EQ(response.devices_size(), 0);
  EXPECT_EQ(response.unconfirmed_size(), 0);
  // What the response leaves out is already what any reader sees when it returns.
  for (const char* name : {kPen, kStim}) {
    const v1::Device device = GetDevice(name);
    EXPECT_EQ(device.state(), v1::DEVICE_STATE_ESTOPPED) << name;
    EXPECT_FALSE(device.latest_sample().output_on()) << name;
  }
}

TEST_F(EmergencyStopTest, CountViewOfOneDeviceCarriesOneAndNoDevice) {
  ASSERT_THAT(Start(kStim, Lease(kStim)), IsOk());
  Advance(1);
  v1::EmergencyStopRequest request;
  request.set_name(kStim);
  request.set_view(v1::STOP_RESPONSE_VIEW_COUNT);
  v1::EmergencyStopResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::EmergencyStop, request, &response), IsOk());
  EXPECT_EQ(response.stopped_count(), 1u);
  EXPECT_EQ(response.devices_size(), 0);
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(EmergencyStopTest, EveryViewCarriesTheStoppedCount) {
  for (const v1::StopResponseView view :
       {v1::STOP_RESPONSE_VIEW_UNSPECIFIED, v1::STOP_RESPONSE_VIEW_FULL,
        v1::STOP_RESPONSE_VIEW_SUMMARY, v1::STOP_RESPONSE_VIEW_COUNT}) {
    EXPECT_EQ(StopAll(*control_, view).stopped_count(), static_cast<uint32_t>(kDeviceCount))
        << v1::StopResponseView_Name(view);
  }
}

TEST_F(EmergencyStopTest, EachStopIsTimedOnceInItsScope) {
  EXPECT_EQ(StopCounts(*plugin_), (std::map<std::string, uint64_t>{{"all", 0}, {"device", 0}}));
  v1::EmergencyStopRequest one;
  one.set_name(kPen);
  v1::EmergencyStopResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::EmergencyStop, one, &response), IsOk());
  EXPECT_EQ(StopCounts(*plugin_), (std::map<std::string, uint64_t>{{"all", 0}, {"device", 1}}));
  StopAll(*control_, v1::STOP_RESPONSE_VIEW_COUNT);
  StopAll(*control_, v1::STOP_RESPONSE_VIEW_FULL);
  EXPECT_EQ(StopCounts(*plugin_), (std::map<std::string, uint64_t>{{"all", 2}, {"device", 1}}));
  // A refused stop (no target) switched nothing off: not timed.
  v1::EmergencyStopRequest none;
  EXPECT_FALSE(Invoke(*control_, &Stub::EmergencyStop, none, &response).ok());
  EXPECT_EQ(StopCounts(*plugin_), (std::map<std::string, uint64_t>{{"all", 2}, {"device", 1}}));
  EXPECT_GT(plugin_->emergency_stop_times().totals(StopScope::kAll).sum, absl::ZeroDuration());
}

}  // namespace
}  // namespace derma::testing
