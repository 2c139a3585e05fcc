// WatchRunStream: one WatchRun call. Sends the run's current state, then its latest state
// whenever it changes (coalesced: a slow client skips intermediate progress, never the end),
// and finishes OK after the ended run was written. Layer: plugin/service. Thread-safe; owns
// itself from Begin until gRPC calls OnDone.
#ifndef DERMA_PLUGIN_SERVICE_WATCH_RUN_STREAM_H_
#define DERMA_PLUGIN_SERVICE_WATCH_RUN_STREAM_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "derma/v1/device_control.grpc.pb.h"
#include "grpcpp/support/server_callback.h"
#include "plugin/core/device_manager.h"
#include "plugin/core/executor.h"
#include "plugin/core/run_registry.h"
#include "plugin/service/stream_registry.h"

namespace derma::service {

class WatchRunStream : public grpc::ServerWriteReactor<v1::WatchRunResponse>,
                       public OpenStream,
                       public std::enable_shared_from_this<WatchRunStream> {
 public:
  static grpc::ServerWriteReactor<v1::WatchRunResponse>* Begin(
      DeviceManager& devices, RunRegistry& runs, StreamRegistry& registry, Executor& executor,
      const v1::WatchRunRequest& request, const std::string& principal);

  WatchRunStream(RunRegistry& runs, StreamRegistry& registry, Executor& executor);
  void End(const absl::Status& status) override;

 private:
  void Open(DeviceManager& devices, const std::string& name, const std::string& principal);
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;
  void SchedulePump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Pump();

  RunRegistry& runs_;
  StreamRegistry& registry_;
  Executor& executor_;
  std::shared_ptr<WatchRunStream> self_;  // released in OnDone
  uint64_t watch_id_ = 0;

  absl::Mutex mu_;
  RunPtr pending_ ABSL_GUARDED_BY(mu_);
  v1::WatchRunResponse in_flight_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool wrote_end_ ABSL_GUARDED_BY(mu_) = false;
  bool pump_scheduled_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);  // finish once idle
  std::optional<grpc::Status> end_ ABSL_GUARDED_BY(mu_);     // finish once drained
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_WATCH_RUN_STREAM_H_
