// RequestLog: remembers the successful outcome of recent client request_ids so a retried Start
// or StartRun returns the first result and never acts twice. Failed requests did nothing and
// are not remembered: a retry with the same id tries again. Layer: plugin/core.
// Strand-confined (one per device). Bounded: the oldest ids are forgotten first.
#ifndef DERMA_PLUGIN_CORE_REQUEST_LOG_H_
#define DERMA_PLUGIN_CORE_REQUEST_LOG_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace derma {

class RequestLog {
 public:
  struct Outcome {
    std::string fingerprint;  // identifies the request the id was first used with
    absl::Status status;
    std::string result;  // e.g. the run name
  };

  static constexpr size_t kMaxRequestIdLength = 64;

  explicit RequestLog(size_t capacity = 1024) : capacity_(capacity) {}

  // The remembered outcome of `request_id`, if any. REQUEST_ID_REUSED when the id was used
  // with a different fingerprint, INVALID_FIELD when longer than 64 characters. Empty ids are
  // never remembered.
  std::optional<Outcome> Find(const std::string& request_id, const std::string& fingerprint,
                              absl::Status* reuse_error) const;
  void Remember(const std::string& request_id, Outcome outcome);

 private:
  const size_t capacity_;
  absl::flat_hash_map<std::string, Outcome> outcomes_;
  std::deque<std::string> order_;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_REQUEST_LOG_H_
