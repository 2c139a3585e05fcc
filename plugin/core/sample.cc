#include "plugin/core/sample.h"

namespace derma {

void SampleToProto(const Sample& sample, v1::TelemetrySample* out) {
  out->set_sequence(sample.sequence);
  out->set_device_time_us(sample.device_time_us);
  out->set_output_on(sample.output_on);
  out->set_output_unconfirmed(sample.output_unconfirmed);
  out->set_achieved_sample_rate_hz(sample.achieved_sample_rate_hz);
  if (sample.kind == v1::DEVICE_KIND_MICRONEEDLING) {
    v1::MicroneedlingReading* r = out->mutable_microneedling();
    r->set_needle_depth_mm(sample.pen.needle_depth_mm);
    r->set_stroke_rate_hz(sample.pen.stroke_rate_hz);
    r->set_strokes_total(sample.pen.strokes_total);
    r->set_motor_current_a(sample.pen.motor_current_a);
    r->set_motor_temperature_c(sample.pen.motor_temperature_c);
    r->set_cartridge_strokes_used(sample.pen.cartridge_strokes_used);
  } else if (sample.kind == v1::DEVICE_KIND_MICROCURRENT) {
    v1::MicrocurrentReading* r = out->mutable_microcurrent();
    r->set_current_setpoint_ua(sample.stim.current_setpoint_ua);
    r->set_current_measured_ua(sample.stim.current_measured_ua);
    r->set_electrode_impedance_ohm(sample.stim.electrode_impedance_ohm);
    r->set_output_voltage_v(sample.stim.output_voltage_v);
    r->set_charge_delivered_uc(sample.stim.charge_delivered_uc);
    r->set_electrode_contact(sample.stim.electrode_contact);
  }
}

}  // namespace derma
