// HealthService: grpc.health.v1.Health for derma's services. SERVING until shutdown begins,
// then NOT_SERVING. Check answers for "" (the whole server), "derma.v1.DeviceControl" and
// "derma.sim.v1.Simulator"; Watch streams the status and every change until the client
// cancels or the server stops. Layer: plugin/service. Thread-safe.
#ifndef DERMA_PLUGIN_SERVICE_HEALTH_SERVICE_H_
#define DERMA_PLUGIN_SERVICE_HEALTH_SERVICE_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace derma::service {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  HealthService();
  ~HealthService() override;

  // Sets every service's status and tells every watcher.
  void SetServing(bool serving);

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

  class Watcher;

 private:
  static bool Known(const std::string& service);
  void Remove(Watcher* watcher);

  absl::Mutex mu_;
  ServingStatus status_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_HEALTH_SERVICE_H_
