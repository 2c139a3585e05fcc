#include "sim/registry.h"

#include "plugin/core/errors.h"

namespace derma::sim {

const std::vector<SimKind>& SimKinds() {
  static const std::vector<SimKind>* kinds = new std::vector<SimKind>{};
  return *kinds;
}

absl::StatusOr<std::unique_ptr<SimDevice>> CreateSimDevice(const SimDeviceSpec& spec) {
  for (const SimKind& kind : SimKinds()) {
    if (kind.kind == spec.config.kind()) return kind.create(spec);
  }
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                   "devices[" + spec.config.id() + "].kind: no simulated model for kind " +
                       v1::DeviceKind_Name(spec.config.kind()));
}

}  // namespace derma::sim
