// StreamTelemetry under load through a real server: a slow consumer loses only its oldest
// samples, each one counted exactly where the gap is, and never an event; a consumer that stops
// reading until 65536 events wait is ended with STREAM_LIMIT instead of losing one; streams
// opened while devices are ticking start gap-free from their snapshot.
#include <thread>

#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::IsEmpty;
using Stub = v1::DeviceControl::Stub;
using grpc::StatusCode;

// A client whose streams the server can fill quickly: a fixed 64 KiB flow-control window
// (no BDP growth), so a client that stops reading holds up the server's writes
// deterministically.
grpc::ChannelArguments SmallWindow() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 * 1024);
  return args;
}

class SlowConsumerTest : public ServerFixture {
 protected:
  PluginOptions Options() const override {
    PluginOptions options;
    options.stream_sample_capacity = 64;
    return options;
  }
};

// The client stops reading while a 100-step program runs and 300 s of device time pass
// (30 000 samples, 100+ events). When it reads again, every sample it lost is counted in
// dropped_samples right where the gap is, and every event arrives, in sequence.
TEST_F(SlowConsumerTest, SlowReaderLosesOnlyCountedSamplesAndNoEvents) {
  Client reader = NewClient(SmallWindow());
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({kPen}, 0, &reader);
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*telemetry, 1, log));
  DeviceTelemetry& pen = log.device(kPen);
  const uint64_t first_sample = pen.next_sample;
  const uint64_t first_event = pen.next_event;

  const std::string lease = Lease(kPen);
  std::vector<v1::RunStep> program;
  for (int i = 0; i < 100; ++i) program.push_back(Step(0.5, PenSettings(1.0, i % 2 ? 60 : 50)));
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, program, &run), IsOk());
  Advance(300);  // not reading

  const uint64_t last_event = LastEventSequence(kPen);
  const uint64_t last_sample = GetDevice(kPen).latest_sample().sequence();
  ASSERT_TRUE(ReadUntil(
      *telemetry, log, [&] { return pen.next_sample > last_sample && pen.next_event > last_event; },
      absl::Seconds(30)));

  EXPECT_THAT(pen.errors, IsEmpty());
  EXPECT_GT(pen.dropped, 0u);
  EXPECT_EQ(pen.samples + pen.dropped, last_sample - first_sample + 1);
  EXPECT_EQ(pen.events.size(), last_event - first_event + 1);
  int steps = 0, ended = 0;
  for (const v1::DeviceEvent& e : pen.events) {
    steps += e.type() == v1::DEVICE_EVENT_TYPE_RUN_STEP;
    ended += e.type() == v1::DEVICE_EVENT_TYPE_RUN_ENDED;
  }
  EXPECT_EQ(steps, 99);
  EXPECT_EQ(ended, 1);
  const v1::Run done = GetRun(run.name());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED) << done.ShortDebugString();
}

using TelemetryFlowTest = ServerFixture;

// Each 100-step program of 1 ms steps makes 103 events; 1000 of them on four devices (103 000
// events) are far more than the 65536 events a stream holds for a client that does not read.
TEST_F(TelemetryFlowTest, ClientThatStopsReadingUntilEventsOverflowIsEndedWithStreamLimit) {
  const std::vector<std::string> devices = {kPen, kPen2, kStim, kStim2};
  Client reader = NewClient(SmallWindow());
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry(devices, 0, &reader);
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*telemetry, devices.size(), log));
  std::vector<std::string> leases;
  for (const std::string& d : devices) leases.push_back(Lease(d));
  const std::vector<v1::RunStep> program(100, Step(0.001));
  for (int round = 0; round < 250; ++round) {
    for (size_t i = 0; i < devices.size(); ++i) {
      ASSERT_THAT(StartRun(devices[i], leases[i], program, nullptr), IsOk()) << round;
    }
    Advance(0.15);
    if (round % 100 == 99) {
      for (size_t i = 0; i < devices.size(); ++i) {
        v1::RenewLeaseRequest renew;
        renew.set_name(devices[i]);
        renew.set_lease_id(leases[i]);
        renew.set_ttl_s(60);
        v1::RenewLeaseResponse renewed;
        ASSERT_THAT(Invoke(*control_, &Stub::RenewLease, renew, &renewed), IsOk());
      }
    }
  }
  std::vector<v1::StreamTelemetryResponse> rest;
  std::optional<grpc::Status> status = telemetry->Finish(absl::Seconds(30), &rest);

  ASSERT_TRUE(status.has_value()) << "the overflowed stream did not end";
  EXPECT_THAT(*status, IsError(StatusCode::RESOURCE_EXHAUSTED, v1::ERROR_REASON_STREAM_LIMIT));
  // Up to the end, nothing was lost without notice.
  for (const v1::StreamTelemetryResponse& m : rest) log.Add(m);
  for (const std::string& d : devices) EXPECT_THAT(log.device(d).errors, IsEmpty()) << d;
}

// Streams open one after another while another client keeps advancing the clock through a
// run: each starts exactly after its snapshot (no sample or event missed or repeated).
TEST_F(TelemetryFlowTest, StreamsOpenedWhileDevicesTickStartGaplessFromTheirSnapshot) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(StartRun(kPen, lease, std::vector<v1::RunStep>(100, Step(0.05)), nullptr), IsOk());
  ASSERT_THAT(Start(kStim, Lease(kStim)), IsOk());

  Client ticker = NewClient();
  std::thread advancing([&ticker] {
    sim::v1::AdvanceClockRequest request;
    request.set_duration_s(0.1);
    for (int i = 0; i < 60; ++i) {
      sim::v1::AdvanceClockResponse response;
      EXPECT_THAT(
          Invoke(*ticker.simulator, &sim::v1::Simulator::Stub::AdvanceClock, request, &response),
          IsOk());
    }
  });
  constexpr int kStreams = 12;
  std::vector<std::unique_ptr<TelemetryReader>> streams;
  std::vector<TelemetryLog> logs(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(StreamTelemetry({kPen, kStim}));
    ASSERT_TRUE(ReadOpening(*streams.back(), 2, logs[i])) << "stream " << i;
  }
  advancing.join();

  const uint64_t pen_sample = GetDevice(kPen).latest_sample().sequence();
  const uint64_t stim_sample = GetDevice(kStim).latest_sample().sequence();
  const uint64_t pen_event = LastEventSequence(kPen);
  for (int i = 0; i < kStreams; ++i) {
    DeviceTelemetry& pen = logs[i].device(kPen);
    DeviceTelemetry& stim = logs[i].device(kStim);
    ASSERT_TRUE(ReadUntil(*streams[i], logs[i],
                          [&] {
                            return pen.next_sample > pen_sample && stim.next_sample > stim_sample &&
                                   pen.next_event > pen_event;
                          }))
        << "stream " << i;
    EXPECT_THAT(pen.errors, IsEmpty()) << "stream " << i;
    EXPECT_THAT(stim.errors, IsEmpty()) << "stream " << i;
    EXPECT_EQ(pen.dropped + stim.dropped, 0u) << "stream " << i;
  }
}

}  // namespace
}  // namespace derma::testing
