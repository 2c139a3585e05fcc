// Latches: EmergencyStop and FAULT are latched until their explicit reset, and one latch never
// clears another. A fault condition that appears while the device is latched or offline must
// not be forgotten when the other latch is reset.
#include "gmock/gmock.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

class LatchTest : public DeviceFixture {
 protected:
  void SetUp() override {
    MakeDevice();
    Lease();
  }
  static constexpr FaultMask kOverTemperature = FaultBit(v1::FAULT_KIND_OVER_TEMPERATURE);
};

TEST_F(LatchTest, EstopBlocksStartUntilReset) {
  DriveTo(v1::DEVICE_STATE_RUNNING);
  device_->EmergencyStop();
  EXPECT_THAT(device_->Start(lease_, ""), HasReason(v1::ERROR_REASON_ESTOP_LATCHED));
  EXPECT_FALSE(driver_->output_on());
  ASSERT_TRUE(device_->ResetEmergencyStop(lease_).ok());
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
  EXPECT_TRUE(device_->Start(lease_, "").ok());
}

TEST_F(LatchTest, RepeatedEstopKeepsThePublishedViewOfTheStoppedDevice) {
  device_->EmergencyStop();
  const std::shared_ptr<const v1::Device> stopped = device_->view().device();
  ASSERT_EQ(stopped->state(), v1::DEVICE_STATE_ESTOPPED);
  device_->EmergencyStop();  // EmergencyStop(all) on a fleet already stopped: nothing changed
  EXPECT_EQ(device_->view().device(), stopped) << "no view rebuilt when nothing changed";
  EXPECT_FALSE(device_->view().latest_sample().output_on);
}

TEST_F(LatchTest, EstopResetKeepsAnEarlierFaultLatched) {
  DriveTo(v1::DEVICE_STATE_FAULT);  // over-temperature, still present
  device_->EmergencyStop();
  ASSERT_EQ(device_->state(), v1::DEVICE_STATE_ESTOPPED);
  (void)device_->ResetEmergencyStop(lease_);
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT)
      << "ResetEmergencyStop must not clear the FAULT latch";
  (void)device_->Start(lease_, "");
  EXPECT_FALSE(driver_->output_on()) << "output on while OVER_TEMPERATURE is present";
}

TEST_F(LatchTest, FaultRaisedWhileEstoppedLatchesOnEstopReset) {
  device_->EmergencyStop();
  driver_->set_faults(kOverTemperature);
  device_->Tick();
  (void)device_->ResetEmergencyStop(lease_);
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
  (void)device_->Start(lease_, "");
  EXPECT_FALSE(driver_->output_on()) << "output on while OVER_TEMPERATURE is present";
}

TEST_F(LatchTest, FaultRaisedWhileOfflineLatchesOnReconnect) {
  DriveTo(v1::DEVICE_STATE_OFFLINE);
  driver_->set_faults(kOverTemperature);
  device_->Tick();
  driver_->set_link_up(true);
  device_->Tick();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_FAULT);
  (void)device_->Start(lease_, "");
  EXPECT_FALSE(driver_->output_on()) << "output on while OVER_TEMPERATURE is present";
}

TEST_F(LatchTest, ResetFaultDoesNotClearEstopPendingFromOffline) {
  DriveTo(v1::DEVICE_STATE_OFFLINE);
  device_->EmergencyStop();
  driver_->set_link_up(true);
  device_->Tick();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_THAT(device_->ResetFault(lease_), HasReason(v1::ERROR_REASON_ESTOP_LATCHED));
}

}  // namespace
}  // namespace derma::testing
