#include "plugin/service/watch_run_stream.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "plugin/errors/errors.h"
#include "plugin/service/status_mapping.h"

namespace derma::service {

grpc::ServerWriteReactor<v1::WatchRunResponse>* WatchRunStream::Begin(
    DeviceManager& devices, RunRegistry& runs, StreamRegistry& registry, Executor& executor,
    const v1::WatchRunRequest& request, const std::string& principal) {
  auto stream = std::make_shared<WatchRunStream>(runs, registry, executor);
  stream->self_ = stream;
  stream->Open(devices, request.name(), principal);
  return stream.get();
}

WatchRunStream::WatchRunStream(RunRegistry& runs, StreamRegistry& registry, Executor& executor)
    : runs_(runs), registry_(registry), executor_(executor) {}

void WatchRunStream::Open(DeviceManager& devices, const std::string& name,
                          const std::string& principal) {
  absl::Status status = registry_.Open(shared_from_this(), principal);
  if (status.ok()) status = devices.FindRunDevice(name).status();
  if (status.ok()) {
    std::weak_ptr<WatchRunStream> weak = weak_from_this();
    watch_id_ = runs_.Watch(name, [weak](const RunPtr& run) {
      if (std::shared_ptr<WatchRunStream> stream = weak.lock()) {
        absl::MutexLock lock(&stream->mu_);
        stream->pending_ = run;
        stream->SchedulePump();
      }
    });
  }
  absl::MutexLock lock(&mu_);
  if (status.ok()) {
    RunPtr current = runs_.Get(name);
    if (current == nullptr) {
      status = MakeError(absl::StatusCode::kNotFound, v1::ERROR_REASON_RUN_NOT_FOUND,
                         absl::StrCat(name, " is not a known run"), {{"run", name}});
    } else if (pending_ == nullptr) {
      pending_ = current;  // a watcher callback that came first is at least as new
    }
  }
  if (!status.ok()) finish_ = ToGrpcStatus(status);
  SchedulePump();
}

// Writes the run's last state if one is pending (a run ended by shutdown ends this stream OK),
// then finishes with `status`.
void WatchRunStream::End(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (!end_.has_value()) end_ = ToGrpcStatus(status);
  SchedulePump();
}

void WatchRunStream::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok && !finish_.has_value()) {
    finish_ = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  }
  if (wrote_end_ && !finish_.has_value()) finish_ = grpc::Status::OK;
  SchedulePump();
}

void WatchRunStream::OnCancel() {
  absl::MutexLock lock(&mu_);
  if (!finish_.has_value()) finish_ = grpc::Status::CANCELLED;
  SchedulePump();
}

void WatchRunStream::OnDone() {
  if (watch_id_ != 0) runs_.Unwatch(watch_id_);
  registry_.Close(this);
  std::shared_ptr<WatchRunStream> self = std::move(self_);  // may delete this on return
}

void WatchRunStream::SchedulePump() {
  if (pump_scheduled_ || finished_) return;
  pump_scheduled_ = true;
  executor_.Schedule([self = shared_from_this()] { self->Pump(); });
}

void WatchRunStream::Pump() {
  {
    absl::MutexLock lock(&mu_);
    pump_scheduled_ = false;
    if (finished_ || writing_) return;
    if (finish_.has_value()) {
      finished_ = true;
      Finish(*finish_);
      return;
    }
    if (pending_ == nullptr) {
      if (end_.has_value()) {
        finished_ = true;
        Finish(*end_);
      }
      return;
    }
    *in_flight_.mutable_run() = *pending_;
    wrote_end_ = RunEnded(*pending_);
    pending_ = nullptr;
    writing_ = true;
  }
  StartWrite(&in_flight_);
}

}  // namespace derma::service
