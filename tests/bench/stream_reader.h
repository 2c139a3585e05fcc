// StreamReader: one client of a StreamTelemetryResponse stream (derma's StreamTelemetry or the
// bare StreamBatches) reading flat out on its own thread and counting what arrives: messages,
// samples, dropped_samples, and (optionally) per-device sequence gaps that dropped_samples
// does not explain. FlowWindow lets a synthetic producer run only as far ahead of its readers
// as a stream can buffer. Part of tests/bench. Thread-safe.
#ifndef DERMA_TESTS_BENCH_STREAM_READER_H_
#define DERMA_TESTS_BENCH_STREAM_READER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "derma/v1/device_control.pb.h"
#include "grpcpp/grpcpp.h"

namespace derma::bench {

// Bounds how far a producer runs ahead of the slowest of its consumers, in samples.
class FlowWindow {
 public:
  FlowWindow(int consumers, uint64_t window);
  // Producer: waits until `n` more samples keep every consumer within the window, then counts
  // them as published. False once Stop was called.
  bool Reserve(uint64_t n);
  // Consumer `slot`: `n` more samples arrived or were reported dropped.
  void Consumed(int slot, uint64_t n);
  // Wakes and refuses every producer.
  void Stop();

 private:
  bool HasRoom(uint64_t n) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint64_t window_;
  absl::Mutex mu_;
  uint64_t published_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint64_t> consumed_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

struct StreamCounts {
  uint64_t messages = 0;
  uint64_t batches = 0;
  uint64_t samples = 0;
  uint64_t dropped = 0;           // sum of DeviceSamples.dropped_samples
  uint64_t unexplained_gaps = 0;  // missing sequence numbers beyond dropped_samples
};

class StreamReader {
 public:
  using Stream = grpc::ClientReader<v1::StreamTelemetryResponse>;
  // Starts the call on `context` (called once, on the reader thread).
  using Open = absl::AnyInvocable<std::unique_ptr<Stream>(grpc::ClientContext*)>;

  struct Options {
    // Track each device's sample sequence from its snapshot on (derma streams only).
    bool check_sequences = false;
    FlowWindow* window = nullptr;  // reported to, when set
    int window_slot = 0;
  };

  StreamReader(Open open, Options options);
  ~StreamReader();  // Stop()

  // Waits for derma's SyncMarker. False if the stream ended first or `timeout` passed.
  bool WaitForSync(absl::Duration timeout);
  StreamCounts counts() const;
  // Cancels the call and joins the thread. OK when the stream was healthy until cancelled;
  // otherwise the status it ended with first.
  absl::Status Stop();

 private:
  void Run(Open open);
  void Count(const v1::StreamTelemetryResponse& message);
  void CheckSequences(const v1::DeviceSamples& samples);

  const Options options_;
  grpc::ClientContext context_;
  std::atomic<uint64_t> messages_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> samples_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> gaps_{0};
  std::atomic<bool> stopping_{false};
  absl::Notification synced_;
  absl::Notification ended_;
  absl::flat_hash_map<std::string, uint64_t> last_sequence_;  // reader thread only
  std::optional<absl::Status> result_;                        // set by the reader thread
  std::thread thread_;
};

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_STREAM_READER_H_
