// SyntheticSamples: realistic telemetry samples for a fleet, made up without devices, so the
// bench can drive derma's stream path (fan-out, encode, gRPC, client decode) faster than
// devices tick, and build the same SampleBatch bytes for the bare gRPC stream. Part of
// tests/bench. Next() is safe from several threads only for disjoint device indexes.
#ifndef DERMA_TESTS_BENCH_SYNTHETIC_SAMPLES_H_
#define DERMA_TESTS_BENCH_SYNTHETIC_SAMPLES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "derma/config/v1/config.pb.h"
#include "derma/v1/device.pb.h"
#include "plugin/core/sample.h"

namespace derma::bench {

class SyntheticSamples {
 public:
  // Device indexes, names and kinds as derma builds `config`'s fleet (ExpandFleet order).
  explicit SyntheticSamples(const config::v1::FleetConfig& config);

  size_t device_count() const { return names_.size(); }
  // "devices/{id}".
  const std::string& name(uint32_t index) const { return names_[index]; }

  // The next sample of device `index`: sequence +1 and device time +10 ms per call, output on.
  // Sequences start far above anything a device made before, so a stream never skips them as
  // already covered by its snapshot.
  Sample Next(uint32_t index);

  // One serialized derma.v1.StreamTelemetryResponse holding a SampleBatch of `samples` samples
  // taken round-robin over every device, grouped per device in first-seen order the way
  // derma's stream groups a drain.
  std::string SerializedBatch(size_t samples);

 private:
  std::vector<std::string> names_;
  std::vector<v1::DeviceKind> kinds_;
  std::vector<uint64_t> next_sequence_;
};

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_SYNTHETIC_SAMPLES_H_
