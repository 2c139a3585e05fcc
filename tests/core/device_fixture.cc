#include "tests/core/device_fixture.h"

namespace derma::testing {

void DeviceFixture::MakeDevice(DriverInfo info) {
  auto driver = std::make_unique<FakeDriver>(std::move(info));
  driver_ = driver.get();
  device_ = std::make_unique<Device>(0, "dev-1", std::move(driver),
                                     DeviceContext{clock_, fanout_, runs_});
  device_->Initialize();
}

std::string DeviceFixture::Lease(absl::Duration ttl) {
  absl::StatusOr<LeaseGrant> grant = device_->AcquireLease("tester", ttl);
  EXPECT_TRUE(grant.ok()) << grant.status();
  lease_ = grant.ok() ? grant->lease_id : "";
  return lease_;
}

void DeviceFixture::Run(absl::Duration total, absl::Duration tick) {
  for (absl::Duration done; done < total; done += tick) {
    clock_.Advance(std::min(tick, total - done));
    device_->Tick();
  }
}

void DeviceFixture::DriveTo(v1::DeviceState state) {
  if (lease_.empty()) Lease();
  switch (state) {
    case v1::DEVICE_STATE_IDLE:
      break;
    case v1::DEVICE_STATE_RUNNING:
      ASSERT_TRUE(device_->Start(lease_, "").ok());
      break;
    case v1::DEVICE_STATE_PAUSED:
      ASSERT_TRUE(device_->Start(lease_, "").ok());
      ASSERT_TRUE(device_->Pause(lease_).ok());
      break;
    case v1::DEVICE_STATE_FAULT:
      driver_->set_faults(FaultBit(v1::FAULT_KIND_OVER_TEMPERATURE));
      device_->Tick();
      break;
    case v1::DEVICE_STATE_ESTOPPED:
      device_->EmergencyStop();
      break;
    case v1::DEVICE_STATE_OFFLINE:
      driver_->set_link_up(false);
      device_->Tick();
      break;
    default:
      FAIL() << "unsupported target state";
  }
  ASSERT_EQ(device_->state(), state);
}

std::vector<v1::DeviceEvent> DeviceFixture::Events() {
  std::vector<v1::DeviceEvent> out;
  TelemetryDrain drain;
  do {
    drain = events_->Drain(1 << 20);
    for (const TelemetryEntry& entry : drain.entries) {
      if (entry.event != nullptr) out.push_back(*entry.event);
    }
  } while (drain.more);
  return out;
}

v1::Settings DeviceFixture::PenSettings(double depth_mm, double rate_hz) {
  v1::Settings s;
  s.mutable_microneedling()->set_needle_depth_mm(depth_mm);
  s.mutable_microneedling()->set_stroke_rate_hz(rate_hz);
  return s;
}

v1::Settings DeviceFixture::StimSettings(double current_ua) {
  v1::Settings s;
  s.mutable_microcurrent()->set_current_ua(current_ua);
  return s;
}

}  // namespace derma::testing
