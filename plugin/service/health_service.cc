#include "plugin/service/health_service.h"

#include <string>

namespace derma::service {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch call: writes the latest status whenever it differs from the last one written.
class HealthService::Watcher : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService& owner, ServingStatus status) : owner_(owner) { Offer(status); }

  void Offer(ServingStatus status) {
    absl::MutexLock lock(&mu_);
    latest_ = status;
    MaybeWrite();
  }

 private:
  void MaybeWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || done_ || latest_ == written_) return;
    written_ = latest_;
    response_.set_status(latest_);
    writing_ = true;
    StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return;  // the client went away; OnCancel finishes
    MaybeWrite();
  }
  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    Finish(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    owner_.Remove(this);
    delete this;
  }

  HealthService& owner_;
  absl::Mutex mu_;
  HealthCheckResponse response_;
  ServingStatus latest_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  ServingStatus written_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

HealthService::HealthService() : status_(HealthCheckResponse::SERVING) {}

HealthService::~HealthService() = default;

bool HealthService::Known(const std::string& service) {
  return service.empty() || service == "derma.v1.DeviceControl" ||
         service == "derma.sim.v1.Simulator";
}

void HealthService::SetServing(bool serving) {
  absl::MutexLock lock(&mu_);
  status_ = serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
  for (Watcher* watcher : watchers_) watcher->Offer(status_);
}

void HealthService::Remove(Watcher* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const HealthCheckRequest* request,
                                               HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Known(request->service())) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 "unknown service \"" + request->service() + "\""));
    return reactor;
  }
  {
    absl::MutexLock lock(&mu_);
    response->set_status(status_);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request) {
  absl::MutexLock lock(&mu_);
  auto* watcher = new Watcher(
      *this, Known(request->service()) ? status_ : HealthCheckResponse::SERVICE_UNKNOWN);
  watchers_.insert(watcher);
  return watcher;
}

}  // namespace derma::service
