// DeviceView: the latest published state of one device, readable from any thread without a
// hop to the device's strand (GetDevice, ListDevices and metrics scrapes read it).
// The device publishes an immutable v1::Device after every change, before it announces the
// change to the run registry or as an event (see Device), and its latest sample after every
// tick, and counts events (faults, e-stops, lease expirations, run durations) for metrics.
// Layer: plugin/core. Thread-safe.
#ifndef DERMA_PLUGIN_CORE_DEVICE_VIEW_H_
#define DERMA_PLUGIN_CORE_DEVICE_VIEW_H_

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "derma/v1/device.pb.h"
#include "plugin/core/device_counters.h"
#include "plugin/core/sample.h"

namespace derma {

class DeviceView {
 public:
  // The identity: name, kind and simulated, then (once the device has described itself; at
  // once for the simulator) model, serial_number, firmware_version. Set at construction and
  // at most once more, when the description is adopted; never changed after that. Read() adds
  // it, so a publish of a change does not copy it again.
  void SetIdentity(v1::Device identity);
  // Capabilities: empty until the device has described itself, then set once and never
  // changed. Read() adds them.
  void SetCapabilities(v1::Capabilities capabilities);
  // `device` has no identity, latest_sample or capabilities; Read() adds them.
  // `last_event_sequence` is the sequence of the device's last event already reflected in `device`.
  void Publish(std::shared_ptr<const v1::Device> device, uint64_t last_event_sequence = 0);
  void PublishSample(const Sample& sample);

  // The device with its latest sample (and the cartridge's strokes_used from that sample), and
  // optionally the last event sequence it reflects: a consistent snapshot for streams.
  v1::Device Read(uint64_t* last_event_sequence = nullptr) const;
  // Read() straight into `out` (e.g. a response on the call's arena: no extra copy).
  void ReadInto(v1::Device* out, uint64_t* last_event_sequence = nullptr) const;
  // The last published device, without identity, latest sample or capabilities.
  std::shared_ptr<const v1::Device> device() const;
  // Name, kind, model, serial_number, firmware_version and simulated (see SetIdentity).
  std::shared_ptr<const v1::Device> identity() const;
  // Latest sample; sequence 0 before the first.
  Sample latest_sample() const;
  v1::DeviceState state() const;
  // Empty until the device has described itself.
  std::shared_ptr<const v1::Capabilities> capabilities() const;
  // Event counts for metrics; the device increments them.
  DeviceCounters& counters() { return counters_; }
  const DeviceCounters& counters() const { return counters_; }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const v1::Device> device_ ABSL_GUARDED_BY(mu_);
  Sample latest_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const v1::Capabilities> capabilities_ ABSL_GUARDED_BY(mu_) =
      std::make_shared<v1::Capabilities>();
  std::shared_ptr<const v1::Device> identity_ ABSL_GUARDED_BY(mu_) = std::make_shared<v1::Device>();
  DeviceCounters counters_;
  uint64_t last_event_sequence_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_DEVICE_VIEW_H_
