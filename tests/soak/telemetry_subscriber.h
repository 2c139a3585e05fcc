// TelemetrySubscriber: one soak client that keeps a StreamTelemetry subscription open,
// re-subscribing every few tens of seconds, and checks every message against the contract:
// one snapshot per requested device then a SyncMarker; per device, live events numbered
// consecutively from the snapshot's last_event_sequence (a gap is a lost event); samples in
// increasing sequence and non-decreasing device-time order, every missing sample accounted for by
// dropped_samples (on unsampled streams) and no two forwarded closer than the stream's interval.
// A slow subscriber stops reading for seconds at a time so the server drops its samples.
// Part of tests/soak. Runs on the thread that calls Run; counters are read after it returns.
#ifndef DERMA_TESTS_SOAK_TELEMETRY_SUBSCRIBER_H_
#define DERMA_TESTS_SOAK_TELEMETRY_SUBSCRIBER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "derma/v1/device_control.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tests/soak/call_tally.h"

namespace derma::soak {

struct SubscriberOptions {
  std::string label;               // "fast-1", "slow-2", ... for failure messages
  std::vector<std::string> names;  // devices to stream; empty = every device
  size_t fleet_size = 0;           // devices in the fleet (snapshots expected when names empty)
  double sample_interval_s = 0;
  // Slow readers read for `read_time`, then stop reading for `stall_time`; zero = never stall.
  absl::Duration read_time = absl::ZeroDuration();
  absl::Duration stall_time = absl::ZeroDuration();
  absl::Duration min_stream_life = absl::Seconds(15);
  absl::Duration max_stream_life = absl::Seconds(45);
  uint64_t seed = 1;
};

struct SubscriberCounts {
  uint64_t streams = 0;
  uint64_t messages = 0;
  uint64_t samples = 0;
  uint64_t dropped = 0;  // sum of dropped_samples
  uint64_t missing = 0;  // sequence numbers skipped (unsampled streams)
  uint64_t events = 0;
  uint64_t event_gaps = 0;           // lost events: must stay 0
  uint64_t unexplained_missing = 0;  // missing samples beyond dropped_samples: must stay 0
  uint64_t order_errors = 0;         // sequence or device time going backwards, interval broken
  uint64_t heartbeats = 0;
  uint64_t stalls = 0;
  uint64_t same_time = 0;  // consecutive samples with the same device time
  void Add(const SubscriberCounts& other);
};

class TelemetrySubscriber {
 public:
  TelemetrySubscriber(std::shared_ptr<grpc::Channel> channel, SubscriberOptions options,
                      CallTally& tally, FailureLog& failures, LiveCounters& live);

  // Subscribes again and again until `stop` is set or `deadline` passes.
  void Run(const std::atomic<bool>& stop, absl::Time deadline);
  const SubscriberCounts& counts() const { return counts_; }

 private:
  struct DeviceTrack {
    uint64_t last_event = 0;
    uint64_t last_sample = 0;
    int64_t last_sample_time_us = 0;
    bool have_sample_time = false;
    uint64_t missing = 0;
    uint64_t dropped = 0;
  };
  using Stream = grpc::ClientReader<v1::StreamTelemetryResponse>;

  // One subscription until its life ends; false when the soak should stop.
  void StreamOnce(const std::atomic<bool>& stop, absl::Time deadline);
  // Slow subscribers: stops reading for stall_time once next_stall has passed.
  void MaybeStall(const std::atomic<bool>& stop, absl::Time end, absl::Time* next_stall);
  // Records how the stream ended: cancelled by us after its SyncMarker is the only healthy end.
  void Finish(const grpc::Status& status, bool cancelled, bool synced, absl::Duration latency);
  // Checks and counts one message; `synced` is set by the SyncMarker.
  void Check(const v1::StreamTelemetryResponse& message, bool* synced);
  void CheckSnapshot(const v1::DeviceSnapshot& snapshot, bool synced);
  void CheckEvent(const v1::DeviceEvent& event);
  void CheckSamples(const v1::DeviceSamples& samples);
  void Fail(const std::string& what);

  std::unique_ptr<v1::DeviceControl::Stub> stub_;
  const SubscriberOptions options_;
  CallTally& tally_;
  FailureLog& failures_;
  LiveCounters& live_;
  std::mt19937_64 random_;
  SubscriberCounts counts_;
  absl::flat_hash_map<std::string, DeviceTrack> devices_;  // this stream's devices
  size_t snapshots_ = 0;
  size_t stream_failures_ = 0;  // failures reported for the current stream (capped)
};

}  // namespace derma::soak

#endif  // DERMA_TESTS_SOAK_TELEMETRY_SUBSCRIBER_H_
