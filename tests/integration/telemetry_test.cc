// StreamTelemetry through a real server: per device a snapshot, then one SyncMarker, then live
// batches and events with per-device sequence numbers that have no unexplained gaps; events
// for state changes and faults; decimation; heartbeats on an idle stream. Flow control (slow
// consumers, overflow, streams opened under load) is in telemetry_flow_test.cc.
#include <algorithm>
#include <set>

#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

using TelemetryTest = ServerFixture;

std::vector<v1::DeviceEventType> TypesOf(const std::vector<v1::DeviceEvent>& events) {
  std::vector<v1::DeviceEventType> types;
  for (const v1::DeviceEvent& e : events) types.push_back(e.type());
  return types;
}

TEST_F(TelemetryTest, SnapshotPerRequestedDeviceThenSyncThenGaplessLiveSamples) {
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({kStim, kPen});
  std::set<std::string> snapshotted;
  TelemetryLog log;
  for (int i = 0; i < 2; ++i) {
    std::optional<v1::StreamTelemetryResponse> m = telemetry->Next();
    ASSERT_TRUE(m.has_value() && m->has_snapshot()) << (m ? m->ShortDebugString() : "end");
    snapshotted.insert(m->snapshot().device().name());
    EXPECT_EQ(m->snapshot().device().state(), v1::DEVICE_STATE_IDLE);
    EXPECT_TRUE(m->snapshot().device().has_latest_sample());
    log.Begin(m->snapshot());
  }
  EXPECT_THAT(snapshotted, UnorderedElementsAre(kStim, kPen));
  std::optional<v1::StreamTelemetryResponse> sync = telemetry->Next();
  ASSERT_TRUE(sync.has_value() && sync->has_sync());
  EXPECT_EQ(sync->sync().device_count(), 2u);

  const uint64_t pen_start = log.device(kPen).next_sample;
  const uint64_t stim_start = log.device(kStim).next_sample;
  Advance(1);
  const uint64_t pen_last = GetDevice(kPen).latest_sample().sequence();
  const uint64_t stim_last = GetDevice(kStim).latest_sample().sequence();
  ASSERT_TRUE(ReadUntil(*telemetry, log, [&] {
    return log.device(kPen).next_sample > pen_last && log.device(kStim).next_sample > stim_last;
  }));
  for (const char* name : {kPen, kStim}) {
    const DeviceTelemetry& d = log.device(name);
    EXPECT_THAT(d.errors, IsEmpty()) << name;
    EXPECT_EQ(d.dropped, 0u) << name;
    int64_t previous_time = 0;
    for (const v1::TelemetrySample& s : d.sample_log) {
      EXPECT_GT(s.device_time_us(), previous_time) << name;
      previous_time = s.device_time_us();
    }
  }
  EXPECT_EQ(log.device(kPen).samples, pen_last - pen_start + 1);
  EXPECT_EQ(log.device(kStim).samples, stim_last - stim_start + 1);
  EXPECT_GT(log.device(kPen).samples, 0u);
  // Only the requested devices are streamed.
  EXPECT_EQ(log.device(kPen2).samples, 0u);
  EXPECT_EQ(log.device(kStim2).samples, 0u);
}

TEST_F(TelemetryTest, EmptyNamesStreamsEveryDevice) {
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({});
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*telemetry, kDeviceCount, log));
  Advance(0.1);
  const uint64_t last = GetDevice(kStim2).latest_sample().sequence();
  ASSERT_TRUE(ReadUntil(*telemetry, log, [&] { return log.device(kStim2).next_sample > last; }));
  EXPECT_THAT(log.device(kStim2).errors, IsEmpty());
}

TEST_F(TelemetryTest, StateChangeAndFaultEventsFollowTheSnapshotWithoutGaps) {
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({kPen});
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*telemetry, 1, log));
  DeviceTelemetry& pen = log.device(kPen);
  const uint64_t first_event = pen.next_event;

  const std::string lease = Lease(kPen);
  ASSERT_THAT(Configure(kPen, lease, PenSettings(1.0, 120)), IsOk());
  ASSERT_THAT(Start(kPen, lease), IsOk());
  Advance(0.5);
  ASSERT_THAT(Inject(kPen, v1::FAULT_KIND_MOTOR_STALL), IsOk());
  Advance(0.05);
  ASSERT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_FAULT);
  const uint64_t last_sample = GetDevice(kPen).latest_sample().sequence();

  ASSERT_TRUE(ReadUntil(*telemetry, log, [&] { return pen.next_sample > last_sample; }));
  EXPECT_THAT(pen.errors, IsEmpty());
  ASSERT_FALSE(pen.events.empty());
  EXPECT_EQ(pen.events.front().sequence(), first_event);
  EXPECT_THAT(TypesOf(pen.events), ::testing::IsSupersetOf({v1::DEVICE_EVENT_TYPE_SETTINGS_APPLIED,
                                                            v1::DEVICE_EVENT_TYPE_STATE_CHANGED,
                                                            v1::DEVICE_EVENT_TYPE_FAULT_RAISED}));
  size_t fault_index = pen.events.size();
  bool started = false, faulted = false;
  for (size_t i = 0; i < pen.events.size(); ++i) {
    const v1::DeviceEvent& e = pen.events[i];
    EXPECT_EQ(e.device(), kPen);
    if (e.type() == v1::DEVICE_EVENT_TYPE_STATE_CHANGED &&
        e.to_state() == v1::DEVICE_STATE_RUNNING) {
      EXPECT_EQ(e.from_state(), v1::DEVICE_STATE_IDLE);
      started = true;
    }
    if (e.type() == v1::DEVICE_EVENT_TYPE_FAULT_RAISED) {
      EXPECT_EQ(e.fault().kind(), v1::FAULT_KIND_MOTOR_STALL);
      EXPECT_FALSE(faulted) << "the fault is reported before the state change";
      fault_index = std::min(fault_index, i);
    }
    if (e.type() == v1::DEVICE_EVENT_TYPE_STATE_CHANGED && e.to_state() == v1::DEVICE_STATE_FAULT) {
      EXPECT_EQ(e.from_state(), v1::DEVICE_STATE_RUNNING);
      EXPECT_LT(fault_index, pen.events.size()) << "FAULT_RAISED must come first";
      faulted = true;
    }
  }
  EXPECT_TRUE(started);
  EXPECT_TRUE(faulted);
  // The output is off before the fault is reported, so every sample that follows the
  // FAULT_RAISED event in the stream (the device's order) shows it off.
  bool saw_output_on = false;
  for (size_t i = 0; i < pen.sample_log.size(); ++i) {
    const v1::TelemetrySample& s = pen.sample_log[i];
    if (pen.events_before[i] > fault_index) {
      EXPECT_FALSE(s.output_on()) << "sample " << s.sequence() << " at " << s.device_time_us()
                                  << " us follows FAULT_RAISED at "
                                  << pen.events[fault_index].device_time_us() << " us";
    } else {
      saw_output_on |= s.output_on();
    }
  }
  EXPECT_TRUE(saw_output_on);
}

TEST_F(TelemetryTest, SnapshotTakenMidRunCarriesTheLastEventSequence) {
  const std::string lease = Lease(kStim);
  v1::Run run;
  ASSERT_THAT(StartRun(kStim, lease, {Step(60, StimSettings(300))}, &run), IsOk());
  Advance(1);
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({kStim});
  std::optional<v1::StreamTelemetryResponse> snapshot = telemetry->Next();
  ASSERT_TRUE(snapshot.has_value() && snapshot->has_snapshot());
  EXPECT_EQ(snapshot->snapshot().device().state(), v1::DEVICE_STATE_RUNNING);
  EXPECT_EQ(snapshot->snapshot().device().active_run(), run.name());
  EXPECT_TRUE(snapshot->snapshot().device().latest_sample().output_on());
  const uint64_t last_event = snapshot->snapshot().last_event_sequence();
  EXPECT_GT(last_event, 0u);
  TelemetryLog log;
  log.Begin(snapshot->snapshot());
  std::optional<v1::StreamTelemetryResponse> sync = telemetry->Next();
  ASSERT_TRUE(sync.has_value() && sync->has_sync());

  v1::StopRequest stop;
  stop.set_name(kStim);
  v1::StopResponse stopped;
  ASSERT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::Stop, stop, &stopped), IsOk());
  DeviceTelemetry& stim = log.device(kStim);
  ASSERT_TRUE(ReadUntil(*telemetry, log, [&] {
    for (const v1::DeviceEvent& e : stim.events) {
      if (e.type() == v1::DEVICE_EVENT_TYPE_STATE_CHANGED &&
          e.to_state() == v1::DEVICE_STATE_IDLE) {
        return true;
      }
    }
    return false;
  }));
  EXPECT_EQ(stim.events.front().sequence(), last_event + 1);
  EXPECT_THAT(stim.errors, IsEmpty());
}

TEST_F(TelemetryTest, SampleIntervalDecimatesPerDeviceTime) {
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({kPen}, 0.1);
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*telemetry, 1, log));
  Advance(2);
  const int64_t last_time = GetDevice(kPen).latest_sample().device_time_us();
  DeviceTelemetry& pen = log.device(kPen);
  ASSERT_TRUE(ReadUntil(*telemetry, log, [&] {
    return !pen.sample_log.empty() && pen.sample_log.back().device_time_us() + 100'000 > last_time;
  }));
  EXPECT_EQ(pen.dropped, 0u);
  for (size_t i = 1; i < pen.sample_log.size(); ++i) {
    EXPECT_GE(pen.sample_log[i].device_time_us() - pen.sample_log[i - 1].device_time_us(), 100'000);
  }
  EXPECT_GE(pen.samples, 19u);
  EXPECT_LE(pen.samples, 21u);
}

class HeartbeatTest : public ServerFixture {
 protected:
  PluginOptions Options() const override {
    PluginOptions options;
    options.heartbeat_interval = absl::Milliseconds(50);
    return options;
  }
};

TEST_F(HeartbeatTest, IdleStreamGetsHeartbeats) {
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({kPen});
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*telemetry, 1, log));
  // The virtual clock does not move: nothing but heartbeats can come.
  for (int i = 0; i < 3; ++i) {
    std::optional<v1::StreamTelemetryResponse> m = telemetry->Next();
    ASSERT_TRUE(m.has_value()) << "no heartbeat on an idle stream";
    ASSERT_TRUE(m->has_heartbeat()) << m->ShortDebugString();
    EXPECT_GT(Micros(m->heartbeat().server_time()), 0);
  }
}

}  // namespace
}  // namespace derma::testing
