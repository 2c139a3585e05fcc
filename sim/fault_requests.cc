#include "sim/fault_requests.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace derma::sim {

void CheckFaultKind(int kind, const std::string& field, std::vector<FieldViolation>* out) {
  if (kind == derma::v1::FAULT_KIND_UNSPECIFIED) {
    out->push_back({field, "fault kind must be set (FAULT_KIND_UNSPECIFIED is not a fault)"});
  } else if (!derma::v1::FaultKind_IsValid(kind)) {
    out->push_back({field, absl::StrCat("unknown fault kind ", kind)});
  }
}

void CheckTransportFault(const v1::SetTransportFaultRequest& request, const std::string& prefix,
                         std::vector<FieldViolation>* out) {
  if (!v1::TransportFault_IsValid(request.fault())) {
    out->push_back({prefix + "fault", absl::StrCat("unknown transport fault ", request.fault())});
  }
  if (request.count() > 1000000) {
    out->push_back({prefix + "count", absl::StrCat("must be 0–1000000, got ", request.count())});
  }
  const double delay = request.delay_s();
  if (!(delay == 0 || (delay >= 0.001 && delay <= 60))) {
    out->push_back({prefix + "delay_s", absl::StrCat("must be 0.001–60 s (0 = 1 s), got ", delay)});
  }
  if (request.exception_code() > 255) {
    out->push_back({prefix + "exception_code",
                    absl::StrCat("must be 1–255 (0 = 4), got ", request.exception_code())});
  }
  if (request.garbage_bytes() > 256) {
    out->push_back({prefix + "garbage_bytes",
                    absl::StrCat("must be 1–256 (0 = 8), got ", request.garbage_bytes())});
  }
}

absl::Status InvalidFields(const std::vector<FieldViolation>& violations) {
  if (violations.empty()) return absl::OkStatus();
  std::vector<std::string> parts;
  for (const FieldViolation& v : violations) parts.push_back(v.field + ": " + v.description);
  return MakeError(absl::StatusCode::kInvalidArgument, derma::v1::ERROR_REASON_INVALID_FIELD,
                   absl::StrJoin(parts, "; "), {}, violations);
}

}  // namespace derma::sim
