#include "plugin/service/stream_registry.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "plugin/errors/errors.h"

namespace derma::service {

absl::Status ShuttingDownError() {
  return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_SHUTTING_DOWN,
                   "the derma service is shutting down; every output has been stopped");
}

absl::Status StreamRegistry::Open(const std::shared_ptr<OpenStream>& stream) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return ShuttingDownError();
  if (open_.size() >= max_streams_) {
    return MakeError(absl::StatusCode::kResourceExhausted, v1::ERROR_REASON_STREAM_LIMIT,
                     absl::StrCat("too many open streams: the limit is ", max_streams_,
                                  "; close a stream and retry"),
                     {{"limit", absl::StrCat(max_streams_)}});
  }
  open_[stream.get()] = stream;
  return absl::OkStatus();
}

void StreamRegistry::Close(const OpenStream* stream) {
  absl::MutexLock lock(&mu_);
  open_.erase(stream);
}

void StreamRegistry::ShutdownAll() {
  std::vector<std::shared_ptr<OpenStream>> streams;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (const auto& [key, weak] : open_) {
      if (std::shared_ptr<OpenStream> stream = weak.lock()) streams.push_back(std::move(stream));
    }
  }
  const absl::Status status = ShuttingDownError();
  for (const std::shared_ptr<OpenStream>& stream : streams) stream->End(status);
}

void StreamRegistry::HeartbeatAll(absl::Time now) {
  std::vector<std::shared_ptr<OpenStream>> streams;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, weak] : open_) {
      if (std::shared_ptr<OpenStream> stream = weak.lock()) streams.push_back(std::move(stream));
    }
  }
  for (const std::shared_ptr<OpenStream>& stream : streams) stream->Heartbeat(now);
}

size_t StreamRegistry::open_count() const {
  absl::MutexLock lock(&mu_);
  return open_.size();
}

}  // namespace derma::service
