// StreamRegistry: the service's open server streams (StreamTelemetry, WatchRun). Enforces the
// concurrent-stream limit and, at shutdown, ends every open stream. Layer: plugin/service.
// Thread-safe.
#ifndef DERMA_PLUGIN_SERVICE_STREAM_REGISTRY_H_
#define DERMA_PLUGIN_SERVICE_STREAM_REGISTRY_H_

#include <cstddef>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace derma::service {

// What the registry needs from a stream.
class OpenStream {
 public:
  virtual ~OpenStream() = default;
  // Ends the stream with `status` (the stream finishes once its current write completes).
  // Called without registry locks held, on a strong reference.
  virtual void End(const absl::Status& status) = 0;
  // Called about four times per heartbeat interval (server time); idle streams send one.
  virtual void Heartbeat(absl::Time now) {}
};

class StreamRegistry {
 public:
  explicit StreamRegistry(size_t max_streams) : max_streams_(max_streams) {}

  // Registers `stream` (held weakly). RESOURCE_EXHAUSTED (STREAM_LIMIT) past the limit,
  // UNAVAILABLE (SHUTTING_DOWN) once shutdown began.
  absl::Status Open(const std::shared_ptr<OpenStream>& stream);
  void Close(const OpenStream* stream);
  // Refuses new streams and ends every open one with UNAVAILABLE (SHUTTING_DOWN).
  void ShutdownAll();
  // Calls Heartbeat(now) on every open stream.
  void HeartbeatAll(absl::Time now);
  size_t open_count() const;

 private:
  const size_t max_streams_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<const OpenStream*, std::weak_ptr<OpenStream>> open_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

// UNAVAILABLE with reason SHUTTING_DOWN.
absl::Status ShuttingDownError();

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_STREAM_REGISTRY_H_
