#include "plugin/service/status_mapping.h"

#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "plugin/errors/errors.h"

namespace derma::service {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  google::rpc::Status details;
  details.set_code(static_cast<int>(status.code()));
  details.set_message(std::string(status.message()));

  google::rpc::ErrorInfo info;
  absl::optional<absl::Cord> info_payload = status.GetPayload(kErrorInfoUrl);
  if (!info_payload.has_value() || !info.ParseFromString(std::string(*info_payload))) {
    info.Clear();
    info.set_reason(ReasonName(v1::ERROR_REASON_UNSPECIFIED));
    info.set_domain(std::string(kErrorDomain));
  }
  details.add_details()->PackFrom(info);

  if (absl::optional<absl::Cord> bad = status.GetPayload(kBadRequestUrl); bad.has_value()) {
    google::rpc::BadRequest bad_request;
    if (bad_request.ParseFromString(std::string(*bad)))
      details.add_details()->PackFrom(bad_request);
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()),
                      details.SerializeAsString());
}

}  // namespace derma::service
