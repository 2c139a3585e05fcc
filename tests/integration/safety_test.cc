// Safety behaviour through the public gRPC API (DESIGN.md: "every interlock and fault path has
// a test that drives it through the public gRPC API"): latches that do not forget each other,
// electrode contact loss, link loss, the session limit, and what shutdown still accepts.
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::Not;
using Stub = v1::DeviceControl::Stub;
using grpc::StatusCode;

using SafetyTest = ServerFixture;

v1::EmergencyStopResponse EmergencyStop(Stub& stub, const std::string& name) {
  v1::EmergencyStopRequest request;
  request.set_name(name);
  v1::EmergencyStopResponse response;
  EXPECT_THAT(Invoke(stub, &Stub::EmergencyStop, request, &response), IsOk());
  return response;
}

grpc::Status ResetEmergencyStop(Stub& stub, const std::string& name, const std::string& lease,
                                v1::Device* device = nullptr) {
  v1::ResetEmergencyStopRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  v1::ResetEmergencyStopResponse response;
  grpc::Status status = Invoke(stub, &Stub::ResetEmergencyStop, request, &response);
  if (device != nullptr) *device = response.device();
  return status;
}

grpc::Status Resume(Stub& stub, const std::string& name, const std::string& lease) {
  v1::ResumeRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  v1::ResumeResponse response;
  return Invoke(stub, &Stub::Resume, request, &response);
}

TEST_F(SafetyTest, EmergencyStopWhileOfflineLatchesWhenTheLinkReturns) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(SetLink(kPen, false), IsOk());
  Advance(0.05);
  const v1::EmergencyStopResponse response = EmergencyStop(*control_, kPen);
  ASSERT_EQ(response.devices_size(), 1);
  EXPECT_EQ(response.devices(0).state(), v1::DEVICE_STATE_OFFLINE);
  ASSERT_THAT(SetLink(kPen, true), IsOk());
  Advance(0.05);
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_THAT(Start(kPen, lease),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_ESTOP_LATCHED));
}

TEST_F(SafetyTest, ResetEmergencyStopGoesToFaultWhenAFaultWasRaisedDuringTheStop) {
  const std::string lease = Lease(kStim);
  EmergencyStop(*control_, kStim);
  ASSERT_THAT(Inject(kStim, v1::FAULT_KIND_OVERCURRENT), IsOk());
  Advance(0.05);
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_ESTOPPED);
  v1::Device device;
  ASSERT_THAT(ResetEmergencyStop(*control_, kStim, lease, &device), IsOk());
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_FAULT);
  EXPECT_EQ(device.active_fault().kind(), v1::FAULT_KIND_OVERCURRENT);
  EXPECT_THAT(Start(kStim, lease),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_FAULT_LATCHED));
}

TEST_F(SafetyTest, ResetEmergencyStopNeedsTheLease) {
  Client other = NewClient();
  const std::string lease = Lease(kPen);
  EmergencyStop(*other.control, kPen);  // no lease needed
  EXPECT_THAT(ResetEmergencyStop(*other.control, kPen, ""),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_LEASE_REQUIRED));
  EXPECT_THAT(ResetEmergencyStop(*other.control, kPen, "ffffffffffffffffffffffffffffffff"),
              IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_MISMATCH));
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_THAT(ResetEmergencyStop(*control_, kPen, lease), IsOk());
}

TEST_F(SafetyTest, ElectrodeContactLossPausesTheRunAndResumeNeedsContact) {
  const std::string lease = Lease(kStim);
  v1::Run run;
  ASSERT_THAT(StartRun(kStim, lease, {Step(60, StimSettings(400))}, &run), IsOk());
  Advance(1);
  ASSERT_THAT(Inject(kStim, v1::FAULT_KIND_ELECTRODE_CONTACT_LOST), IsOk());
  Advance(0.05);
  v1::Device device = GetDevice(kStim);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_PAUSED);
  EXPECT_FALSE(device.latest_sample().output_on());
  EXPECT_EQ(device.active_fault().kind(), v1::FAULT_KIND_ELECTRODE_CONTACT_LOST);
  EXPECT_EQ(device.active_run(), run.name());
  EXPECT_EQ(GetRun(run.name()).state(), v1::RUN_STATE_PAUSED);

  EXPECT_THAT(Resume(*control_, kStim, lease),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_NO_ELECTRODE_CONTACT));
  ASSERT_THAT(ClearFault(kStim, v1::FAULT_KIND_ELECTRODE_CONTACT_LOST), IsOk());
  Advance(0.05);
  ASSERT_THAT(Resume(*control_, kStim, lease), IsOk());
  Advance(0.5);
  device = GetDevice(kStim);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_RUNNING);
  EXPECT_TRUE(device.latest_sample().output_on());
  EXPECT_EQ(GetRun(run.name()).state(), v1::RUN_STATE_RUNNING);
}

TEST_F(SafetyTest, LinkLossEndsTheRunWithLinkLost) {
  const std::string lease = Lease(kPen2);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen2, lease, {Step(60)}, &run), IsOk());
  Advance(1);
  ASSERT_THAT(SetLink(kPen2, false), IsOk());
  Advance(0.05);
  EXPECT_EQ(GetDevice(kPen2).state(), v1::DEVICE_STATE_OFFLINE);
  EXPECT_FALSE(GetDevice(kPen2).latest_sample().output_on());
  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_LINK_LOST);
}

TEST_F(SafetyTest, SessionLimitStopsTheRunAtExactlyTheLimit) {
  const std::string lease = Lease(kPen);
  v1::Settings settings = PenSettings(1.0, 100);
  settings.mutable_microneedling()->set_session_limit_s(2);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(10, settings)}, &run), IsOk());
  Advance(3);
  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_SESSION_LIMIT);
  EXPECT_EQ(Micros(ended.end_time()) - Micros(ended.start_time()), 2'000'000);
  EXPECT_DOUBLE_EQ(ended.ledger().output_on_s(), 2.0);
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(GetDevice(kPen).latest_sample().output_on());
}

// After Plugin::Shutdown every output is off; commands that could switch one on again or take
// a lease are refused with SHUTTING_DOWN, while stops, releases and reads still work.
TEST_F(SafetyTest, ShutdownRefusesCommandsThatCouldSwitchAnOutputOn) {
  const std::string pen_lease = Lease(kPen);
  const std::string stim_lease = Lease(kStim);
  ASSERT_THAT(Start(kPen, pen_lease), IsOk());
  Advance(1);
  plugin_->Shutdown();
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(GetDevice(kPen).latest_sample().output_on());

  const auto shutting_down = IsError(StatusCode::UNAVAILABLE, v1::ERROR_REASON_SHUTTING_DOWN);
  EXPECT_THAT(Configure(kPen, pen_lease, PenSettings(1, 100)), shutting_down);
  EXPECT_THAT(Start(kPen, pen_lease), shutting_down);
  EXPECT_THAT(Resume(*control_, kPen, pen_lease), shutting_down);
  EXPECT_THAT(StartRun(kPen, pen_lease, {Step(1)}, nullptr), shutting_down);
  EXPECT_THAT(ResetEmergencyStop(*control_, kPen, pen_lease), shutting_down);
  v1::ResetFaultRequest reset;
  reset.set_name(kPen);
  reset.set_lease_id(pen_lease);
  v1::ResetFaultResponse reset_response;
  EXPECT_THAT(Invoke(*control_, &Stub::ResetFault, reset, &reset_response), shutting_down);
  v1::AcquireLeaseRequest acquire;
  acquire.set_name(kPen2);
  acquire.set_holder("late");
  acquire.set_ttl_s(10);
  v1::AcquireLeaseResponse acquired;
  EXPECT_THAT(Invoke(*control_, &Stub::AcquireLease, acquire, &acquired), shutting_down);

  EmergencyStop(*control_, kStim2);
  v1::ReleaseLeaseRequest release;
  release.set_name(kStim);
  release.set_lease_id(stim_lease);
  v1::ReleaseLeaseResponse released;
  EXPECT_THAT(Invoke(*control_, &Stub::ReleaseLease, release, &released), IsOk());
  v1::ListRunsRequest list;
  list.set_parent("devices/-");
  v1::ListRunsResponse runs;
  EXPECT_THAT(Invoke(*control_, &Stub::ListRuns, list, &runs), IsOk());
}

// A handler must finish even when the fleet has stopped: a call left hanging would also hold up
// the host's server->Shutdown().
TEST_F(SafetyTest, SimulatorCallsStillFinishAfterShutdown) {
  plugin_->Shutdown();
  sim::v1::AdvanceClockRequest advance;
  advance.set_duration_s(1);
  sim::v1::AdvanceClockResponse advanced;
  EXPECT_NE(
      Invoke(*simulator_, &sim::v1::Simulator::Stub::AdvanceClock, advance, &advanced).error_code(),
      StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(Inject(kPen, v1::FAULT_KIND_MOTOR_STALL).error_code(), StatusCode::DEADLINE_EXCEEDED);
}

}  // namespace
}  // namespace derma::testing
