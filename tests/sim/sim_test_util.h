// Helpers for the simulator tests: a fixed start time and factories for simulated devices
// built through the registry, as the host builds them. Layer: tests/sim.
#ifndef DERMA_TESTS_SIM_SIM_TEST_UTIL_H_
#define DERMA_TESTS_SIM_SIM_TEST_UTIL_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "sim/registry.h"

namespace derma::sim::testing {

// 2026-01-01T00:00:00Z, the virtual clock's epoch.
inline absl::Time T0() { return absl::FromUnixSeconds(1767225600); }
inline absl::Time At(double seconds) { return T0() + absl::Seconds(seconds); }

inline config::v1::DeviceConfig PenConfig(const std::string& model = "") {
  config::v1::DeviceConfig config;
  config.set_id("pen-1");
  config.set_kind(derma::v1::DEVICE_KIND_MICRONEEDLING);
  config.set_model(model);
  return config;
}

inline config::v1::DeviceConfig StimConfig(const std::string& model = "") {
  config::v1::DeviceConfig config;
  config.set_id("stim-1");
  config.set_kind(derma::v1::DEVICE_KIND_MICROCURRENT);
  config.set_model(model);
  return config;
}

// Builds the device or fails the test.
inline std::unique_ptr<SimDevice> MustCreate(const config::v1::DeviceConfig& config,
                                             uint64_t seed = 42) {
  absl::StatusOr<std::unique_ptr<SimDevice>> device = CreateSimDevice({config, seed});
  EXPECT_TRUE(device.ok()) << device.status();
  return device.ok() ? std::move(*device) : nullptr;
}

// Reads or fails the test.
inline DriverReading MustRead(SimDevice& device, absl::Time now) {
  absl::StatusOr<DriverReading> reading = device.Read(now);
  EXPECT_TRUE(reading.ok()) << reading.status();
  return reading.ok() ? *reading : DriverReading{};
}

}  // namespace derma::sim::testing

#endif  // DERMA_TESTS_SIM_SIM_TEST_UTIL_H_
