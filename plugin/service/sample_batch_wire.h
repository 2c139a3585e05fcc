// SampleBatchWire: writes a derma.v1.SampleBatch in the protobuf wire format straight from core
// samples, without building TelemetrySample messages and serializing them again. The bytes are
// those SerializeToString gives for the equivalent message (fields in number order, proto3
// defaults omitted, a set oneof member always written), which sample_batch_wire_test checks.
// A stream reuses one SampleBatchWire for every batch: its per-device buffers keep their
// capacity. Layer: plugin/service. Not thread-safe (one stream's encoding, under its lock).
#ifndef DERMA_PLUGIN_SERVICE_SAMPLE_BATCH_WIRE_H_
#define DERMA_PLUGIN_SERVICE_SAMPLE_BATCH_WIRE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "plugin/core/sample.h"

namespace derma::service {

class SampleBatchWire {
 public:
  // `device_count`: device indices are below it.
  explicit SampleBatchWire(size_t device_count);

  // Appends a sample to its device's entry (created on first use; entries keep the order in
  // which their devices first appear).
  void AddSample(const Sample& sample);
  // Sets the entry's dropped_samples, creating the entry if needed.
  void SetDropped(uint32_t device_index, uint64_t dropped);
  bool empty() const { return touched_.empty(); }
  size_t samples() const { return samples_; }
  // Appends the SampleBatch's bytes (names[i] is device i's "devices/{id}") and starts afresh.
  void Finish(const std::vector<std::string>& names, std::string* out);

 private:
  struct Entry {
    std::string samples;  // each sample with its tag and length
    uint64_t dropped = 0;
    bool used = false;
  };
  Entry& Touch(uint32_t device_index);
  // The length of the entry's DeviceSamples message.
  static size_t EntryBytes(const Entry& entry, const std::string& name);

  std::vector<Entry> entries_;     // by device index
  std::vector<uint32_t> touched_;  // devices with an entry, in order of first use
  size_t samples_ = 0;
};

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_SAMPLE_BATCH_WIRE_H_
