// Error construction for every layer (core, backends, auth, audit): every error is an
// absl::Status carrying a google.rpc.ErrorInfo (domain "derma", reason from
// derma.v1.ErrorReason) and, for bad fields, one google.rpc.BadRequest, both as status
// payloads. The service maps them to grpc::Status details in one place. Layer: plugin/errors,
// a small library below everything else (backends depend on it and on plugin/driver.h only).
// Thread-safe (pure functions).
#ifndef DERMA_PLUGIN_ERRORS_ERRORS_H_
#define DERMA_PLUGIN_ERRORS_ERRORS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "derma/v1/errors.pb.h"

namespace derma {

inline constexpr absl::string_view kErrorDomain = "derma";
inline constexpr absl::string_view kErrorInfoUrl = "type.googleapis.com/google.rpc.ErrorInfo";
inline constexpr absl::string_view kBadRequestUrl = "type.googleapis.com/google.rpc.BadRequest";

// One bad request field: `field` is the request path (e.g.
// "settings.microneedling.needle_depth_mm").
struct FieldViolation {
  std::string field;
  std::string description;
};

using ErrorMetadata = std::map<std::string, std::string>;

// Builds an error status. `message` is the human-readable text; it should name the field or
// state involved.
absl::Status MakeError(absl::StatusCode code, v1::ErrorReason reason, absl::string_view message,
                       const ErrorMetadata& metadata = {},
                       const std::vector<FieldViolation>& violations = {});

// The reason name without its enum prefix, e.g. "SETTING_OUT_OF_RANGE".
std::string ReasonName(v1::ErrorReason reason);

// Reads back what MakeError attached. UNSPECIFIED / empty for statuses without details.
v1::ErrorReason ReasonOf(const absl::Status& status);
ErrorMetadata MetadataOf(const absl::Status& status);
std::vector<FieldViolation> ViolationsOf(const absl::Status& status);

}  // namespace derma

#endif  // DERMA_PLUGIN_ERRORS_ERRORS_H_
