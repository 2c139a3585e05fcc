// sim/scenarios/estop_storm.textproto under an emergency-stop storm: with four runs and one
// plain Start in progress, threads on their own connections call EmergencyStop (one device, and
// all devices) while others Configure / Start / StartRun / Stop every device, one resets stopped
// devices (all but stim-2) and one advances the virtual clock through the scenario (pen-2's
// link drops and returns, stim-2 overcurrents); a last EmergencyStop(all) follows the resets.
// The storm is bounded by call counts, not time. Safe state: every device ESTOPPED with its
// output off, every error one the contract documents for that call, every run ended with a
// consistent ledger, every event streamed, every stop counted; reset works afterwards.
#include "tests/scenarios/estop_storm.h"

#include <algorithm>
#include <map>
#include <string>

#include "tests/scenarios/scenario_fixture.h"

namespace derma::testing {
namespace {

using ::testing::IsEmpty;

const std::vector<std::string> kAll = {kPen, kPen2, kPenShort, kPenWorn, kStim, kStim2};

class EstopStormTest : public ScenarioFixture {
 protected:
  // Leases every device, watches them all and sets four runs and one Start going.
  void SetUp() override {
    ScenarioFixture::SetUp();
    for (const std::string& name : kAll) {
      leases_[name] = Lease(name);
      Watch(name);
    }
    for (const std::string name : {kPen, kPen2, kStim, kStim2}) {
      v1::Run run;
      ASSERT_THAT(StartRun(name, leases_[name], {Step(60, StormSettings(name))}, &run), IsOk());
      log_.RunStarted(run.name());
    }
    ASSERT_THAT(Configure(kPenShort, leases_[kPenShort], StormSettings(kPenShort)), IsOk());
    ASSERT_THAT(Start(kPenShort, leases_[kPenShort]), IsOk());
    Advance(0.05);
  }

  // One storm: the scenario is loaded, then every thread starts at once.
  void Storm() {
    ASSERT_EQ(LoadScenarioFile("estop_storm.textproto"), 4u);
    RunStorm([this] { return NewClient(); }, leases_, log_);
    Advance(0.05);  // the output must stay off as time passes
  }

  // ResetEmergencyStop on every device (stim-2 then needs ResetFault: its overcurrent latched).
  void ResetAll() {
    for (const std::string& name : kAll) {
      ASSERT_THAT(ResetEmergencyStop(name, leases_[name]), IsOk()) << name;
    }
    ASSERT_EQ(GetDevice(kStim2).state(), v1::DEVICE_STATE_FAULT);
    EXPECT_EQ(GetDevice(kStim2).active_fault().kind(), v1::FAULT_KIND_OVERCURRENT);
    ASSERT_THAT(ResetFault(kStim2, leases_[kStim2]), IsOk());
  }

  std::map<std::string, std::string> leases_;
  StormLog log_;
};

TEST_F(EstopStormTest, EveryDeviceEndsEstoppedWithItsOutputOff) {
  Storm();
  for (const std::string& name : kAll) {
    const v1::Device device = GetDevice(name);
    EXPECT_EQ(device.state(), v1::DEVICE_STATE_ESTOPPED) << name;
    EXPECT_FALSE(device.latest_sample().output_on()) << name;
    EXPECT_TRUE(device.active_run().empty()) << name;
    EXPECT_EQ(Metric("derma_device_output_on", name.substr(8)), 0) << name;
  }
}

TEST_F(EstopStormTest, EveryEmergencyStopResponseShowsEveryTargetedOutputOff) {
  Storm();
  EXPECT_THAT(log_.violations(), IsEmpty());
  EXPECT_GT(log_.count("EmergencyStop OK"), 0);
  // Each device is read on its strand right after its stop, so no all-devices response shows a
  // device a racing reset already returned to IDLE (see CheckStopResponse).
  EXPECT_THAT(log_.late_views(), IsEmpty());
}

TEST_F(EstopStormTest, CallsFailOnlyWithTheErrorsTheContractDocuments) {
  Storm();
  for (const auto& [outcome, count] : log_.outcomes()) {
    EXPECT_TRUE(IsDocumentedStormOutcome(outcome)) << outcome << " × " << count;
  }
  EXPECT_EQ(log_.count("Stop OK") + log_.count("EmergencyStop OK") + log_.count("AdvanceClock OK"),
            log_.calls("Stop") + log_.calls("EmergencyStop") + log_.calls("AdvanceClock"));
}

TEST_F(EstopStormTest, EveryRunTheStormCutEndedWithAConsistentLedger) {
  Storm();
  ASSERT_GE(log_.runs().size(), 4u);
  for (const std::string& name : log_.runs()) {
    ExpectStormRunConsistent(GetRun(name));
  }
}

TEST_F(EstopStormTest, EveryDevicesEventsArriveWithoutGapsAndEndInEstopped) {
  Storm();
  for (const std::string& name : kAll) {
    const DeviceTelemetry& d = Drain(name);
    EXPECT_THAT(d.errors, IsEmpty()) << name;
    const std::vector<std::string> events = Describe(d.events);
    EXPECT_EQ(std::count(events.begin(), events.end(), "RUN_STARTED"),
              std::count(events.begin(), events.end(), "RUN_ENDED"))
        << name;
    std::string last_change;
    for (const std::string& e : events) {
      if (e.rfind("STATE_CHANGED", 0) == 0 && e != "STATE_CHANGED(OFFLINE->OFFLINE)") {
        last_change = e;
      }
    }
    EXPECT_THAT(last_change, ::testing::EndsWith("->ESTOPPED)")) << name;
  }
}

TEST_F(EstopStormTest, EveryStopAndEveryScenarioFaultIsCounted) {
  Storm();
  for (const std::string& name : kAll) {
    EXPECT_EQ(Metric("derma_emergency_stops_total", name.substr(8)), log_.stops_of(name)) << name;
  }
  EXPECT_EQ(Metric("derma_faults_total", "pen-2", {{"reason", "link_drop"}}), 1);
  EXPECT_EQ(Metric("derma_faults_total", "stim-2", {{"reason", "overcurrent"}}), 1);
}

TEST_F(EstopStormTest, ResetAfterTheStormReturnsEveryDeviceToService) {
  Storm();
  ResetAll();
  for (const std::string& name : kAll) {
    EXPECT_EQ(GetDevice(name).state(), v1::DEVICE_STATE_IDLE) << name;
  }
  for (const std::string name : {kPen, kPen2, kPenShort, kStim, kStim2}) {
    ASSERT_THAT(Configure(name, leases_[name], StormSettings(name)), IsOk()) << name;
    ASSERT_THAT(Start(name, leases_[name]), IsOk()) << name;
  }
  Advance(0.5);
  for (const std::string name : {kPen, kPen2, kPenShort, kStim, kStim2}) {
    EXPECT_TRUE(GetDevice(name).latest_sample().output_on()) << name;
  }
}

TEST_F(EstopStormTest, ASecondStormAfterAResetEndsTheSameWay) {
  Storm();
  ResetAll();
  Storm();
  for (const std::string& name : kAll) {
    const v1::Device device = GetDevice(name);
    EXPECT_EQ(device.state(), v1::DEVICE_STATE_ESTOPPED) << name;
    EXPECT_FALSE(device.latest_sample().output_on()) << name;
  }
  EXPECT_THAT(log_.violations(), IsEmpty());
  for (const auto& [outcome, count] : log_.outcomes()) {
    EXPECT_TRUE(IsDocumentedStormOutcome(outcome)) << outcome << " × " << count;
  }
  for (const std::string& name : log_.runs()) ExpectStormRunConsistent(GetRun(name));
}

// The storm's race made deterministic: the link drops between two ticks and an EmergencyStop
// is the first to notice. Its response must show the output off, not the last tick's sample.
using EstopLinkRaceTest = ScenarioFixture;

TEST_F(EstopLinkRaceTest, EmergencyStopThatFindsTheLinkJustDroppedShowsTheOutputOff) {
  ASSERT_THAT(Start(kPen2, Lease(kPen2)), IsOk());
  Advance(1.0);
  ASSERT_THAT(SetLink(kPen2, false), IsOk());
  v1::EmergencyStopRequest request;
  request.set_name(kPen2);
  v1::EmergencyStopResponse response;
  ASSERT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::EmergencyStop, request, &response),
              IsOk());
  ASSERT_EQ(response.devices_size(), 1);
  EXPECT_EQ(response.devices(0).state(), v1::DEVICE_STATE_OFFLINE);
  EXPECT_FALSE(response.devices(0).latest_sample().output_on());
  ASSERT_THAT(SetLink(kPen2, true), IsOk());
  Advance(0.05);
  EXPECT_EQ(GetDevice(kPen2).state(), v1::DEVICE_STATE_ESTOPPED);
}

}  // namespace
}  // namespace derma::testing
