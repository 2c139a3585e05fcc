// StimulatorPhysics: the pure physical model of a microcurrent stimulator: a current regulator
// with a compliance limit driving a skin–electrode impedance. Layer: sim/, used by
// SimStimulator.
//
// Current: when the output turns on, the setpoint ramps linearly from 0 over ramp_s; the
// delivered amplitude is min(ramped setpoint, compliance / impedance), 0 without contact or
// output. An injected OVERCURRENT makes the regulator deliver 1.5 × setpoint + 100 µA (still
// compliance-limited).
// Waveform: the instantaneous output is amplitude × shape(t) × polarity sign, t counted from
// output on: monophasic square +1 for the first half period, 0 for the second (50 % duty);
// biphasic square +1 then −1; alternating polarity is monophasic whose sign flips every second;
// sine sin(2π f t). POLARITY_NEGATIVE negates every shape.
// Charge: the exact integral of |output| over time, i.e. amplitude × mean |shape| × time with
// mean |shape| = 1 (biphasic), 0.5 (monophasic, alternating: 50 % duty) and 2/π (sine),
// integrated in closed form over the ramp and constant parts. E.g. biphasic, ramp 0, 500 µA for
// 10 s = 5000 µC exactly. Charge carries no noise.
// Impedance: baseline × (1 + d), d = a seeded slow wobble (±2 %, period 120 s) plus a current
// effect (−4 % at 1000 µA, time constant 30 s), clamped to ±10 %; × 20 during an injected
// IMPEDANCE_SPIKE; 1e9 Ω without contact. It is held constant within each Advance interval.
// Thread-compatible (a plain value).
#ifndef DERMA_SIM_STIMULATOR_PHYSICS_H_
#define DERMA_SIM_STIMULATOR_PHYSICS_H_

#include "derma/v1/device.pb.h"
#include "plugin/driver.h"
#include "sim/model_catalogue.h"

namespace derma::sim {

inline constexpr double kOpenCircuitOhm = 1e9;
inline constexpr double kImpedanceSpikeFactor = 20;

class StimulatorPhysics {
 public:
  // `wobble_phase` (radians) is the seeded phase of the impedance wobble.
  StimulatorPhysics(const StimulatorModel& model, double baseline_ohm, double wobble_phase);

  // Advances by `dt_s` ≥ 0 seconds to absolute time `t_end_s` (seconds since the epoch).
  void Advance(double dt_s, double t_end_s);

  void SetOutput(bool on);
  void Apply(const derma::v1::MicrocurrentSettings& settings);  // unset fields keep their value
  void SetBaselineImpedance(double ohm) { baseline_ohm_ = ohm; }
  void SetContact(bool contact) { contact_ = contact; }
  void SetImpedanceSpike(bool spike) { spike_ = spike; }
  void SetOvercurrent(bool over) { overcurrent_ = over; }

  bool output_on() const { return on_; }
  bool contact() const { return contact_; }
  double setpoint_ua() const { return setpoint_ua_; }
  double compliance_v() const { return model_.capabilities.compliance_voltage_v(); }
  // Setpoint in effect now (follows the ramp; 0 when off).
  double RampedSetpointUa() const;
  // Delivered amplitude now, µA (≥ 0).
  double DeliveredUa() const { return Amplitude(on_elapsed_s_); }
  // Signed instantaneous output now, µA (noise-free).
  double InstantaneousUa() const;
  double ImpedanceOhm() const;
  double OutputVoltageV() const;
  double charge_uc() const { return charge_uc_; }
  const StimulatorModel& model() const { return model_; }

 private:
  double RegulatedUa() const;  // setpoint the regulator aims for (overcurrent-adjusted)
  double CapUa() const;        // most the output can deliver: min(regulated, compliance / Z)
  double Amplitude(double elapsed_s) const;
  double RampIntegral(double from_s, double to_s) const;  // ∫ amplitude dt, µC
  double MeanAbsShape() const;
  void UpdateDrift(double dt_s, double t_end_s);

  StimulatorModel model_;
  double baseline_ohm_;
  double wobble_phase_;
  double drift_ = 0;           // d, clamped to ±0.1
  double current_effect_ = 0;  // the relaxing current part of d
  bool on_ = false;
  bool contact_ = true;
  bool spike_ = false;
  bool overcurrent_ = false;
  double on_elapsed_s_ = 0;  // time since output on
  double charge_uc_ = 0;
  double setpoint_ua_ = 0;
  double frequency_hz_ = 10;
  derma::v1::Waveform waveform_ = derma::v1::WAVEFORM_BIPHASIC_SQUARE;
  derma::v1::Polarity polarity_ = derma::v1::POLARITY_POSITIVE;
  double ramp_s_ = 0;
};

}  // namespace derma::sim

#endif  // DERMA_SIM_STIMULATOR_PHYSICS_H_
