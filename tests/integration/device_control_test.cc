// The happy path of every unary derma.v1.DeviceControl RPC through a real server (WatchRun and
// StreamTelemetry are in run_test.cc and telemetry_test.cc).
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::ElementsAre;
using Stub = v1::DeviceControl::Stub;

using DeviceControlTest = ServerFixture;

TEST_F(DeviceControlTest, ListDevicesReturnsTheFleetInNameOrder) {
  v1::ListDevicesResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::ListDevices, v1::ListDevicesRequest(), &response), IsOk());
  std::vector<std::string> names;
  for (const v1::Device& d : response.devices()) {
    names.push_back(d.name());
    EXPECT_TRUE(d.simulated()) << d.name();
    EXPECT_EQ(d.state(), v1::DEVICE_STATE_IDLE) << d.name();
    EXPECT_FALSE(d.capabilities().parameters().empty()) << d.name();
  }
  EXPECT_THAT(names, ElementsAre(kPen, kPen2, kPenShort, kPenWorn, kStim, kStim2));
  EXPECT_TRUE(response.next_page_token().empty());
}

TEST_F(DeviceControlTest, ListDevicesPagesThroughEveryDeviceOnce) {
  v1::ListDevicesRequest request;
  request.set_page_size(4);
  v1::ListDevicesResponse first;
  ASSERT_THAT(Invoke(*control_, &Stub::ListDevices, request, &first), IsOk());
  ASSERT_EQ(first.devices_size(), 4);
  ASSERT_FALSE(first.next_page_token().empty());
  request.set_page_token(first.next_page_token());
  v1::ListDevicesResponse second;
  ASSERT_THAT(Invoke(*control_, &Stub::ListDevices, request, &second), IsOk());
  ASSERT_EQ(second.devices_size(), 2);
  EXPECT_EQ(second.devices(0).name(), kStim);
  EXPECT_EQ(second.devices(1).name(), kStim2);
  EXPECT_TRUE(second.next_page_token().empty());
}

TEST_F(DeviceControlTest, GetDeviceDescribesTheModelAndCartridge) {
  const v1::Device pen = GetDevice(kPen2);
  EXPECT_EQ(pen.name(), kPen2);
  EXPECT_EQ(pen.kind(), v1::DEVICE_KIND_MICRONEEDLING);
  EXPECT_EQ(pen.model(), "DP-300");
  EXPECT_FALSE(pen.serial_number().empty());
  EXPECT_FALSE(pen.firmware_version().empty());
  EXPECT_EQ(pen.cartridge().needle_count(), 36u);
  EXPECT_DOUBLE_EQ(pen.cartridge().needle_length_mm(), 3.0);
  EXPECT_TRUE(pen.settings().has_microneedling());
  EXPECT_FALSE(pen.has_lease());
  EXPECT_TRUE(pen.active_run().empty());
  EXPECT_TRUE(pen.has_latest_sample());

  const v1::Device stim = GetDevice(kStim2);
  EXPECT_EQ(stim.kind(), v1::DEVICE_KIND_MICROCURRENT);
  EXPECT_EQ(stim.model(), "MC-5");
  EXPECT_DOUBLE_EQ(stim.capabilities().compliance_voltage_v(), 12);
  EXPECT_TRUE(stim.latest_sample().has_microcurrent());
}

TEST_F(DeviceControlTest, AcquireLeaseGrantsTtlFromDeviceNow) {
  const int64_t now_us = Advance(1);
  v1::AcquireLeaseRequest request;
  request.set_name(kPen);
  request.set_holder("script-a");
  request.set_ttl_s(10);
  v1::AcquireLeaseResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::AcquireLease, request, &response), IsOk());
  EXPECT_EQ(response.lease().device(), kPen);
  EXPECT_EQ(response.lease().holder(), "script-a");
  EXPECT_FALSE(response.lease().lease_id().empty());
  EXPECT_EQ(Micros(response.lease().expire_time()), now_us + 10'000'000);

  const v1::Device device = GetDevice(kPen);
  EXPECT_EQ(device.lease().holder(), "script-a");
  EXPECT_EQ(Micros(device.lease().expire_time()), now_us + 10'000'000);
}

TEST_F(DeviceControlTest, RenewLeaseExtendsToNowPlusTtl) {
  const std::string lease = Lease(kPen, 10);
  const int64_t now_us = Advance(5);
  v1::RenewLeaseRequest request;
  request.set_name(kPen);
  request.set_lease_id(lease);
  request.set_ttl_s(30);
  v1::RenewLeaseResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::RenewLease, request, &response), IsOk());
  EXPECT_EQ(response.lease().lease_id(), lease);
  EXPECT_EQ(Micros(response.lease().expire_time()), now_us + 30'000'000);
  Advance(20);  // past the original expiry
  EXPECT_THAT(Configure(kPen, lease, PenSettings(1.0, 100)), IsOk());
}

TEST_F(DeviceControlTest, ReleaseLeaseFreesTheDevice) {
  const std::string lease = Lease(kPen, 60, "first");
  v1::ReleaseLeaseRequest request;
  request.set_name(kPen);
  request.set_lease_id(lease);
  v1::ReleaseLeaseResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::ReleaseLease, request, &response), IsOk());
  EXPECT_FALSE(GetDevice(kPen).has_lease());
  EXPECT_FALSE(Lease(kPen, 60, "second").empty());
}

TEST_F(DeviceControlTest, ConfigureQuantizesAndReturnsAppliedSettings) {
  const std::string lease = Lease(kPen);
  v1::ConfigureResponse response;
  ASSERT_THAT(Configure(kPen, lease, PenSettings(1.23, 100.4), &response), IsOk());
  EXPECT_DOUBLE_EQ(response.applied_settings().microneedling().needle_depth_mm(), 1.25);
  EXPECT_DOUBLE_EQ(response.applied_settings().microneedling().stroke_rate_hz(), 100);
  EXPECT_DOUBLE_EQ(response.applied_settings().microneedling().session_limit_s(), 1200);
  EXPECT_DOUBLE_EQ(response.device().settings().microneedling().needle_depth_mm(), 1.25);
  EXPECT_DOUBLE_EQ(GetDevice(kPen).settings().microneedling().needle_depth_mm(), 1.25);
}

TEST_F(DeviceControlTest, ConfigureValidateOnlyAppliesNothing) {
  const std::string lease = Lease(kPen);
  v1::ConfigureRequest request;
  request.set_name(kPen);
  request.set_lease_id(lease);
  *request.mutable_settings() = PenSettings(2.0, 120);
  request.set_validate_only(true);
  v1::ConfigureResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::Configure, request, &response), IsOk());
  EXPECT_DOUBLE_EQ(response.applied_settings().microneedling().needle_depth_mm(), 2.0);
  EXPECT_DOUBLE_EQ(GetDevice(kPen).settings().microneedling().needle_depth_mm(), 0.5);
}

TEST_F(DeviceControlTest, ConfigureWhileRunningAppliesLive) {
  const std::string lease = Lease(kPen2);
  ASSERT_THAT(Configure(kPen2, lease, PenSettings(1.0, 60)), IsOk());
  ASSERT_THAT(Start(kPen2, lease), IsOk());
  Advance(1);
  EXPECT_NEAR(GetDevice(kPen2).latest_sample().microneedling().stroke_rate_hz(), 60, 1);
  v1::ConfigureResponse response;
  ASSERT_THAT(Configure(kPen2, lease, PenSettings(1.0, 140), &response), IsOk());
  EXPECT_EQ(response.device().state(), v1::DEVICE_STATE_RUNNING);
  Advance(1);
  EXPECT_NEAR(GetDevice(kPen2).latest_sample().microneedling().stroke_rate_hz(), 140, 1);
}

TEST_F(DeviceControlTest, StartSwitchesTheOutputOn) {
  const std::string lease = Lease(kPen);
  v1::StartRequest request;
  request.set_name(kPen);
  request.set_lease_id(lease);
  v1::StartResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::Start, request, &response), IsOk());
  EXPECT_EQ(response.device().state(), v1::DEVICE_STATE_RUNNING);
  Advance(1);
  const v1::Device device = GetDevice(kPen);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_RUNNING);
  EXPECT_TRUE(device.latest_sample().output_on());
  EXPECT_GT(device.latest_sample().microneedling().strokes_total(), 0u);
}

TEST_F(DeviceControlTest, PauseAndResumeSwitchTheOutput) {
  const std::string lease = Lease(kStim);
  ASSERT_THAT(Start(kStim, lease), IsOk());
  Advance(1);
  v1::PauseRequest pause;
  pause.set_name(kStim);
  pause.set_lease_id(lease);
  v1::PauseResponse paused;
  ASSERT_THAT(Invoke(*control_, &Stub::Pause, pause, &paused), IsOk());
  EXPECT_EQ(paused.device().state(), v1::DEVICE_STATE_PAUSED);
  Advance(0.5);
  EXPECT_FALSE(GetDevice(kStim).latest_sample().output_on());

  v1::ResumeRequest resume;
  resume.set_name(kStim);
  resume.set_lease_id(lease);
  v1::ResumeResponse resumed;
  ASSERT_THAT(Invoke(*control_, &Stub::Resume, resume, &resumed), IsOk());
  EXPECT_EQ(resumed.device().state(), v1::DEVICE_STATE_RUNNING);
  Advance(0.5);
  EXPECT_TRUE(GetDevice(kStim).latest_sample().output_on());
}

TEST_F(DeviceControlTest, StopNeedsNoLeaseAndShowsTheOutputOffWhenItReturns) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(Start(kPen, lease), IsOk());
  Advance(1);
  ASSERT_TRUE(GetDevice(kPen).latest_sample().output_on());
  v1::StopRequest request;
  request.set_name(kPen);
  v1::StopResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::Stop, request, &response), IsOk());
  EXPECT_EQ(response.device().state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(response.device().latest_sample().output_on());
  EXPECT_FALSE(GetDevice(kPen).latest_sample().output_on());
}

TEST_F(DeviceControlTest, StopIsIdempotentInEveryState) {
  v1::StopRequest request;
  request.set_name(kPen);
  v1::StopResponse response;
  EXPECT_THAT(Invoke(*control_, &Stub::Stop, request, &response), IsOk());
  EXPECT_EQ(response.device().state(), v1::DEVICE_STATE_IDLE);
  EXPECT_THAT(Invoke(*control_, &Stub::Stop, request, &response), IsOk());
  ASSERT_THAT(SetLink(kPen, false), IsOk());
  Advance(0.05);
  EXPECT_THAT(Invoke(*control_, &Stub::Stop, request, &response), IsOk());
  EXPECT_EQ(response.device().state(), v1::DEVICE_STATE_OFFLINE);
}

TEST_F(DeviceControlTest, EmergencyStopLatchesOneDeviceWithoutLease) {
  const std::string lease = Lease(kStim);
  ASSERT_THAT(Start(kStim, lease), IsOk());
  Advance(1);
  v1::EmergencyStopRequest request;
  request.set_name(kStim);
  v1::EmergencyStopResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::EmergencyStop, request, &response), IsOk());
  ASSERT_EQ(response.devices_size(), 1);
  EXPECT_EQ(response.devices(0).name(), kStim);
  EXPECT_EQ(response.devices(0).state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_FALSE(response.devices(0).latest_sample().output_on());
  Advance(1);
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(DeviceControlTest, EmergencyStopAllDevicesLatchesTheWholeFleet) {
  ASSERT_THAT(Start(kPen, Lease(kPen)), IsOk());
  ASSERT_THAT(Start(kStim, Lease(kStim)), IsOk());
  Advance(1);
  v1::EmergencyStopRequest request;
  request.set_all_devices(true);
  v1::EmergencyStopResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::EmergencyStop, request, &response), IsOk());
  EXPECT_EQ(response.devices_size(), kDeviceCount);
  for (const v1::Device& d : response.devices()) {
    EXPECT_EQ(d.state(), v1::DEVICE_STATE_ESTOPPED) << d.name();
    EXPECT_FALSE(d.latest_sample().output_on()) << d.name();
  }
}

TEST_F(DeviceControlTest, EmergencyStopSummaryViewCarriesOnlyWhatShowsTheOutputsOff) {
  ASSERT_THAT(Start(kPen, Lease(kPen)), IsOk());
  Advance(1);
  v1::EmergencyStopRequest request;
  request.set_all_devices(true);
  request.set_view(v1::STOP_RESPONSE_VIEW_SUMMARY);
  v1::EmergencyStopResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::EmergencyStop, request, &response), IsOk());
  EXPECT_EQ(response.devices_size(), kDeviceCount);
  for (const v1::Device& d : response.devices()) {
    EXPECT_FALSE(d.name().empty());
    EXPECT_EQ(d.state(), v1::DEVICE_STATE_ESTOPPED) << d.name();
    EXPECT_TRUE(d.has_latest_sample()) << d.name();
    EXPECT_FALSE(d.latest_sample().output_on()) << d.name();
    EXPECT_FALSE(d.has_capabilities()) << "the summary view leaves capabilities out";
    EXPECT_FALSE(d.has_settings());
  }
}

TEST_F(DeviceControlTest, ResetEmergencyStopReturnsToIdle) {
  const std::string lease = Lease(kPen);
  v1::EmergencyStopRequest stop;
  stop.set_name(kPen);
  v1::EmergencyStopResponse stopped;
  ASSERT_THAT(Invoke(*control_, &Stub::EmergencyStop, stop, &stopped), IsOk());
  v1::ResetEmergencyStopRequest request;
  request.set_name(kPen);
  request.set_lease_id(lease);
  v1::ResetEmergencyStopResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::ResetEmergencyStop, request, &response), IsOk());
  EXPECT_EQ(response.device().state(), v1::DEVICE_STATE_IDLE);
  EXPECT_THAT(Start(kPen, lease), IsOk());
}

TEST_F(DeviceControlTest, ResetFaultReturnsToIdleOnceTheConditionIsGone) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(Inject(kPen, v1::FAULT_KIND_CARTRIDGE_JAM), IsOk());
  Advance(0.05);
  ASSERT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_FAULT);
  ASSERT_THAT(ClearFault(kPen, v1::FAULT_KIND_CARTRIDGE_JAM), IsOk());
  Advance(0.05);
  ASSERT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_FAULT);  // latched until reset
  v1::ResetFaultRequest request;
  request.set_name(kPen);
  request.set_lease_id(lease);
  v1::ResetFaultResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::ResetFault, request, &response), IsOk());
  EXPECT_EQ(response.device().state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(response.device().has_active_fault());
}

TEST_F(DeviceControlTest, StartRunReturnsTheRunningRun) {
  const std::string lease = Lease(kPen, 60, "protocol-7");
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(2, PenSettings(1.0, 100)), Step(3)}, &run, "req-1"),
              IsOk());
  EXPECT_THAT(run.name(), ::testing::StartsWith(std::string(kPen) + "/runs/"));
  EXPECT_EQ(run.device(), kPen);
  EXPECT_EQ(run.state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(run.steps_size(), 2);
  EXPECT_DOUBLE_EQ(run.total_duration_s(), 5);
  EXPECT_EQ(run.request_id(), "req-1");
  EXPECT_EQ(run.holder(), "protocol-7");
  EXPECT_TRUE(run.has_start_time());
  EXPECT_FALSE(run.has_end_time());
  const v1::Device device = GetDevice(kPen);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_RUNNING);
  EXPECT_EQ(device.active_run(), run.name());
}

TEST_F(DeviceControlTest, GetRunFollowsTheRunToItsEnd) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(2, PenSettings(1.0, 100)), Step(3)}, &run), IsOk());
  Advance(2.5);
  v1::Run mid = GetRun(run.name());
  EXPECT_EQ(mid.state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(mid.current_step(), 1u);
  Advance(3);
  v1::Run done = GetRun(run.name());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.end_reason(), v1::RUN_END_REASON_COMPLETED);
  EXPECT_DOUBLE_EQ(done.ledger().output_on_s(), 5);
  EXPECT_GT(done.ledger().strokes_delivered(), 0u);
  EXPECT_EQ(Micros(done.end_time()) - Micros(done.start_time()), 5'000'000);
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(DeviceControlTest, ListRunsIsNewestFirstPerDeviceAndFleetWide) {
  const std::string pen_lease = Lease(kPen);
  const std::string stim_lease = Lease(kStim);
  v1::Run first, second, stim_run;
  ASSERT_THAT(StartRun(kPen, pen_lease, {Step(1)}, &first), IsOk());
  Advance(1.5);
  ASSERT_THAT(StartRun(kPen, pen_lease, {Step(1)}, &second), IsOk());
  Advance(0.5);
  ASSERT_THAT(StartRun(kStim, stim_lease, {Step(1)}, &stim_run), IsOk());

  v1::ListRunsRequest request;
  request.set_parent(kPen);
  v1::ListRunsResponse pen_runs;
  ASSERT_THAT(Invoke(*control_, &Stub::ListRuns, request, &pen_runs), IsOk());
  ASSERT_EQ(pen_runs.runs_size(), 2);
  EXPECT_EQ(pen_runs.runs(0).name(), second.name());
  EXPECT_EQ(pen_runs.runs(1).name(), first.name());

  request.set_parent("devices/-");
  request.set_page_size(2);
  v1::ListRunsResponse page;
  ASSERT_THAT(Invoke(*control_, &Stub::ListRuns, request, &page), IsOk());
  ASSERT_EQ(page.runs_size(), 2);
  EXPECT_EQ(page.runs(0).name(), stim_run.name());
  EXPECT_EQ(page.runs(1).name(), second.name());
  ASSERT_FALSE(page.next_page_token().empty());
  request.set_page_token(page.next_page_token());
  ASSERT_THAT(Invoke(*control_, &Stub::ListRuns, request, &page), IsOk());
  ASSERT_EQ(page.runs_size(), 1);
  EXPECT_EQ(page.runs(0).name(), first.name());
  EXPECT_TRUE(page.next_page_token().empty());
}

TEST_F(DeviceControlTest, CancelRunEndsItWithOutputOff) {
  const std::string lease = Lease(kStim);
  v1::Run run;
  ASSERT_THAT(StartRun(kStim, lease, {Step(60, StimSettings(300))}, &run), IsOk());
  Advance(2);
  v1::CancelRunRequest request;
  request.set_name(run.name());
  request.set_lease_id(lease);
  v1::CancelRunResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::CancelRun, request, &response), IsOk());
  EXPECT_EQ(response.run().state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(response.run().end_reason(), v1::RUN_END_REASON_CANCELLED);
  EXPECT_DOUBLE_EQ(response.run().ledger().output_on_s(), 2);
  Advance(0.05);  // CancelRun promises no fresh sample on return (Stop and EmergencyStop do)
  const v1::Device device = GetDevice(kStim);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_IDLE);
  EXPECT_TRUE(device.active_run().empty());
  EXPECT_FALSE(device.latest_sample().output_on());
}

}  // namespace
}  // namespace derma::testing
