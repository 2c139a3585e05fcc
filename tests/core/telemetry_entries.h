// Helpers for tests of TelemetrySubscription: samples and events to offer, and a drain written
// as "s<seq>" / "e<seq>" in drain order. Layer: tests/core. Plain functions.
#ifndef DERMA_TESTS_CORE_TELEMETRY_ENTRIES_H_
#define DERMA_TESTS_CORE_TELEMETRY_ENTRIES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "plugin/core/telemetry_fanout.h"

namespace derma::testing {

// The virtual clock's epoch (2026-01-01), in µs since the Unix epoch.
inline constexpr int64_t kEpochUs = 1767225600LL * 1000000;

// A sample of `device`; device time `time_us`, or 10 ms per sequence number from kEpochUs.
inline Sample MakeSample(uint32_t device, uint64_t sequence, int64_t time_us = 0) {
  Sample sample;
  sample.device_index = device;
  sample.sequence = sequence;
  sample.device_time_us =
      time_us == 0 ? kEpochUs + static_cast<int64_t>(sequence) * 10000 : time_us;
  return sample;
}

inline EventPtr MakeEvent(uint64_t sequence) {
  auto event = std::make_shared<v1::DeviceEvent>();
  event->set_sequence(sequence);
  return event;
}

// "s<seq>" for samples, "e<seq>" for events, in drain order.
inline std::vector<std::string> Describe(const TelemetryDrain& drain) {
  std::vector<std::string> out;
  for (const TelemetryEntry& entry : drain.entries) {
    out.push_back(entry.event != nullptr ? "e" + std::to_string(entry.event->sequence())
                                         : "s" + std::to_string(entry.sample.sequence));
  }
  return out;
}

}  // namespace derma::testing

#endif  // DERMA_TESTS_CORE_TELEMETRY_ENTRIES_H_
