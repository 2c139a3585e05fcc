// StreamRegistry: the service's open server streams (StreamTelemetry, WatchRun). Enforces the
// concurrent-stream limits (in all, and per principal, so that one caller cannot take every
// slot) and, at shutdown, ends every open stream. Layer: plugin/service.
// Thread-safe.
#ifndef DERMA_PLUGIN_SERVICE_STREAM_REGISTRY_H_
#define DERMA_PLUGIN_SERVICE_STREAM_REGISTRY_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

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
  // `max_per_principal` 0 = no limit per principal.
  explicit StreamRegistry(size_t max_streams, size_t max_per_principal = 0)
      : max_streams_(max_streams), max_per_principal_(max_per_principal) {}

  // Registers `stream` (held weakly) for `principal`. RESOURCE_EXHAUSTED (STREAM_LIMIT, metadata
  // `limit`, and `principal` for the per-principal one) past either limit, UNAVAILABLE
  // (SHUTTING_DOWN) once shutdown began.
  absl::Status Open(const std::shared_ptr<OpenStream>& stream, const std::string& principal);
  void Close(const OpenStream* stream);
  // Refuses new streams and ends every open one with UNAVAILABLE (SHUTTING_DOWN).
  void ShutdownAll();
  // Calls Heartbeat(now) on every open stream.
  void HeartbeatAll(absl::Time now);
  size_t open_count() const;
  // Streams closed so far.
  uint64_t closed_count() const;

 private:
  struct Entry {
    std::weak_ptr<OpenStream> stream;
    std::string principal;
  };
  const size_t max_streams_;
  const size_t max_per_principal_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<const OpenStream*, Entry> open_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, size_t> per_principal_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t closed_ ABSL_GUARDED_BY(mu_) = 0;
};

// UNAVAILABLE with reason SHUTTING_DOWN.
absl::Status ShuttingDownError();

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_STREAM_REGISTRY_H_
