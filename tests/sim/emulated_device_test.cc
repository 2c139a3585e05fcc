// The emulated device (sim/modbus_emulator/emulated_device.h) against REGISTER_MAP.md, one
// request PDU at a time at explicit times: no wire, no threads, no sleeps.
#include "sim/modbus_emulator/emulated_device.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/backends/modbus/register_map.h"

namespace derma::emulator {
namespace {

namespace map = modbus_map;
using ::testing::ElementsAre;

absl::Time At(double s) { return absl::FromUnixSeconds(1800000000) + absl::Seconds(s); }

std::vector<uint8_t> Read(uint8_t function, uint16_t address, uint16_t count) {
  return {function, static_cast<uint8_t>(address >> 8), static_cast<uint8_t>(address),
          static_cast<uint8_t>(count >> 8), static_cast<uint8_t>(count)};
}
std::vector<uint8_t> WriteCoil(uint16_t coil, bool on) {
  return {0x05, 0, static_cast<uint8_t>(coil), static_cast<uint8_t>(on ? 0xFF : 0), 0};
}
std::vector<uint8_t> WriteRegisters(uint16_t address, const std::vector<uint16_t>& values) {
  std::vector<uint8_t> pdu = {0x10, static_cast<uint8_t>(address >> 8),
                              static_cast<uint8_t>(address), 0,
                              static_cast<uint8_t>(values.size()),
                              static_cast<uint8_t>(values.size() * 2)};
  for (uint16_t v : values) pdu.insert(pdu.end(), {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)});
  return pdu;
}
std::vector<uint8_t> TaggedPoll(uint16_t tag) {
  return {0x17, 0x01, 0x00, 0, 32, 0, 1, 0, 1, 2, static_cast<uint8_t>(tag >> 8),
          static_cast<uint8_t>(tag)};
}

class EmulatedDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::v1::DeviceConfig config;
    config.set_id("pen-1");
    config.set_kind(v1::DEVICE_KIND_MICRONEEDLING);
    config.mutable_modbus()->set_unit_id(1);
    absl::StatusOr<std::unique_ptr<EmulatedDevice>> made =
        EmulatedDevice::Create(config, 1, /*rtu=*/true, At(0));
    ASSERT_TRUE(made.ok()) << made.status();
    device_ = *std::move(made);
  }

  std::vector<uint8_t> Send(const std::vector<uint8_t>& pdu, double t) {
    std::optional<Reply> reply = device_->Handle(pdu.data(), pdu.size(), At(t));
    return reply.has_value() ? reply->pdu : std::vector<uint8_t>{};
  }
  // The registers of a read reply (function, byte count, data).
  static std::vector<uint16_t> Registers(const std::vector<uint8_t>& reply) {
    std::vector<uint16_t> out;
    for (size_t i = 2; i + 1 < reply.size(); i += 2) out.push_back((reply[i] << 8) | reply[i + 1]);
    return out;
  }
  uint16_t Status(double t) { return Registers(Send(TaggedPoll(9), t))[1]; }

  std::unique_ptr<EmulatedDevice> device_;
};

TEST_F(EmulatedDeviceTest, IdentificationReadsMapVersionKindAndModel) {
  const std::vector<uint16_t> ident =
      Registers(Send(Read(0x04, map::kIdentAddress, map::kIdentLength), 0.01));
  ASSERT_EQ(ident.size(), map::kIdentLength);
  EXPECT_EQ(ident[0], 1);
  EXPECT_EQ(ident[1], v1::DEVICE_KIND_MICRONEEDLING);
  EXPECT_EQ(map::StringAt(&ident[map::kIdentModel], map::kIdentModelLength), "DP-100");
}

TEST_F(EmulatedDeviceTest, TaggedPollEchoesTheTagItWrote) {
  EXPECT_EQ(Registers(Send(TaggedPoll(0xBEEF), 0.01))[0], 0xBEEF);
  EXPECT_EQ(Registers(Send(TaggedPoll(7), 0.02))[0], 7);
}

TEST_F(EmulatedDeviceTest, ExceptionsFollowTheMapsOrder) {
  EXPECT_THAT(Send({0x2B, 0x0E, 0x01, 0x00}, 0.01), ElementsAre(0xAB, 0x01));
  EXPECT_THAT(Send(Read(0x03, 0x0100, 0), 0.01), ElementsAre(0x83, 0x03));   // quantity
  EXPECT_THAT(Send(Read(0x03, 0x0000, 3), 0.01), ElementsAre(0x83, 0x02));   // leaves its block
  EXPECT_THAT(Send(Read(0x04, 0x00F0, 32), 0.01), ElementsAre(0x84, 0x02));  // a gap
  // Code 23 writes poll_tag alone.
  EXPECT_THAT(Send({0x17, 0x01, 0x00, 0, 32, 0, 0, 0, 1, 2, 0x03, 0xE8}, 0.01),
              ElementsAre(0x97, 0x02));
}

TEST_F(EmulatedDeviceTest, SetpointWritesAreWholeValidAndAtomic) {
  // Depth 1.0 mm, 120 Hz, 60 s.
  const std::vector<uint16_t> good = {0, 1000, 0, 12000, 0, 60000};
  EXPECT_THAT(Send(WriteRegisters(0x0010, {0, 1000}), 0.01), ElementsAre(0x90, 0x02));
  EXPECT_THAT(Send(WriteRegisters(0x0010, {0, 1010, 0, 12000, 0, 60000}), 0.02),
              ElementsAre(0x90, 0x03));  // 1.01 mm is off the 0.05 mm grid
  EXPECT_EQ(Send(WriteRegisters(0x0010, good), 0.03)[0], 0x10);
  EXPECT_EQ(Registers(Send(Read(0x03, 0x0010, 6), 0.04)), good);
  EXPECT_THAT(Send(WriteRegisters(0x0010, {0, 9000, 0, 12000, 0, 60000}), 0.05),
              ElementsAre(0x90, 0x03));  // 9 mm is out of range: the old setpoints stay
  EXPECT_EQ(Registers(Send(Read(0x03, 0x0010, 6), 0.06)), good);
}

TEST_F(EmulatedDeviceTest, WatchdogSwitchesTheOutputOffAndLatchesUntilFaultClear) {
  Send(WriteRegisters(map::kWatchdogMs, {200}), 0.0);
  Send(WriteCoil(map::kCoilOutputEnable, true), 0.01);
  EXPECT_TRUE(device_->output_on());
  // A request at 0.15 s feeds the watchdog: still on at 0.3 s.
  EXPECT_EQ(Status(0.15) & map::kStatusOutputOn, map::kStatusOutputOn);
  device_->Tick(At(0.3));
  EXPECT_TRUE(device_->output_on());
  // Nothing from 0.15 s on: off at 0.35 s, latched.
  device_->Tick(At(0.36));
  EXPECT_FALSE(device_->output_on());
  EXPECT_EQ(Status(0.4) & map::kStatusWatchdogExpired, map::kStatusWatchdogExpired);
  EXPECT_THAT(Send(WriteCoil(map::kCoilOutputEnable, true), 0.41), ElementsAre(0x85, 0x03));
  Send(WriteCoil(map::kCoilFaultClear, true), 0.42);
  EXPECT_EQ(Status(0.43) & map::kStatusWatchdogExpired, 0);
  EXPECT_EQ(Send(WriteCoil(map::kCoilOutputEnable, true), 0.44)[0], 0x05);
  EXPECT_TRUE(device_->output_on());
}

TEST_F(EmulatedDeviceTest, BroadcastStopLatchesAndOtherBroadcastsAreIgnored) {
  Send(WriteCoil(map::kCoilOutputEnable, true), 0.01);
  const std::vector<uint8_t> enable = WriteCoil(map::kCoilOutputEnable, false);
  device_->HandleBroadcast(enable.data(), enable.size(), At(0.02));
  EXPECT_TRUE(device_->output_on());
  const std::vector<uint8_t> stop = WriteCoil(map::kCoilEmergencyStop, true);
  device_->HandleBroadcast(stop.data(), stop.size(), At(0.03));
  EXPECT_FALSE(device_->output_on());
  EXPECT_TRUE(device_->estop_latched());
  EXPECT_THAT(Send(WriteCoil(map::kCoilOutputEnable, true), 0.04), ElementsAre(0x85, 0x03));
}

TEST_F(EmulatedDeviceTest, AnExceptionFaultRefusesWithoutActing) {
  sim::v1::SetTransportFaultRequest fault;
  fault.set_fault(sim::v1::TRANSPORT_FAULT_EXCEPTION);
  fault.set_count(1);
  ASSERT_TRUE(device_->SetTransportFault(fault).ok());
  EXPECT_THAT(Send(WriteCoil(map::kCoilOutputEnable, true), 0.01), ElementsAre(0x85, 0x04));
  EXPECT_FALSE(device_->output_on());
  EXPECT_EQ(Send(WriteCoil(map::kCoilOutputEnable, true), 0.02)[0], 0x05);  // count used up
  EXPECT_TRUE(device_->output_on());
}

TEST_F(EmulatedDeviceTest, ALostReplyStillActs) {
  sim::v1::SetTransportFaultRequest fault;
  fault.set_fault(sim::v1::TRANSPORT_FAULT_NO_REPLY);
  ASSERT_TRUE(device_->SetTransportFault(fault).ok());
  EXPECT_TRUE(Send(WriteCoil(map::kCoilOutputEnable, true), 0.01).empty());
  EXPECT_TRUE(device_->output_on());
}

TEST_F(EmulatedDeviceTest, ADroppedLinkHearsNothingAndFeedsNoWatchdog) {
  Send(WriteRegisters(map::kWatchdogMs, {200}), 0.0);
  Send(WriteCoil(map::kCoilOutputEnable, true), 0.01);
  ASSERT_TRUE(device_
                  ->RunControl([](sim::SimDevice& d, absl::Time now) {
                    return d.InjectFault(v1::FAULT_KIND_LINK_DROP, now);
                  },
                               At(0.02))
                  .ok());
  const std::vector<uint8_t> poll = TaggedPoll(1);
  EXPECT_FALSE(device_->Handle(poll.data(), poll.size(), At(0.1)).has_value());
  device_->Tick(At(0.22));  // 0.2 s after the last request it heard (0.01 s)
  EXPECT_FALSE(device_->output_on());
}

TEST_F(EmulatedDeviceTest, TransportFaultsThatDoNotFitTheTransportAreRefused) {
  sim::v1::SetTransportFaultRequest fault;
  fault.set_fault(sim::v1::TRANSPORT_FAULT_DROP_CONNECTION);  // TCP only; this device is on RTU
  absl::Status status = device_->SetTransportFault(fault);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace derma::emulator
