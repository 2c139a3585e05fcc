#include "tests/integration/server_fixture.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace derma::testing {

const char kFleetText[] = R"pb(
  clock { mode: CLOCK_MODE_VIRTUAL }
  sim_seed: 42
  executor_threads: 2
  devices { id: "pen-1" kind: DEVICE_KIND_MICRONEEDLING model: "DP-100" }
  devices {
    id: "pen-2"
    kind: DEVICE_KIND_MICRONEEDLING
    model: "DP-300"
    pen { cartridge_needle_count: 36 cartridge_needle_length_mm: 3.0 }
  }
  devices {
    id: "pen-short"
    kind: DEVICE_KIND_MICRONEEDLING
    model: "DP-300"
    pen { cartridge_needle_length_mm: 1.0 }
  }
  devices {
    id: "pen-worn"
    kind: DEVICE_KIND_MICRONEEDLING
    model: "DP-100"
    pen { cartridge_strokes_rated: 1000 cartridge_strokes_used: 1000 }
  }
  devices { id: "stim-1" kind: DEVICE_KIND_MICROCURRENT model: "MC-10" }
  devices {
    id: "stim-2"
    kind: DEVICE_KIND_MICROCURRENT
    model: "MC-5"
    stimulator { electrode_impedance_ohm: 8000 }
  }
)pb";

int64_t Micros(const google::protobuf::Timestamp& t) {
  return google::protobuf::util::TimeUtil::TimestampToMicroseconds(t);
}

void TelemetryLog::CheckTime(DeviceTelemetry& d, const std::string& device, int64_t time_us,
                             const char* what) {
  if (time_us < d.last_time_us) {
    d.errors.push_back(absl::StrCat(device, ": ", what, " at ", time_us, " us after one at ",
                                    d.last_time_us, " us"));
  }
  d.last_time_us = std::max(d.last_time_us, time_us);
}

void TelemetryLog::Begin(const v1::DeviceSnapshot& snapshot) {
  DeviceTelemetry& d = devices_[snapshot.device().name()];
  d.next_sample = snapshot.device().latest_sample().sequence() + 1;
  d.next_event = snapshot.last_event_sequence() + 1;
  d.last_time_us = snapshot.device().latest_sample().device_time_us();
  kinds_ += 's';
}

void TelemetryLog::Add(const v1::StreamTelemetryResponse& message) {
  switch (message.payload_case()) {
    case v1::StreamTelemetryResponse::kBatch:
      kinds_ += 'b';
      for (const v1::DeviceSamples& samples : message.batch().devices()) {
        DeviceTelemetry& d = devices_[samples.device()];
        int in_batch = 0;
        for (const v1::DeviceSamples& other : message.batch().devices()) {
          in_batch += other.device() == samples.device();
        }
        if (in_batch > 1) {
          d.errors.push_back(
              absl::StrCat(samples.device(), " appears ", in_batch, " times in one SampleBatch"));
        }
        d.dropped += samples.dropped_samples();
        d.next_sample += samples.dropped_samples();  // the oldest are dropped first
        for (const v1::TelemetrySample& sample : samples.samples()) {
          if (sample.sequence() != d.next_sample) {
            d.errors.push_back(absl::StrCat(samples.device(), ": sample ", sample.sequence(),
                                            " where ", d.next_sample, " was expected"));
          }
          d.next_sample = sample.sequence() + 1;
          CheckTime(d, samples.device(), sample.device_time_us(), "sample");
          ++d.samples;
          d.sample_log.push_back(sample);
          d.events_before.push_back(d.events.size());
        }
      }
      return;
    case v1::StreamTelemetryResponse::kEvent: {
      kinds_ += 'e';
      DeviceTelemetry& d = devices_[message.event().device()];
      if (message.event().sequence() != d.next_event) {
        d.errors.push_back(absl::StrCat(message.event().device(), ": event ",
                                        message.event().sequence(), " where ", d.next_event,
                                        " was expected"));
      }
      d.next_event = message.event().sequence() + 1;
      CheckTime(d, message.event().device(), message.event().device_time_us(), "event");
      d.events.push_back(message.event());
      return;
    }
    case v1::StreamTelemetryResponse::kHeartbeat:
      kinds_ += 'h';
      ++heartbeats_;
      return;
    case v1::StreamTelemetryResponse::kSnapshot:
      kinds_ += 's';
      return;
    case v1::StreamTelemetryResponse::kSync:
      kinds_ += 'y';
      return;
    default:
      kinds_ += '?';
      return;
  }
}

void ServerFixture::SetUp() {
  config::v1::FleetConfig config;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(FleetText(), &config));
  absl::StatusOr<std::unique_ptr<Plugin>> plugin = Plugin::Create(config, Options());
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  plugin_ = *std::move(plugin);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();  // as dermad does
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
  plugin_->Register(builder);
  server_ = builder.BuildAndStart();
  ASSERT_NE(server_, nullptr);
  ASSERT_GT(port_, 0);
  plugin_->Start();
  client_ = NewClient();
  control_ = client_.control.get();
  simulator_ = client_.simulator.get();
}

void ServerFixture::TearDown() {
  if (plugin_ != nullptr) plugin_->Shutdown();
  if (server_ != nullptr)
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_.reset();
  plugin_.reset();
}

Client ServerFixture::NewClient(grpc::ChannelArguments args) {
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // its own connection
  Client client;
  client.channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_),
                                             grpc::InsecureChannelCredentials(), args);
  client.control = v1::DeviceControl::NewStub(client.channel);
  client.simulator = sim::v1::Simulator::NewStub(client.channel);
  return client;
}

v1::Device ServerFixture::GetDevice(const std::string& name) {
  v1::GetDeviceRequest request;
  request.set_name(name);
  v1::GetDeviceResponse response;
  EXPECT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::GetDevice, request, &response), IsOk())
      << name;
  return response.device();
}

std::string ServerFixture::Lease(const std::string& name, double ttl_s, const std::string& holder) {
  v1::AcquireLeaseRequest request;
  request.set_name(name);
  request.set_holder(holder);
  request.set_ttl_s(ttl_s);
  v1::AcquireLeaseResponse response;
  grpc::Status status =
      Invoke(*control_, &v1::DeviceControl::Stub::AcquireLease, request, &response);
  EXPECT_THAT(status, IsOk()) << name;
  return response.lease().lease_id();
}

grpc::Status ServerFixture::Configure(const std::string& name, const std::string& lease,
                                      const v1::Settings& settings,
                                      v1::ConfigureResponse* response) {
  v1::ConfigureRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  *request.mutable_settings() = settings;
  v1::ConfigureResponse ignored;
  return Invoke(*control_, &v1::DeviceControl::Stub::Configure, request,
                response != nullptr ? response : &ignored);
}

grpc::Status ServerFixture::Start(const std::string& name, const std::string& lease,
                                  const std::string& request_id) {
  v1::StartRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  request.set_request_id(request_id);
  v1::StartResponse response;
  return Invoke(*control_, &v1::DeviceControl::Stub::Start, request, &response);
}

grpc::Status ServerFixture::StartRun(const std::string& name, const std::string& lease,
                                     const std::vector<v1::RunStep>& steps, v1::Run* run,
                                     const std::string& request_id) {
  v1::StartRunRequest request;
  request.set_parent(name);
  request.set_lease_id(lease);
  for (const v1::RunStep& step : steps) *request.add_steps() = step;
  request.set_request_id(request_id);
  v1::StartRunResponse response;
  grpc::Status status = Invoke(*control_, &v1::DeviceControl::Stub::StartRun, request, &response);
  if (run != nullptr) *run = response.run();
  return status;
}

v1::Run ServerFixture::GetRun(const std::string& run) {
  v1::GetRunRequest request;
  request.set_name(run);
  v1::GetRunResponse response;
  EXPECT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::GetRun, request, &response), IsOk())
      << run;
  return response.run();
}

int64_t ServerFixture::Advance(double seconds) {
  sim::v1::AdvanceClockRequest request;
  request.set_duration_s(seconds);
  sim::v1::AdvanceClockResponse response;
  EXPECT_THAT(Invoke(*simulator_, &sim::v1::Simulator::Stub::AdvanceClock, request, &response),
              IsOk());
  return response.now_us();
}

grpc::Status ServerFixture::Inject(const std::string& name, v1::FaultKind kind) {
  sim::v1::InjectFaultRequest request;
  request.set_name(name);
  request.set_kind(kind);
  sim::v1::InjectFaultResponse response;
  return Invoke(*simulator_, &sim::v1::Simulator::Stub::InjectFault, request, &response);
}

grpc::Status ServerFixture::ClearFault(const std::string& name, v1::FaultKind kind) {
  sim::v1::ClearFaultRequest request;
  request.set_name(name);
  request.set_kind(kind);
  sim::v1::ClearFaultResponse response;
  return Invoke(*simulator_, &sim::v1::Simulator::Stub::ClearFault, request, &response);
}

grpc::Status ServerFixture::SetLink(const std::string& name, bool up) {
  sim::v1::SetLinkRequest request;
  request.set_name(name);
  request.set_up(up);
  sim::v1::SetLinkResponse response;
  return Invoke(*simulator_, &sim::v1::Simulator::Stub::SetLink, request, &response);
}

std::unique_ptr<TelemetryReader> ServerFixture::StreamTelemetry(
    const std::vector<std::string>& names, double sample_interval_s, Client* client) {
  v1::DeviceControl::Stub* stub = client != nullptr ? client->control.get() : control_;
  v1::StreamTelemetryRequest request;
  for (const std::string& name : names) request.add_names(name);
  request.set_sample_interval_s(sample_interval_s);
  return std::make_unique<TelemetryReader>(
      std::move(request), [stub](grpc::ClientContext* context, const auto* r, auto* reactor) {
        stub->async()->StreamTelemetry(context, r, reactor);
      });
}

bool ServerFixture::ReadOpening(TelemetryReader& reader, size_t count, TelemetryLog& log) {
  for (size_t i = 0; i < count; ++i) {
    std::optional<v1::StreamTelemetryResponse> message = reader.Next();
    if (!message.has_value() || !message->has_snapshot()) {
      ADD_FAILURE() << "expected snapshot " << i << ", got "
                    << (message ? message->ShortDebugString() : "the end of the stream");
      return false;
    }
    log.Begin(message->snapshot());
  }
  std::optional<v1::StreamTelemetryResponse> sync = reader.Next();
  if (!sync.has_value() || !sync->has_sync()) {
    ADD_FAILURE() << "expected the SyncMarker, got "
                  << (sync ? sync->ShortDebugString() : "the end of the stream");
    return false;
  }
  EXPECT_EQ(sync->sync().device_count(), count);
  log.Add(*sync);
  return true;
}

bool ServerFixture::ReadUntil(TelemetryReader& reader, TelemetryLog& log,
                              absl::FunctionRef<bool()> done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    std::optional<v1::StreamTelemetryResponse> message = reader.Next(deadline - absl::Now());
    if (!message.has_value()) {
      ADD_FAILURE() << "the telemetry stream ended or stalled before the expected messages";
      return false;
    }
    log.Add(*message);
  }
  return true;
}

uint64_t ServerFixture::LastEventSequence(const std::string& name) {
  std::unique_ptr<TelemetryReader> probe = StreamTelemetry({name});
  std::optional<v1::StreamTelemetryResponse> snapshot = probe->Next();
  EXPECT_TRUE(snapshot.has_value() && snapshot->has_snapshot()) << name;
  return snapshot.has_value() ? snapshot->snapshot().last_event_sequence() : 0;
}

std::unique_ptr<WatchRunReader> ServerFixture::WatchRun(const std::string& run) {
  v1::WatchRunRequest request;
  request.set_name(run);
  return std::make_unique<WatchRunReader>(
      std::move(request), [this](grpc::ClientContext* context, const auto* r, auto* reactor) {
        control_->async()->WatchRun(context, r, reactor);
      });
}

v1::Settings PenSettings(double depth_mm, double rate_hz) {
  v1::Settings settings;
  settings.mutable_microneedling()->set_needle_depth_mm(depth_mm);
  settings.mutable_microneedling()->set_stroke_rate_hz(rate_hz);
  return settings;
}

v1::Settings StimSettings(double current_ua) {
  v1::Settings settings;
  settings.mutable_microcurrent()->set_current_ua(current_ua);
  return settings;
}

v1::RunStep Step(double duration_s, const v1::Settings& settings) {
  v1::RunStep step;
  step.set_duration_s(duration_s);
  *step.mutable_settings() = settings;
  return step;
}

}  // namespace derma::testing
