// PenPhysics: the pure physical model of a microneedling pen (needle motor, stroke counter,
// motor current and temperature), advanced in closed form. Layer: sim/, used by SimPen.
//
// Motor: while powered, the stroke rate moves linearly towards the setpoint at the model's
// fixed acceleration (up, or down after a lower setpoint); power off (SetPowered(false)) drops it
// to 0 at once. An injected underspeed makes it move towards half the setpoint instead. While
// blocked (stall or jam) it is 0 and the motor draws the stall current. Strokes: the stroke phase
// is the exact integral of the rate; strokes() is its floor (with a 1e-9 guard against rounding),
// so it is monotonic and exact for known ramps. Thermal: first-order, T' = (T_amb + heat_c_per_a ·
// I − T) / tau, ambient 25 °C, solved exactly per segment with I averaged over the segment
// (segments split at the ramp end). over_temperature() latches above the limit and clears below
// limit − hysteresis. Forced heating (injected OVER_TEMPERATURE) holds T ≥ limit + 10 °C until
// released; the motor then cools naturally (DP-100 at rest: 70 → 55 °C in 1.6 s). Thread-compatible
// (a plain value).
#ifndef DERMA_SIM_PEN_PHYSICS_H_
#define DERMA_SIM_PEN_PHYSICS_H_

#include <cstdint>

#include "sim/model_catalogue.h"

namespace derma::sim {

inline constexpr double kAmbientTemperatureC = 25;
inline constexpr double kForcedOverTemperatureC = 10;  // above the limit while forced
inline constexpr double kUnderspeedFraction = 0.5;     // of the setpoint, while underspeed

class PenPhysics {
 public:
  explicit PenPhysics(const PenModel& model) : model_(model) {}

  // Advances the model by `dt_s` ≥ 0 seconds.
  void Advance(double dt_s);

  // Motor power. Off drops the rate to 0 at once.
  void SetPowered(bool on);
  // Stroke rate setpoint in Hz (applied through the ramp while powered).
  void SetTargetRate(double hz) { target_hz_ = hz; }
  // Stall or jam: the rate drops to 0 at once and stays there while blocked.
  void SetBlocked(bool blocked);
  // Injected over-temperature: holds T ≥ limit + 10 °C while true.
  void SetForcedHot(bool hot);
  // Injected underspeed (a worn motor): while true the motor tops out at
  // kUnderspeedFraction × the setpoint, reached through the same ramp.
  void SetUnderspeed(bool underspeed) { underspeed_ = underspeed; }

  bool powered() const { return powered_; }
  double rate_hz() const { return rate_hz_; }
  uint64_t strokes() const;
  double current_a() const;
  double temperature_c() const { return temperature_c_; }
  bool over_temperature() const { return over_temperature_; }
  const PenModel& model() const { return model_; }

 private:
  // The rate the motor moves towards: the setpoint, or less while underspeed.
  double ReachableHz() const { return underspeed_ ? kUnderspeedFraction * target_hz_ : target_hz_; }
  // Time until the rate reaches the setpoint (0 when it is there or cannot move).
  double TimeToTarget() const;
  // Advances motion and temperature by one segment in which the acceleration is constant.
  void AdvanceSegment(double dt_s);
  void UpdateOverTemperature();

  PenModel model_;
  bool powered_ = false;
  bool blocked_ = false;
  bool forced_hot_ = false;
  bool over_temperature_ = false;
  bool underspeed_ = false;
  double target_hz_ = 0;
  double rate_hz_ = 0;
  double phase_ = 0;  // integrated strokes
  double temperature_c_ = kAmbientTemperatureC;
};

}  // namespace derma::sim

#endif  // DERMA_SIM_PEN_PHYSICS_H_
