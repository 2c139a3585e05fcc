// TelemetryStream: one StreamTelemetry call. Sends a snapshot of every requested device, a
// SyncMarker, then live SampleBatch / DeviceEvent messages drained from its TelemetryFanout
// subscription, and Heartbeats when idle. One write is in flight at a time; messages are built
// on the stream executor, never on a device strand or a gRPC thread, so a slow client only
// fills its own bounded queue (oldest samples dropped and counted, events kept). The
// subscription's wakeup, which runs on a device strand, only flags and schedules a pump: it
// takes no lock of the stream, so a device never waits for a stream's encoding.
// Layer: plugin/service. Thread-safe; owns itself from Begin until gRPC calls OnDone.
#ifndef DERMA_PLUGIN_SERVICE_TELEMETRY_STREAM_H_
#define DERMA_PLUGIN_SERVICE_TELEMETRY_STREAM_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "derma/v1/device_control.grpc.pb.h"
#include "google/protobuf/arena.h"
#include "grpcpp/support/server_callback.h"
#include "plugin/core/device_manager.h"
#include "plugin/core/executor.h"
#include "plugin/core/telemetry_fanout.h"
#include "plugin/service/sample_batch_wire.h"
#include "plugin/service/stream_registry.h"

namespace derma::service {

struct StreamDeps {
  DeviceManager& devices;
  TelemetryFanout& fanout;
  StreamRegistry& registry;
  Executor& executor;                     // builds messages; never a device strand
  const std::vector<std::string>& names;  // device names by index
  size_t sample_capacity;
  absl::Duration heartbeat_interval;
  // For tests only (empty in production): runs inside Fill after each Drain, before its
  // entries are encoded, with the stream's lock held, so a test can hold a stream's encoding.
  std::function<void(const TelemetryDrain&)> encode_hook = nullptr;
  std::string principal = "";  // the caller, for the registry's per-principal limit
};

class TelemetryStream : public grpc::ServerWriteReactor<v1::StreamTelemetryResponse>,
                        public OpenStream,
                        public std::enable_shared_from_this<TelemetryStream> {
 public:
  // Most samples in one SampleBatch message.
  static constexpr size_t kMaxSamplesPerMessage = 4096;

  // Validates the request and starts the stream (or finishes it with the error).
  static grpc::ServerWriteReactor<v1::StreamTelemetryResponse>* Begin(
      const StreamDeps& deps, const v1::StreamTelemetryRequest& request);

  explicit TelemetryStream(const StreamDeps& deps);

  void End(const absl::Status& status) override;
  void Heartbeat(absl::Time now) override;

 private:
  using Response = v1::StreamTelemetryResponse;
  // One message to send, on its own arena (a snapshot is many small sub-messages). A batch is
  // written as wire bytes (SampleBatchWire), not as sub-messages.
  class Outgoing {
   public:
    Outgoing();
    Response* get() { return message_; }

   private:
    google::protobuf::Arena arena_;
    Response* message_;
  };
  static std::unique_ptr<Outgoing> NewMessage();

  void Open(const v1::StreamTelemetryRequest& request);
  absl::Status Subscribe(const v1::StreamTelemetryRequest& request);
  // Queues a snapshot of every wanted device, then the SyncMarker.
  void AddSnapshots(const std::vector<uint32_t>& wanted) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // Schedules one Pump unless one is scheduled and has not started yet. Takes no lock: the
  // subscription's wakeup calls it on a device strand. A pump of a finished stream does nothing.
  void SchedulePump();
  void Pump();
  // Drains the subscription into outbox_ until something is queued or a Drain re-armed the
  // wakeup (one with `more` set does not, telemetry_fanout.h), or the stream ends.
  void Fill() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends one drain to outbox_ (batches, events in device order, drop counts).
  void Encode(TelemetryDrain& drain) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const StreamDeps deps_;
  std::shared_ptr<TelemetryStream> self_;  // released in OnDone
  std::shared_ptr<TelemetrySubscription> subscription_;
  std::vector<uint64_t> snapshot_sample_seq_;  // by device index: skip live samples ≤ this
  std::vector<uint64_t> snapshot_event_seq_;   // by device index: skip live events ≤ this
  SampleBatchWire wire_ ABSL_GUARDED_BY(mu_);  // the batch Encode is writing
  // Set by SchedulePump, cleared by the Pump it scheduled before that Pump drains.
  std::atomic<bool> pump_scheduled_{false};

  absl::Mutex mu_;
  std::deque<std::unique_ptr<Outgoing>> outbox_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Outgoing> in_flight_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);  // finish once idle
  std::optional<grpc::Status> end_ ABSL_GUARDED_BY(mu_);     // finish once drained
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_write_ ABSL_GUARDED_BY(mu_);
};

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_TELEMETRY_STREAM_H_
