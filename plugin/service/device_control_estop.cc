// DeviceControlService::EmergencyStop: no lease, the device's urgent lane, every targeted
// output off before anything else. The time from the handler's entry to the last output off
// is recorded (EmergencyStopTimes) apart from building the response and the audit record.
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
                      d.EmergencyStop();
                      RecordStop(StopScope::kDevice, entered);
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
  // One entry per device, read on its strand right after its stop (a reset racing the call
  // cannot show up in the response); strands fill distinct, pre-allocated entries.
  if (devices_wanted) {
    for (uint32_t i = 0; i < devices_.size(); ++i) response->add_devices();
  }
  response->set_stopped_count(static_cast<uint32_t>(devices_.size()));
  // Per device, set by its own strand; gathered once every stop is done.
  auto unconfirmed = std::make_shared<std::vector<char>>(devices_.size(), 0);
  devices_.EmergencyStopAll(
      [this, reactor, response, unconfirmed, entered, call = std::move(call)]() mutable {
        RecordStop(StopScope::kAll, entered);
        for (uint32_t i = 0; i < unconfirmed->size(); ++i) {
          if ((*unconfirmed)[i]) response->add_unconfirmed(names_[i]);
        }
        std::sort(response->mutable_unconfirmed()->begin(), response->mutable_unconfirmed()->end());
        audit_.Finish(reactor, call, "", absl::OkStatus());
      },
      [response, devices_wanted, summary, unconfirmed](Device& d) {
        if (devices_wanted) {
          ReadStopped(d.view(), summary, response->mutable_devices(static_cast<int>(d.index())));
        }
        (*unconfirmed)[d.index()] = d.output_unconfirmed() ? 1 : 0;
      });
  return reactor;
}

}  // namespace derma::service
