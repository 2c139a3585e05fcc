// DeviceControlService: derma.v1.DeviceControl on the gRPC callback API. Adapts only: parses
// names, posts the command to the device's strand (EmergencyStop ahead of its queued work, on the
// receiving thread when the device's strand is idle and its driver never blocks), and finishes
// the reactor when the strand answers; no handler blocks a gRPC thread. Reads
// (GetDevice, ListDevices, GetRun, ListRuns) come from thread-safe views without a strand hop;
// with an audit trail, ended runs and the trail itself are read on the trail's query thread.
// Every handler first asks the Authorizer (plugin/auth) whether the caller may call it; every
// command is acknowledged only once its audit record is durable (CallAudit).
// Layer: plugin/service. Thread-safe.
#ifndef DERMA_PLUGIN_SERVICE_DEVICE_CONTROL_SERVICE_H_
#define DERMA_PLUGIN_SERVICE_DEVICE_CONTROL_SERVICE_H_

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "derma/v1/device_control.grpc.pb.h"
#include "plugin/auth/authorizer.h"
#include "plugin/core/device_manager.h"
#include "plugin/core/emergency_stop_times.h"
#include "plugin/core/executor.h"
#include "plugin/core/run_registry.h"
#include "plugin/core/telemetry_fanout.h"
#include "plugin/service/call_audit.h"
#include "plugin/service/stream_registry.h"

namespace derma::service {

struct DeviceControlOptions {
  size_t stream_sample_capacity = 65536;
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Where each EmergencyStop's time to the last output off is recorded (null: nowhere).
  EmergencyStopTimes* stop_times = nullptr;
};

class DeviceControlService final : public v1::DeviceControl::CallbackService {
 public:
  DeviceControlService(DeviceManager& devices, RunRegistry& runs, TelemetryFanout& fanout,
                       StreamRegistry& streams, Executor& stream_executor,
                       const auth::Authorizer& auth, const CallAudit& audit,
                       DeviceControlOptions options);

  // From now on commands that could switch an output on, or take a lease, fail UNAVAILABLE
  // (SHUTTING_DOWN); Stop, EmergencyStop, Pause, CancelRun, RenewLease, ReleaseLease and reads
  // still work.
  void BeginShutdown() { shutting_down_ = true; }

  using Unary = grpc::ServerUnaryReactor;
  using Context = grpc::CallbackServerContext;

  Unary* ListDevices(Context* context, const v1::ListDevicesRequest* request,
                     v1::ListDevicesResponse* response) override;
  Unary* GetDevice(Context* context, const v1::GetDeviceRequest* request,
                   v1::GetDeviceResponse* response) override;
  Unary* AcquireLease(Context* context, const v1::AcquireLeaseRequest* request,
                      v1::AcquireLeaseResponse* response) override;
  Unary* RenewLease(Context* context, const v1::RenewLeaseRequest* request,
                    v1::RenewLeaseResponse* response) override;
  Unary* ReleaseLease(Context* context, const v1::ReleaseLeaseRequest* request,
                      v1::ReleaseLeaseResponse* response) override;
  Unary* Configure(Context* context, const v1::ConfigureRequest* request,
                   v1::ConfigureResponse* response) override;
  Unary* Start(Context* context, const v1::StartRequest* request,
               v1::StartResponse* response) override;
  Unary* Pause(Context* context, const v1::PauseRequest* request,
               v1::PauseResponse* response) override;
  Unary* Resume(Context* context, const v1::ResumeRequest* request,
                v1::ResumeResponse* response) override;
  Unary* Stop(Context* context, const v1::StopRequest* request,
              v1::StopResponse* response) override;
  Unary* EmergencyStop(Context* context, const v1::EmergencyStopRequest* request,
                       v1::EmergencyStopResponse* response) override;
  Unary* ResetEmergencyStop(Context* context, const v1::ResetEmergencyStopRequest* request,
                            v1::ResetEmergencyStopResponse* response) override;
  Unary* ResetFault(Context* context, const v1::ResetFaultRequest* request,
                    v1::ResetFaultResponse* response) override;
  Unary* StartRun(Context* context, const v1::StartRunRequest* request,
                  v1::StartRunResponse* response) override;
  Unary* GetRun(Context* context, const v1::GetRunRequest* request,
                v1::GetRunResponse* response) override;
  Unary* ListRuns(Context* context, const v1::ListRunsRequest* request,
                  v1::ListRunsResponse* response) override;
  Unary* CancelRun(Context* context, const v1::CancelRunRequest* request,
                   v1::CancelRunResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchRunResponse>* WatchRun(
      Context* context, const v1::WatchRunRequest* request) override;
  grpc::ServerWriteReactor<v1::StreamTelemetryResponse>* StreamTelemetry(
      Context* context, const v1::StreamTelemetryRequest* request) override;
  Unary* ListAuditEvents(Context* context, const v1::ListAuditEventsRequest* request,
                         v1::ListAuditEventsResponse* response) override;
  Unary* VerifyAuditTrail(Context* context, const v1::VerifyAuditTrailRequest* request,
                          v1::VerifyAuditTrailResponse* response) override;

 private:
  // Resolves `name` (reporting `field`), then runs `command` on the device's strand and
  // finishes the call with its status once its audit record is durable. `urgent` runs it ahead
  // of the device's queued work (DeviceManager::DispatchUrgent).
  Unary* OnDevice(Context* context, AuditedCall call, const std::string& name, const char* field,
                  bool urgent, absl::AnyInvocable<absl::Status(Device&) &&> command);
  // OnDevice for commands refused once shutdown began.
  Unary* OnDeviceUnlessShuttingDown(Context* context, AuditedCall call, const std::string& name,
                                    absl::AnyInvocable<absl::Status(Device&) &&> command);
  // Finishes a command that never reached a device, once its record is durable.
  Unary* FinishCommand(Context* context, const AuditedCall& call, const std::string& device,
                       const absl::Status& status) const;
  static Unary* FinishNow(Context* context, const absl::Status& status);
  // AdmitCall (call_audit.h) with this service's authorizer and audit.
  Unary* Admit(Context* context, const char* method, const google::protobuf::Message& request,
               CallClass call_class, AuditedCall* call) const;
  // A read: nullptr when the caller may call `method`, else the finished (refused) call.
  Unary* Deny(Context* context, const char* method, const google::protobuf::Message& request) const;
  // A stream's authorization: OK, or the refusal (recorded in the trail).
  absl::StatusOr<auth::Principal> AuthorizeStream(Context* context, const char* method,
                                                  const google::protobuf::Message& request) const;
  // GetRun / ListRuns for runs the registry no longer (or never) held: from the audit store.
  Unary* GetStoredRun(Context* context, const v1::GetRunRequest* request,
                      v1::GetRunResponse* response);
  Unary* ListStoredRuns(Context* context, const std::string& device, size_t offset, size_t size,
                        v1::ListRunsResponse* response);
  // Records, in options_.stop_times, the time from `entered` (an EmergencyStop handler's entry)
  // to now, when the last targeted output went off.
  void RecordStop(StopScope scope, std::chrono::steady_clock::time_point entered) const;

  DeviceManager& devices_;
  RunRegistry& runs_;
  TelemetryFanout& fanout_;
  StreamRegistry& streams_;
  Executor& stream_executor_;
  const auth::Authorizer& auth_;
  const CallAudit& audit_;
  const DeviceControlOptions options_;
  std::vector<std::string> names_;  // device names by index
  std::vector<uint32_t> by_name_;   // device indexes in name order (ListDevices)
  std::atomic<bool> shutting_down_{false};
};

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_DEVICE_CONTROL_SERVICE_H_
