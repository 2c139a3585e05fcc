#include "tests/host/fleet_fixture.h"

#include "absl/synchronization/notification.h"
#include "plugin/host/config_loader.h"

namespace derma::testing {

void FleetFixture::SetUp() {
  absl::StatusOr<config::v1::FleetConfig> config =
      host::LoadFleetConfig(std::string(DERMA_SOURCE_DIR) + "/deploy/fleet-virtual.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<host::Fleet>> fleet = host::Fleet::Create(*config);
  ASSERT_TRUE(fleet.ok()) << fleet.status();
  fleet_ = *std::move(fleet);
  telemetry_ = fleet_->telemetry().Subscribe({});
  fleet_->Start();
}

uint32_t FleetFixture::Index(const std::string& name) {
  absl::StatusOr<uint32_t> index = fleet_->devices().Find(name);
  EXPECT_TRUE(index.ok()) << index.status();
  return index.value_or(0);
}

std::string FleetFixture::Lease(const std::string& name) {
  absl::StatusOr<LeaseGrant> grant = fleet_->devices().Call(
      Index(name), [](Device& d) { return d.AcquireLease("fleet-test", absl::Seconds(60)); });
  EXPECT_TRUE(grant.ok()) << grant.status();
  return grant.ok() ? grant->lease_id : "";
}

void FleetFixture::Advance(double seconds) {
  absl::Notification done;
  fleet_->simulator()->AdvanceClock(seconds, [&](absl::StatusOr<absl::Time> now) {
    EXPECT_TRUE(now.ok()) << now.status();
    done.Notify();
  });
  done.WaitForNotification();
}

absl::Status FleetFixture::Inject(const std::string& name, v1::FaultKind kind) {
  absl::Notification done;
  absl::Status result;
  sim::v1::InjectFaultRequest request;
  request.set_name(name);
  request.set_kind(kind);
  fleet_->simulator()->InjectFault(request, [&](absl::Status s) {
    result = s;
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

absl::Status FleetFixture::Clear(const std::string& name, v1::FaultKind kind) {
  absl::Notification done;
  absl::Status result;
  sim::v1::ClearFaultRequest request;
  request.set_name(name);
  request.set_kind(kind);
  fleet_->simulator()->ClearFault(request, [&](absl::Status s) {
    result = s;
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

v1::Device FleetFixture::Get(const std::string& name) {
  return fleet_->devices().view(Index(name)).Read();
}

std::vector<v1::DeviceEvent> FleetFixture::Events(const std::string& name) {
  for (const TelemetryEntry& entry : telemetry_->Drain(1 << 22).entries) {
    if (entry.event != nullptr) events_.push_back(*entry.event);
  }
  std::vector<v1::DeviceEvent> out;
  for (const v1::DeviceEvent& e : events_) {
    if (e.device() == name) out.push_back(e);
  }
  return out;
}

}  // namespace derma::testing
