// The shipped fault scenarios (sim/scenarios/) played over Modbus: an in-process derma server
// whose fleet (pen-1, pen-2 on a Modbus TCP link; stim-1, stim-2 on an RTU bus, a
// pseudo-terminal) is served by the in-process device emulator, which plays the scenario file
// unchanged. Everything derma does is driven through its public gRPC API; the emulated devices'
// own output flags show what the instruments did.
//
// Time is the wall clock here, so every check waits for its condition with the documented
// timing tolerance (README, "Modbus"): derma sees a device's change within one poll period plus
// response timeout × (retries + 1) plus the resynchronising waits after failed tries (here
// 0.02 + 0.05 × 3 + 3 × 0.045 ≈ 0.31 s, checked against kTolerance), and a device whose link
// returns is connected again within reconnect_backoff_max_s plus that.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "google/protobuf/text_format.h"
#include "sim/modbus_emulator/emulator.h"
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

// No gRPC port; every TCP link on a free port.
emulator::EmulatorOptions TestEmulatorOptions() {
  emulator::EmulatorOptions options;
  options.grpc_listen = "";
  options.any_tcp_port = true;
  return options;
}

constexpr absl::Duration kTolerance = absl::Milliseconds(400);
const absl::Duration kReconnect = absl::Milliseconds(300) + kTolerance;  // backoff max + ...

constexpr char kModbusFleet[] = R"pb(
  clock { mode: CLOCK_MODE_REAL }
  sim_seed: 42
  sample_rate_hz: 50
  modbus_links {
    name: "pens"
    tcp { host: "127.0.0.1" port: $PORT }
    response_timeout_s: 0.05
    retries: 2
    reconnect_backoff_s: 0.05
    reconnect_backoff_max_s: 0.3
    watchdog_s: 0.5
  }
  modbus_links {
    name: "stims"
    rtu { device: "$BUS" baud: 115200 }
    response_timeout_s: 0.05
    retries: 2
    reconnect_backoff_s: 0.05
    reconnect_backoff_max_s: 0.3
    watchdog_s: 0.5
  }
  devices {
    id: "pen-1"
    kind: DEVICE_KIND_MICRONEEDLING
    backend: BACKEND_MODBUS
    modbus { link: "pens" unit_id: 1 }
  }
  devices {
    id: "pen-2"
    kind: DEVICE_KIND_MICRONEEDLING
    backend: BACKEND_MODBUS
    model: "DP-300"
    modbus { link: "pens" unit_id: 2 }
  }
  devices {
    id: "stim-1"
    kind: DEVICE_KIND_MICROCURRENT
    backend: BACKEND_MODBUS
    modbus { link: "stims" unit_id: 1 }
  }
  devices {
    id: "stim-2"
    kind: DEVICE_KIND_MICROCURRENT
    backend: BACKEND_MODBUS
    modbus { link: "stims" unit_id: 2 }
  }
)pb";

std::string ReadScenario(const std::string& file) {
  std::ifstream in(std::string(DERMA_SCENARIO_DIR) + "/" + file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class ModbusScenarioTest : public ServerFixture {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/derma-modbus-scenario-XXXXXX";
    directory_ = ::mkdtemp(pattern);
    config::v1::FleetConfig fleet;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(Fleet(0), &fleet));
    absl::StatusOr<std::unique_ptr<emulator::Emulator>> made =
        emulator::Emulator::Create(fleet, TestEmulatorOptions());
    ASSERT_TRUE(made.ok()) << made.status();
    emulator_ = *std::move(made);
    const std::string& address = emulator_->endpoints()[0].address;
    port_of_emulator_ = std::stoi(address.substr(address.rfind(':') + 1));
    ServerFixture::SetUp();
    ASSERT_TRUE(WaitFor(
        [&] {
          for (const char* name : {kPen, kPen2, kStim, kStim2}) {
            if (GetDevice(name).state() != v1::DEVICE_STATE_IDLE) return false;
          }
          return true;
        },
        absl::Seconds(10)))
        << "devices not IDLE";
  }
  void TearDown() override {
    ServerFixture::TearDown();
    emulator_.reset();
    std::system(absl::StrCat("rm -rf ", directory_).c_str());
  }
  std::string FleetText() const override { return Fleet(port_of_emulator_); }
  std::string Fleet(int port) const {
    return absl::StrReplaceAll(kModbusFleet,
                               {{"$PORT", absl::StrCat(port)}, {"$BUS", directory_ + "/bus"}});
  }

  // Polls `done` every 10 ms until it holds or `timeout` passes.
  template <typename Predicate>
  bool WaitFor(Predicate done, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return done();
  }
  bool WaitForState(const std::string& name, v1::DeviceState state, absl::Duration timeout) {
    return WaitFor([&] { return GetDevice(name).state() == state; }, timeout);
  }
  // Loads a shipped scenario into the emulator; its times count from the returned instant.
  absl::Time Load(const std::string& file) {
    sim::v1::LoadScenarioRequest request;
    request.set_scenario_text(ReadScenario(file));
    const absl::Time loaded = absl::Now();
    absl::StatusOr<size_t> count = emulator_->control().LoadScenario(request);
    EXPECT_TRUE(count.ok()) << count.status();
    return loaded;
  }
  emulator::EmulatedDevice& Emulated(const std::string& name) { return *emulator_->device(name); }
  grpc::Status Call(const std::string& method, const std::string& name, const std::string& lease);

  std::string directory_;
  int port_of_emulator_ = 0;
  std::unique_ptr<emulator::Emulator> emulator_;
};

grpc::Status ModbusScenarioTest::Call(const std::string& method, const std::string& name,
                                      const std::string& lease) {
  if (method == "Resume") {
    v1::ResumeRequest request;
    request.set_name(name);
    request.set_lease_id(lease);
    v1::ResumeResponse response;
    return Invoke(*control_, &v1::DeviceControl::Stub::Resume, request, &response);
  }
  v1::ResetFaultRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  v1::ResetFaultResponse response;
  return Invoke(*control_, &v1::DeviceControl::Stub::ResetFault, request, &response);
}

TEST_F(ModbusScenarioTest, LinkDropRecoveryOverTcp) {
  const std::string lease = Lease(kPen2);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen2, lease, {Step(60, PenSettings(1.0, 120))}, &run), IsOk());
  const absl::Time loaded = Load("link_drop_recovery.textproto");
  ASSERT_TRUE(WaitForState(kPen2, v1::DEVICE_STATE_OFFLINE, absl::Seconds(2) + kTolerance));
  EXPECT_GE(absl::Now() - loaded, absl::Seconds(2));
  // The state can be seen a tick before the first sample taken offline (output commanded off):
  // wait for that sample rather than race it.
  EXPECT_TRUE(WaitFor([&] { return !GetDevice(kPen2).latest_sample().output_on(); }, kTolerance));
  const v1::Device offline = GetDevice(kPen2);
  EXPECT_EQ(offline.active_fault().kind(), v1::FAULT_KIND_LINK_DROP);
  EXPECT_EQ(GetRun(run.name()).end_reason(), v1::RUN_END_REASON_LINK_LOST);
  // The instrument cannot hear derma: its own watchdog switches its output off.
  EXPECT_TRUE(
      WaitFor([&] { return !Emulated(kPen2).output_on(); }, absl::Milliseconds(500) + kTolerance));
  ASSERT_TRUE(WaitForState(kPen2, v1::DEVICE_STATE_IDLE, absl::Seconds(1) + kReconnect));
  EXPECT_GE(absl::Now() - loaded, absl::Seconds(3));
  EXPECT_FALSE(GetDevice(kPen2).has_active_fault());
  v1::Run again;
  ASSERT_THAT(StartRun(kPen2, lease, {Step(0.3, PenSettings(1.0, 120))}, &again), IsOk());
  EXPECT_TRUE(
      WaitFor([&] { return GetRun(again.name()).end_reason() == v1::RUN_END_REASON_COMPLETED; },
              absl::Seconds(3)))
      << GetRun(again.name()).DebugString();
}

TEST_F(ModbusScenarioTest, UnconfirmedOutputWhileTheLinkIsDownClearsAfterTheWatchdog) {
  const std::string lease = Lease(kPen2);
  ASSERT_THAT(Start(kPen2, lease), IsOk());
  Load("link_drop_recovery.textproto");
  ASSERT_TRUE(WaitForState(kPen2, v1::DEVICE_STATE_OFFLINE, absl::Seconds(2) + kTolerance));
  const absl::Time offline = absl::Now();
  // derma commanded the output off but could not reach the pen: unconfirmed...
  EXPECT_TRUE(GetDevice(kPen2).latest_sample().output_unconfirmed());
  // ... until the pen's watchdog (0.5 s after derma's last request) has certainly expired.
  EXPECT_TRUE(WaitFor([&] { return !GetDevice(kPen2).latest_sample().output_unconfirmed(); },
                      absl::Milliseconds(600) + kTolerance));
  EXPECT_LE(absl::Now() - offline, absl::Milliseconds(600) + kTolerance);
  EXPECT_FALSE(Emulated(kPen2).output_on());
}

TEST_F(ModbusScenarioTest, StimulatorContactAndImpedanceOverRtu) {
  const std::string lease = Lease(kStim);
  v1::Run run;
  ASSERT_THAT(StartRun(kStim, lease, {Step(60, StimSettings(100))}, &run), IsOk());
  Load("stimulator_contact_and_impedance.textproto");
  // Contact lost at 2 s: current off, PAUSED, the run held.
  ASSERT_TRUE(WaitForState(kStim, v1::DEVICE_STATE_PAUSED, absl::Seconds(2) + kTolerance));
  EXPECT_FALSE(Emulated(kStim).output_on());
  EXPECT_EQ(GetRun(run.name()).state(), v1::RUN_STATE_PAUSED);
  EXPECT_EQ(Call("Resume", kStim, lease).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // Contact back at 3 s: Resume works.
  ASSERT_TRUE(
      WaitFor([&] { return Call("Resume", kStim, lease).ok(); }, absl::Seconds(1) + kTolerance));
  EXPECT_TRUE(WaitFor([&] { return Emulated(kStim).output_on(); }, kTolerance));
  // Impedance spike at 5 s: current off, FAULT, run ended FAULT.
  ASSERT_TRUE(WaitForState(kStim, v1::DEVICE_STATE_FAULT, absl::Seconds(3) + kTolerance));
  EXPECT_FALSE(Emulated(kStim).output_on());
  EXPECT_EQ(GetRun(run.name()).end_reason(), v1::RUN_END_REASON_FAULT);
  EXPECT_EQ(GetDevice(kStim).active_fault().kind(), v1::FAULT_KIND_IMPEDANCE_SPIKE);
  EXPECT_EQ(Call("ResetFault", kStim, lease).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // The spike is gone at 6 s: ResetFault works.
  EXPECT_TRUE(WaitFor([&] { return Call("ResetFault", kStim, lease).ok(); },
                      absl::Seconds(1) + kTolerance));
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(ModbusScenarioTest, PenStallOverTcp) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(60, PenSettings(0.5, 100))}, &run), IsOk());
  Load("pen_stall_and_over_temperature.textproto");
  ASSERT_TRUE(WaitForState(kPen, v1::DEVICE_STATE_FAULT, absl::Seconds(2) + kTolerance));
  EXPECT_EQ(GetDevice(kPen).active_fault().kind(), v1::FAULT_KIND_MOTOR_STALL);
  EXPECT_EQ(GetRun(run.name()).end_reason(), v1::RUN_END_REASON_FAULT);
  EXPECT_FALSE(Emulated(kPen).output_on());
  EXPECT_EQ(Call("ResetFault", kPen, lease).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(
      WaitFor([&] { return Call("ResetFault", kPen, lease).ok(); }, absl::Seconds(1) + kTolerance));
}

TEST_F(ModbusScenarioTest, LeaseLossStopsBothInstrumentsAtTheExpiry) {
  const std::string pen_lease = Lease(kPen, /*ttl_s=*/2);
  const std::string stim_lease = Lease(kStim, /*ttl_s=*/2);
  v1::Run pen_run, stim_run;
  ASSERT_THAT(StartRun(kPen, pen_lease, {Step(60, PenSettings(0.5, 100))}, &pen_run), IsOk());
  ASSERT_THAT(StartRun(kStim, stim_lease, {Step(60, StimSettings(100))}, &stim_run), IsOk());
  const absl::Time loaded = Load("lease_loss.textproto");
  // The client vanishes: nobody renews. The dead-man switch fires at the expiry (2 s).
  ASSERT_TRUE(WaitFor(
      [&] { return GetRun(pen_run.name()).end_reason() == v1::RUN_END_REASON_LEASE_EXPIRED; },
      absl::Seconds(2) + kTolerance));
  EXPECT_GE(absl::Now() - loaded, absl::Seconds(2) - kTolerance);
  EXPECT_TRUE(WaitFor(
      [&] { return GetRun(stim_run.name()).end_reason() == v1::RUN_END_REASON_LEASE_EXPIRED; },
      kTolerance));
  EXPECT_TRUE(WaitFor([&] { return !Emulated(kPen).output_on() && !Emulated(kStim).output_on(); },
                      kTolerance));
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(GetDevice(kPen).has_lease());
}

TEST_F(ModbusScenarioTest, EmergencyStopOfEverythingWithOneInstrumentOutOfReach) {
  for (const char* name : {kPen, kPen2, kStim, kStim2}) {
    ASSERT_THAT(Start(name, Lease(name)), IsOk()) << name;
  }
  // pen-2 stops hearing anyone (the storm scenario's link drop, held through the stop).
  sim::v1::SetLinkRequest drop;
  drop.set_name(kPen2);
  drop.set_up(false);
  emulator_->control().SetLink(drop, [](absl::Status s) { EXPECT_TRUE(s.ok()) << s; });
  v1::EmergencyStopRequest request;
  request.set_all_devices(true);
  v1::EmergencyStopResponse response;
  ASSERT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::EmergencyStop, request, &response),
              IsOk());
  // The bus took one broadcast; every instrument that heard derma latched its own stop.
  for (const char* name : {kPen, kStim, kStim2}) {
    EXPECT_TRUE(Emulated(name).estop_latched()) << name;
    EXPECT_FALSE(Emulated(name).output_on()) << name;
  }
  // pen-2 was out of reach: derma says so, and the pen's watchdog switches it off.
  EXPECT_THAT(response.unconfirmed(), ::testing::ElementsAre(kPen2));
  EXPECT_TRUE(
      WaitFor([&] { return !Emulated(kPen2).output_on(); }, absl::Milliseconds(500) + kTolerance));
  drop.set_up(true);
  emulator_->control().SetLink(drop, [](absl::Status s) { EXPECT_TRUE(s.ok()) << s; });
  // Back in reach, pen-2 latches the stop it missed.
  for (const char* name : {kPen, kPen2, kStim, kStim2}) {
    EXPECT_TRUE(WaitForState(name, v1::DEVICE_STATE_ESTOPPED, kReconnect)) << name;
    EXPECT_FALSE(Emulated(name).output_on()) << name;
  }
}

}  // namespace
}  // namespace derma::testing
