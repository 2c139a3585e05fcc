// SimDevice: a simulated instrument. It is an ordinary Driver (the core drives it like
// hardware) plus the controls the derma.sim.v1.Simulator service needs to raise faults, change
// the skin model and drop the link. Layer: sim/, below plugin/core.
// Strand-confined: the core and the simulator service call it only on the device's strand.
#ifndef DERMA_SIM_SIM_DEVICE_H_
#define DERMA_SIM_SIM_DEVICE_H_

#include "absl/status/status.h"
#include "derma/v1/device.pb.h"
#include "plugin/driver.h"

namespace derma::sim {

class SimDevice : public Driver {
 public:
  // Raises a fault condition; it stays present until ClearFault (some also need the model to
  // recover, e.g. temperature to fall). LINK_DROP is SetLink(false).
  // INVALID_ARGUMENT reason FAULT_NOT_APPLICABLE when the kind does not fit this device.
  virtual absl::Status InjectFault(derma::v1::FaultKind kind, absl::Time now) = 0;
  // Removes an injected condition. Same errors as InjectFault.
  virtual absl::Status ClearFault(derma::v1::FaultKind kind, absl::Time now) = 0;
  // Stimulators: sets the baseline skin–electrode impedance (100–1e6 Ω).
  // Pens: INVALID_ARGUMENT reason SETTING_NOT_SUPPORTED.
  virtual absl::Status SetElectrodeImpedance(double ohms, absl::Time now) = 0;
  // Drops (false) or restores (true) the link.
  virtual void SetLink(bool up, absl::Time now) = 0;
};

}  // namespace derma::sim

#endif  // DERMA_SIM_SIM_DEVICE_H_
