// Publication order: a device publishes its view before the run registry or an event announces
// a change, so whoever learns of the change from either and then reads the view (GetDevice, a
// telemetry snapshot) finds it there. The probes below read the view at the moment each
// announcement is delivered.
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

// One announcement (an event or a run snapshot) and the view as it was when it was delivered.
struct Delivery {
  EventPtr event;
  RunPtr run;
  v1::Device view;
  uint64_t view_last_event = 0;  // the view's last_event_sequence
};

class PublicationOrderTest : public DeviceFixture {
 protected:
  void SetUp() override {
    MakeDevice();
    Lease();
    SubscriptionOptions options;
    options.events_only = true;
    probe_ = fanout_.Subscribe(options);
    probe_->SetWakeup([this] {
      for (const TelemetryEntry& entry : probe_->Drain(1 << 20).entries) Record(entry.event, {});
    });
  }

  static v1::RunStep Step(double seconds) {
    v1::RunStep step;
    step.set_duration_s(seconds);
    return step;
  }

  // Starts the program and watches the run's snapshots from then on.
  std::string StartWatchedRun(std::vector<v1::RunStep> steps = {Step(10)}) {
    absl::StatusOr<RunPtr> run = device_->StartRun(lease_, steps, "");
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return "";
    runs_.Watch((*run)->name(), [this](const RunPtr& snapshot) { Record(nullptr, snapshot); });
    return (*run)->name();
  }

  void Record(EventPtr event, RunPtr run) {
    Delivery& delivery = deliveries_.emplace_back();
    delivery.event = std::move(event);
    delivery.run = std::move(run);
    delivery.view = device_->view().Read(&delivery.view_last_event);
  }

  // The first delivered event of `type` (and run, when given), or nullptr.
  const Delivery* FindEvent(v1::DeviceEventType type, const std::string& run = "") const {
    for (const Delivery& d : deliveries_) {
      if (d.event != nullptr && d.event->type() == type && (run.empty() || d.event->run() == run)) {
        return &d;
      }
    }
    return nullptr;
  }

  // Every event was delivered after a view that reflects it (a STATE_CHANGED with the view in
  // its new state), in sequence without gaps.
  void ExpectEveryEventReflectedByTheView() const {
    uint64_t previous = 0;
    for (const Delivery& d : deliveries_) {
      if (d.event == nullptr) continue;
      const std::string type = v1::DeviceEventType_Name(d.event->type());
      EXPECT_GE(d.view_last_event, d.event->sequence()) << type << " delivered before the view";
      if (d.event->type() == v1::DEVICE_EVENT_TYPE_STATE_CHANGED) {
        EXPECT_EQ(d.view.state(), d.event->to_state()) << d.event->message();
      }
      if (previous != 0) {
        EXPECT_EQ(d.event->sequence(), previous + 1) << type;
      }
      previous = d.event->sequence();
    }
  }

  // The run's end (its ended snapshot, RUN_ENDED and the STATE_CHANGED that follows it) was
  // delivered only once the view showed `final_state` and no active run.
  void ExpectEndAnnouncedAfterTheView(const std::string& run, v1::DeviceState final_state,
                                      v1::RunEndReason reason) {
    ASSERT_EQ(device_->state(), final_state);
    const Delivery* ended = nullptr;
    for (const Delivery& d : deliveries_) {
      if (d.run != nullptr && RunEnded(*d.run)) ended = &d;
    }
    ASSERT_NE(ended, nullptr) << "the ended run was not published";
    EXPECT_EQ(ended->run->end_reason(), reason);
    EXPECT_EQ(ended->view.state(), final_state) << "WatchRun saw the end before GetDevice";
    EXPECT_EQ(ended->view.active_run(), "") << "WatchRun saw the end before GetDevice";

    const Delivery* run_ended = FindEvent(v1::DEVICE_EVENT_TYPE_RUN_ENDED, run);
    ASSERT_NE(run_ended, nullptr);
    EXPECT_EQ(run_ended->view.state(), final_state) << "RUN_ENDED came before the view";
    EXPECT_EQ(run_ended->view.active_run(), "") << "RUN_ENDED came before the view";

    const Delivery* changed = nullptr;
    for (const Delivery& d : deliveries_) {
      if (d.event != nullptr && d.event->type() == v1::DEVICE_EVENT_TYPE_STATE_CHANGED &&
          d.event->to_state() == final_state) {
        changed = &d;
      }
    }
    ASSERT_NE(changed, nullptr);
    EXPECT_EQ(changed->event->sequence(), run_ended->event->sequence() + 1)
        << "STATE_CHANGED follows RUN_ENDED directly";
    EXPECT_EQ(changed->view.state(), final_state) << "STATE_CHANGED came before the view";
    ExpectEveryEventReflectedByTheView();
  }

  void Tick() {
    clock_.Advance(absl::Milliseconds(10));
    device_->Tick();
  }

  std::shared_ptr<TelemetrySubscription> probe_;
  std::vector<Delivery> deliveries_;
};

TEST_F(PublicationOrderTest, CompletedRunIsAnnouncedAfterTheView) {
  const std::string run = StartWatchedRun({Step(1)});
  Run(absl::Milliseconds(1500));
  ExpectEndAnnouncedAfterTheView(run, v1::DEVICE_STATE_IDLE, v1::RUN_END_REASON_COMPLETED);
}

TEST_F(PublicationOrderTest, StoppedRunIsAnnouncedAfterTheView) {
  const std::string run = StartWatchedRun();
  device_->Stop();
  ExpectEndAnnouncedAfterTheView(run, v1::DEVICE_STATE_IDLE, v1::RUN_END_REASON_STOPPED);
}

TEST_F(PublicationOrderTest, CancelledRunIsAnnouncedAfterTheView) {
  const std::string run = StartWatchedRun();
  ASSERT_TRUE(device_->CancelRun(lease_, run).ok());
  ExpectEndAnnouncedAfterTheView(run, v1::DEVICE_STATE_IDLE, v1::RUN_END_REASON_CANCELLED);
}

TEST_F(PublicationOrderTest, EmergencyStoppedRunIsAnnouncedAfterTheView) {
  const std::string run = StartWatchedRun();
  device_->EmergencyStop();
  ExpectEndAnnouncedAfterTheView(run, v1::DEVICE_STATE_ESTOPPED, v1::RUN_END_REASON_EMERGENCY_STOP);
}

TEST_F(PublicationOrderTest, RunEndedByFaultIsAnnouncedAfterTheView) {
  const std::string run = StartWatchedRun();
  driver_->set_faults(FaultBit(v1::FAULT_KIND_OVER_TEMPERATURE));
  Tick();
  ExpectEndAnnouncedAfterTheView(run, v1::DEVICE_STATE_FAULT, v1::RUN_END_REASON_FAULT);
  const Delivery* raised = FindEvent(v1::DEVICE_EVENT_TYPE_FAULT_RAISED);
  ASSERT_NE(raised, nullptr);
  EXPECT_EQ(raised->view.active_fault().kind(), v1::FAULT_KIND_OVER_TEMPERATURE);
}

TEST_F(PublicationOrderTest, RunEndedByDriverErrorIsAnnouncedAfterTheView) {
  const std::string run = StartWatchedRun();
  driver_->set_fail_reads(true);
  Tick();
  ExpectEndAnnouncedAfterTheView(run, v1::DEVICE_STATE_FAULT, v1::RUN_END_REASON_FAULT);
}

TEST_F(PublicationOrderTest, RunEndedByLeaseExpiryIsAnnouncedAfterTheView) {
  ASSERT_TRUE(device_->ReleaseLease(lease_).ok());
  Lease(absl::Seconds(1));
  const std::string run = StartWatchedRun();
  Run(absl::Seconds(2));
  ExpectEndAnnouncedAfterTheView(run, v1::DEVICE_STATE_IDLE, v1::RUN_END_REASON_LEASE_EXPIRED);
  const Delivery* expired = FindEvent(v1::DEVICE_EVENT_TYPE_LEASE_EXPIRED);
  ASSERT_NE(expired, nullptr);
  EXPECT_FALSE(expired->view.has_lease()) << "LEASE_EXPIRED came before the view";
}

TEST_F(PublicationOrderTest, RunEndedByLinkLossIsAnnouncedAfterTheView) {
  const std::string run = StartWatchedRun();
  driver_->set_link_up(false);
  Tick();
  ExpectEndAnnouncedAfterTheView(run, v1::DEVICE_STATE_OFFLINE, v1::RUN_END_REASON_LINK_LOST);
}

TEST_F(PublicationOrderTest, RunEndedByShutdownIsAnnouncedAfterTheView) {
  const std::string run = StartWatchedRun();
  device_->Shutdown();
  ExpectEndAnnouncedAfterTheView(run, v1::DEVICE_STATE_IDLE, v1::RUN_END_REASON_SHUTDOWN);
}

TEST_F(PublicationOrderTest, RunEndedBySessionLimitIsAnnouncedAfterTheView) {
  v1::RunStep step = Step(10);
  step.mutable_settings()->mutable_microneedling()->set_session_limit_s(1);
  const std::string run = StartWatchedRun({step});
  Run(absl::Seconds(2));
  ExpectEndAnnouncedAfterTheView(run, v1::DEVICE_STATE_IDLE, v1::RUN_END_REASON_SESSION_LIMIT);
}

TEST_F(PublicationOrderTest, RunStartIsAnnouncedAfterTheViewShowsTheRun) {
  const std::string run = StartWatchedRun();
  const Delivery* started = FindEvent(v1::DEVICE_EVENT_TYPE_RUN_STARTED, run);
  ASSERT_NE(started, nullptr);
  EXPECT_EQ(started->view.state(), v1::DEVICE_STATE_RUNNING);
  EXPECT_EQ(started->view.active_run(), run);
  ExpectEveryEventReflectedByTheView();
}

TEST_F(PublicationOrderTest, RunStepIsAnnouncedAfterTheViewShowsItsSettings) {
  v1::RunStep second = Step(10);
  *second.mutable_settings() = PenSettings(1.5, 150);
  StartWatchedRun({Step(1), second});
  Run(absl::Milliseconds(1500));
  const Delivery* step = FindEvent(v1::DEVICE_EVENT_TYPE_RUN_STEP);
  ASSERT_NE(step, nullptr);
  EXPECT_EQ(step->view.settings().microneedling().needle_depth_mm(), 1.5);
  ExpectEveryEventReflectedByTheView();
}

TEST_F(PublicationOrderTest, PauseIsAnnouncedAfterTheView) {
  const std::string run = StartWatchedRun();
  ASSERT_TRUE(device_->Pause(lease_).ok());
  const Delivery* paused = nullptr;
  for (const Delivery& d : deliveries_) {
    if (d.run != nullptr && d.run->state() == v1::RUN_STATE_PAUSED) paused = &d;
  }
  ASSERT_NE(paused, nullptr);
  EXPECT_EQ(paused->view.state(), v1::DEVICE_STATE_PAUSED);
  ExpectEveryEventReflectedByTheView();
}

TEST_F(PublicationOrderTest, SettingsAppliedIsAnnouncedAfterTheView) {
  ASSERT_TRUE(device_->Configure(lease_, PenSettings(1.5, 150), false).ok());
  const Delivery* applied = FindEvent(v1::DEVICE_EVENT_TYPE_SETTINGS_APPLIED);
  ASSERT_NE(applied, nullptr);
  EXPECT_EQ(applied->view.settings().microneedling().needle_depth_mm(), 1.5);
  ExpectEveryEventReflectedByTheView();
}

TEST_F(PublicationOrderTest, EmergencyStopWhileOfflineIsAnnouncedAfterTheView) {
  driver_->set_link_up(false);
  Tick();
  device_->EmergencyStop();
  driver_->set_link_up(true);
  Tick();
  ASSERT_EQ(device_->state(), v1::DEVICE_STATE_ESTOPPED);
  ExpectEveryEventReflectedByTheView();
}

}  // namespace
}  // namespace derma::testing
