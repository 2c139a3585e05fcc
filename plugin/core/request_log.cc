#include "plugin/core/request_log.h"

#include "plugin/errors/errors.h"

namespace derma {

std::optional<RequestLog::Outcome> RequestLog::Find(const std::string& request_id,
                                                    const std::string& fingerprint,
                                                    absl::Status* reuse_error) const {
  *reuse_error = absl::OkStatus();
  if (request_id.empty()) return std::nullopt;
  if (request_id.size() > kMaxRequestIdLength) {
    *reuse_error =
        MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                  "request_id has " + std::to_string(request_id.size()) + " characters; at most 64",
                  {}, {{"request_id", "at most 64 characters"}});
    return std::nullopt;
  }
  auto it = outcomes_.find(request_id);
  if (it == outcomes_.end()) return std::nullopt;
  if (it->second.fingerprint != fingerprint) {
    *reuse_error = MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_REQUEST_ID_REUSED,
                             "request_id \"" + request_id + "\" was used for a different request",
                             {{"request_id", request_id}},
                             {{"request_id", "already used for a different request"}});
    return std::nullopt;
  }
  return it->second;
}

void RequestLog::Remember(const std::string& request_id, Outcome outcome) {
  if (request_id.empty()) return;
  if (outcomes_.insert_or_assign(request_id, std::move(outcome)).second) {
    order_.push_back(request_id);
  }
  while (order_.size() > capacity_) {
    outcomes_.erase(order_.front());
    order_.pop_front();
  }
}

}  // namespace derma
