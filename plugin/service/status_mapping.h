// The one mapping from core errors to gRPC: absl::Status → grpc::Status whose binary details
// are a google.rpc.Status carrying the core's ErrorInfo (reason, domain "derma", metadata) and,
// for bad fields, one BadRequest listing every violation. Layer: plugin/service.
// Thread-safe (pure functions).
#ifndef DERMA_PLUGIN_SERVICE_STATUS_MAPPING_H_
#define DERMA_PLUGIN_SERVICE_STATUS_MAPPING_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace derma::service {

// OK maps to OK. Any other status keeps its code and message; its ErrorInfo / BadRequest
// payloads become google.rpc.Status details. A status without an ErrorInfo (a bug: every core
// error has one) still gets one, with reason UNSPECIFIED, so clients can always read a reason.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_STATUS_MAPPING_H_
