#include "plugin/service/stream_registry.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "plugin/errors/errors.h"

namespace derma::service {

absl::Status ShuttingDownError() {
  return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_SHUTTING_DOWN,
                   "the derma service is shutting down; every output has been stopped");
}

absl::Status StreamRegistry::Open(const std::shared_ptr<OpenStream>& stream,
                                  const std::string& principal) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return ShuttingDownError();
  if (open_.size() >= max_streams_) {
    return MakeError(absl::StatusCode::kResourceExhausted, v1::ERROR_REASON_STREAM_LIMIT,
                     absl::StrCat("too many open streams: the limit is ", max_streams_,
                                  "; close a stream and retry"),
                     {{"limit", absl::StrCat(max_streams_)}});
  }
  auto mine = per_principal_.find(principal);
  const size_t held = mine == per_principal_.end() ? 0 : mine->second;
  if (max_per_principal_ > 0 && held >= max_per_principal_) {
    return MakeError(absl::StatusCode::kResourceExhausted, v1::ERROR_REASON_STREAM_LIMIT,
                     absl::StrCat("too many open streams for principal \"", principal,
                                  "\": the limit per principal is ", max_per_principal_,
                                  "; close one of its streams and retry"),
                     {{"limit", absl::StrCat(max_per_principal_)}, {"principal", principal}});
  }
  ++per_principal_[principal];
  open_[stream.get()] = {stream, principal};
  return absl::OkStatus();
}

void StreamRegistry::Close(const OpenStream* stream) {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(stream);
  if (it == open_.end()) return;
  auto mine = per_principal_.find(it->second.principal);
  if (mine != per_principal_.end() && --mine->second == 0) per_principal_.erase(mine);
  open_.erase(it);
  ++closed_;
}

uint64_t StreamRegistry::closed_count() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

void StreamRegistry::ShutdownAll() {
  std::vector<std::shared_ptr<OpenStream>> streams;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (const auto& [key, entry] : open_) {
      if (std::shared_ptr<OpenStream> stream = entry.stream.lock()) {
        streams.push_back(std::move(stream));
      }
    }
  }
  const absl::Status status = ShuttingDownError();
  for (const std::shared_ptr<OpenStream>& stream : streams) stream->End(status);
}

void StreamRegistry::HeartbeatAll(absl::Time now) {
  std::vector<std::shared_ptr<OpenStream>> streams;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, entry] : open_) {
      if (std::shared_ptr<OpenStream> stream = entry.stream.lock()) {
        streams.push_back(std::move(stream));
      }
    }
  }
  for (const std::shared_ptr<OpenStream>& stream : streams) stream->Heartbeat(now);
}

size_t StreamRegistry::open_count() const {
  absl::MutexLock lock(&mu_);
  return open_.size();
}

}  // namespace derma::service
