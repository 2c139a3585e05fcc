// What makes a simulator control request well-formed, in one place for every way one arrives
// (derma.sim.v1.Simulator calls to dermad or to the Modbus emulator, and scenario files): a fault
// kind the enum defines, and a transport fault's parameters within their ranges. Layer: sim/.
// Thread-safe (pure functions).
#ifndef DERMA_SIM_FAULT_REQUESTS_H_
#define DERMA_SIM_FAULT_REQUESTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "derma/sim/v1/simulator.pb.h"
#include "derma/v1/device.pb.h"
#include "plugin/errors/errors.h"

namespace derma::sim {

// Appends a violation of `field` (e.g. "kind", "actions[2].inject_fault.kind") when `kind` is
// UNSPECIFIED or a number derma.v1.FaultKind does not define.
void CheckFaultKind(int kind, const std::string& field, std::vector<FieldViolation>* out);

// Appends the violations of a SetTransportFaultRequest's fields (fault, count, delay_s,
// exception_code, garbage_bytes), each prefixed with `prefix` ("" or "actions[2].set_transport_fault.").
void CheckTransportFault(const v1::SetTransportFaultRequest& request, const std::string& prefix,
                         std::vector<FieldViolation>* out);

// INVALID_ARGUMENT, reason INVALID_FIELD, with every violation in a BadRequest; OK when none.
absl::Status InvalidFields(const std::vector<FieldViolation>& violations);

}  // namespace derma::sim

#endif  // DERMA_SIM_FAULT_REQUESTS_H_
