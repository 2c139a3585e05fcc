#include "plugin/service/device_control_service.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "plugin/errors/errors.h"
#include "plugin/service/request_checks.h"
#include "plugin/service/status_mapping.h"
#include "plugin/service/telemetry_stream.h"
#include "plugin/service/watch_run_stream.h"

namespace derma::service {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kDefaultDevicePage = 1000;
constexpr int kMaxDevicePage = 10000;

// A ttl that is not a finite number is reported by the lease table as out of range.
absl::Duration TtlOf(double ttl_s) {
  return std::isfinite(ttl_s) ? absl::Seconds(ttl_s) : absl::InfiniteDuration();
}

// A NaN ttl_s has no duration to show: refused as NaN (an infinite one reads "inf s").
absl::Status NanTtl(const std::string& device) {
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                   absl::StrCat("ttl_s: NaN is not a number of seconds (1–60 s) on ", device),
                   {{"device", device}}, {{"ttl_s", "NaN is outside 1–60 s"}});
}

void FillLease(const std::string& device, const LeaseGrant& grant, v1::Lease* out) {
  out->set_device(device);
  out->set_lease_id(grant.lease_id);
  out->set_holder(grant.holder);
  *out->mutable_expire_time() =
      TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(grant.expire_time));
}

// A server stream refused before it started: finishes at once and deletes itself.
template <typename Response>
class FinishedWriter : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedWriter(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

DeviceControlService::DeviceControlService(DeviceManager& devices, RunRegistry& runs,
                                           TelemetryFanout& fanout, StreamRegistry& streams,
                                           Executor& stream_executor, const auth::Authorizer& auth,
                                           const CallAudit& audit, DeviceControlOptions options)
    : devices_(devices),
      runs_(runs),
      fanout_(fanout),
      streams_(streams),
      stream_executor_(stream_executor),
      auth_(auth),
      audit_(audit),
      options_(options) {
  for (uint32_t i = 0; i < devices_.size(); ++i) {
    names_.push_back(devices_.view(i).identity()->name());
    by_name_.push_back(i);
  }
  // Devices are indexed in config order; ListDevices pages through them in name order.
  std::sort(by_name_.begin(), by_name_.end(),
            [this](uint32_t a, uint32_t b) { return names_[a] < names_[b]; });
}

grpc::ServerUnaryReactor* DeviceControlService::FinishNow(Context* context,
                                                          const absl::Status& status) {
  Unary* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* DeviceControlService::FinishCommand(Context* context,
                                                              const AuditedCall& call,
                                                              const std::string& device,
                                                              const absl::Status& status) const {
  Unary* reactor = context->DefaultReactor();
  // A name too long for any device is not echoed, not even into the audit record.
  const bool fits = device.size() <= DeviceManager::kMaxDeviceNameBytes;
  audit_.Finish(reactor, call, fits ? device : std::string(), status);
  return reactor;
}

grpc::ServerUnaryReactor* DeviceControlService::Admit(Context* context, const char* method,
                                                      const google::protobuf::Message& request,
                                                      CallClass call_class,
                                                      AuditedCall* call) const {
  return AdmitCall(auth_, audit_, context, method, request, call_class, call);
}

grpc::ServerUnaryReactor* DeviceControlService::Deny(
    Context* context, const char* method, const google::protobuf::Message& request) const {
  AuditedCall call;
  return Admit(context, method, request, CallClass::kRead, &call);
}

absl::StatusOr<auth::Principal> DeviceControlService::AuthorizeStream(
    Context* context, const char* method, const google::protobuf::Message& request) const {
  absl::StatusOr<auth::Principal> caller = auth_.Authorize(*context, method);
  if (!caller.ok()) {
    audit_.RecordRefused({method, "", audit_.Summarize(request), PeerIpOf(*context)},
                         caller.status());
  }
  return caller;
}

grpc::ServerUnaryReactor* DeviceControlService::OnDevice(
    Context* context, AuditedCall call, const std::string& name, const char* field, bool urgent,
    absl::AnyInvocable<absl::Status(Device&) &&> command) {
  absl::StatusOr<uint32_t> index = devices_.Find(name, field);
  if (!index.ok()) return FinishCommand(context, call, name, index.status());
  Unary* reactor = context->DefaultReactor();
  DeviceTask task = [reactor, &audit = audit_, call = std::move(call),
                     command = std::move(command)](Device& device) mutable {
    absl::Status status = std::move(command)(device);
    audit.Finish(reactor, call, device.name(), std::move(status));
  };
  if (urgent) {
    devices_.DispatchUrgent(*index, std::move(task));
  } else {
    devices_.Dispatch(*index, std::move(task));
  }
  return reactor;
}

grpc::ServerUnaryReactor* DeviceControlService::OnDeviceUnlessShuttingDown(
    Context* context, AuditedCall call, const std::string& name,
    absl::AnyInvocable<absl::Status(Device&) &&> command) {
  if (shutting_down_) return FinishCommand(context, call, name, ShuttingDownError());
  return OnDevice(context, std::move(call), name, "name", /*urgent=*/false, std::move(command));
}

grpc::ServerUnaryReactor* DeviceControlService::ListDevices(Context* context,
                                                            const v1::ListDevicesRequest* request,
                                                            v1::ListDevicesResponse* response) {
  if (Unary* denied = Deny(context, "/derma.v1.DeviceControl/ListDevices", *request)) {
    return denied;
  }
  size_t size = 0, offset = 0;
  if (absl::Status s = ParsePage(request->page_size(), request->page_token(), kDefaultDevicePage,
                                 kMaxDevicePage, by_name_.size(), &size, &offset);
      !s.ok()) {
    return FinishNow(context, s);
  }
  for (size_t i = offset; i < by_name_.size() && i < offset + size; ++i) {
    devices_.view(by_name_[i]).ReadInto(response->add_devices());
  }
  if (offset + size < by_name_.size()) {
    response->set_next_page_token(absl::StrCat(offset + size));
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* DeviceControlService::GetDevice(Context* context,
                                                          const v1::GetDeviceRequest* request,
                                                          v1::GetDeviceResponse* response) {
  if (Unary* denied = Deny(context, "/derma.v1.DeviceControl/GetDevice", *request)) return denied;
  absl::StatusOr<uint32_t> index = devices_.Find(request->name());
  if (!index.ok()) return FinishNow(context, index.status());
  devices_.view(*index).ReadInto(response->mutable_device());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* DeviceControlService::AcquireLease(Context* context,
                                                             const v1::AcquireLeaseRequest* request,
                                                             v1::AcquireLeaseResponse* response) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.v1.DeviceControl/AcquireLease", *request,
                             CallClass::kCommand, &call)) {
    return refused;
  }
  return OnDeviceUnlessShuttingDown(
      context, std::move(call), request->name(), [request, response](Device& d) {
        if (std::isnan(request->ttl_s())) return NanTtl(d.name());
        absl::StatusOr<LeaseGrant> grant =
            d.AcquireLease(request->holder(), TtlOf(request->ttl_s()));
        if (grant.ok()) FillLease(d.name(), *grant, response->mutable_lease());
        return grant.status();
      });
}

grpc::ServerUnaryReactor* DeviceControlService::RenewLease(Context* context,
                                                           const v1::RenewLeaseRequest* request,
                                                           v1::RenewLeaseResponse* response) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.v1.DeviceControl/RenewLease", *request,
                             CallClass::kCommand, &call)) {
    return refused;
  }
  return OnDevice(context, std::move(call), request->name(), "name", false,
                  [request, response](Device& d) {
                    if (std::isnan(request->ttl_s())) return NanTtl(d.name());
                    absl::StatusOr<LeaseGrant> grant =
                        d.RenewLease(request->lease_id(), TtlOf(request->ttl_s()));
                    if (grant.ok()) FillLease(d.name(), *grant, response->mutable_lease());
                    return grant.status();
                  });
}

grpc::ServerUnaryReactor* DeviceControlService::ReleaseLease(Context* context,
                                                             const v1::ReleaseLeaseRequest* request,
                                                             v1::ReleaseLeaseResponse*) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.v1.DeviceControl/ReleaseLease", *request,
                             CallClass::kSafety, &call)) {
    return refused;
  }
  return OnDevice(context, std::move(call), request->name(), "name", false,
                  [request](Device& d) { return d.ReleaseLease(request->lease_id()); });
}

grpc::ServerUnaryReactor* DeviceControlService::Configure(Context* context,
                                                          const v1::ConfigureRequest* request,
                                                          v1::ConfigureResponse* response) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.v1.DeviceControl/Configure", *request,
                             CallClass::kCommand, &call)) {
    return refused;
  }
  return OnDeviceUnlessShuttingDown(
      context, std::move(call), request->name(), [request, response](Device& d) {
        absl::StatusOr<v1::Settings> applied =
            d.Configure(request->lease_id(), request->settings(), request->validate_only());
        if (!applied.ok()) return applied.status();
        *response->mutable_applied_settings() = *std::move(applied);
        d.view().ReadInto(response->mutable_device());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* DeviceControlService::Start(Context* context,
                                                      const v1::StartRequest* request,
                                                      v1::StartResponse* response) {
  AuditedCall call;
  if (Unary* refused =
          Admit(context, "/derma.v1.DeviceControl/Start", *request, CallClass::kCommand, &call)) {
    return refused;
  }
  return OnDeviceUnlessShuttingDown(
      context, std::move(call), request->name(), [request, response](Device& d) {
        absl::Status status = d.Start(request->lease_id(), request->request_id());
        if (status.ok()) d.view().ReadInto(response->mutable_device());
        return status;
      });
}

grpc::ServerUnaryReactor* DeviceControlService::Pause(Context* context,
                                                      const v1::PauseRequest* request,
                                                      v1::PauseResponse* response) {
  AuditedCall call;
  if (Unary* refused =
          Admit(context, "/derma.v1.DeviceControl/Pause", *request, CallClass::kSafety, &call)) {
    return refused;
  }
  return OnDevice(context, std::move(call), request->name(), "name", false,
                  [request, response](Device& d) {
                    absl::Status status = d.Pause(request->lease_id());
                    if (status.ok()) d.view().ReadInto(response->mutable_device());
                    return status;
                  });
}

grpc::ServerUnaryReactor* DeviceControlService::Resume(Context* context,
                                                       const v1::ResumeRequest* request,
                                                       v1::ResumeResponse* response) {
  AuditedCall call;
  if (Unary* refused =
          Admit(context, "/derma.v1.DeviceControl/Resume", *request, CallClass::kCommand, &call)) {
    return refused;
  }
  return OnDeviceUnlessShuttingDown(context, std::move(call), request->name(),
                                    [request, response](Device& d) {
                                      absl::Status status = d.Resume(request->lease_id());
                                      if (status.ok())
                                        d.view().ReadInto(response->mutable_device());
                                      return status;
                                    });
}

grpc::ServerUnaryReactor* DeviceControlService::Stop(Context* context,
                                                     const v1::StopRequest* request,
                                                     v1::StopResponse* response) {
  AuditedCall call;
  if (Unary* refused =
          Admit(context, "/derma.v1.DeviceControl/Stop", *request, CallClass::kSafety, &call)) {
    return refused;
  }
  return OnDevice(context, std::move(call), request->name(), "name", false, [response](Device& d) {
    d.Stop();
    d.view().ReadInto(response->mutable_device());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* DeviceControlService::ResetEmergencyStop(
    Context* context, const v1::ResetEmergencyStopRequest* request,
    v1::ResetEmergencyStopResponse* response) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.v1.DeviceControl/ResetEmergencyStop", *request,
                             CallClass::kCommand, &call)) {
    return refused;
  }
  return OnDeviceUnlessShuttingDown(
      context, std::move(call), request->name(), [request, response](Device& d) {
        absl::Status status = d.ResetEmergencyStop(request->lease_id());
        if (status.ok()) d.view().ReadInto(response->mutable_device());
        return status;
      });
}

grpc::ServerUnaryReactor* DeviceControlService::ResetFault(Context* context,
                                                           const v1::ResetFaultRequest* request,
                                                           v1::ResetFaultResponse* response) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.v1.DeviceControl/ResetFault", *request,
                             CallClass::kCommand, &call)) {
    return refused;
  }
  return OnDeviceUnlessShuttingDown(context, std::move(call), request->name(),
                                    [request, response](Device& d) {
                                      absl::Status status = d.ResetFault(request->lease_id());
                                      if (status.ok())
                                        d.view().ReadInto(response->mutable_device());
                                      return status;
                                    });
}

grpc::ServerUnaryReactor* DeviceControlService::StartRun(Context* context,
                                                         const v1::StartRunRequest* request,
                                                         v1::StartRunResponse* response) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.v1.DeviceControl/StartRun", *request,
                             CallClass::kCommand, &call)) {
    return refused;
  }
  if (shutting_down_) return FinishCommand(context, call, request->parent(), ShuttingDownError());
  return OnDevice(
      context, std::move(call), request->parent(), "parent", false, [request, response](Device& d) {
        const std::vector<v1::RunStep> steps(request->steps().begin(), request->steps().end());
        absl::StatusOr<RunPtr> run = d.StartRun(request->lease_id(), steps, request->request_id());
        if (run.ok()) *response->mutable_run() = **run;
        return run.status();
      });
}

grpc::ServerUnaryReactor* DeviceControlService::CancelRun(Context* context,
                                                          const v1::CancelRunRequest* request,
                                                          v1::CancelRunResponse* response) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.v1.DeviceControl/CancelRun", *request,
                             CallClass::kSafety, &call)) {
    return refused;
  }
  absl::StatusOr<uint32_t> index = devices_.FindRunDevice(request->name());
  if (!index.ok()) return FinishCommand(context, call, "", index.status());
  Unary* reactor = context->DefaultReactor();
  devices_.Dispatch(
      *index, [reactor, &audit = audit_, call = std::move(call), request, response](Device& d) {
        absl::StatusOr<RunPtr> run = d.CancelRun(request->lease_id(), request->name());
        if (run.ok()) *response->mutable_run() = **run;
        audit.Finish(reactor, call, d.name(), run.status());
      });
  return reactor;
}

grpc::ServerWriteReactor<v1::WatchRunResponse>* DeviceControlService::WatchRun(
    Context* context, const v1::WatchRunRequest* request) {
  absl::StatusOr<auth::Principal> caller =
      AuthorizeStream(context, "/derma.v1.DeviceControl/WatchRun", *request);
  if (!caller.ok()) return new FinishedWriter<v1::WatchRunResponse>(ToGrpcStatus(caller.status()));
  return WatchRunStream::Begin(devices_, runs_, streams_, stream_executor_, *request, caller->name);
}

grpc::ServerWriteReactor<v1::StreamTelemetryResponse>* DeviceControlService::StreamTelemetry(
    Context* context, const v1::StreamTelemetryRequest* request) {
  absl::StatusOr<auth::Principal> caller =
      AuthorizeStream(context, "/derma.v1.DeviceControl/StreamTelemetry", *request);
  if (!caller.ok()) {
    return new FinishedWriter<v1::StreamTelemetryResponse>(ToGrpcStatus(caller.status()));
  }
  const StreamDeps deps{devices_,
                        fanout_,
                        streams_,
                        stream_executor_,
                        names_,
                        options_.stream_sample_capacity,
                        options_.heartbeat_interval,
                        nullptr,
                        caller->name};
  return TelemetryStream::Begin(deps, *request);
}

}  // namespace derma::service
