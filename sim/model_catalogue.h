// The simulated model catalogue: every pen and stimulator model the simulator offers, with its
// capabilities and physical constants, plus the config overrides that adjust a model's limits.
// Layer: sim/. Thread-safe (immutable data and pure functions).
//
// Pens:        DP-100 (default) depth 0–2.5 mm, 50–150 Hz, motor limit 60 °C, 500 Hz/s
//              DP-300           depth 0–3.0 mm, 30–160 Hz, motor limit 65 °C, 800 Hz/s
// Stimulators: MC-10 (default)  0–1000 µA, 0.3–1500 Hz, all four waveforms
//              MC-5             0–500 µA,  0.5–1000 Hz, no SINE
// Every model: session_limit_s 1–3600 s; stimulators ramp_s 0–10 s and 12 V compliance.
// Regulation (Capabilities.regulation), every model: tolerance 10 %, grace 0.2 s, dose
// tolerance 2 %; pens slew at their motor's ramp.
#ifndef DERMA_SIM_MODEL_CATALOGUE_H_
#define DERMA_SIM_MODEL_CATALOGUE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "derma/config/v1/config.pb.h"
#include "derma/v1/device.pb.h"

namespace derma::sim {

// A pen model: capabilities plus the constants of its motor and thermal model.
struct PenModel {
  std::string name;
  derma::v1::Capabilities capabilities;
  // Linear motor ramp (up and down while powered): the capability the model declares.
  double accel_hz_per_s() const { return capabilities.regulation().stroke_rate_slew_hz_per_s(); }
  double temp_limit_c = 60;         // OVER_TEMPERATURE above this
  double temp_hysteresis_c = 5;     // ... and clears below limit − hysteresis
  double idle_current_a = 0.1;      // motor current when powered, at 0 Hz
  double current_per_hz_a = 0.004;  // extra current per Hz of stroke rate
  double stall_current_a = 2.0;     // current while stalled or jammed
  double heat_c_per_a = 40;         // steady-state rise above ambient per ampere
  double thermal_tau_s = 4;         // first-order thermal time constant
};

// A stimulator model: capabilities plus its regulator tolerance.
struct StimulatorModel {
  std::string name;
  derma::v1::Capabilities capabilities;
  double overcurrent_tolerance = 0.1;  // OVERCURRENT above setpoint × (1 + tolerance)
};

std::vector<std::string> PenModelNames();
std::vector<std::string> StimulatorModelNames();

// The model `config.model` (empty = default) with `config.overrides` applied.
// INVALID_ARGUMENT reason INVALID_FIELD naming "devices[<id>].model" (unknown model, message
// lists the known ones) or "devices[<id>].overrides[<i>].<field|min|max|resolution>".
absl::StatusOr<PenModel> ResolvePenModel(const config::v1::DeviceConfig& config);
absl::StatusOr<StimulatorModel> ResolveStimulatorModel(const config::v1::DeviceConfig& config);

// The capability named `field`, or nullptr.
const derma::v1::ParameterCapability* FindCapability(const derma::v1::Capabilities& caps,
                                                     const std::string& field);

// Full default settings of a kind, read from the capabilities' default values.
derma::v1::Settings PenDefaultSettings(const derma::v1::Capabilities& caps);
derma::v1::Settings StimulatorDefaultSettings(const derma::v1::Capabilities& caps);

}  // namespace derma::sim

#endif  // DERMA_SIM_MODEL_CATALOGUE_H_
