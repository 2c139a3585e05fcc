// Every ErrorInfo.reason of derma.v1.ErrorReason (errors.proto), produced through the public
// gRPC API of a real server and read back by the client from the google.rpc.Status details,
// with the gRPC code, the domain "derma" and the documented metadata / BadRequest fields.
//
// Two reasons cannot be produced through the API with the simulator backend, so they have no
// test here:
//   DRIVER_ERROR  — the simulated drivers never break their contract (no sim knob makes
//                   Read/Apply/SetOutput return an unexpected error); covered by the core tests
//                   with a fake driver.
//   NOT_SIMULATED — every device of a fleet is simulated today (the only backend).
#include "absl/strings/str_cat.h"
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Key;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using Stub = v1::DeviceControl::Stub;
using SimStub = sim::v1::Simulator::Stub;
using grpc::StatusCode;

using ErrorReasonTest = ServerFixture;

grpc::Status Pause(Stub& stub, const std::string& name, const std::string& lease) {
  v1::PauseRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  v1::PauseResponse response;
  return Invoke(stub, &Stub::Pause, request, &response);
}

grpc::Status ResetFault(Stub& stub, const std::string& name, const std::string& lease) {
  v1::ResetFaultRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  v1::ResetFaultResponse response;
  return Invoke(stub, &Stub::ResetFault, request, &response);
}

grpc::Status EmergencyStop(Stub& stub, const std::string& name) {
  v1::EmergencyStopRequest request;
  request.set_name(name);
  v1::EmergencyStopResponse response;
  return Invoke(stub, &Stub::EmergencyStop, request, &response);
}

TEST_F(ErrorReasonTest, InvalidFieldNamesAMalformedDeviceName) {
  v1::GetDeviceRequest request;
  request.set_name("dev/x");
  v1::GetDeviceResponse response;
  const grpc::Status status = Invoke(*control_, &Stub::GetDevice, request, &response);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolatedFieldsOf(status), UnorderedElementsAre("name"));
}

TEST_F(ErrorReasonTest, InvalidFieldListsEveryBadLeaseField) {
  v1::AcquireLeaseRequest request;
  request.set_name(kPen);
  request.set_holder("");
  request.set_ttl_s(0);
  v1::AcquireLeaseResponse response;
  const grpc::Status status = Invoke(*control_, &Stub::AcquireLease, request, &response);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolatedFieldsOf(status), UnorderedElementsAre("holder", "ttl_s"));
}

TEST_F(ErrorReasonTest, InvalidFieldForAnEmptyProgram) {
  const grpc::Status status = StartRun(kPen, Lease(kPen), {}, nullptr);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("steps"));
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(ErrorReasonTest, SettingOutOfRangeListsEveryFieldAndAppliesNothing) {
  const std::string lease = Lease(kPen);
  const grpc::Status status = Configure(kPen, lease, PenSettings(7, 500));
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_SETTING_OUT_OF_RANGE));
  EXPECT_THAT(ViolatedFieldsOf(status),
              UnorderedElementsAre("settings.microneedling.needle_depth_mm",
                                   "settings.microneedling.stroke_rate_hz"));
  for (const auto& v : ViolationsOf(status)) {
    EXPECT_FALSE(v.description().empty()) << v.field();
  }
  EXPECT_DOUBLE_EQ(GetDevice(kPen).settings().microneedling().needle_depth_mm(), 0.5);
}

TEST_F(ErrorReasonTest, SettingNotSupportedForAnotherKind) {
  const grpc::Status status = Configure(kPen, Lease(kPen), StimSettings(100));
  EXPECT_THAT(status,
              IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_SETTING_NOT_SUPPORTED));
  EXPECT_THAT(status, HasViolation("settings.microcurrent"));
}

TEST_F(ErrorReasonTest, SettingNotSupportedForAWaveformTheModelLacks) {
  v1::Settings settings;
  settings.mutable_microcurrent()->set_waveform(v1::WAVEFORM_SINE);  // MC-5 has no sine
  const grpc::Status status = Configure(kStim2, Lease(kStim2), settings);
  EXPECT_THAT(status,
              IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_SETTING_NOT_SUPPORTED));
  EXPECT_THAT(status, HasViolation("settings.microcurrent.waveform"));
}

TEST_F(ErrorReasonTest, InterlockDepthExceedsNeedle) {
  const grpc::Status status = Configure(kPenShort, Lease(kPenShort), PenSettings(1.5, 100));
  EXPECT_THAT(status, IsError(StatusCode::FAILED_PRECONDITION,
                              v1::ERROR_REASON_INTERLOCK_DEPTH_EXCEEDS_NEEDLE));
  EXPECT_THAT(MetadataOf(status), Contains(Pair("needle_length_mm", "1")));
}

TEST_F(ErrorReasonTest, InterlockComplianceUsesTheMeasuredImpedance) {
  const std::string lease = Lease(kStim2);
  sim::v1::SetElectrodeImpedanceRequest request;
  request.set_name(kStim2);
  request.set_impedance_ohm(40000);  // 12 V / 40 kΩ = 300 µA
  sim::v1::SetElectrodeImpedanceResponse response;
  ASSERT_THAT(Invoke(*simulator_, &SimStub::SetElectrodeImpedance, request, &response), IsOk());
  Advance(0.05);
  const grpc::Status status = Configure(kStim2, lease, StimSettings(450));
  EXPECT_THAT(status,
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_INTERLOCK_COMPLIANCE));
  EXPECT_THAT(MetadataOf(status), Contains(Key("impedance_ohm")));
  EXPECT_THAT(MetadataOf(status), Contains(Pair("compliance_voltage_v", "12")));
  EXPECT_THAT(MetadataOf(status), Contains(Key("max_current_ua")));
}

// StartRun validates every step as Configure validates settings: an interlock refusal in any
// step has Configure's code, reason and metadata, and names that step's field.
TEST_F(ErrorReasonTest, StartRunDepthInterlockInAnyStepCarriesConfiguresMetadata) {
  const std::string lease = Lease(kPenShort);
  const grpc::Status configure = Configure(kPenShort, lease, PenSettings(1.5, 100));
  ASSERT_THAT(configure, IsError(StatusCode::FAILED_PRECONDITION,
                                 v1::ERROR_REASON_INTERLOCK_DEPTH_EXCEEDS_NEEDLE));
  ASSERT_THAT(MetadataOf(configure), Contains(Pair("needle_length_mm", "1")));
  for (const int bad : {0, 2}) {
    std::vector<v1::RunStep> steps(3, Step(10, PenSettings(0.5, 100)));
    steps[bad] = Step(10, PenSettings(1.5, 100));
    v1::Run run;
    const grpc::Status status = StartRun(kPenShort, lease, steps, &run);
    EXPECT_THAT(status, IsError(StatusCode::FAILED_PRECONDITION,
                                v1::ERROR_REASON_INTERLOCK_DEPTH_EXCEEDS_NEEDLE))
        << "step " << bad;
    EXPECT_EQ(MetadataOf(status), MetadataOf(configure)) << "step " << bad;
    EXPECT_THAT(
        ViolatedFieldsOf(status),
        ElementsAre(absl::StrCat("steps[", bad, "].settings.microneedling.needle_depth_mm")));
  }
  EXPECT_EQ(GetDevice(kPenShort).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(ErrorReasonTest, StartRunComplianceInterlockInAnyStepCarriesConfiguresMetadata) {
  const std::string lease = Lease(kStim2);
  sim::v1::SetElectrodeImpedanceRequest request;
  request.set_name(kStim2);
  request.set_impedance_ohm(40000);  // 12 V / 40 kΩ = 300 µA
  sim::v1::SetElectrodeImpedanceResponse response;
  ASSERT_THAT(Invoke(*simulator_, &SimStub::SetElectrodeImpedance, request, &response), IsOk());
  Advance(0.05);
  const grpc::Status configure = Configure(kStim2, lease, StimSettings(450));
  ASSERT_THAT(configure,
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_INTERLOCK_COMPLIANCE));
  ASSERT_THAT(MetadataOf(configure), Contains(Pair("compliance_voltage_v", "12")));
  ASSERT_THAT(MetadataOf(configure), Contains(Key("impedance_ohm")));
  ASSERT_THAT(MetadataOf(configure), Contains(Key("max_current_ua")));
  for (const int bad : {0, 2}) {
    std::vector<v1::RunStep> steps(3, Step(10, StimSettings(200)));
    steps[bad] = Step(10, StimSettings(450));
    v1::Run run;
    const grpc::Status status = StartRun(kStim2, lease, steps, &run);
    EXPECT_THAT(status,
                IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_INTERLOCK_COMPLIANCE))
        << "step " << bad;
    EXPECT_EQ(MetadataOf(status), MetadataOf(configure)) << "step " << bad;
    EXPECT_THAT(ViolatedFieldsOf(status),
                ElementsAre(absl::StrCat("steps[", bad, "].settings.microcurrent.current_ua")));
  }
  EXPECT_EQ(GetDevice(kStim2).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(ErrorReasonTest, IllegalTransitionNamesCurrentAndRequiredStates) {
  const grpc::Status status = Pause(*control_, kPen, Lease(kPen));
  EXPECT_THAT(status,
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_ILLEGAL_TRANSITION));
  EXPECT_THAT(MetadataOf(status), Contains(Pair("current_state", "IDLE")));
  EXPECT_THAT(MetadataOf(status), Contains(Pair("required_states", "RUNNING")));
}

TEST_F(ErrorReasonTest, LeaseRequiredWithoutALeaseId) {
  EXPECT_THAT(Configure(kPen, "", PenSettings(1, 100)),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_LEASE_REQUIRED));
}

TEST_F(ErrorReasonTest, LeaseMismatchForAnIdNeverGranted) {
  Lease(kPen);
  EXPECT_THAT(Configure(kPen, "0123456789abcdef0123456789abcdef", PenSettings(1, 100)),
              IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_MISMATCH));
}

TEST_F(ErrorReasonTest, LeaseExpiredForTheLastLeaseAfterItsTtl) {
  const std::string lease = Lease(kPen, 1);
  Advance(1.5);
  EXPECT_THAT(Configure(kPen, lease, PenSettings(1, 100)),
              IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_EXPIRED));
}

TEST_F(ErrorReasonTest, LeaseHeldNamesTheHolder) {
  Lease(kPen, 30, "alice");
  v1::AcquireLeaseRequest request;
  request.set_name(kPen);
  request.set_holder("bob");
  request.set_ttl_s(30);
  v1::AcquireLeaseResponse response;
  const grpc::Status status = Invoke(*control_, &Stub::AcquireLease, request, &response);
  EXPECT_THAT(status, IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_HELD));
  EXPECT_THAT(MetadataOf(status), Contains(Pair("holder", "alice")));
  EXPECT_THAT(MetadataOf(status), Contains(Key("expire_time")));
}

TEST_F(ErrorReasonTest, DeviceOfflineWhenTheLinkIsDown) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(SetLink(kPen, false), IsOk());
  Advance(0.05);
  ASSERT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_OFFLINE);
  EXPECT_THAT(Start(kPen, lease),
              IsError(StatusCode::UNAVAILABLE, v1::ERROR_REASON_DEVICE_OFFLINE));
}

TEST_F(ErrorReasonTest, EstopLatchedRefusesStart) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(EmergencyStop(*control_, kPen), IsOk());
  EXPECT_THAT(Start(kPen, lease),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_ESTOP_LATCHED));
}

TEST_F(ErrorReasonTest, FaultLatchedRefusesStartAndNamesTheFault) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(Inject(kPen, v1::FAULT_KIND_MOTOR_STALL), IsOk());
  Advance(0.05);
  ASSERT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_FAULT);
  const grpc::Status status = Start(kPen, lease);
  EXPECT_THAT(status, IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_FAULT_LATCHED));
  // errors.proto: FAULT_LATCHED carries "Metadata: `fault`".
  EXPECT_THAT(MetadataOf(status), Contains(Key("fault")));
}

TEST_F(ErrorReasonTest, FaultConditionPresentRefusesReset) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(Inject(kPen, v1::FAULT_KIND_CARTRIDGE_JAM), IsOk());
  Advance(0.05);
  const grpc::Status status = ResetFault(*control_, kPen, lease);
  EXPECT_THAT(status,
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_FAULT_CONDITION_PRESENT));
  EXPECT_THAT(MetadataOf(status), Contains(Pair("fault", "FAULT_KIND_CARTRIDGE_JAM")));
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_FAULT);
}

TEST_F(ErrorReasonTest, CartridgeExpiredRefusesStart) {
  EXPECT_THAT(Start(kPenWorn, Lease(kPenWorn)),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_CARTRIDGE_EXPIRED));
  EXPECT_EQ(GetDevice(kPenWorn).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(ErrorReasonTest, NoElectrodeContactRefusesStart) {
  const std::string lease = Lease(kStim);
  ASSERT_THAT(Inject(kStim, v1::FAULT_KIND_ELECTRODE_CONTACT_LOST), IsOk());
  Advance(0.05);
  EXPECT_THAT(Start(kStim, lease),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_NO_ELECTRODE_CONTACT));
}

TEST_F(ErrorReasonTest, RunActiveRefusesConfigureStartAndStartRun) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(60)}, &run), IsOk());
  const grpc::Status configure = Configure(kPen, lease, PenSettings(1, 100));
  EXPECT_THAT(configure, IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_RUN_ACTIVE));
  EXPECT_THAT(MetadataOf(configure), Contains(Pair("run", run.name())));
  EXPECT_THAT(Start(kPen, lease),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_RUN_ACTIVE));
  EXPECT_THAT(StartRun(kPen, lease, {Step(1)}, nullptr),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_RUN_ACTIVE));
}

TEST_F(ErrorReasonTest, DeviceNotFoundForAnUnknownId) {
  v1::GetDeviceRequest request;
  request.set_name("devices/nope");
  v1::GetDeviceResponse response;
  EXPECT_THAT(Invoke(*control_, &Stub::GetDevice, request, &response),
              IsError(StatusCode::NOT_FOUND, v1::ERROR_REASON_DEVICE_NOT_FOUND));
}

TEST_F(ErrorReasonTest, RunNotFoundForGetRunAndWatchRun) {
  const std::string name = std::string(kPen) + "/runs/000000000000";
  v1::GetRunRequest request;
  request.set_name(name);
  v1::GetRunResponse response;
  EXPECT_THAT(Invoke(*control_, &Stub::GetRun, request, &response),
              IsError(StatusCode::NOT_FOUND, v1::ERROR_REASON_RUN_NOT_FOUND));
  std::unique_ptr<WatchRunReader> watch = WatchRun(name);
  std::optional<grpc::Status> ended = watch->Finish();
  ASSERT_TRUE(ended.has_value());
  EXPECT_THAT(*ended, IsError(StatusCode::NOT_FOUND, v1::ERROR_REASON_RUN_NOT_FOUND));
}

TEST_F(ErrorReasonTest, RunNotFoundForCancelOfAnUnknownRun) {
  v1::CancelRunRequest request;
  request.set_name(std::string(kPen) + "/runs/000000000000");
  request.set_lease_id(Lease(kPen));
  v1::CancelRunResponse response;
  EXPECT_THAT(Invoke(*control_, &Stub::CancelRun, request, &response),
              IsError(StatusCode::NOT_FOUND, v1::ERROR_REASON_RUN_NOT_FOUND));
}

TEST_F(ErrorReasonTest, RunEndedForCancelOfAFinishedRun) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(1)}, &run), IsOk());
  Advance(2);
  v1::CancelRunRequest request;
  request.set_name(run.name());
  request.set_lease_id(lease);
  v1::CancelRunResponse response;
  EXPECT_THAT(Invoke(*control_, &Stub::CancelRun, request, &response),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_RUN_ENDED));
}

TEST_F(ErrorReasonTest, RequestIdReusedForADifferentProgram) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(StartRun(kPen, lease, {Step(1)}, nullptr, "same-id"), IsOk());
  Advance(2);
  const grpc::Status status = StartRun(kPen, lease, {Step(2)}, nullptr, "same-id");
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_REQUEST_ID_REUSED));
  EXPECT_THAT(status, HasViolation("request_id"));
}

TEST_F(ErrorReasonTest, InvalidFieldForARequestIdLongerThan64Characters) {
  const grpc::Status status = Start(kPen, Lease(kPen), std::string(65, 'x'));
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("request_id"));
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(ErrorReasonTest, ShuttingDownRefusesCommandsThatCouldSwitchAnOutputOn) {
  const std::string lease = Lease(kPen);
  plugin_->Shutdown();
  EXPECT_THAT(Start(kPen, lease), IsError(StatusCode::UNAVAILABLE, v1::ERROR_REASON_SHUTTING_DOWN));
  v1::AcquireLeaseRequest request;
  request.set_name(kStim);
  request.set_holder("late");
  request.set_ttl_s(10);
  v1::AcquireLeaseResponse response;
  EXPECT_THAT(Invoke(*control_, &Stub::AcquireLease, request, &response),
              IsError(StatusCode::UNAVAILABLE, v1::ERROR_REASON_SHUTTING_DOWN));
  // Reads and Stop still work.
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
  v1::StopRequest stop;
  stop.set_name(kPen);
  v1::StopResponse stopped;
  EXPECT_THAT(Invoke(*control_, &Stub::Stop, stop, &stopped), IsOk());
}

TEST_F(ErrorReasonTest, FaultNotApplicableForAPenFaultOnAStimulator) {
  EXPECT_THAT(Inject(kStim, v1::FAULT_KIND_MOTOR_STALL),
              IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_FAULT_NOT_APPLICABLE));
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(ErrorReasonTest, ScenarioInvalidForUnparsableTextAndUnknownDevices) {
  sim::v1::LoadScenarioRequest request;
  request.set_scenario_text("actions { at_s: 1 bogus {} }");
  sim::v1::LoadScenarioResponse response;
  EXPECT_THAT(Invoke(*simulator_, &SimStub::LoadScenario, request, &response),
              IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_SCENARIO_INVALID));
  request.set_scenario_text(R"pb(actions {
                                   at_s: 1
                                   set_link { name: "devices/nope" }
                                 })pb");
  EXPECT_THAT(Invoke(*simulator_, &SimStub::LoadScenario, request, &response),
              IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_SCENARIO_INVALID));
}

// VIRTUAL_CLOCK_REQUIRED needs a fleet on the real clock.
class RealClockTest : public ServerFixture {
 protected:
  std::string FleetText() const override {
    return R"pb(
      clock { mode: CLOCK_MODE_REAL }
      executor_threads: 1
      devices { id: "pen-1" kind: DEVICE_KIND_MICRONEEDLING }
    )pb";
  }
};

TEST_F(RealClockTest, VirtualClockRequiredForAdvanceClock) {
  sim::v1::AdvanceClockRequest request;
  request.set_duration_s(1);
  sim::v1::AdvanceClockResponse response;
  EXPECT_THAT(Invoke(*simulator_, &SimStub::AdvanceClock, request, &response),
              IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_VIRTUAL_CLOCK_REQUIRED));
}

}  // namespace
}  // namespace derma::testing
