#include "sim/stimulator_physics.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace derma::sim {
namespace {

constexpr double kWobbleAmplitude = 0.02;
constexpr double kWobblePeriodS = 120;
constexpr double kCurrentEffectAt1mA = -0.04;
constexpr double kCurrentEffectTauS = 30;
constexpr double kMaxDrift = 0.1;
constexpr double kOvercurrentFactor = 1.5;
constexpr double kOvercurrentOffsetUa = 100;

}  // namespace

StimulatorPhysics::StimulatorPhysics(const StimulatorModel& model, double baseline_ohm,
                                     double wobble_phase)
    : model_(model), baseline_ohm_(baseline_ohm), wobble_phase_(wobble_phase) {}

void StimulatorPhysics::SetOutput(bool on) {
  if (on && !on_) on_elapsed_s_ = 0;  // a new ramp starts
  on_ = on;
}

void StimulatorPhysics::Apply(const v1::MicrocurrentSettings& s) {
  if (s.has_current_ua()) setpoint_ua_ = s.current_ua();
  if (s.has_frequency_hz()) frequency_hz_ = s.frequency_hz();
  if (s.has_ramp_s()) ramp_s_ = s.ramp_s();
  if (s.waveform() != v1::WAVEFORM_UNSPECIFIED) waveform_ = s.waveform();
  if (s.polarity() != v1::POLARITY_UNSPECIFIED) polarity_ = s.polarity();
}

void StimulatorPhysics::Advance(double dt_s, double t_end_s) {
  if (on_) {
    charge_uc_ += MeanAbsShape() * RampIntegral(on_elapsed_s_, on_elapsed_s_ + dt_s);
    on_elapsed_s_ += dt_s;
  }
  UpdateDrift(dt_s, t_end_s);
}

void StimulatorPhysics::UpdateDrift(double dt_s, double t_end_s) {
  double target = kCurrentEffectAt1mA * DeliveredUa() / 1000;
  current_effect_ = target + (current_effect_ - target) * std::exp(-dt_s / kCurrentEffectTauS);
  double wobble =
      kWobbleAmplitude * std::sin(2 * std::numbers::pi * t_end_s / kWobblePeriodS + wobble_phase_);
  drift_ = std::clamp(wobble + current_effect_, -kMaxDrift, kMaxDrift);
}

double StimulatorPhysics::ImpedanceOhm() const {
  if (!contact_) return kOpenCircuitOhm;
  return baseline_ohm_ * (1 + drift_) * (spike_ ? kImpedanceSpikeFactor : 1);
}

double StimulatorPhysics::RegulatedUa() const {
  return overcurrent_ ? kOvercurrentFactor * setpoint_ua_ + kOvercurrentOffsetUa : setpoint_ua_;
}

double StimulatorPhysics::CapUa() const {
  if (!contact_) return 0;
  return std::min(RegulatedUa(), compliance_v() / ImpedanceOhm() * 1e6);
}

double StimulatorPhysics::RampedSetpointUa() const {
  if (!on_) return 0;
  return ramp_s_ > 0 ? setpoint_ua_ * std::min(1.0, on_elapsed_s_ / ramp_s_) : setpoint_ua_;
}

double StimulatorPhysics::Amplitude(double elapsed_s) const {
  if (!on_ || !contact_) return 0;
  double ramp = ramp_s_ > 0 ? std::min(1.0, elapsed_s / ramp_s_) : 1.0;
  return std::min(RegulatedUa() * ramp, CapUa());
}

double StimulatorPhysics::RampIntegral(double from_s, double to_s) const {
  const double cap = CapUa();
  const double regulated = RegulatedUa();
  if (cap <= 0) return 0;
  if (ramp_s_ <= 0) return cap * (to_s - from_s);
  // Amplitude is regulated · t / ramp until it meets the cap at t_cap, then the cap.
  const double t_cap = cap * ramp_s_ / regulated;
  auto antiderivative = [&](double t) {
    return t < t_cap ? regulated * t * t / (2 * ramp_s_) : cap * t_cap / 2 + cap * (t - t_cap);
  };
  return antiderivative(to_s) - antiderivative(from_s);
}

double StimulatorPhysics::MeanAbsShape() const { return WaveformMeanAbsShape(waveform_); }

double StimulatorPhysics::InstantaneousUa() const {
  const double t = on_elapsed_s_;
  const double phase = t * frequency_hz_ - std::floor(t * frequency_hz_);
  double shape = 1;
  switch (waveform_) {
    case v1::WAVEFORM_MONOPHASIC_SQUARE:
      shape = phase < 0.5 ? 1 : 0;
      break;
    case v1::WAVEFORM_ALTERNATING_POLARITY:
      shape = (phase < 0.5 ? 1 : 0) * (static_cast<int64_t>(std::floor(t)) % 2 == 0 ? 1 : -1);
      break;
    case v1::WAVEFORM_SINE:
      shape = std::sin(2 * std::numbers::pi * phase);
      break;
    default:
      shape = phase < 0.5 ? 1 : -1;
  }
  const double sign = polarity_ == v1::POLARITY_NEGATIVE ? -1 : 1;
  return sign * shape * DeliveredUa();
}

double StimulatorPhysics::OutputVoltageV() const {
  if (!on_) return 0;
  // Open circuit: the current source rails to the compliance voltage.
  if (!contact_) return RegulatedUa() > 0 ? compliance_v() : 0;
  return std::min(DeliveredUa() * 1e-6 * ImpedanceOhm(), compliance_v());
}

}  // namespace derma::sim
