// ServerFixture: a real derma gRPC server in-process on 127.0.0.1:0, built through the
// embedding API (derma::Plugin) from a virtual-clock fleet, and clients using the generated
// stubs. Device time moves only through the Simulator's AdvanceClock RPC, so no test sleeps
// to wait for a device. Layer: tests/integration.
//
// The fleet is the shipped virtual fleet (pen-1 DP-100, pen-2 DP-300 with a 3 mm cartridge,
// stim-1 MC-10, stim-2 MC-5 on 8 kΩ skin) plus two pens for interlocks: pen-short (DP-300,
// 1 mm needles, depth up to 3 mm) and pen-worn (a cartridge with every rated stroke used).
#ifndef DERMA_TESTS_INTEGRATION_SERVER_FIXTURE_H_
#define DERMA_TESTS_INTEGRATION_SERVER_FIXTURE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "derma/sim/v1/simulator.grpc.pb.h"
#include "derma/v1/device_control.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/server.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "plugin/host/plugin.h"
#include "tests/integration/rpc_status.h"
#include "tests/integration/stream_reader.h"

namespace derma::testing {

inline constexpr char kPen[] = "devices/pen-1";
inline constexpr char kPen2[] = "devices/pen-2";
inline constexpr char kPenShort[] = "devices/pen-short";
inline constexpr char kPenWorn[] = "devices/pen-worn";
inline constexpr char kStim[] = "devices/stim-1";
inline constexpr char kStim2[] = "devices/stim-2";
inline constexpr int kDeviceCount = 6;

// The fixture's fleet in text format (derma.config.v1.FleetConfig).
extern const char kFleetText[];

using TelemetryReader = StreamReader<v1::StreamTelemetryRequest, v1::StreamTelemetryResponse>;
using WatchRunReader = StreamReader<v1::WatchRunRequest, v1::WatchRunResponse>;

// One client: its own channel (own connection) and stubs.
struct Client {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::DeviceControl::Stub> control;
  std::unique_ptr<sim::v1::Simulator::Stub> simulator;
};

// A unary call with a 10 s deadline: Invoke(*control_, &Stub::GetDevice, request, &response).
template <typename Stub, typename Request, typename Response>
grpc::Status Invoke(Stub& stub,
                    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return (stub.*method)(&context, request, response);
}

int64_t Micros(const google::protobuf::Timestamp& t);

// Per-device bookkeeping of a telemetry stream: every sample and event sequence number is
// checked against the next one expected (a sample gap must be explained exactly by
// dropped_samples; events never have gaps), device time never goes back across a device's
// samples and events, and a device appears at most once per SampleBatch.
struct DeviceTelemetry {
  uint64_t next_sample = 0;  // next sample sequence expected
  uint64_t next_event = 0;   // next event sequence expected
  uint64_t samples = 0;      // samples received
  uint64_t dropped = 0;      // sum of dropped_samples
  int64_t last_time_us = 0;  // device time of the last sample or event: never goes back
  std::vector<std::string> errors;
  std::vector<v1::DeviceEvent> events;
  std::vector<v1::TelemetrySample> sample_log;  // every sample received, in order
  std::vector<size_t> events_before;            // per sample_log entry: events received before
};

class TelemetryLog {
 public:
  // Starts the device's bookkeeping from its snapshot.
  void Begin(const v1::DeviceSnapshot& snapshot);
  // Accounts one live message (batch, event or heartbeat).
  void Add(const v1::StreamTelemetryResponse& message);

  DeviceTelemetry& device(const std::string& name) { return devices_[name]; }
  int heartbeats() const { return heartbeats_; }
  // Messages in arrival order ('b' batch, 'e' event, 'h' heartbeat, 's' snapshot, 'y' sync).
  const std::string& kinds() const { return kinds_; }

 private:
  static void CheckTime(DeviceTelemetry& d, const std::string& device, int64_t time_us,
                        const char* what);

  absl::flat_hash_map<std::string, DeviceTelemetry> devices_;
  int heartbeats_ = 0;
  std::string kinds_;
};

class ServerFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // What the plugin is created with; fixtures override for small limits.
  virtual PluginOptions Options() const { return {}; }
  virtual std::string FleetText() const { return kFleetText; }

  // A client with its own connection; `args` adds channel arguments.
  Client NewClient(grpc::ChannelArguments args = grpc::ChannelArguments());

  // Helpers on the default client. Each checks its status with EXPECT (callers may ASSERT on
  // the result where a later step depends on it).
  v1::Device GetDevice(const std::string& name);
  // Acquires a lease and returns its id ("" on failure).
  std::string Lease(const std::string& name, double ttl_s = 60, const std::string& holder = "it");
  grpc::Status Configure(const std::string& name, const std::string& lease,
                         const v1::Settings& settings, v1::ConfigureResponse* response = nullptr);
  grpc::Status Start(const std::string& name, const std::string& lease,
                     const std::string& request_id = "");
  grpc::Status StartRun(const std::string& name, const std::string& lease,
                        const std::vector<v1::RunStep>& steps, v1::Run* run,
                        const std::string& request_id = "");
  v1::Run GetRun(const std::string& run);
  // Advances the virtual clock; returns the new time in µs since the epoch.
  int64_t Advance(double seconds);
  grpc::Status Inject(const std::string& name, v1::FaultKind kind);
  grpc::Status ClearFault(const std::string& name, v1::FaultKind kind);
  grpc::Status SetLink(const std::string& name, bool up);

  // A telemetry stream on `client` (the default client when null).
  std::unique_ptr<TelemetryReader> StreamTelemetry(const std::vector<std::string>& names,
                                                   double sample_interval_s = 0,
                                                   Client* client = nullptr);
  // Reads `count` snapshots and the SyncMarker into `log`; false (with a failure) otherwise.
  bool ReadOpening(TelemetryReader& reader, size_t count, TelemetryLog& log);
  // Reads live messages into `log` until `done()` holds; false on timeout or end of stream.
  bool ReadUntil(TelemetryReader& reader, TelemetryLog& log, absl::FunctionRef<bool()> done,
                 absl::Duration timeout = kStreamWait);
  // The device's last event sequence number, from the snapshot of a fresh telemetry stream.
  uint64_t LastEventSequence(const std::string& name);
  std::unique_ptr<WatchRunReader> WatchRun(const std::string& run);

  std::unique_ptr<Plugin> plugin_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  Client client_;
  v1::DeviceControl::Stub* control_ = nullptr;     // client_.control
  sim::v1::Simulator::Stub* simulator_ = nullptr;  // client_.simulator
};

// Settings and program steps.
v1::Settings PenSettings(double depth_mm, double rate_hz);
v1::Settings StimSettings(double current_ua);
v1::RunStep Step(double duration_s, const v1::Settings& settings = {});

}  // namespace derma::testing

#endif  // DERMA_TESTS_INTEGRATION_SERVER_FIXTURE_H_
