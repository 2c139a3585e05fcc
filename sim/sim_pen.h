// SimPen: a simulated microneedling pen, the sim backend's Driver for DEVICE_KIND_MICRONEEDLING.
// It wraps PenPhysics (motor ramp, strokes, current, temperature) with a cartridge, a link and
// fault injection. Layer: sim/, below plugin/core. Strand-confined.
//
// Semantics the core relies on:
// - output_on is motor power: on after SetOutput(true) (even while stalled), off at once after
//   SetOutput(false), ForceOutputOff or a link drop (the pen's watchdog cuts the motor).
// - Counters (strokes_total, cartridge strokes_used) count from construction and never reset,
//   also not on Connect; strokes_used = the setup's initial strokes_used + strokes_total.
// - faults holds the conditions present now: MOTOR_STALL and CARTRIDGE_JAM while injected
//   (rate 0, stall current while powered); OVER_TEMPERATURE while the latched temperature
//   condition holds (see PenPhysics), whether injected or caused by load. LINK_DROP is reported
//   only as link_up = false.
// - Faults of a stimulator: INVALID_ARGUMENT, FAULT_NOT_APPLICABLE.
// - A down link refuses Connect, Apply and SetOutput(true) with UNAVAILABLE (DEVICE_OFFLINE);
//   Read still answers (link_up = false) and the model keeps advancing. A restored link needs
//   Connect before SetOutput(true).
#ifndef DERMA_SIM_SIM_PEN_H_
#define DERMA_SIM_SIM_PEN_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "sim/pen_physics.h"
#include "sim/registry.h"
#include "sim/sim_device.h"
#include "sim/sim_support.h"

namespace derma::sim {

class SimPen : public SimDevice {
 public:
  // `info` and `model` come from the catalogue; `cartridge` is the installed cartridge.
  SimPen(std::string id, DriverInfo info, const PenModel& model, derma::v1::Cartridge cartridge,
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
  PenPhysics physics_;
  derma::v1::Cartridge cartridge_;
  uint64_t initial_strokes_used_;
  SimLink link_;
  SensorNoise noise_;
  bool stalled_ = false;
  bool jammed_ = false;
  double needle_depth_mm_ = 0;
  std::optional<absl::Time> last_;
};

// Builds a SimPen from a spec (model, overrides, serial, PenSetup). INVALID_ARGUMENT reason
// INVALID_FIELD for an unknown model, a bad override or a bad setup. Setup defaults: 12 needles,
// 2.5 mm, rated 2,000,000 strokes.
absl::StatusOr<std::unique_ptr<SimDevice>> CreateSimPen(const SimDeviceSpec& spec);

}  // namespace derma::sim

#endif  // DERMA_SIM_SIM_PEN_H_
