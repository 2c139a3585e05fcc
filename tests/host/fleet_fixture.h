// FleetFixture: the shipped virtual-clock fleet (deploy/fleet-virtual.textproto: pen-1 DP-100,
// pen-2 DP-300, stim-1 MC-10, stim-2 MC-5) with real simulated devices behind the core, driven
// through the fleet's public objects. Time moves only through AdvanceClock, so nothing sleeps.
#ifndef DERMA_TESTS_HOST_FLEET_FIXTURE_H_
#define DERMA_TESTS_HOST_FLEET_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/errors/errors.h"
#include "plugin/host/fleet.h"

namespace derma::testing {

class FleetFixture : public ::testing::Test {
 protected:
  void SetUp() override;

  uint32_t Index(const std::string& name);
  // Acquires a 60 s lease on `name` and returns its id.
  std::string Lease(const std::string& name);
  // Advances the virtual clock (every device ticks at its sample rate) and waits.
  void Advance(double seconds);
  absl::Status Inject(const std::string& name, v1::FaultKind kind);
  absl::Status Clear(const std::string& name, v1::FaultKind kind);
  v1::Device Get(const std::string& name);
  // Every event published since the fixture started, in order.
  std::vector<v1::DeviceEvent> Events(const std::string& name);

  std::unique_ptr<host::Fleet> fleet_;
  std::shared_ptr<TelemetrySubscription> telemetry_;
  std::vector<v1::DeviceEvent> events_;
};

MATCHER_P(HasReason, reason, "has ErrorInfo reason " + ReasonName(reason)) {
  if (ReasonOf(arg) == reason) return true;
  *result_listener << "status is " << arg.ToString();
  return false;
}

}  // namespace derma::testing

#endif  // DERMA_TESTS_HOST_FLEET_FIXTURE_H_
