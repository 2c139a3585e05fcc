#include "sim/pen_physics.h"

#include <algorithm>
#include <cmath>

namespace derma::sim {

void PenPhysics::SetPowered(bool on) {
  powered_ = on;
  if (!on) rate_hz_ = 0;
}

void PenPhysics::SetBlocked(bool blocked) {
  blocked_ = blocked;
  if (blocked) rate_hz_ = 0;
}

void PenPhysics::SetForcedHot(bool hot) {
  forced_hot_ = hot;
  if (hot) {
    temperature_c_ = std::max(temperature_c_, model_.temp_limit_c + kForcedOverTemperatureC);
    UpdateOverTemperature();
  }
}

uint64_t PenPhysics::strokes() const { return static_cast<uint64_t>(std::floor(phase_ + 1e-9)); }

double PenPhysics::current_a() const {
  if (!powered_) return 0;
  if (blocked_) return model_.stall_current_a;
  return model_.idle_current_a + model_.current_per_hz_a * rate_hz_;
}

double PenPhysics::TimeToTarget() const {
  if (!powered_ || blocked_) return 0;
  return std::abs(ReachableHz() - rate_hz_) / model_.accel_hz_per_s();
}

void PenPhysics::Advance(double dt_s) {
  while (dt_s > 0) {
    double ramp_s = TimeToTarget();
    // One segment up to the end of the ramp (or the whole interval), then the constant part.
    double segment = ramp_s > 0 ? std::min(dt_s, ramp_s) : dt_s;
    AdvanceSegment(segment);
    if (segment == ramp_s) rate_hz_ = ReachableHz();  // land exactly on the setpoint
    dt_s -= segment;
  }
}

void PenPhysics::AdvanceSegment(double dt_s) {
  const double current_before = current_a();
  if (powered_ && !blocked_) {
    const double reachable = ReachableHz();
    double accel = reachable > rate_hz_   ? model_.accel_hz_per_s()
                   : reachable < rate_hz_ ? -model_.accel_hz_per_s()
                                          : 0;
    phase_ += rate_hz_ * dt_s + 0.5 * accel * dt_s * dt_s;
    rate_hz_ += accel * dt_s;
  }
  const double current = 0.5 * (current_before + current_a());
  const double steady = kAmbientTemperatureC + model_.heat_c_per_a * current;
  temperature_c_ = steady + (temperature_c_ - steady) * std::exp(-dt_s / model_.thermal_tau_s);
  if (forced_hot_) {
    temperature_c_ = std::max(temperature_c_, model_.temp_limit_c + kForcedOverTemperatureC);
  }
  UpdateOverTemperature();
}

void PenPhysics::UpdateOverTemperature() {
  if (temperature_c_ > model_.temp_limit_c) over_temperature_ = true;
  if (temperature_c_ < model_.temp_limit_c - model_.temp_hysteresis_c) over_temperature_ = false;
}

}  // namespace derma::sim
