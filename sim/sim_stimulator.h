// SimStimulator: a simulated microcurrent stimulator, the sim backend's Driver for
// DEVICE_KIND_MICROCURRENT. It wraps StimulatorPhysics (ramp, compliance, impedance, waveform,
// charge ledger) with a link, seeded sensor noise and fault injection. Layer: sim/, below
// plugin/core. Strand-confined.
//
// Semantics the core relies on:
// - output_on is the output stage enabled: on after SetOutput(true), off at once after
//   SetOutput(false), ForceOutputOff or a link drop (watchdog). With contact lost it stays on
//   but delivers no current.
// - current_measured_ua is the signed instantaneous output plus seeded noise (±1 µA, only while
//   current flows); charge_delivered_uc is noise-free and never resets (not on Connect).
// - faults holds the conditions present now, each while injected: ELECTRODE_CONTACT_LOST
//   (contact false, impedance 1e9 Ω, no current), IMPEDANCE_SPIKE (impedance × 20),
//   OVERCURRENT (1.5 × setpoint + 100 µA delivered). LINK_DROP only as link_up = false.
//   Being compliance-limited is not a fault by itself (output_voltage_v = compliance shows it).
// - Pen faults: INVALID_ARGUMENT, FAULT_NOT_APPLICABLE.
// - A down link refuses Connect, Apply and SetOutput(true) with UNAVAILABLE (DEVICE_OFFLINE);
//   Read still answers (link_up = false) and the model keeps advancing.
#ifndef DERMA_SIM_SIM_STIMULATOR_H_
#define DERMA_SIM_SIM_STIMULATOR_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "sim/registry.h"
#include "sim/sim_device.h"
#include "sim/sim_support.h"
#include "sim/stimulator_physics.h"

namespace derma::sim {

class SimStimulator : public SimDevice {
 public:
  SimStimulator(std::string id, DriverInfo info, const StimulatorModel& model, double baseline_ohm,
                uint64_t seed);

  const DriverInfo& Info() const override { return info_; }
  const DeviceDescription* Description() const override { return &*info_.description; }
  absl::Status Connect(absl::Time now) override;
  absl::Status Apply(const derma::v1::Settings& settings, absl::Time now) override;
  absl::Status SetOutput(bool on, absl::Time now) override;
  absl::StatusOr<DriverReading> Read(absl::Time now) override;
  bool ForceOutputOff(absl::Time now) override;

  absl::Status InjectFault(derma::v1::FaultKind kind, absl::Time now) override;
  absl::Status ClearFault(derma::v1::FaultKind kind, absl::Time now) override;
  absl::Status SetElectrodeImpedance(double ohms, absl::Time now) override;
  void SetLink(bool up, absl::Time now) override;

 private:
  void AdvanceTo(absl::Time now);
  absl::Status SetFault(derma::v1::FaultKind kind, bool present, absl::Time now);
  void FillFaults(DriverReading* reading) const;

  DriverInfo info_;
  SensorNoise noise_;  // before physics_: it seeds the impedance wobble
  StimulatorPhysics physics_;
  SimLink link_;
  bool contact_lost_ = false;
  bool spike_ = false;
  bool overcurrent_ = false;
  std::optional<absl::Time> last_;
};

// Builds a SimStimulator from a spec (model, overrides, serial, StimulatorSetup).
// INVALID_ARGUMENT reason INVALID_FIELD for an unknown model, a bad override or a setup
// impedance outside 100–1e6 Ω (0 = 5000 Ω).
absl::StatusOr<std::unique_ptr<SimDevice>> CreateSimStimulator(const SimDeviceSpec& spec);

}  // namespace derma::sim

#endif  // DERMA_SIM_SIM_STIMULATOR_H_
