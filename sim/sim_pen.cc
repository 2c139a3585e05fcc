#include "sim/sim_pen.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "plugin/errors/errors.h"

namespace derma::sim {
namespace {

constexpr double kMotorCurrentNoiseA = 0.005;

absl::StatusOr<v1::Cartridge> CartridgeFromSetup(const config::v1::DeviceConfig& config) {
  if (config.has_stimulator()) {
    return InvalidConfigField(config, "stimulator", "stimulator setup given for a pen");
  }
  const config::v1::PenSetup& setup = config.pen();
  double length = setup.cartridge_needle_length_mm();
  if (!std::isfinite(length) || length < 0) {
    return InvalidConfigField(config, "pen.cartridge_needle_length_mm", "must be ≥ 0");
  }
  v1::Cartridge cartridge;
  cartridge.set_needle_count(setup.cartridge_needle_count() == 0 ? 12
                                                                 : setup.cartridge_needle_count());
  cartridge.set_needle_length_mm(length == 0 ? 2.5 : length);
  cartridge.set_strokes_rated(
      setup.cartridge_strokes_rated() == 0 ? 2000000 : setup.cartridge_strokes_rated());
  cartridge.set_strokes_used(setup.cartridge_strokes_used());
  return cartridge;
}

}  // namespace

SimPen::SimPen(std::string id, DriverInfo info, const PenModel& model, v1::Cartridge cartridge,
               uint64_t seed)
    : info_(std::move(info)),
      physics_(model),
      cartridge_(std::move(cartridge)),
      initial_strokes_used_(cartridge_.strokes_used()),
      link_(std::move(id)),
      noise_(seed) {
  const v1::MicroneedlingSettings& defaults = info_.description->default_settings.microneedling();
  needle_depth_mm_ = defaults.needle_depth_mm();
  physics_.SetTargetRate(defaults.stroke_rate_hz());
}

void SimPen::AdvanceTo(absl::Time now) {
  if (last_.has_value() && now > *last_) physics_.Advance(absl::ToDoubleSeconds(now - *last_));
  if (!last_.has_value() || now > *last_) last_ = now;
}

absl::Status SimPen::Connect(absl::Time now) {
  AdvanceTo(now);
  return link_.Connect();
}

absl::Status SimPen::Apply(const v1::Settings& settings, absl::Time now) {
  if (!settings.has_microneedling()) return WrongSettingsKind(settings, info_.kind);
  AdvanceTo(now);
  if (absl::Status s = link_.Require("Apply", /*need_connected=*/false); !s.ok()) return s;
  const v1::MicroneedlingSettings& s = settings.microneedling();
  if (s.has_needle_depth_mm()) needle_depth_mm_ = s.needle_depth_mm();
  if (s.has_stroke_rate_hz()) physics_.SetTargetRate(s.stroke_rate_hz());
  return absl::OkStatus();
}

absl::Status SimPen::SetOutput(bool on, absl::Time now) {
  AdvanceTo(now);
  if (on) {
    if (absl::Status s = link_.Require("SetOutput(true)", /*need_connected=*/true); !s.ok()) {
      return s;
    }
  }
  physics_.SetPowered(on);
  return absl::OkStatus();
}

bool SimPen::ForceOutputOff(absl::Time now) {
  AdvanceTo(now);
  physics_.SetPowered(false);
  return true;  // the model has no link to lose: off is certain
}

absl::StatusOr<DriverReading> SimPen::Read(absl::Time now) {
  AdvanceTo(now);
  DriverReading r;
  r.link_up = link_.up();
  r.output_on = physics_.powered();
  PenReading& pen = r.pen;
  pen.needle_depth_mm = needle_depth_mm_;
  pen.stroke_rate_hz = physics_.rate_hz();
  pen.strokes_total = physics_.strokes();
  double current = physics_.current_a();
  pen.motor_current_a =
      current > 0 ? std::max(0.0, current + noise_.Symmetric(kMotorCurrentNoiseA)) : 0;
  pen.motor_temperature_c = physics_.temperature_c();
  pen.cartridge_strokes_used = initial_strokes_used_ + pen.strokes_total;
  r.cartridge = cartridge_;
  r.cartridge.set_strokes_used(pen.cartridge_strokes_used);
  FillFaults(&r);
  return r;
}

void SimPen::FillFaults(DriverReading* r) const {
  std::vector<std::string> details;
  if (stalled_) {
    r->faults |= FaultBit(v1::FAULT_KIND_MOTOR_STALL);
    details.push_back(absl::StrFormat("motor stalled: 0 Hz while driven, %.2f A",
                                      physics_.model().stall_current_a));
  }
  if (jammed_) {
    r->faults |= FaultBit(v1::FAULT_KIND_CARTRIDGE_JAM);
    details.push_back("cartridge jammed: needles stuck");
  }
  if (physics_.over_temperature()) {
    r->faults |= FaultBit(v1::FAULT_KIND_OVER_TEMPERATURE);
    const PenModel& m = physics_.model();
    double t = physics_.temperature_c();
    details.push_back(
        t > m.temp_limit_c
            ? absl::StrFormat("motor temperature %.1f °C > limit %.1f °C", t, m.temp_limit_c)
            : absl::StrFormat("motor temperature %.1f °C, clears below %.1f °C", t,
                              m.temp_limit_c - m.temp_hysteresis_c));
  }
  r->fault_detail = absl::StrJoin(details, "; ");
}

absl::Status SimPen::InjectFault(v1::FaultKind kind, absl::Time now) {
  return SetFault(kind, true, now);
}

absl::Status SimPen::ClearFault(v1::FaultKind kind, absl::Time now) {
  return SetFault(kind, false, now);
}

absl::Status SimPen::SetFault(v1::FaultKind kind, bool present, absl::Time now) {
  AdvanceTo(now);
  switch (kind) {
    case v1::FAULT_KIND_MOTOR_STALL:
      stalled_ = present;
      break;
    case v1::FAULT_KIND_CARTRIDGE_JAM:
      jammed_ = present;
      break;
    case v1::FAULT_KIND_OVER_TEMPERATURE:
      physics_.SetForcedHot(present);
      return absl::OkStatus();
    case v1::FAULT_KIND_MOTOR_UNDERSPEED:  // reports nothing: derma's regulation check finds it
      physics_.SetUnderspeed(present);
      return absl::OkStatus();
    case v1::FAULT_KIND_LINK_DROP:
      SetLink(!present, now);
      return absl::OkStatus();
    default:
      return FaultNotApplicable(kind, info_.kind);
  }
  physics_.SetBlocked(stalled_ || jammed_);
  return absl::OkStatus();
}

absl::Status SimPen::SetElectrodeImpedance(double ohms, absl::Time now) {
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_SETTING_NOT_SUPPORTED,
                   "a microneedling pen has no electrodes; SetElectrodeImpedance needs a "
                   "stimulator");
}

void SimPen::SetLink(bool up, absl::Time now) {
  AdvanceTo(now);
  link_.Set(up);
  if (!up) physics_.SetPowered(false);  // the pen's watchdog cuts the motor on link loss
}

absl::StatusOr<std::unique_ptr<SimDevice>> CreateSimPen(const SimDeviceSpec& spec) {
  absl::StatusOr<PenModel> model = ResolvePenModel(spec.config);
  if (!model.ok()) return model.status();
  absl::StatusOr<v1::Cartridge> cartridge = CartridgeFromSetup(spec.config);
  if (!cartridge.ok()) return cartridge.status();
  DriverInfo info = MakeSimInfo(spec.config, model->name, model->capabilities,
                                PenDefaultSettings(model->capabilities));
  return std::make_unique<SimPen>(spec.config.id(), std::move(info), *model, *cartridge, spec.seed);
}

}  // namespace derma::sim
