#include "plugin/core/output_trajectory.h"

#include <algorithm>
#include <cmath>

namespace derma {

OutputTrajectory::OutputTrajectory(v1::DeviceKind kind, const v1::OutputRegulation& regulation)
    : kind_(kind), slew_hz_per_s_(std::max(0.0, regulation.stroke_rate_slew_hz_per_s())) {}

void OutputTrajectory::SetSettings(const v1::Settings& settings) {
  if (settings.has_microneedling()) target_hz_ = settings.microneedling().stroke_rate_hz();
  if (settings.has_microcurrent()) {
    const v1::MicrocurrentSettings& s = settings.microcurrent();
    current_ua_ = s.current_ua();
    ramp_s_ = s.ramp_s();
    mean_abs_shape_ = WaveformMeanAbsShape(s.waveform());
  }
  if (on_ && slew_hz_per_s_ <= 0) rate_hz_ = target_hz_;
}

void OutputTrajectory::SetOutput(bool on) {
  if (on && !on_) {
    on_elapsed_s_ = 0;
    rate_hz_ = slew_hz_per_s_ > 0 ? 0 : target_hz_;
  }
  if (!on) rate_hz_ = 0;
  on_ = on;
}

double OutputTrajectory::amplitude_ua() const {
  if (!on_) return 0;
  return ramp_s_ > 0 ? current_ua_ * std::min(1.0, on_elapsed_s_ / ramp_s_) : current_ua_;
}

ProgrammedDose OutputTrajectory::Advance(absl::Duration dt) {
  ProgrammedDose dose;
  const double dt_s = absl::ToDoubleSeconds(dt);
  if (!on_ || dt_s <= 0) return dose;
  if (kind_ == v1::DEVICE_KIND_MICRONEEDLING) dose.strokes = AdvancePen(dt_s);
  if (kind_ == v1::DEVICE_KIND_MICROCURRENT) dose.charge_uc = AdvanceStimulator(dt_s);
  on_elapsed_s_ += dt_s;
  return dose;
}

// The same segments as the motion they describe: a linear ramp until the rate meets the
// setpoint (landing on it exactly), then constant.
double OutputTrajectory::AdvancePen(double dt_s) {
  double strokes = 0;
  while (dt_s > 0) {
    const double to_target =
        slew_hz_per_s_ > 0 ? std::abs(target_hz_ - rate_hz_) / slew_hz_per_s_ : 0;
    const double segment = to_target > 0 ? std::min(dt_s, to_target) : dt_s;
    const double accel = to_target <= 0          ? 0
                         : target_hz_ > rate_hz_ ? slew_hz_per_s_
                                                 : -slew_hz_per_s_;
    strokes += rate_hz_ * segment + 0.5 * accel * segment * segment;
    rate_hz_ = segment == to_target ? target_hz_ : rate_hz_ + accel * segment;
    dt_s -= segment;
  }
  return strokes;
}

double OutputTrajectory::AdvanceStimulator(double dt_s) {
  // ∫ current_ua × min(1, t / ramp_s) dt from on_elapsed_s_ to on_elapsed_s_ + dt_s.
  auto antiderivative = [this](double t) {
    if (ramp_s_ <= 0) return current_ua_ * t;
    return t < ramp_s_ ? current_ua_ * t * t / (2 * ramp_s_)
                       : current_ua_ * ramp_s_ / 2 + current_ua_ * (t - ramp_s_);
  };
  return mean_abs_shape_ * (antiderivative(on_elapsed_s_ + dt_s) - antiderivative(on_elapsed_s_));
}

RegulationMonitor::RegulationMonitor(const v1::OutputRegulation& regulation)
    : tolerance_(std::clamp(regulation.tolerance(), 0.0, 1.0)),
      grace_(absl::Seconds(std::max(0.0, regulation.grace_s()))) {}

bool RegulationMonitor::Observe(absl::Time start, absl::Time end, double delivered,
                                double programmed) {
  if (!enabled()) return false;
  if (!(delivered < (1 - tolerance_) * programmed)) {
    short_since_.reset();
    return false;
  }
  if (!short_since_.has_value()) short_since_ = start;
  return end - *short_since_ >= grace_;
}

std::optional<absl::Time> RegulationMonitor::TripTime() const {
  if (!short_since_.has_value()) return std::nullopt;
  return *short_since_ + grace_;
}

}  // namespace derma
