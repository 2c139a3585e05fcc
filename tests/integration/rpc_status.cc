#include "tests/integration/rpc_status.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/rpc/status.pb.h"

namespace derma::testing {
namespace {

std::optional<google::rpc::Status> DetailsOf(const grpc::Status& status) {
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
    return std::nullopt;
  }
  return details;
}

}  // namespace

std::optional<google::rpc::ErrorInfo> ErrorInfoOf(const grpc::Status& status) {
  std::optional<google::rpc::Status> details = DetailsOf(status);
  if (!details.has_value()) return std::nullopt;
  for (const google::protobuf::Any& any : details->details()) {
    google::rpc::ErrorInfo info;
    if (any.Is<google::rpc::ErrorInfo>() && any.UnpackTo(&info)) return info;
  }
  return std::nullopt;
}

std::string ReasonOf(const grpc::Status& status) {
  std::optional<google::rpc::ErrorInfo> info = ErrorInfoOf(status);
  return info.has_value() ? info->reason() : "";
}

std::map<std::string, std::string> MetadataOf(const grpc::Status& status) {
  std::optional<google::rpc::ErrorInfo> info = ErrorInfoOf(status);
  if (!info.has_value()) return {};
  return {info->metadata().begin(), info->metadata().end()};
}

std::vector<google::rpc::BadRequest::FieldViolation> ViolationsOf(const grpc::Status& status) {
  std::vector<google::rpc::BadRequest::FieldViolation> out;
  std::optional<google::rpc::Status> details = DetailsOf(status);
  if (!details.has_value()) return out;
  for (const google::protobuf::Any& any : details->details()) {
    google::rpc::BadRequest bad;
    if (!any.Is<google::rpc::BadRequest>() || !any.UnpackTo(&bad)) continue;
    out.insert(out.end(), bad.field_violations().begin(), bad.field_violations().end());
  }
  return out;
}

std::vector<std::string> ViolatedFieldsOf(const grpc::Status& status) {
  std::vector<std::string> fields;
  for (const auto& v : ViolationsOf(status)) fields.push_back(v.field());
  return fields;
}

std::string ReasonName(v1::ErrorReason reason) {
  constexpr absl::string_view kPrefix = "ERROR_REASON_";
  std::string name = v1::ErrorReason_Name(reason);
  if (absl::StartsWith(name, kPrefix)) name.erase(0, kPrefix.size());
  return name;
}

std::string Describe(const grpc::Status& status) {
  if (status.ok()) return "status OK";
  return absl::StrCat("status code ", status.error_code(), " \"", status.error_message(),
                      "\", reason \"", ReasonOf(status), "\", violations [",
                      absl::StrJoin(ViolatedFieldsOf(status), ", "), "]");
}

}  // namespace derma::testing
