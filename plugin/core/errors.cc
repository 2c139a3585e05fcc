#include "plugin/core/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "google/rpc/error_details.pb.h"

namespace derma {

std::string ReasonName(v1::ErrorReason reason) {
  std::string name = v1::ErrorReason_Name(reason);
  constexpr absl::string_view kPrefix = "ERROR_REASON_";
  if (absl::StartsWith(name, kPrefix)) name.erase(0, kPrefix.size());
  return name;
}

absl::Status MakeError(absl::StatusCode code, v1::ErrorReason reason, absl::string_view message,
                       const ErrorMetadata& metadata,
                       const std::vector<FieldViolation>& violations) {
  absl::Status status(code, message);
  google::rpc::ErrorInfo info;
  info.set_reason(ReasonName(reason));
  info.set_domain(std::string(kErrorDomain));
  for (const auto& [key, value] : metadata) (*info.mutable_metadata())[key] = value;
  status.SetPayload(kErrorInfoUrl, absl::Cord(info.SerializeAsString()));
  if (!violations.empty()) {
    google::rpc::BadRequest bad_request;
    for (const FieldViolation& v : violations) {
      google::rpc::BadRequest::FieldViolation* out = bad_request.add_field_violations();
      out->set_field(v.field);
      out->set_description(v.description);
    }
    status.SetPayload(kBadRequestUrl, absl::Cord(bad_request.SerializeAsString()));
  }
  return status;
}

namespace {
bool ReadInfo(const absl::Status& status, google::rpc::ErrorInfo* info) {
  absl::optional<absl::Cord> payload = status.GetPayload(kErrorInfoUrl);
  return payload.has_value() && info->ParseFromString(std::string(*payload));
}
}  // namespace

v1::ErrorReason ReasonOf(const absl::Status& status) {
  google::rpc::ErrorInfo info;
  if (!ReadInfo(status, &info)) return v1::ERROR_REASON_UNSPECIFIED;
  v1::ErrorReason reason = v1::ERROR_REASON_UNSPECIFIED;
  v1::ErrorReason_Parse("ERROR_REASON_" + info.reason(), &reason);
  return reason;
}

ErrorMetadata MetadataOf(const absl::Status& status) {
  google::rpc::ErrorInfo info;
  if (!ReadInfo(status, &info)) return {};
  return ErrorMetadata(info.metadata().begin(), info.metadata().end());
}

std::vector<FieldViolation> ViolationsOf(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kBadRequestUrl);
  google::rpc::BadRequest bad_request;
  if (!payload.has_value() || !bad_request.ParseFromString(std::string(*payload))) return {};
  std::vector<FieldViolation> out;
  for (const auto& v : bad_request.field_violations()) {
    out.push_back({v.field(), v.description()});
  }
  return out;
}

}  // namespace derma
