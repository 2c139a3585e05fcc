// SampleBatchWire writes exactly what protobuf serializes for the same SampleBatch: every field
// of both reading kinds, proto3 defaults left out (zeros, false, an empty name) and awkward
// values kept (−0, NaN, ±Inf, the smallest subnormal, negative device times, 64-bit counters),
// entries in order of first appearance, dropped_samples with and without samples, and a
// writer reused after Finish.
#include "plugin/service/sample_batch_wire.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "derma/v1/device_control.pb.h"
#include "gtest/gtest.h"

namespace derma::service {
namespace {

Sample Pen(uint32_t device, uint64_t sequence) {
  Sample s;
  s.device_index = device;
  s.kind = v1::DEVICE_KIND_MICRONEEDLING;
  s.sequence = sequence;
  s.device_time_us = 1767225600123456;
  s.output_on = true;
  s.achieved_sample_rate_hz = 99.5;
  s.pen.needle_depth_mm = 0.5;
  s.pen.stroke_rate_hz = 120;
  s.pen.strokes_total = std::numeric_limits<uint64_t>::max();
  s.pen.motor_current_a = 0.25;
  s.pen.motor_temperature_c = 36.6;
  s.pen.cartridge_strokes_used = 1u << 31;
  return s;
}

Sample Stim(uint32_t device, uint64_t sequence) {
  Sample s;
  s.device_index = device;
  s.kind = v1::DEVICE_KIND_MICROCURRENT;
  s.sequence = sequence;
  s.device_time_us = -5;  // before the epoch: a ten-byte varint
  s.output_unconfirmed = true;
  s.stim.current_setpoint_ua = -0.0;
  s.stim.current_measured_ua = std::numeric_limits<double>::quiet_NaN();
  s.stim.electrode_impedance_ohm = std::numeric_limits<double>::infinity();
  s.stim.output_voltage_v = -std::numeric_limits<double>::infinity();
  s.stim.charge_delivered_uc = std::numeric_limits<double>::denorm_min();
  s.stim.electrode_contact = true;
  return s;
}

// All defaults: only the (empty) reading is written, as a set oneof member.
Sample Empty(uint32_t device, v1::DeviceKind kind) {
  Sample s;
  s.device_index = device;
  s.kind = kind;
  return s;
}

struct Expected {
  v1::SampleBatch batch;
  v1::DeviceSamples* Entry(const std::string& name) {
    for (v1::DeviceSamples& d : *batch.mutable_devices()) {
      if (d.device() == name) return &d;
    }
    v1::DeviceSamples* d = batch.add_devices();
    d->set_device(name);
    return d;
  }
};

class SampleBatchWireTest : public ::testing::Test {
 protected:
  void Add(const Sample& sample) {
    wire_.AddSample(sample);
    SampleToProto(sample, expected_.Entry(names_[sample.device_index])->add_samples());
  }
  void Drop(uint32_t device, uint64_t count) {
    wire_.SetDropped(device, count);
    expected_.Entry(names_[device])->set_dropped_samples(count);
  }
  void ExpectSameBytes() {
    std::string written;
    wire_.Finish(names_, &written);
    EXPECT_EQ(written, expected_.batch.SerializeAsString());
    v1::SampleBatch parsed;
    ASSERT_TRUE(parsed.ParseFromString(written));
    EXPECT_EQ(parsed.DebugString(), expected_.batch.DebugString());
    expected_ = Expected();
  }

  std::vector<std::string> names_ = {"devices/pen-1", "devices/stim-1", "", "devices/pen-2"};
  SampleBatchWire wire_{names_.size()};
  Expected expected_;
};

TEST_F(SampleBatchWireTest, WritesWhatProtobufSerializes) {
  Add(Pen(0, 1));
  Add(Stim(1, 7));
  Add(Pen(0, 2));
  Add(Empty(3, v1::DEVICE_KIND_MICRONEEDLING));
  Add(Empty(1, v1::DEVICE_KIND_MICROCURRENT));
  Drop(1, 300);
  EXPECT_EQ(wire_.samples(), 5u);
  ExpectSameBytes();
}

TEST_F(SampleBatchWireTest, DropsWithoutSamplesAndAnEmptyNameAreWrittenAsProtobufDoes) {
  Drop(3, 1);
  Add(Empty(2, v1::DEVICE_KIND_UNSPECIFIED));  // no reading at all
  Drop(0, std::numeric_limits<uint64_t>::max());
  ExpectSameBytes();
}

TEST_F(SampleBatchWireTest, StartsAfreshAfterFinish) {
  Add(Pen(3, 9));
  Drop(3, 2);
  ExpectSameBytes();
  EXPECT_TRUE(wire_.empty());
  Add(Stim(1, 10));
  ExpectSameBytes();  // device 3's samples and drop count are gone
  std::string nothing;
  wire_.Finish(names_, &nothing);
  EXPECT_EQ(nothing, "");
}

// Many samples of one device: lengths past one varint byte at every level.
TEST_F(SampleBatchWireTest, LongEntriesHaveMultiByteLengths) {
  for (uint64_t i = 1; i <= 5000; ++i) Add(i % 2 ? Pen(0, i) : Pen(3, i));
  ExpectSameBytes();
}

// The README's memory figure: a sample takes at most 95 bytes, 97 with its tag and length.
// Device 2 has no name, so a batch of one sample is 4 bytes of entry and sample headers around
// the sample's own bytes.
TEST_F(SampleBatchWireTest, TheLargestSampleIs95Bytes) {
  Sample pen = Pen(2, std::numeric_limits<uint64_t>::max());
  pen.device_time_us = -1;
  pen.output_unconfirmed = true;
  pen.pen.cartridge_strokes_used = std::numeric_limits<uint64_t>::max();
  Sample stim = Stim(2, std::numeric_limits<uint64_t>::max());
  stim.output_on = true;
  stim.achieved_sample_rate_hz = 100;
  std::string written;
  Add(pen);
  wire_.Finish(names_, &written);
  EXPECT_EQ(written.size() - 4, 95u);
  EXPECT_EQ(written, expected_.batch.SerializeAsString());
  expected_ = Expected();
  written.clear();
  Add(stim);
  wire_.Finish(names_, &written);
  EXPECT_LT(written.size() - 4, 95u);
  EXPECT_EQ(written, expected_.batch.SerializeAsString());
}

}  // namespace
}  // namespace derma::service
