// The fleet as a host builds it: real simulated devices behind the core on a virtual clock.
#include "plugin/host/config_loader.h"
#include "tests/host/fleet_fixture.h"

namespace derma::testing {
namespace {

TEST_F(FleetFixture, ShippedFleetStartsIdleAndSimulated) {
  ASSERT_EQ(fleet_->devices().size(), 4u);
  for (const char* name : {"devices/pen-1", "devices/pen-2", "devices/stim-1", "devices/stim-2"}) {
    const v1::Device d = Get(name);
    EXPECT_EQ(d.state(), v1::DEVICE_STATE_IDLE) << name;
    EXPECT_TRUE(d.simulated()) << name;
    EXPECT_FALSE(d.capabilities().parameters().empty()) << name;
  }
  EXPECT_EQ(Get("devices/pen-2").model(), "DP-300");
  EXPECT_EQ(Get("devices/pen-2").cartridge().needle_count(), 36u);
}

TEST_F(FleetFixture, PenProgramCompletesWithExactOutputTime) {
  const uint32_t pen = Index("devices/pen-1");
  const std::string lease = Lease("devices/pen-1");
  std::vector<v1::RunStep> steps(2);
  steps[0].set_duration_s(2);
  steps[0].mutable_settings()->mutable_microneedling()->set_needle_depth_mm(1.0);
  steps[0].mutable_settings()->mutable_microneedling()->set_stroke_rate_hz(100);
  steps[1].set_duration_s(3);
  steps[1].mutable_settings()->mutable_microneedling()->set_stroke_rate_hz(150);
  absl::StatusOr<RunPtr> run =
      fleet_->devices().Call(pen, [&](Device& d) { return d.StartRun(lease, steps, "r1"); });
  ASSERT_TRUE(run.ok()) << run.status();
  Advance(6);
  RunPtr done = fleet_->runs().Get((*run)->name());
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done->end_reason(), v1::RUN_END_REASON_COMPLETED);
  EXPECT_DOUBLE_EQ(done->ledger().output_on_s(), 5.0);
  // 2 s at 100 Hz + 3 s at 150 Hz, less what the motor ramps (500 Hz/s) cost.
  EXPECT_GT(done->ledger().strokes_delivered(), 600u);
  EXPECT_LE(done->ledger().strokes_delivered(), 650u);
  EXPECT_EQ(Get("devices/pen-1").state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(Get("devices/pen-1").latest_sample().output_on());
}

TEST_F(FleetFixture, StimulatorChargeLedgerMatchesCurrentTimesTime) {
  const uint32_t stim = Index("devices/stim-1");
  const std::string lease = Lease("devices/stim-1");
  v1::RunStep step;
  step.set_duration_s(4);
  step.mutable_settings()->mutable_microcurrent()->set_current_ua(500);
  step.mutable_settings()->mutable_microcurrent()->set_ramp_s(0);
  absl::StatusOr<RunPtr> run =
      fleet_->devices().Call(stim, [&](Device& d) { return d.StartRun(lease, {step}, ""); });
  ASSERT_TRUE(run.ok()) << run.status();
  Advance(5);
  RunPtr done = fleet_->runs().Get((*run)->name());
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_NEAR(done->ledger().charge_delivered_uc(), 2000.0, 1e-6);
  EXPECT_DOUBLE_EQ(done->ledger().output_on_s(), 4.0);
}

TEST_F(FleetFixture, ScenarioDropsAndRestoresLinkAtItsTimes) {
  sim::v1::LoadScenarioRequest request;
  request.set_scenario_text(R"pb(
    actions {
      at_s: 1
      set_link { name: "devices/pen-2" up: false }
    }
    actions {
      at_s: 3
      set_link { name: "devices/pen-2" up: true }
    }
  )pb");
  absl::StatusOr<size_t> count = fleet_->simulator()->LoadScenario(request);
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 2u);
  Advance(0.9);
  EXPECT_EQ(Get("devices/pen-2").state(), v1::DEVICE_STATE_IDLE);
  Advance(0.2);
  EXPECT_EQ(Get("devices/pen-2").state(), v1::DEVICE_STATE_OFFLINE);
  Advance(2.0);
  EXPECT_EQ(Get("devices/pen-2").state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(FleetFixture, InvalidScenarioIsRejectedWithReason) {
  sim::v1::LoadScenarioRequest request;
  request.set_scenario_text("actions { at_s: 1 set_link { name: \"devices/nope\" } }");
  EXPECT_THAT(fleet_->simulator()->LoadScenario(request).status(),
              HasReason(v1::ERROR_REASON_SCENARIO_INVALID));
  request.set_scenario_text("actions { at_s: 1 bogus {} }");
  EXPECT_THAT(fleet_->simulator()->LoadScenario(request).status(),
              HasReason(v1::ERROR_REASON_SCENARIO_INVALID));
}

TEST_F(FleetFixture, PenOnlyFaultOnStimulatorIsNotApplicable) {
  EXPECT_THAT(Inject("devices/stim-1", v1::FAULT_KIND_MOTOR_STALL),
              HasReason(v1::ERROR_REASON_FAULT_NOT_APPLICABLE));
  EXPECT_THAT(Inject("devices/nope", v1::FAULT_KIND_MOTOR_STALL),
              HasReason(v1::ERROR_REASON_DEVICE_NOT_FOUND));
}

TEST_F(FleetFixture, FaultResetNeedsTheConditionGone) {
  const uint32_t pen = Index("devices/pen-1");
  const std::string lease = Lease("devices/pen-1");
  ASSERT_TRUE(Inject("devices/pen-1", v1::FAULT_KIND_CARTRIDGE_JAM).ok());
  Advance(0.05);
  ASSERT_EQ(Get("devices/pen-1").state(), v1::DEVICE_STATE_FAULT);
  EXPECT_THAT(fleet_->devices().Call(pen, [&](Device& d) { return d.ResetFault(lease); }),
              HasReason(v1::ERROR_REASON_FAULT_CONDITION_PRESENT));
  ASSERT_TRUE(Clear("devices/pen-1", v1::FAULT_KIND_CARTRIDGE_JAM).ok());
  Advance(0.05);
  EXPECT_TRUE(fleet_->devices().Call(pen, [&](Device& d) { return d.ResetFault(lease); }).ok());
  EXPECT_EQ(Get("devices/pen-1").state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(FleetFixture, StimulatorComplianceInterlockUsesMeasuredImpedance) {
  const uint32_t stim = Index("devices/stim-2");  // 8000 ohm: 12 V allows at most 1500 uA
  const std::string lease = Lease("devices/stim-2");
  sim::v1::SetElectrodeImpedanceRequest request;
  request.set_name("devices/stim-2");
  request.set_impedance_ohm(40000);  // 12 V / 40 kohm = 300 uA
  absl::Notification set;
  fleet_->simulator()->SetElectrodeImpedance(request, [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    set.Notify();
  });
  set.WaitForNotification();
  Advance(0.05);
  v1::Settings settings;
  settings.mutable_microcurrent()->set_current_ua(450);
  EXPECT_THAT(fleet_->devices()
                  .Call(stim, [&](Device& d) { return d.Configure(lease, settings, false); })
                  .status(),
              HasReason(v1::ERROR_REASON_INTERLOCK_COMPLIANCE));
}

TEST(FleetCreate, BadConfigIsRejectedBeforeAnythingStarts) {
  config::v1::FleetConfig config;
  config::v1::DeviceConfig* device = config.add_devices();
  device->set_id("Bad Id");
  absl::StatusOr<std::unique_ptr<host::Fleet>> fleet = host::Fleet::Create(config);
  EXPECT_THAT(fleet.status(), HasReason(v1::ERROR_REASON_INVALID_FIELD));
}

TEST(FleetCreate, UnknownModelIsRejectedNamingTheField) {
  config::v1::FleetConfig config;
  config::v1::DeviceConfig* device = config.add_devices();
  device->set_id("pen-1");
  device->set_kind(v1::DEVICE_KIND_MICRONEEDLING);
  device->set_model("NOPE-1");
  absl::StatusOr<std::unique_ptr<host::Fleet>> fleet = host::Fleet::Create(config);
  EXPECT_THAT(fleet.status(), HasReason(v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(std::string(fleet.status().message()), ::testing::HasSubstr("devices[pen-1].model"));
}

TEST(FleetCreate, AdvanceClockNeedsVirtualClock) {
  config::v1::FleetConfig config;
  config::v1::DeviceConfig* device = config.add_devices();
  device->set_id("pen-1");
  device->set_kind(v1::DEVICE_KIND_MICRONEEDLING);
  absl::StatusOr<std::unique_ptr<host::Fleet>> fleet = host::Fleet::Create(config);
  ASSERT_TRUE(fleet.ok()) << fleet.status();
  absl::Notification done;
  (*fleet)->simulator()->AdvanceClock(1, [&](absl::StatusOr<absl::Time> now) {
    EXPECT_THAT(now.status(), HasReason(v1::ERROR_REASON_VIRTUAL_CLOCK_REQUIRED));
    done.Notify();
  });
  done.WaitForNotification();
}

}  // namespace
}  // namespace derma::testing
