#include "tests/bench/synthetic_samples.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "derma/v1/device_control.pb.h"
#include "plugin/host/config_loader.h"

namespace derma::bench {
namespace {

constexpr uint64_t kFirstSequence = uint64_t{1} << 32;
constexpr int64_t kStartTimeUs = 1'700'000'000'000'000;
constexpr int64_t kPeriodUs = 10'000;

}  // namespace

SyntheticSamples::SyntheticSamples(const config::v1::FleetConfig& config) {
  for (const config::v1::DeviceConfig& device : host::ExpandFleet(config)) {
    names_.push_back(absl::StrCat("devices/", device.id()));
    kinds_.push_back(device.kind());
  }
  next_sequence_.assign(names_.size(), kFirstSequence);
}

Sample SyntheticSamples::Next(uint32_t index) {
  const uint64_t sequence = next_sequence_[index]++;
  const uint64_t n = sequence - kFirstSequence;
  Sample s;
  s.device_index = index;
  s.kind = kinds_[index];
  s.sequence = sequence;
  s.device_time_us = kStartTimeUs + static_cast<int64_t>(n) * kPeriodUs;
  s.output_on = true;
  // Values that vary like real readings, so their encoded size is realistic.
  const double wobble = static_cast<double>(n % 97) / 97.0;
  if (s.kind == v1::DEVICE_KIND_MICRONEEDLING) {
    s.pen = {.needle_depth_mm = 0.5,
             .stroke_rate_hz = 99.5 + wobble,
             .strokes_total = 120'000 + n,
             .motor_current_a = 0.12 + 0.01 * wobble,
             .motor_temperature_c = 36.0 + wobble,
             .cartridge_strokes_used = 80'000 + n};
  } else {
    s.stim = {.current_setpoint_ua = 100,
              .current_measured_ua = 98.0 + 4 * wobble,
              .electrode_impedance_ohm = 5000 + 50 * wobble,
              .output_voltage_v = 0.5 + 0.01 * wobble,
              .charge_delivered_uc = 1000.0 + 0.001 * static_cast<double>(n),
              .electrode_contact = true};
  }
  return s;
}

std::string SyntheticSamples::SerializedBatch(size_t samples) {
  v1::StreamTelemetryResponse response;
  absl::flat_hash_map<uint32_t, v1::DeviceSamples*> slots;
  for (size_t i = 0; i < samples; ++i) {
    const uint32_t index = static_cast<uint32_t>(i % names_.size());
    v1::DeviceSamples*& slot = slots[index];
    if (slot == nullptr) {
      slot = response.mutable_batch()->add_devices();
      slot->set_device(names_[index]);
    }
    SampleToProto(Next(index), slot->add_samples());
  }
  return response.SerializeAsString();
}

}  // namespace derma::bench
