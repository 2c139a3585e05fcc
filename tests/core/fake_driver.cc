#include "tests/core/fake_driver.h"

namespace derma::testing {
namespace {

v1::ParameterCapability Param(const char* field, const char* unit, double min, double max,
                              double resolution, double default_value) {
  v1::ParameterCapability p;
  p.set_field(field);
  p.set_unit(unit);
  p.set_min(min);
  p.set_max(max);
  p.set_resolution(resolution);
  p.set_default_value(default_value);
  return p;
}

}  // namespace

v1::OutputRegulation FakeRegulation() {
  v1::OutputRegulation regulation;  // no ramp: the fake follows its setpoints at once
  regulation.set_tolerance(0.1);
  regulation.set_grace_s(0.2);
  regulation.set_dose_tolerance(0.02);
  return regulation;
}

DriverInfo FakePenInfo() {
  DriverInfo info;
  info.kind = v1::DEVICE_KIND_MICRONEEDLING;
  DeviceDescription& d = info.description.emplace();
  d.model = "FAKE-PEN";
  d.serial_number = "FP-1";
  d.firmware_version = "test";
  *d.capabilities.add_parameters() = Param("needle_depth_mm", "mm", 0, 2.5, 0.05, 0.5);
  *d.capabilities.add_parameters() = Param("stroke_rate_hz", "Hz", 50, 150, 1, 100);
  *d.capabilities.add_parameters() = Param("session_limit_s", "s", 1, 3600, 1, 1200);
  *d.capabilities.mutable_regulation() = FakeRegulation();
  v1::MicroneedlingSettings* s = d.default_settings.mutable_microneedling();
  s->set_needle_depth_mm(0.5);
  s->set_stroke_rate_hz(100);
  s->set_session_limit_s(1200);
  return info;
}

DriverInfo FakeStimulatorInfo() {
  DriverInfo info;
  info.kind = v1::DEVICE_KIND_MICROCURRENT;
  DeviceDescription& d = info.description.emplace();
  d.model = "FAKE-STIM";
  d.serial_number = "FS-1";
  d.firmware_version = "test";
  *d.capabilities.add_parameters() = Param("current_ua", "uA", 0, 1000, 1, 100);
  *d.capabilities.add_parameters() = Param("frequency_hz", "Hz", 0.3, 1500, 0.1, 10);
  *d.capabilities.add_parameters() = Param("ramp_s", "s", 0, 10, 0.1, 1);
  *d.capabilities.add_parameters() = Param("session_limit_s", "s", 1, 3600, 1, 1200);
  d.capabilities.add_supported_waveforms(v1::WAVEFORM_MONOPHASIC_SQUARE);
  d.capabilities.add_supported_waveforms(v1::WAVEFORM_BIPHASIC_SQUARE);
  d.capabilities.add_supported_waveforms(v1::WAVEFORM_ALTERNATING_POLARITY);
  d.capabilities.add_supported_polarities(v1::POLARITY_POSITIVE);
  d.capabilities.add_supported_polarities(v1::POLARITY_NEGATIVE);
  d.capabilities.set_compliance_voltage_v(12);
  *d.capabilities.mutable_regulation() = FakeRegulation();
  v1::MicrocurrentSettings* s = d.default_settings.mutable_microcurrent();
  s->set_current_ua(100);
  s->set_frequency_hz(10);
  s->set_waveform(v1::WAVEFORM_BIPHASIC_SQUARE);
  s->set_polarity(v1::POLARITY_POSITIVE);
  s->set_ramp_s(0);
  s->set_session_limit_s(1200);
  return info;
}

FakeDriver::FakeDriver(DriverInfo info) : info_(std::move(info)) {
  description_ = *info_.description;
  applied_ = description_.default_settings;
  cartridge_.set_needle_count(12);
  cartridge_.set_needle_length_mm(2.5);
  cartridge_.set_strokes_rated(2000000);
}

void FakeDriver::DescribeAtConnect() {
  info_.description.reset();
  described_ = false;
}

const DeviceDescription* FakeDriver::Description() const {
  if (info_.description.has_value()) return &*info_.description;
  return described_ ? &description_ : nullptr;
}

absl::Status FakeDriver::Connect(absl::Time now) {
  if (!link_up_) return absl::UnavailableError("link down");
  if (!connect_error_.ok()) return connect_error_;
  connected_ = true;
  described_ = true;
  return absl::OkStatus();
}

absl::Status FakeDriver::Apply(const v1::Settings& settings, absl::Time now) {
  AdvanceTo(now);
  if (fail_next_apply_) {
    fail_next_apply_ = false;
    return absl::InternalError("fake apply failure");
  }
  applied_ = settings;
  apply_log_.push_back({now, settings});
  return absl::OkStatus();
}

absl::Status FakeDriver::SetOutput(bool on, absl::Time now) {
  AdvanceTo(now);
  if (!link_up_) return absl::UnavailableError("link down");
  output_on_ = on;
  output_log_.push_back({now, on});
  return absl::OkStatus();
}

bool FakeDriver::ForceOutputOff(absl::Time now) {
  AdvanceTo(now);
  ++force_off_count_;
  if (output_on_) output_log_.push_back({now, false});
  const bool was_on = output_on_;
  output_on_ = false;
  if (link_up_ || confirm_off_without_link_) return true;
  unconfirmed_ = unconfirmed_ || was_on;
  return false;
}

void FakeDriver::AdvanceTo(absl::Time now) {
  if (!started_) {
    started_ = true;
    last_ = now;
    return;
  }
  if (now <= last_) return;
  const double dt = absl::ToDoubleSeconds(now - last_);
  last_ = now;
  if (!output_on_) return;
  if (applied_.has_microneedling()) {
    const double before = std::floor(stroke_phase_);
    stroke_phase_ += delivery_fraction_ * applied_.microneedling().stroke_rate_hz() * dt;
    cartridge_.set_strokes_used(cartridge_.strokes_used() +
                                static_cast<uint64_t>(std::floor(stroke_phase_) - before));
  } else if (applied_.has_microcurrent() && contact_) {
    charge_uc_ += delivery_fraction_ * WaveformMeanAbsShape(applied_.microcurrent().waveform()) *
                  applied_.microcurrent().current_ua() * dt;
  }
}

absl::StatusOr<DriverReading> FakeDriver::Read(absl::Time now) {
  AdvanceTo(now);
  if (fail_reads_) return absl::InternalError("fake read failure");
  if (!link_up_ && output_on_) {  // the device's watchdog cuts the output on link loss
    unconfirmed_ = unconfirmed_ || !confirm_off_without_link_;
    output_on_ = false;
  }
  if (link_up_) unconfirmed_ = false;
  DriverReading r;
  r.link_up = link_up_;
  r.output_on = output_on_;
  r.output_unconfirmed = unconfirmed_;
  r.faults = faults_;
  if (faults_ != 0) r.fault_detail = "fake fault";
  if (applied_.has_microneedling()) {
    r.pen.needle_depth_mm = applied_.microneedling().needle_depth_mm();
    r.pen.stroke_rate_hz =
        output_on_ ? delivery_fraction_ * applied_.microneedling().stroke_rate_hz() : 0;
    r.pen.strokes_total = static_cast<uint64_t>(std::floor(stroke_phase_));
    r.pen.cartridge_strokes_used = cartridge_.strokes_used();
    r.cartridge = cartridge_;
  } else if (applied_.has_microcurrent()) {
    r.stim.electrode_contact = contact_;
    if (!contact_) {
      r.faults |= FaultBit(v1::FAULT_KIND_ELECTRODE_CONTACT_LOST);
      r.fault_detail = "fake contact lost";
    }
    r.stim.electrode_impedance_ohm = contact_ ? impedance_ohm_ : 1e9;
    r.stim.current_setpoint_ua = output_on_ ? applied_.microcurrent().current_ua() : 0;
    r.stim.current_measured_ua = output_on_ && contact_ ? r.stim.current_setpoint_ua : 0;
    r.stim.charge_delivered_uc = charge_uc_;
  }
  return r;
}

}  // namespace derma::testing
