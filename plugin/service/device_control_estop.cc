// DeviceControlService::EmergencyStop: no lease, ahead of every queued command, every targeted
// output off before anything else (DeviceManager::EmergencyStopAll). The time from the
// handler's entry to the last output off is recorded (EmergencyStopTimes) before the devices'
// bookkeeping, the response and the audit record. The response is sent once every targeted
// device's stop is finished (ESTOPPED latched and published), whatever its view.
#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "plugin/service/device_control_service.h"
#include "plugin/service/request_checks.h"

namespace derma::service {
namespace {

using StopClock = std::chrono::steady_clock;

// A stopped device for an EmergencyStop response: the whole Device, or (summary) only what
// shows that its output is off.
void ReadStopped(const DeviceView& view, bool summary, v1::Device* out) {
  if (!summary) {
    view.ReadInto(out);
    return;
  }
  const std::shared_ptr<const v1::Device> device = view.device();
  if (device == nullptr) return;
  const std::shared_ptr<const v1::Device> identity = view.identity();
  out->set_name(identity->name());
  out->set_kind(identity->kind());
  out->set_model(identity->model());
  out->set_state(device->state());
  if (device->has_active_fault()) *out->mutable_active_fault() = device->active_fault();
  const Sample sample = view.latest_sample();
  if (sample.sequence > 0) SampleToProto(sample, out->mutable_latest_sample());
}

// What an all-devices stop read of each device right after its stop, by device index.
class StoppedDevices {
 public:
  StoppedDevices(size_t devices, bool devices_wanted)
      : entries_(devices_wanted ? devices : 0, nullptr), unconfirmed_(devices, 0) {}
  StoppedDevices(const StoppedDevices&) = delete;
  StoppedDevices& operator=(const StoppedDevices&) = delete;
  ~StoppedDevices() {
    for (v1::Device* entry : entries_) {
      if (entry != nullptr && entry->GetArena() == nullptr) delete entry;
    }
  }

  // On the device's strand (or the thread holding it), once per device.
  void Read(const Device& device, bool summary, google::protobuf::Arena* arena) {
    const uint32_t i = device.index();
    if (!entries_.empty()) {
      entries_[i] = google::protobuf::Arena::CreateMessage<v1::Device>(arena);
      ReadStopped(device.view(), summary, entries_[i]);
    }
    unconfirmed_[i] = device.output_unconfirmed() ? 1 : 0;
  }
  // Once every Read has returned: the devices in index order and the sorted unconfirmed names.
  void MoveInto(const std::vector<std::string>& names, v1::EmergencyStopResponse& response) {
    for (v1::Device*& entry : entries_) response.mutable_devices()->AddAllocated(entry);
    entries_.clear();
    for (uint32_t i = 0; i < unconfirmed_.size(); ++i) {
      if (unconfirmed_[i]) response.add_unconfirmed(names[i]);
    }
    std::sort(response.mutable_unconfirmed()->begin(), response.mutable_unconfirmed()->end());
  }

 private:
  std::vector<v1::Device*> entries_;  // empty in the COUNT view
  std::vector<char> unconfirmed_;
};

}  // namespace

void DeviceControlService::RecordStop(StopScope scope, StopClock::time_point entered) const {
  if (options_.stop_times == nullptr) return;
  options_.stop_times->Observe(scope, absl::FromChrono(StopClock::now() - entered));
}

grpc::ServerUnaryReactor* DeviceControlService::EmergencyStop(
    Context* context, const v1::EmergencyStopRequest* request,
    v1::EmergencyStopResponse* response) {
  const StopClock::time_point entered = StopClock::now();
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.v1.DeviceControl/EmergencyStop", *request,
                             CallClass::kSafety, &call)) {
    return refused;
  }
  const v1::StopResponseView view = request->view();
  const bool devices_wanted = view != v1::STOP_RESPONSE_VIEW_COUNT;
  const bool summary = view == v1::STOP_RESPONSE_VIEW_SUMMARY;
  if (request->target_case() == v1::EmergencyStopRequest::kName) {
    return OnDevice(context, std::move(call), request->name(), "name", /*urgent=*/true,
                    [this, response, devices_wanted, summary, entered](Device& d) {
                      d.EmergencyStopOutputOff();
                      RecordStop(StopScope::kDevice, entered);
                      d.FinishEmergencyStop();
                      response->set_stopped_count(1);
                      if (devices_wanted) ReadStopped(d.view(), summary, response->add_devices());
                      if (d.output_unconfirmed()) response->add_unconfirmed(d.name());
                      return absl::OkStatus();
                    });
  }
  if (!request->all_devices()) {
    return FinishCommand(context, call, "",
                         InvalidField("target", "set name, or all_devices to true"));
  }
  Unary* reactor = context->DefaultReactor();
  response->set_stopped_count(static_cast<uint32_t>(devices_.size()));
  // Per device, filled on its strand right after its stop (a reset racing the call cannot show
  // up in the response): its entry (made there, on the response's arena if it has one, so
  // nothing per device is allocated before the outputs are off) and whether its output is
  // unconfirmed. Strands
  // fill distinct slots; gathered once every stop is done.
  auto stopped = std::make_shared<StoppedDevices>(devices_.size(), devices_wanted);
  devices_.EmergencyStopAll(
      [this, reactor, response, stopped, call = std::move(call)]() mutable {
        stopped->MoveInto(names_, *response);
        audit_.Finish(reactor, call, "", absl::OkStatus());
      },
      [response, summary, stopped](Device& d) { stopped->Read(d, summary, response->GetArena()); },
      [this, entered] { RecordStop(StopScope::kAll, entered); });
  return reactor;
}

}  // namespace derma::service
