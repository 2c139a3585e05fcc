#include "sim/sim_stimulator.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "plugin/errors/errors.h"

namespace derma::sim {
namespace {

constexpr double kCurrentNoiseUa = 1.0;
constexpr double kMinImpedanceOhm = 100;
constexpr double kMaxImpedanceOhm = 1e6;

bool ImpedanceInRange(double ohms) {
  return std::isfinite(ohms) && ohms >= kMinImpedanceOhm && ohms <= kMaxImpedanceOhm;
}

bool SupportsWaveform(const v1::Capabilities& caps, v1::Waveform waveform) {
  if (waveform == v1::WAVEFORM_UNSPECIFIED) return true;
  for (int w : caps.supported_waveforms()) {
    if (w == waveform) return true;
  }
  return false;
}

}  // namespace

SimStimulator::SimStimulator(std::string id, DriverInfo info, const StimulatorModel& model,
                             double baseline_ohm, uint64_t seed)
    : info_(std::move(info)),
      noise_(seed),
      physics_(model, baseline_ohm, 2 * std::numbers::pi * noise_.Unit()),
      link_(std::move(id)) {
  physics_.Apply(info_.description->default_settings.microcurrent());
}

void SimStimulator::AdvanceTo(absl::Time now) {
  if (last_.has_value() && now <= *last_) return;
  double dt = last_.has_value() ? absl::ToDoubleSeconds(now - *last_) : 0;
  physics_.Advance(dt, absl::ToDoubleSeconds(now - absl::UnixEpoch()));
  last_ = now;
}

absl::Status SimStimulator::Connect(absl::Time now) {
  AdvanceTo(now);
  return link_.Connect();
}

absl::Status SimStimulator::Apply(const v1::Settings& settings, absl::Time now) {
  if (!settings.has_microcurrent()) return WrongSettingsKind(settings, info_.kind);
  if (!SupportsWaveform(info_.description->capabilities, settings.microcurrent().waveform())) {
    return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_SETTING_NOT_SUPPORTED,
                     absl::StrFormat("model %s does not support %s", info_.description->model,
                                     v1::Waveform_Name(settings.microcurrent().waveform())));
  }
  AdvanceTo(now);
  if (absl::Status s = link_.Require("Apply", /*need_connected=*/false); !s.ok()) return s;
  physics_.Apply(settings.microcurrent());
  return absl::OkStatus();
}

absl::Status SimStimulator::SetOutput(bool on, absl::Time now) {
  AdvanceTo(now);
  if (on) {
    if (absl::Status s = link_.Require("SetOutput(true)", /*need_connected=*/true); !s.ok()) {
      return s;
    }
  }
  physics_.SetOutput(on);
  return absl::OkStatus();
}

bool SimStimulator::ForceOutputOff(absl::Time now) {
  AdvanceTo(now);
  physics_.SetOutput(false);
  return true;  // the model has no link to lose: off is certain
}

absl::StatusOr<DriverReading> SimStimulator::Read(absl::Time now) {
  AdvanceTo(now);
  DriverReading r;
  r.link_up = link_.up();
  r.output_on = physics_.output_on();
  StimulatorReading& stim = r.stim;
  stim.current_setpoint_ua = physics_.RampedSetpointUa();
  double measured = physics_.InstantaneousUa();
  if (physics_.DeliveredUa() > 0) measured += noise_.Symmetric(kCurrentNoiseUa);
  stim.current_measured_ua = measured;
  stim.electrode_impedance_ohm = physics_.ImpedanceOhm();
  stim.output_voltage_v = physics_.OutputVoltageV();
  stim.charge_delivered_uc = physics_.charge_uc();
  stim.electrode_contact = physics_.contact();
  FillFaults(&r);
  return r;
}

void SimStimulator::FillFaults(DriverReading* r) const {
  std::vector<std::string> details;
  if (contact_lost_) {
    r->faults |= FaultBit(v1::FAULT_KIND_ELECTRODE_CONTACT_LOST);
    details.push_back("electrode contact lost: open circuit");
  }
  if (spike_) {
    r->faults |= FaultBit(v1::FAULT_KIND_IMPEDANCE_SPIKE);
    details.push_back(absl::StrFormat("electrode impedance spiked to %.0f Ω (×%.0f)",
                                      physics_.ImpedanceOhm(), kImpedanceSpikeFactor));
  }
  if (overcurrent_) {
    r->faults |= FaultBit(v1::FAULT_KIND_OVERCURRENT);
    const StimulatorModel& m = physics_.model();
    details.push_back(absl::StrFormat("output current %.1f µA > setpoint %.1f µA + %.0f %%",
                                      physics_.DeliveredUa(), physics_.setpoint_ua(),
                                      100 * m.overcurrent_tolerance));
  }
  r->fault_detail = absl::StrJoin(details, "; ");
}

absl::Status SimStimulator::InjectFault(v1::FaultKind kind, absl::Time now) {
  return SetFault(kind, true, now);
}

absl::Status SimStimulator::ClearFault(v1::FaultKind kind, absl::Time now) {
  return SetFault(kind, false, now);
}

absl::Status SimStimulator::SetFault(v1::FaultKind kind, bool present, absl::Time now) {
  AdvanceTo(now);
  switch (kind) {
    case v1::FAULT_KIND_ELECTRODE_CONTACT_LOST:
      contact_lost_ = present;
      physics_.SetContact(!present);
      return absl::OkStatus();
    case v1::FAULT_KIND_IMPEDANCE_SPIKE:
      spike_ = present;
      physics_.SetImpedanceSpike(present);
      return absl::OkStatus();
    case v1::FAULT_KIND_OVERCURRENT:
      overcurrent_ = present;
      physics_.SetOvercurrent(present);
      return absl::OkStatus();
    case v1::FAULT_KIND_LINK_DROP:
      SetLink(!present, now);
      return absl::OkStatus();
    default:
      return FaultNotApplicable(kind, info_.kind);
  }
}

absl::Status SimStimulator::SetElectrodeImpedance(double ohms, absl::Time now) {
  if (!ImpedanceInRange(ohms)) {
    return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                     absl::StrFormat("impedance_ohm %g outside 100–1000000 Ω", ohms), {},
                     {{"impedance_ohm", "must be within 100–1000000 Ω"}});
  }
  AdvanceTo(now);
  physics_.SetBaselineImpedance(ohms);
  return absl::OkStatus();
}

void SimStimulator::SetLink(bool up, absl::Time now) {
  AdvanceTo(now);
  link_.Set(up);
  if (!up) physics_.SetOutput(false);  // the stimulator's watchdog cuts the current
}

absl::StatusOr<std::unique_ptr<SimDevice>> CreateSimStimulator(const SimDeviceSpec& spec) {
  absl::StatusOr<StimulatorModel> model = ResolveStimulatorModel(spec.config);
  if (!model.ok()) return model.status();
  const config::v1::DeviceConfig& config = spec.config;
  if (config.has_pen())
    return InvalidConfigField(config, "pen", "pen setup given for a stimulator");
  double ohms = config.stimulator().electrode_impedance_ohm();
  if (ohms == 0) ohms = 5000;
  if (!ImpedanceInRange(ohms)) {
    return InvalidConfigField(config, "stimulator.electrode_impedance_ohm",
                              "must be within 100–1000000 Ω");
  }
  DriverInfo info = MakeSimInfo(config, model->name, model->capabilities,
                                StimulatorDefaultSettings(model->capabilities));
  return std::make_unique<SimStimulator>(config.id(), std::move(info), *model, ohms, spec.seed);
}

}  // namespace derma::sim
