#include "sim/registry.h"

#include "plugin/errors/errors.h"
#include "sim/model_catalogue.h"
#include "sim/sim_pen.h"
#include "sim/sim_stimulator.h"

namespace derma::sim {

const std::vector<SimKind>& SimKinds() {
  // One line per kind; the first model of each catalogue is the kind's default.
  static const std::vector<SimKind>* kinds = new std::vector<SimKind>{
      {v1::DEVICE_KIND_MICRONEEDLING, PenModelNames().front(), PenModelNames(), &CreateSimPen},
      {v1::DEVICE_KIND_MICROCURRENT, StimulatorModelNames().front(), StimulatorModelNames(),
       &CreateSimStimulator},
  };
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
