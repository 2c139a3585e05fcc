// Runs through the API: WatchRun to the end of a run, request_id idempotency of Start and
// StartRun, and EmergencyStop during a run with a queue of pending commands.
#include <memory>

#include "absl/synchronization/blocking_counter.h"
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::AnyOf;
using Stub = v1::DeviceControl::Stub;
using grpc::StatusCode;

using RunTest = ServerFixture;

std::chrono::system_clock::time_point CallDeadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(10);
}

TEST_F(RunTest, WatchRunStreamsEveryChangeUntilTheRunEndsThenClosesOk) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(1, PenSettings(1.0, 100)), Step(1)}, &run), IsOk());
  std::unique_ptr<WatchRunReader> watch = WatchRun(run.name());
  std::optional<v1::WatchRunResponse> first = watch->Next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->run().name(), run.name());
  EXPECT_EQ(first->run().state(), v1::RUN_STATE_RUNNING);

  Advance(3);
  std::vector<v1::WatchRunResponse> rest;
  std::optional<grpc::Status> status = watch->Finish(kStreamWait, &rest);
  ASSERT_TRUE(status.has_value()) << "WatchRun did not close after the run ended";
  EXPECT_THAT(*status, IsOk());
  ASSERT_FALSE(rest.empty());
  const v1::Run& last = rest.back().run();
  EXPECT_EQ(last.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(last.end_reason(), v1::RUN_END_REASON_COMPLETED);
  EXPECT_DOUBLE_EQ(last.ledger().output_on_s(), 2);
  // At most ten updates per second of run time, plus one per step and state change.
  EXPECT_LE(rest.size(), 3u * 10 + 4);
  double output_on = first->run().ledger().output_on_s();
  uint32_t step = first->run().current_step();
  for (const v1::WatchRunResponse& r : rest) {
    EXPECT_GE(r.run().ledger().output_on_s(), output_on);
    EXPECT_GE(r.run().current_step(), step);
    output_on = r.run().ledger().output_on_s();
    step = r.run().current_step();
  }
}

TEST_F(RunTest, WatchRunOfAnEndedRunSendsItThenClosesOk) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(1)}, &run), IsOk());
  Advance(2);
  std::unique_ptr<WatchRunReader> watch = WatchRun(run.name());
  std::vector<v1::WatchRunResponse> messages;
  std::optional<grpc::Status> status = watch->Finish(kStreamWait, &messages);
  ASSERT_TRUE(status.has_value());
  EXPECT_THAT(*status, IsOk());
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].run().state(), v1::RUN_STATE_SUCCEEDED);
}

TEST_F(RunTest, PausedRunHoldsItsStepAndLedger) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(2, PenSettings(1.0, 100))}, &run), IsOk());
  Advance(1);
  v1::PauseRequest pause;
  pause.set_name(kPen);
  pause.set_lease_id(lease);
  v1::PauseResponse paused;
  ASSERT_THAT(Invoke(*control_, &Stub::Pause, pause, &paused), IsOk());
  Advance(5);
  const v1::Run held = GetRun(run.name());
  EXPECT_EQ(held.state(), v1::RUN_STATE_PAUSED);
  EXPECT_DOUBLE_EQ(held.ledger().output_on_s(), 1);
  v1::ResumeRequest resume;
  resume.set_name(kPen);
  resume.set_lease_id(lease);
  v1::ResumeResponse resumed;
  ASSERT_THAT(Invoke(*control_, &Stub::Resume, resume, &resumed), IsOk());
  Advance(0.5);
  EXPECT_EQ(GetRun(run.name()).state(), v1::RUN_STATE_RUNNING);
  Advance(1);
  const v1::Run done = GetRun(run.name());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_DOUBLE_EQ(done.ledger().output_on_s(), 2);
  EXPECT_EQ(Micros(done.end_time()) - Micros(done.start_time()), 7'000'000);
}

TEST_F(RunTest, StimulatorLedgerIsCurrentTimesOutputTime) {
  const std::string lease = Lease(kStim);
  v1::Settings settings = StimSettings(500);
  settings.mutable_microcurrent()->set_ramp_s(0);
  v1::Run run;
  ASSERT_THAT(StartRun(kStim, lease, {Step(4, settings)}, &run), IsOk());
  Advance(5);
  const v1::Run done = GetRun(run.name());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_NEAR(done.ledger().charge_delivered_uc(), 2000.0, 1e-6);
  EXPECT_DOUBLE_EQ(done.ledger().output_on_s(), 4);
}

TEST_F(RunTest, StopEndsTheRunWithStopped) {
  const std::string lease = Lease(kStim);
  v1::Run run;
  ASSERT_THAT(StartRun(kStim, lease, {Step(60, StimSettings(250))}, &run), IsOk());
  Advance(1.25);
  v1::StopRequest request;
  request.set_name(kStim);
  v1::StopResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::Stop, request, &response), IsOk());
  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_STOPPED);
  EXPECT_DOUBLE_EQ(ended.ledger().output_on_s(), 1.25);
  EXPECT_FALSE(response.device().latest_sample().output_on());
}

TEST_F(RunTest, FaultEndsTheRunWithFault) {
  const std::string lease = Lease(kPen2);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen2, lease, {Step(60, PenSettings(2.5, 120))}, &run), IsOk());
  Advance(1);
  ASSERT_THAT(Inject(kPen2, v1::FAULT_KIND_CARTRIDGE_JAM), IsOk());
  Advance(0.05);
  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_FAULT);
  EXPECT_EQ(GetDevice(kPen2).state(), v1::DEVICE_STATE_FAULT);
  EXPECT_FALSE(GetDevice(kPen2).latest_sample().output_on());
}

TEST_F(RunTest, StartRunWithTheSameRequestIdStartsOneRun) {
  const std::string lease = Lease(kPen);
  const std::vector<v1::RunStep> program = {Step(10, PenSettings(1.0, 100))};
  v1::Run first, retry;
  ASSERT_THAT(StartRun(kPen, lease, program, &first, "req-42"), IsOk());
  Advance(1);
  ASSERT_THAT(StartRun(kPen, lease, program, &retry, "req-42"), IsOk());
  EXPECT_EQ(retry.name(), first.name());
  EXPECT_EQ(retry.request_id(), "req-42");

  v1::ListRunsRequest request;
  request.set_parent(kPen);
  v1::ListRunsResponse runs;
  ASSERT_THAT(Invoke(*control_, &Stub::ListRuns, request, &runs), IsOk());
  EXPECT_EQ(runs.runs_size(), 1);
}

TEST_F(RunTest, StartRunRequestIdWithADifferentProgramIsReused) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(StartRun(kPen, lease, {Step(10, PenSettings(1.0, 100))}, nullptr, "req-7"), IsOk());
  EXPECT_THAT(StartRun(kPen, lease, {Step(10, PenSettings(1.5, 100))}, nullptr, "req-7"),
              IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_REQUEST_ID_REUSED));
}

TEST_F(RunTest, StartWithTheSameRequestIdStartsOnce) {
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({kPen});
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*telemetry, 1, log));
  const std::string lease = Lease(kPen);
  ASSERT_THAT(Start(kPen, lease, "start-1"), IsOk());
  Advance(0.5);
  ASSERT_THAT(Start(kPen, lease, "start-1"), IsOk());
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_RUNNING);
  v1::StopRequest stop;
  stop.set_name(kPen);
  v1::StopResponse stopped;
  ASSERT_THAT(Invoke(*control_, &Stub::Stop, stop, &stopped), IsOk());

  int starts = 0;
  bool idle_again = false;
  DeviceTelemetry& pen = log.device(kPen);
  ASSERT_TRUE(ReadUntil(*telemetry, log, [&] {
    starts = 0;
    idle_again = false;
    for (const v1::DeviceEvent& e : pen.events) {
      if (e.type() != v1::DEVICE_EVENT_TYPE_STATE_CHANGED) continue;
      if (e.to_state() == v1::DEVICE_STATE_RUNNING) ++starts;
      if (e.to_state() == v1::DEVICE_STATE_IDLE) idle_again = true;
    }
    return idle_again;
  }));
  EXPECT_EQ(starts, 1);
}

TEST_F(RunTest, FailedStartIsNotRememberedSoARetryWithTheSameIdStarts) {
  const std::string lease = Lease(kStim);
  ASSERT_THAT(SetLink(kStim, false), IsOk());
  Advance(0.05);
  EXPECT_THAT(Start(kStim, lease, "start-9"),
              IsError(StatusCode::UNAVAILABLE, v1::ERROR_REASON_DEVICE_OFFLINE));
  ASSERT_THAT(SetLink(kStim, true), IsOk());
  Advance(0.05);
  ASSERT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_IDLE);
  EXPECT_THAT(Start(kStim, lease, "start-9"), IsOk());
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_RUNNING);
}

// Many Configure and GetDevice calls are in flight when EmergencyStop arrives: the stop wins,
// the output is off when it returns, the run ends EMERGENCY_STOP, and no queued Configure
// changes anything (each fails RUN_ACTIVE before the stop or ESTOP_LATCHED after it).
TEST_F(RunTest, EmergencyStopDuringARunOvertakesQueuedCommands) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(600, PenSettings(1.0, 100))}, &run), IsOk());
  Advance(1);
  ASSERT_TRUE(GetDevice(kPen).latest_sample().output_on());

  constexpr int kEach = 100;
  struct Pending {
    grpc::ClientContext context;
    v1::ConfigureRequest configure;
    v1::ConfigureResponse configured;
    v1::GetDeviceRequest get;
    v1::GetDeviceResponse got;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Pending>> configures, gets;
  absl::BlockingCounter left(2 * kEach);
  for (int i = 0; i < kEach; ++i) {
    auto c = std::make_unique<Pending>();
    c->context.set_deadline(CallDeadline());
    c->configure.set_name(kPen);
    c->configure.set_lease_id(lease);
    *c->configure.mutable_settings() = PenSettings(2.0, 150);
    control_->async()->Configure(&c->context, &c->configure, &c->configured,
                                 [&left, p = c.get()](grpc::Status s) {
                                   p->status = std::move(s);
                                   left.DecrementCount();
                                 });
    configures.push_back(std::move(c));
    auto g = std::make_unique<Pending>();
    g->context.set_deadline(CallDeadline());
    g->get.set_name(kPen);
    control_->async()->GetDevice(&g->context, &g->get, &g->got,
                                 [&left, p = g.get()](grpc::Status s) {
                                   p->status = std::move(s);
                                   left.DecrementCount();
                                 });
    gets.push_back(std::move(g));
  }
  v1::EmergencyStopRequest request;
  request.set_name(kPen);
  v1::EmergencyStopResponse response;
  ASSERT_THAT(Invoke(*control_, &Stub::EmergencyStop, request, &response), IsOk());
  ASSERT_EQ(response.devices_size(), 1);
  EXPECT_EQ(response.devices(0).state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_FALSE(response.devices(0).latest_sample().output_on());
  const v1::Device after = GetDevice(kPen);
  EXPECT_EQ(after.state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_FALSE(after.latest_sample().output_on());
  left.Wait();

  for (const auto& c : configures) {
    EXPECT_THAT(c->status,
                AnyOf(IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_RUN_ACTIVE),
                      IsError(StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_ESTOP_LATCHED)));
  }
  for (const auto& g : gets) {
    ASSERT_THAT(g->status, IsOk());
    if (g->got.device().state() == v1::DEVICE_STATE_ESTOPPED) {
      EXPECT_FALSE(g->got.device().latest_sample().output_on());
    }
  }
  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_EMERGENCY_STOP);
  Advance(1);
  const v1::Device later = GetDevice(kPen);
  EXPECT_EQ(later.state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_FALSE(later.latest_sample().output_on());
  EXPECT_TRUE(later.active_run().empty());
  EXPECT_DOUBLE_EQ(later.settings().microneedling().needle_depth_mm(), 1.0);
}

}  // namespace
}  // namespace derma::testing
