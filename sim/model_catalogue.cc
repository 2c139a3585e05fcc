#include "sim/model_catalogue.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "plugin/errors/errors.h"

namespace derma::sim {
namespace {

void AddParam(v1::Capabilities* caps, const char* field, const char* unit, double min, double max,
              double resolution, double default_value) {
  v1::ParameterCapability* p = caps->add_parameters();
  p->set_field(field);
  p->set_unit(unit);
  p->set_min(min);
  p->set_max(max);
  p->set_resolution(resolution);
  p->set_default_value(default_value);
}

// The regulation every simulated model declares (model_catalogue.h).
v1::OutputRegulation SimRegulation(double stroke_rate_slew_hz_per_s) {
  v1::OutputRegulation regulation;
  regulation.set_stroke_rate_slew_hz_per_s(stroke_rate_slew_hz_per_s);
  regulation.set_tolerance(0.1);
  regulation.set_grace_s(0.2);
  regulation.set_dose_tolerance(0.02);
  return regulation;
}

PenModel MakePen(const char* name, double depth_max, double rate_min, double rate_max,
                 double accel_hz_per_s) {
  PenModel m;
  m.name = name;
  AddParam(&m.capabilities, "needle_depth_mm", "mm", 0, depth_max, 0.05, 0.5);
  AddParam(&m.capabilities, "stroke_rate_hz", "Hz", rate_min, rate_max, 1, 100);
  AddParam(&m.capabilities, "session_limit_s", "s", 1, 3600, 1, 1200);
  *m.capabilities.mutable_regulation() = SimRegulation(accel_hz_per_s);
  return m;
}

std::vector<PenModel> PenCatalogue() {
  PenModel dp100 = MakePen("DP-100", 2.5, 50, 150, 500);
  PenModel dp300 = MakePen("DP-300", 3.0, 30, 160, 800);
  dp300.temp_limit_c = 65;
  return {dp100, dp300};
}

StimulatorModel MakeStimulator(const char* name, double current_max, double freq_min,
                               double freq_max, bool sine) {
  StimulatorModel m;
  m.name = name;
  v1::Capabilities& caps = m.capabilities;
  AddParam(&caps, "current_ua", "uA", 0, current_max, 1, 100);
  AddParam(&caps, "frequency_hz", "Hz", freq_min, freq_max, 0.1, 10);
  AddParam(&caps, "ramp_s", "s", 0, 10, 0.1, 1);
  AddParam(&caps, "session_limit_s", "s", 1, 3600, 1, 1200);
  caps.add_supported_waveforms(v1::WAVEFORM_MONOPHASIC_SQUARE);
  caps.add_supported_waveforms(v1::WAVEFORM_BIPHASIC_SQUARE);
  caps.add_supported_waveforms(v1::WAVEFORM_ALTERNATING_POLARITY);
  if (sine) caps.add_supported_waveforms(v1::WAVEFORM_SINE);
  caps.add_supported_polarities(v1::POLARITY_POSITIVE);
  caps.add_supported_polarities(v1::POLARITY_NEGATIVE);
  caps.set_compliance_voltage_v(12);
  *caps.mutable_regulation() = SimRegulation(0);
  return m;
}

std::vector<StimulatorModel> StimulatorCatalogue() {
  return {MakeStimulator("MC-10", 1000, 0.3, 1500, true),
          MakeStimulator("MC-5", 500, 0.5, 1000, false)};
}

// Snaps `v` into [min, max] and onto the resolution grid counted from min.
double SnapToGrid(double v, const v1::ParameterCapability& p) {
  double steps = std::round((std::clamp(v, p.min(), p.max()) - p.min()) / p.resolution());
  double snapped = p.min() + steps * p.resolution();
  return snapped > p.max() ? snapped - p.resolution() : snapped;
}

// Applies one override, appending a violation per problem.
void ApplyOverride(const config::v1::ParameterOverride& o, const std::string& path,
                   v1::Capabilities* caps, std::vector<FieldViolation>* violations) {
  v1::ParameterCapability* p = nullptr;
  for (v1::ParameterCapability& c : *caps->mutable_parameters()) {
    if (c.field() == o.field()) p = &c;
  }
  if (p == nullptr) {
    violations->push_back({path + ".field", absl::StrCat("unknown parameter \"", o.field(), "\"")});
    return;
  }
  v1::ParameterCapability next = *p;
  if (o.has_min()) next.set_min(o.min());
  if (o.has_max()) next.set_max(o.max());
  if (o.has_resolution()) next.set_resolution(o.resolution());
  size_t before = violations->size();
  if (!(next.resolution() > 0) || !std::isfinite(next.resolution())) {
    violations->push_back({path + ".resolution", "resolution must be > 0"});
  }
  if (!(next.min() <= next.max()) || !std::isfinite(next.min()) || !std::isfinite(next.max())) {
    violations->push_back({path + (o.has_min() ? ".min" : ".max"),
                           absl::StrCat("min ", next.min(), " > max ", next.max())});
  }
  if (violations->size() != before) return;
  if (next.default_value() < next.min() || next.default_value() > next.max()) {
    next.set_default_value(SnapToGrid(next.default_value(), next));
  }
  *p = next;
}

absl::Status ApplyOverrides(const config::v1::DeviceConfig& config, v1::Capabilities* caps) {
  std::vector<FieldViolation> violations;
  for (int i = 0; i < config.overrides_size(); ++i) {
    ApplyOverride(config.overrides(i),
                  absl::StrCat("devices[", config.id(), "].overrides[", i, "]"), caps, &violations);
  }
  if (violations.empty()) return absl::OkStatus();
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                   absl::StrCat(violations[0].field, ": ", violations[0].description), {},
                   violations);
}

template <typename Model>
absl::StatusOr<Model> Resolve(const config::v1::DeviceConfig& config,
                              const std::vector<Model>& catalogue) {
  const std::string wanted = config.model().empty() ? catalogue[0].name : config.model();
  std::vector<std::string> names;
  for (const Model& m : catalogue) {
    if (m.name != wanted) {
      names.push_back(m.name);
      continue;
    }
    Model model = m;
    absl::Status status = ApplyOverrides(config, &model.capabilities);
    if (!status.ok()) return status;
    return model;
  }
  std::string field = absl::StrCat("devices[", config.id(), "].model");
  std::string message = absl::StrCat(field, ": unknown model \"", wanted, "\" for ",
                                     v1::DeviceKind_Name(config.kind()),
                                     "; known models: ", absl::StrJoin(names, ", "));
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD, message, {},
                   {{field, message}});
}

template <typename Model>
std::vector<std::string> Names(const std::vector<Model>& catalogue) {
  std::vector<std::string> names;
  for (const Model& m : catalogue) names.push_back(m.name);
  return names;
}

double Default(const v1::Capabilities& caps, const std::string& field) {
  const v1::ParameterCapability* p = FindCapability(caps, field);
  return p == nullptr ? 0 : p->default_value();
}

}  // namespace

std::vector<std::string> PenModelNames() { return Names(PenCatalogue()); }
std::vector<std::string> StimulatorModelNames() { return Names(StimulatorCatalogue()); }

absl::StatusOr<PenModel> ResolvePenModel(const config::v1::DeviceConfig& config) {
  return Resolve(config, PenCatalogue());
}

absl::StatusOr<StimulatorModel> ResolveStimulatorModel(const config::v1::DeviceConfig& config) {
  return Resolve(config, StimulatorCatalogue());
}

const v1::ParameterCapability* FindCapability(const v1::Capabilities& caps,
                                              const std::string& field) {
  for (const v1::ParameterCapability& p : caps.parameters()) {
    if (p.field() == field) return &p;
  }
  return nullptr;
}

v1::Settings PenDefaultSettings(const v1::Capabilities& caps) {
  v1::Settings settings;
  v1::MicroneedlingSettings* s = settings.mutable_microneedling();
  s->set_needle_depth_mm(Default(caps, "needle_depth_mm"));
  s->set_stroke_rate_hz(Default(caps, "stroke_rate_hz"));
  s->set_session_limit_s(Default(caps, "session_limit_s"));
  return settings;
}

v1::Settings StimulatorDefaultSettings(const v1::Capabilities& caps) {
  v1::Settings settings;
  v1::MicrocurrentSettings* s = settings.mutable_microcurrent();
  s->set_current_ua(Default(caps, "current_ua"));
  s->set_frequency_hz(Default(caps, "frequency_hz"));
  s->set_waveform(v1::WAVEFORM_BIPHASIC_SQUARE);
  s->set_polarity(v1::POLARITY_POSITIVE);
  s->set_ramp_s(Default(caps, "ramp_s"));
  s->set_session_limit_s(Default(caps, "session_limit_s"));
  return settings;
}

}  // namespace derma::sim
