// OutputTrajectory: what a device's output is programmed to do — the stroke rate of a pen or
// the current amplitude of a stimulator, following the setpoints through the ramp the device
// declares (Capabilities.regulation) — integrated in closed form, and RegulationMonitor, which
// decides when the delivered output has fallen short of it for too long. Layer: plugin/core.
//
// The trajectory is the one device.proto's OutputRegulation documents: a pen's rate starts
// from 0 at every output on and moves towards the setpoint at the declared slew; a
// stimulator's amplitude is current_ua × min(1, t_on / ramp_s), and its charge rate that
// amplitude × the waveform's mean |shape|. The run ledger's programmed dose is its integral.
// Both classes are plain values, strand-confined with their Device.
#ifndef DERMA_PLUGIN_CORE_OUTPUT_TRAJECTORY_H_
#define DERMA_PLUGIN_CORE_OUTPUT_TRAJECTORY_H_

#include <optional>

#include "absl/time/time.h"
#include "derma/v1/device.pb.h"
#include "plugin/driver.h"

namespace derma {

// What the program asks for over one interval.
struct ProgrammedDose {
  double strokes = 0;
  double charge_uc = 0;
};

class OutputTrajectory {
 public:
  OutputTrajectory(v1::DeviceKind kind, const v1::OutputRegulation& regulation);

  // Setpoints in force from now on (a complete settings message of the device's kind).
  void SetSettings(const v1::Settings& settings);
  // Output on starts a new ramp from 0; off drops the programmed output to 0.
  void SetOutput(bool on);
  bool output_on() const { return on_; }
  // Advances by `dt` and returns the programmed dose over it (0 while off).
  ProgrammedDose Advance(absl::Duration dt);

  // Now: the programmed stroke rate (pens), amplitude and charge rate (stimulators).
  double rate_hz() const { return rate_hz_; }
  double amplitude_ua() const;
  double charge_rate_uc_per_s() const { return amplitude_ua() * mean_abs_shape_; }

 private:
  double AdvancePen(double dt_s);         // returns strokes
  double AdvanceStimulator(double dt_s);  // returns charge, µC

  v1::DeviceKind kind_;
  double slew_hz_per_s_;
  bool on_ = false;
  double target_hz_ = 0;
  double rate_hz_ = 0;
  double current_ua_ = 0;
  double ramp_s_ = 0;
  double mean_abs_shape_ = 1;
  double on_elapsed_s_ = 0;
};

// The regulation check of device.proto's OutputRegulation: a shortfall is a delivered value
// below (1 − tolerance) × the programmed one; it trips once it has lasted grace_s.
class RegulationMonitor {
 public:
  explicit RegulationMonitor(const v1::OutputRegulation& regulation);

  bool enabled() const { return grace_ > absl::ZeroDuration(); }
  double tolerance() const { return tolerance_; }
  absl::Duration grace() const { return grace_; }
  // Output on, a setting change, or the output off: the grace time starts afresh.
  void Restart() { short_since_.reset(); }
  // One interval [start, end] of output on, with what was delivered and programmed over it (or
  // at its end: the same measure for both). Returns true when the shortfall has now lasted the
  // grace time.
  bool Observe(absl::Time start, absl::Time end, double delivered, double programmed);
  // When a shortfall in progress will have lasted the grace time (for a deadline), if any.
  std::optional<absl::Time> TripTime() const;
  // When the shortfall in progress began.
  std::optional<absl::Time> short_since() const { return short_since_; }

 private:
  double tolerance_;
  absl::Duration grace_;
  std::optional<absl::Time> short_since_;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_OUTPUT_TRAJECTORY_H_
