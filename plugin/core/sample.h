// Sample: one immutable telemetry measurement of one device, as the core publishes it.
// Layer: plugin/core. A plain value type (copyable, no heap), so fan-out to many
// subscribers is a memcpy; the service converts it to derma.v1.TelemetrySample.
#ifndef DERMA_PLUGIN_CORE_SAMPLE_H_
#define DERMA_PLUGIN_CORE_SAMPLE_H_

#include <cstdint>

#include "derma/v1/device.pb.h"
#include "plugin/driver.h"

namespace derma {

// One published sample. `device_index` is the device's index in its DeviceManager.
struct Sample {
  uint32_t device_index = 0;
  v1::DeviceKind kind = v1::DEVICE_KIND_UNSPECIFIED;
  uint64_t sequence = 0;       // per device, starts at 1, +1 per published sample
  int64_t device_time_us = 0;  // device time, µs since the Unix epoch
  bool output_on = false;
  bool output_unconfirmed = false;     // DriverReading::output_unconfirmed
  double achieved_sample_rate_hz = 0;  // recent samples per second of device time
  PenReading pen;                      // valid when kind == MICRONEEDLING
  StimulatorReading stim;              // valid when kind == MICROCURRENT
};

// Converts a core sample to its contract message.
void SampleToProto(const Sample& sample, v1::TelemetrySample* out);

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_SAMPLE_H_
