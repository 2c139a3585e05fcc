#include "plugin/core/device_view.h"

#include <utility>

namespace derma {

void DeviceView::Publish(std::shared_ptr<const v1::Device> device, uint64_t last_event_sequence) {
  absl::MutexLock lock(&mu_);
  device_ = std::move(device);
  last_event_sequence_ = last_event_sequence;
}

void DeviceView::SetCapabilities(v1::Capabilities capabilities) {
  auto shared = std::make_shared<const v1::Capabilities>(std::move(capabilities));
  absl::MutexLock lock(&mu_);
  capabilities_ = std::move(shared);
}

void DeviceView::SetIdentity(v1::Device identity) {
  auto shared = std::make_shared<const v1::Device>(std::move(identity));
  absl::MutexLock lock(&mu_);
  identity_ = std::move(shared);
}

std::shared_ptr<const v1::Device> DeviceView::identity() const {
  absl::MutexLock lock(&mu_);
  return identity_;
}

std::shared_ptr<const v1::Capabilities> DeviceView::capabilities() const {
  absl::MutexLock lock(&mu_);
  return capabilities_;
}

void DeviceView::PublishSample(const Sample& sample) {
  absl::MutexLock lock(&mu_);
  latest_ = sample;
}

v1::Device DeviceView::Read(uint64_t* last_event_sequence) const {
  v1::Device out;
  ReadInto(&out, last_event_sequence);
  return out;
}

void DeviceView::ReadInto(v1::Device* out, uint64_t* last_event_sequence) const {
  std::shared_ptr<const v1::Device> device;
  std::shared_ptr<const v1::Device> identity;
  std::shared_ptr<const v1::Capabilities> capabilities;
  Sample latest;
  {
    absl::MutexLock lock(&mu_);
    device = device_;
    identity = identity_;
    capabilities = capabilities_;
    latest = latest_;
    if (last_event_sequence != nullptr) *last_event_sequence = last_event_sequence_;
  }
  if (device == nullptr) return;
  *out = *device;
  out->MergeFrom(*identity);
  *out->mutable_capabilities() = *capabilities;
  if (latest.sequence > 0) {
    SampleToProto(latest, out->mutable_latest_sample());
    if (out->has_cartridge()) {
      out->mutable_cartridge()->set_strokes_used(latest.pen.cartridge_strokes_used);
    }
  }
}

std::shared_ptr<const v1::Device> DeviceView::device() const {
  absl::MutexLock lock(&mu_);
  return device_;
}

Sample DeviceView::latest_sample() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

v1::DeviceState DeviceView::state() const {
  absl::MutexLock lock(&mu_);
  return device_ == nullptr ? v1::DEVICE_STATE_UNSPECIFIED : device_->state();
}

}  // namespace derma
