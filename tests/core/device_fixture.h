// DeviceFixture: one Device over a FakeDriver on a virtual clock, driven directly from the test
// thread (the test plays the strand). No threads, no sleeps.
#ifndef DERMA_TESTS_CORE_DEVICE_FIXTURE_H_
#define DERMA_TESTS_CORE_DEVICE_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/core/clock.h"
#include "plugin/core/device.h"
#include "plugin/core/run_registry.h"
#include "plugin/core/telemetry_fanout.h"
#include "plugin/errors/errors.h"
#include "tests/core/fake_driver.h"

namespace derma::testing {

class DeviceFixture : public ::testing::Test {
 public:
  static v1::Settings PenSettings(double depth_mm, double rate_hz);
  static v1::Settings StimSettings(double current_ua);

 protected:
  // Builds the device (pen by default) and initializes it (IDLE).
  void MakeDevice(DriverInfo info = FakePenInfo());
  // Acquires a lease (TTL 60 s by default) and returns its id.
  std::string Lease(absl::Duration ttl = absl::Seconds(60));
  // Advances the clock in 10 ms ticks, ticking the device after each.
  void Run(absl::Duration total, absl::Duration tick = absl::Milliseconds(10));
  // Brings the device to `state` through the public API (uses lease_).
  void DriveTo(v1::DeviceState state);
  // Every event published so far, in order.
  std::vector<v1::DeviceEvent> Events();

  VirtualClock clock_;
  TelemetryFanout fanout_;
  RunRegistry runs_;
  std::shared_ptr<TelemetrySubscription> events_ = fanout_.Subscribe({});
  FakeDriver* driver_ = nullptr;
  std::unique_ptr<Device> device_;
  std::string lease_;
};

// Matches an absl::Status carrying the given ErrorInfo reason.
MATCHER_P(HasReason, reason, "has ErrorInfo reason " + ReasonName(reason)) {
  if (ReasonOf(arg) == reason) return true;
  *result_listener << "status is " << arg.ToString();
  return false;
}

}  // namespace derma::testing

#endif  // DERMA_TESTS_CORE_DEVICE_FIXTURE_H_
