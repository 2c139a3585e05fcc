// Serving concerns through a real server: the concurrent stream limit, health, reflection,
// shutdown of open streams, and bad input that is refused while the server keeps serving.
#include <set>

#include "google/protobuf/text_format.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/server_builder.h"
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::AnyOf;
using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::IsSupersetOf;
using Stub = v1::DeviceControl::Stub;
using grpc::StatusCode;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class StreamLimitTest : public ServerFixture {
 protected:
  PluginOptions Options() const override {
    PluginOptions options;
    options.max_streams = 2;
    return options;
  }
};

TEST_F(StreamLimitTest, StreamPastTheLimitIsRefusedWithStreamLimit) {
  std::unique_ptr<TelemetryReader> first = StreamTelemetry({kPen});
  std::unique_ptr<TelemetryReader> second = StreamTelemetry({kStim});
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*first, 1, log));
  ASSERT_TRUE(ReadOpening(*second, 1, log));

  std::unique_ptr<TelemetryReader> third = StreamTelemetry({kPen2});
  std::optional<grpc::Status> refused = third->Finish();
  ASSERT_TRUE(refused.has_value());
  EXPECT_THAT(*refused, IsError(StatusCode::RESOURCE_EXHAUSTED, v1::ERROR_REASON_STREAM_LIMIT));

  // WatchRun counts against the same limit.
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(10)}, &run), IsOk());
  std::unique_ptr<WatchRunReader> watch = WatchRun(run.name());
  std::optional<grpc::Status> watch_refused = watch->Finish();
  ASSERT_TRUE(watch_refused.has_value());
  EXPECT_THAT(*watch_refused,
              IsError(StatusCode::RESOURCE_EXHAUSTED, v1::ERROR_REASON_STREAM_LIMIT));

  // Unary calls are not limited, and the open streams still work.
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_RUNNING);
  Advance(0.1);
  const uint64_t last = GetDevice(kStim).latest_sample().sequence();
  EXPECT_TRUE(ReadUntil(*second, log, [&] { return log.device(kStim).next_sample > last; }));
}

class PrincipalStreamLimitTest : public ServerFixture {
 protected:
  PluginOptions Options() const override {
    PluginOptions options;
    options.max_streams = 8;
    options.max_streams_per_principal = 2;  // no tokens file: every caller is "local"
    return options;
  }
};

TEST_F(PrincipalStreamLimitTest, OnePrincipalIsRefusedPastItsLimitNamingIt) {
  std::unique_ptr<TelemetryReader> first = StreamTelemetry({kPen});
  std::unique_ptr<TelemetryReader> second = StreamTelemetry({kStim});
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*first, 1, log));
  ASSERT_TRUE(ReadOpening(*second, 1, log));
  Client other = NewClient();  // another connection is still the same principal
  std::unique_ptr<TelemetryReader> third = StreamTelemetry({kPen2}, 0, &other);
  std::optional<grpc::Status> refused = third->Finish();
  ASSERT_TRUE(refused.has_value());
  EXPECT_THAT(*refused, IsError(StatusCode::RESOURCE_EXHAUSTED, v1::ERROR_REASON_STREAM_LIMIT));
  EXPECT_THAT(refused->error_message(), ::testing::HasSubstr("principal \"local\""));
  EXPECT_THAT(MetadataOf(*refused), ::testing::Contains(::testing::Pair("principal", "local")));
}

TEST_F(StreamLimitTest, ClosingAStreamFreesItsSlot) {
  std::unique_ptr<TelemetryReader> first = StreamTelemetry({kPen});
  std::unique_ptr<TelemetryReader> second = StreamTelemetry({kStim});
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*first, 1, log));
  ASSERT_TRUE(ReadOpening(*second, 1, log));
  first.reset();  // cancels the call

  // The server releases the slot when it sees the cancellation; retry until it has.
  const absl::Time deadline = absl::Now() + kStreamWait;
  bool opened = false;
  while (!opened && absl::Now() < deadline) {
    std::unique_ptr<TelemetryReader> again = StreamTelemetry({kPen2});
    std::optional<v1::StreamTelemetryResponse> m = again->Next();
    if (m.has_value()) {
      EXPECT_TRUE(m->has_snapshot()) << m->ShortDebugString();
      opened = true;
    } else {
      std::optional<grpc::Status> status = again->Finish();
      ASSERT_TRUE(status.has_value());
      ASSERT_THAT(*status, HasReason(v1::ERROR_REASON_STREAM_LIMIT));
    }
  }
  EXPECT_TRUE(opened) << "the cancelled stream's slot was never released";
}

using ServingTest = ServerFixture;

HealthCheckResponse::ServingStatus Check(grpc::health::v1::Health::Stub& health,
                                         const std::string& service) {
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  EXPECT_THAT(Invoke(health, &grpc::health::v1::Health::Stub::Check, request, &response), IsOk())
      << "service \"" << service << "\"";
  return response.status();
}

TEST_F(ServingTest, HealthIsServingThenNotServingAfterShutdown) {
  auto health = grpc::health::v1::Health::NewStub(client_.channel);
  EXPECT_EQ(Check(*health, ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(Check(*health, "derma.v1.DeviceControl"), HealthCheckResponse::SERVING);
  EXPECT_EQ(Check(*health, "derma.sim.v1.Simulator"), HealthCheckResponse::SERVING);
  plugin_->Shutdown();
  EXPECT_EQ(Check(*health, ""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Check(*health, "derma.v1.DeviceControl"), HealthCheckResponse::NOT_SERVING);
}

// grpc.reflection.v1alpha has no installed C++ stubs (Debian ships only the server plugin),
// so the test speaks it through the generic stub: ServerReflectionRequest{list_services: ""}
// is field 7; the response's list_services_response is field 6, holding repeated
// ServiceResponse (field 1) with name (field 1).
// The service names in a serialized ServerReflectionResponse.
std::vector<std::string> ServiceNamesOf(const std::string& reply) {
  std::vector<std::string> names;
  google::protobuf::UnknownFieldSet response;
  if (!response.ParseFromString(reply)) return names;
  for (int i = 0; i < response.field_count(); ++i) {
    if (response.field(i).number() != 6) continue;  // list_services_response
    google::protobuf::UnknownFieldSet list;
    list.ParseFromString(response.field(i).length_delimited());
    for (int j = 0; j < list.field_count(); ++j) {  // repeated ServiceResponse service = 1
      google::protobuf::UnknownFieldSet service;
      service.ParseFromString(list.field(j).length_delimited());
      for (int k = 0; k < service.field_count(); ++k) {
        if (service.field(k).number() == 1) names.push_back(service.field(k).length_delimited());
      }
    }
  }
  return names;
}

void* Tag(intptr_t n) { return reinterpret_cast<void*>(n); }

// Lists the server's services through reflection; `status` gets the call's status.
std::vector<std::string> ReflectedServices(grpc::Channel& channel, grpc::Status* status) {
  grpc::GenericStub stub(channel.shared_from_this());
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  auto completed = [&](intptr_t n) { return cq.Next(&tag, &ok) && tag == Tag(n) && ok; };

  call->StartCall(Tag(1));
  bool going = completed(1);
  grpc::Slice request(std::string("\x3a\x00", 2));  // list_services: ""
  if (going) call->Write(grpc::ByteBuffer(&request, 1), Tag(2));
  going = going && completed(2);
  if (going) call->WritesDone(Tag(3));
  going = going && completed(3);
  grpc::ByteBuffer reply;
  if (going) call->Read(&reply, Tag(4));
  going = going && completed(4);
  std::vector<std::string> services;
  if (going) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(reply.Dump(&slices).ok());
    std::string bytes;
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    services = ServiceNamesOf(bytes);
  } else {
    context.TryCancel();
  }
  call->Finish(status, Tag(5));
  while (cq.Next(&tag, &ok) && tag != Tag(5)) {
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return services;
}

TEST_F(ServingTest, ReflectionListsDermaServices) {
  grpc::Status status;
  EXPECT_THAT(
      ReflectedServices(*client_.channel, &status),
      IsSupersetOf({"derma.v1.DeviceControl", "derma.sim.v1.Simulator", "grpc.health.v1.Health"}));
  EXPECT_THAT(status, IsOk());
}

// PluginOptions.reflection is per plugin ("turns ... reflection off when the host provides its
// own"), so a plugin created with reflection off must not serve it even when another plugin in
// the same process (here: one registered just before, on a builder that is never started) has it
// on.
TEST_F(ServingTest, ShutdownEndsAnOpenTelemetryStreamWithShuttingDownAfterItsLastMessages) {
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({kPen});
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*telemetry, 1, log));
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(60)}, &run), IsOk());
  Advance(1);

  plugin_->Shutdown();
  std::vector<v1::StreamTelemetryResponse> rest;
  std::optional<grpc::Status> status = telemetry->Finish(kStreamWait, &rest);
  ASSERT_TRUE(status.has_value()) << "the stream did not end at shutdown";
  EXPECT_THAT(*status, IsError(StatusCode::UNAVAILABLE, v1::ERROR_REASON_SHUTTING_DOWN));

  // What the stream held was sent first: the run's end and the output off.
  for (const v1::StreamTelemetryResponse& m : rest) log.Add(m);
  const DeviceTelemetry& pen = log.device(kPen);
  EXPECT_THAT(pen.errors, ::testing::IsEmpty());
  bool run_ended = false;
  for (const v1::DeviceEvent& e : pen.events) {
    run_ended |= e.type() == v1::DEVICE_EVENT_TYPE_RUN_ENDED && e.run() == run.name();
  }
  EXPECT_TRUE(run_ended);
  ASSERT_FALSE(pen.sample_log.empty());
  EXPECT_FALSE(pen.sample_log.back().output_on());
  EXPECT_EQ(pen.sample_log.back().sequence(), GetDevice(kPen).latest_sample().sequence());
  EXPECT_EQ(GetRun(run.name()).end_reason(), v1::RUN_END_REASON_SHUTDOWN);
}

TEST_F(ServingTest, ShutdownEndsAWatchRunAfterTheRunsLastState) {
  const std::string lease = Lease(kStim);
  v1::Run run;
  ASSERT_THAT(StartRun(kStim, lease, {Step(60, StimSettings(200))}, &run), IsOk());
  std::unique_ptr<WatchRunReader> watch = WatchRun(run.name());
  ASSERT_TRUE(watch->Next().has_value());
  plugin_->Shutdown();
  std::vector<v1::WatchRunResponse> rest;
  std::optional<grpc::Status> status = watch->Finish(kStreamWait, &rest);
  ASSERT_TRUE(status.has_value()) << "WatchRun did not end at shutdown";
  // The run ended (SHUTDOWN), so closing OK is as right as SHUTTING_DOWN.
  EXPECT_THAT(*status,
              AnyOf(IsOk(), IsError(StatusCode::UNAVAILABLE, v1::ERROR_REASON_SHUTTING_DOWN)));
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back().run().end_reason(), v1::RUN_END_REASON_SHUTDOWN);
}

TEST_F(ServingTest, NewStreamsAreRefusedWithShuttingDownAfterShutdown) {
  plugin_->Shutdown();
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({kPen});
  std::optional<grpc::Status> status = telemetry->Finish();
  ASSERT_TRUE(status.has_value());
  EXPECT_THAT(*status, IsError(StatusCode::UNAVAILABLE, v1::ERROR_REASON_SHUTTING_DOWN));
}

TEST_F(ServingTest, BadInputIsRefusedNamingTheFieldAndTheServerKeepsServing) {
  v1::GetDeviceRequest get;
  get.set_name("dev/x");
  v1::GetDeviceResponse got;
  grpc::Status status = Invoke(*control_, &Stub::GetDevice, get, &got);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("name"));

  v1::AcquireLeaseRequest acquire;
  acquire.set_name(kPen);
  acquire.set_holder("it");
  acquire.set_ttl_s(0);
  v1::AcquireLeaseResponse acquired;
  status = Invoke(*control_, &Stub::AcquireLease, acquire, &acquired);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("ttl_s"));

  v1::StartRunRequest start_run;
  start_run.set_parent("devices/pen-1/extra");
  v1::StartRunResponse started;
  status = Invoke(*control_, &Stub::StartRun, start_run, &started);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("parent"));

  v1::ListDevicesRequest list;
  list.set_page_size(-1);
  v1::ListDevicesResponse listed;
  status = Invoke(*control_, &Stub::ListDevices, list, &listed);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("page_size"));

  v1::ListRunsRequest runs;
  runs.set_parent("devices/nope");
  v1::ListRunsResponse listed_runs;
  EXPECT_THAT(Invoke(*control_, &Stub::ListRuns, runs, &listed_runs),
              IsError(StatusCode::NOT_FOUND, v1::ERROR_REASON_DEVICE_NOT_FOUND));
  runs.set_parent(kPen);
  runs.set_page_token("not-a-token");
  status = Invoke(*control_, &Stub::ListRuns, runs, &listed_runs);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("page_token"));

  v1::GetRunRequest get_run;
  get_run.set_name("runs/x");
  v1::GetRunResponse got_run;
  status = Invoke(*control_, &Stub::GetRun, get_run, &got_run);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("name"));

  v1::EmergencyStopRequest estop;  // no target
  v1::EmergencyStopResponse estopped;
  status = Invoke(*control_, &Stub::EmergencyStop, estop, &estopped);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("target"));

  sim::v1::AdvanceClockRequest advance;
  advance.set_duration_s(0);
  sim::v1::AdvanceClockResponse advanced;
  status = Invoke(*simulator_, &sim::v1::Simulator::Stub::AdvanceClock, advance, &advanced);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("duration_s"));

  advance.set_duration_s(86401);
  status = Invoke(*simulator_, &sim::v1::Simulator::Stub::AdvanceClock, advance, &advanced);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("duration_s"));

  sim::v1::SetElectrodeImpedanceRequest impedance;
  impedance.set_name(kStim);
  impedance.set_impedance_ohm(50);
  sim::v1::SetElectrodeImpedanceResponse impedance_set;
  status = Invoke(*simulator_, &sim::v1::Simulator::Stub::SetElectrodeImpedance, impedance,
                  &impedance_set);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status, HasViolation("impedance_ohm"));

  EXPECT_EQ(Inject(kPen, v1::FAULT_KIND_UNSPECIFIED).error_code(), StatusCode::INVALID_ARGUMENT);

  std::unique_ptr<TelemetryReader> bad_name = StreamTelemetry({kPen, "dev/x"});
  std::optional<grpc::Status> ended = bad_name->Finish();
  ASSERT_TRUE(ended.has_value());
  EXPECT_THAT(*ended, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(*ended, HasViolation("names[1]"));
  std::unique_ptr<TelemetryReader> bad_interval = StreamTelemetry({kPen}, -1);
  ended = bad_interval->Finish();
  ASSERT_TRUE(ended.has_value());
  EXPECT_THAT(*ended, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(*ended, HasViolation("sample_interval_s"));
  std::unique_ptr<TelemetryReader> unknown = StreamTelemetry({"devices/nope"});
  ended = unknown->Finish();
  ASSERT_TRUE(ended.has_value());
  EXPECT_THAT(*ended, IsError(StatusCode::NOT_FOUND, v1::ERROR_REASON_DEVICE_NOT_FOUND));

  // Still serving: a whole start works.
  const std::string lease = Lease(kPen);
  EXPECT_THAT(Start(kPen, lease), IsOk());
  Advance(0.5);
  EXPECT_TRUE(GetDevice(kPen).latest_sample().output_on());
}

}  // namespace
}  // namespace derma::testing
