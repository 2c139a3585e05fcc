#include "plugin/service/sample_batch_wire.h"

#include <cstring>

namespace derma::service {
namespace {

// Wire types of the protobuf encoding.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kFixed64 = 1;
constexpr uint32_t kLengthDelimited = 2;

// Room for the longest TelemetrySample, which is 95 bytes (sample_batch_wire_test): 11-byte
// sequence and time, 2-byte bools, a 9-byte rate, and a pen reading of 58 bytes behind its
// 2-byte tag and length (four 9-byte doubles, two 11-byte counters).
constexpr size_t kMaxSampleBytes = 128;
constexpr size_t kMaxReadingBytes = 64;

class Writer {
 public:
  explicit Writer(char* at) : at_(at) {}
  char* end() const { return at_; }

  void Varint(uint64_t value) {
    while (value >= 0x80) {
      *at_++ = static_cast<char>(value | 0x80);
      value >>= 7;
    }
    *at_++ = static_cast<char>(value);
  }
  void Tag(uint32_t field, uint32_t wire_type) { Varint((field << 3) | wire_type); }
  void Bytes(const char* data, size_t size) {
    std::memcpy(at_, data, size);
    at_ += size;
  }
  // proto3: a scalar at its default is not written; a double is written unless its bits are
  // all zero (so -0.0 is written, as protobuf does).
  void Uint64Field(uint32_t field, uint64_t value) {
    if (value == 0) return;
    Tag(field, kVarint);
    Varint(value);
  }
  void BoolField(uint32_t field, bool value) {
    if (!value) return;
    Tag(field, kVarint);
    *at_++ = 1;
  }
  void DoubleField(uint32_t field, double value) {
    uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    if (bits == 0) return;
    Tag(field, kFixed64);
    for (int i = 0; i < 8; ++i) *at_++ = static_cast<char>(bits >> (8 * i));
  }

 private:
  char* at_;
};

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

void AppendVarint(uint64_t value, std::string* out) {
  char buffer[10];
  Writer w(buffer);
  w.Varint(value);
  out->append(buffer, w.end());
}

// A length-delimited field's tag and length.
void AppendHeader(uint32_t field, uint64_t length, std::string* out) {
  AppendVarint((field << 3) | kLengthDelimited, out);
  AppendVarint(length, out);
}

// The reading's fields (MicroneedlingReading or MicrocurrentReading) into `w`.
void WriteReading(const Sample& sample, Writer& w) {
  if (sample.kind == v1::DEVICE_KIND_MICRONEEDLING) {
    const PenReading& r = sample.pen;
    w.DoubleField(1, r.needle_depth_mm);
    w.DoubleField(2, r.stroke_rate_hz);
    w.Uint64Field(3, r.strokes_total);
    w.DoubleField(4, r.motor_current_a);
    w.DoubleField(5, r.motor_temperature_c);
    w.Uint64Field(6, r.cartridge_strokes_used);
  } else {
    const StimulatorReading& r = sample.stim;
    w.DoubleField(1, r.current_setpoint_ua);
    w.DoubleField(2, r.current_measured_ua);
    w.DoubleField(3, r.electrode_impedance_ohm);
    w.DoubleField(4, r.output_voltage_v);
    w.DoubleField(5, r.charge_delivered_uc);
    w.BoolField(6, r.electrode_contact);
  }
}

// The sample's bytes into `buffer` (kMaxSampleBytes); returns their end.
char* WriteSample(const Sample& sample, char* buffer) {
  Writer w(buffer);
  w.Uint64Field(1, sample.sequence);
  w.Uint64Field(2, static_cast<uint64_t>(sample.device_time_us));
  w.BoolField(3, sample.output_on);
  const bool pen = sample.kind == v1::DEVICE_KIND_MICRONEEDLING;
  if (pen || sample.kind == v1::DEVICE_KIND_MICROCURRENT) {
    char reading[kMaxReadingBytes];
    Writer r(reading);
    WriteReading(sample, r);
    const size_t size = static_cast<size_t>(r.end() - reading);
    w.Tag(pen ? 4 : 5, kLengthDelimited);
    w.Varint(size);
    w.Bytes(reading, size);
  }
  w.BoolField(6, sample.output_unconfirmed);
  w.DoubleField(7, sample.achieved_sample_rate_hz);
  return w.end();
}

}  // namespace

SampleBatchWire::SampleBatchWire(size_t device_count) : entries_(device_count) {}

SampleBatchWire::Entry& SampleBatchWire::Touch(uint32_t device_index) {
  Entry& entry = entries_[device_index];
  if (!entry.used) {
    entry.used = true;
    touched_.push_back(device_index);
  }
  return entry;
}

void SampleBatchWire::AddSample(const Sample& sample) {
  Entry& entry = Touch(sample.device_index);
  char buffer[kMaxSampleBytes];
  const size_t size = static_cast<size_t>(WriteSample(sample, buffer) - buffer);
  AppendHeader(2, size, &entry.samples);
  entry.samples.append(buffer, size);
  ++samples_;
}

void SampleBatchWire::SetDropped(uint32_t device_index, uint64_t dropped) {
  Touch(device_index).dropped = dropped;
}

size_t SampleBatchWire::EntryBytes(const Entry& entry, const std::string& name) {
  const size_t name_bytes = name.empty() ? 0 : 1 + VarintSize(name.size()) + name.size();
  const size_t dropped_bytes = entry.dropped == 0 ? 0 : 1 + VarintSize(entry.dropped);
  return name_bytes + entry.samples.size() + dropped_bytes;
}

void SampleBatchWire::Finish(const std::vector<std::string>& names, std::string* out) {
  // One allocation of the exact size: a batch is hundreds of kilobytes.
  size_t total = out->size();
  for (uint32_t index : touched_) {
    const size_t bytes = EntryBytes(entries_[index], names[index]);
    total += 1 + VarintSize(bytes) + bytes;
  }
  out->reserve(total);
  for (uint32_t index : touched_) {
    Entry& entry = entries_[index];
    const std::string& name = names[index];
    AppendHeader(1, EntryBytes(entry, name), out);
    if (!name.empty()) {
      AppendHeader(1, name.size(), out);
      out->append(name);
    }
    out->append(entry.samples);
    if (entry.dropped != 0) {
      AppendVarint((3 << 3) | kVarint, out);
      AppendVarint(entry.dropped, out);
    }
    entry.samples.clear();
    entry.dropped = 0;
    entry.used = false;
  }
  touched_.clear();
  samples_ = 0;
}

}  // namespace derma::service
