#include "plugin/service/call_audit.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "plugin/errors/errors.h"
#include "plugin/service/status_mapping.h"

namespace derma::service {
namespace {

// Clears every field named lease_id, at any depth.
void RemoveLeaseIds(google::protobuf::Message& message) {
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const google::protobuf::Reflection* reflection = message.GetReflection();
  if (const auto* lease = descriptor->FindFieldByName("lease_id")) {
    reflection->ClearField(&message, lease);
  }
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const google::protobuf::FieldDescriptor* field : fields) {
    if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        RemoveLeaseIds(*reflection->MutableRepeatedMessage(&message, field, i));
      }
    } else {
      RemoveLeaseIds(*reflection->MutableMessage(&message, field));
    }
  }
}

}  // namespace

std::string CallAudit::Summarize(const google::protobuf::Message& request) const {
  if (trail_ == nullptr) return "";
  std::unique_ptr<google::protobuf::Message> copy(request.New());
  copy->CopyFrom(request);
  RemoveLeaseIds(*copy);
  std::string text = copy->ShortDebugString();
  if (text.size() > kMaxSummaryBytes) {
    text.resize(kMaxSummaryBytes);
    absl::StrAppend(&text, "...");
  }
  return text;
}

AuditEvent CallAudit::MakeRecord(const AuditedCall& call, v1::AuditEventKind kind,
                                 const std::string& device, const absl::Status& status) const {
  AuditEvent record;
  record.time_us = absl::ToUnixMicros(absl::Now());
  record.principal = call.principal;
  record.device = device;
  record.kind = kind;
  record.method = call.method;
  record.summary = call.summary;
  record.code = static_cast<int>(status.code());
  if (!status.ok()) {
    record.reason = ReasonName(ReasonOf(status));
    record.detail = std::string(status.message());
  }
  return record;
}

void CallAudit::Finish(grpc::ServerUnaryReactor* reactor, const AuditedCall& call,
                       const std::string& device, absl::Status status) const {
  if (trail_ == nullptr) {
    reactor->Finish(ToGrpcStatus(status));
    return;
  }
  AuditEvent record = MakeRecord(call, v1::AUDIT_EVENT_KIND_COMMAND, device, status);
  trail_->Record(std::move(record), [reactor, method = std::string(call.method),
                                     status = std::move(status)](absl::Status written) {
    // A failed command changed nothing: its own error says more than the trail's. A command
    // that took effect is not acknowledged unrecorded.
    if (written.ok() || !status.ok()) {
      reactor->Finish(ToGrpcStatus(status));
      return;
    }
    reactor->Finish(ToGrpcStatus(
        MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_AUDIT_UNAVAILABLE,
                  absl::StrCat(method,
                               " was carried out but its audit record could not be "
                               "written: ",
                               written.message(),
                               ". Until the audit trail is writable again only Stop, "
                               "EmergencyStop, Pause, CancelRun and ReleaseLease run."),
                  {{"command_carried_out", "true"}})));
  });
}

std::string PeerIpOf(const grpc::ServerContextBase& context) {
  return RefusalCoalescer::PeerIp(context.peer());
}

void CallAudit::FinishRefused(grpc::ServerUnaryReactor* reactor, const AuditedCall& call,
                              const absl::Status& refusal) const {
  RecordRefused(call, refusal);
  reactor->Finish(ToGrpcStatus(refusal));
}

void CallAudit::RecordRefused(const AuditedCall& call, const absl::Status& refusal) const {
  if (trail_ == nullptr) return;
  AuditedCall refused = call;
  if (refused.principal.empty()) refused.principal = MetadataOf(refusal)["principal"];
  AuditEvent record = MakeRecord(refused, v1::AUDIT_EVENT_KIND_AUTH_FAILURE, "", refusal);
  record.peer_ip = call.peer_ip;
  trail_->RecordRefusal(std::move(record));
}

absl::Status CallAudit::CheckWritable() const {
  if (trail_ == nullptr || trail_->writable()) return absl::OkStatus();
  return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_AUDIT_UNAVAILABLE,
                   absl::StrCat("the audit trail ", trail_->path(),
                                " cannot be written, so this command was not carried out; Stop, "
                                "EmergencyStop, Pause, CancelRun and ReleaseLease still run"));
}

grpc::ServerUnaryReactor* AdmitCall(const auth::Authorizer& auth, const CallAudit& audit,
                                    grpc::CallbackServerContext* context, const char* method,
                                    const google::protobuf::Message& request, CallClass call_class,
                                    AuditedCall* call) {
  call->method = method;
  absl::StatusOr<auth::Principal> caller = auth.Authorize(*context, method);
  if (caller.ok()) call->principal = caller->name;
  // An admitted read leaves no record: its peer and summary are worked out only for a record.
  if (!caller.ok() || call_class != CallClass::kRead) {
    call->peer_ip = PeerIpOf(*context);
    call->summary = audit.Summarize(request);
  }
  if (!caller.ok()) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    audit.FinishRefused(reactor, *call, caller.status());
    return reactor;
  }
  if (call_class == CallClass::kCommand) {
    if (absl::Status writable = audit.CheckWritable(); !writable.ok()) {
      grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
      audit.Finish(reactor, *call, "", writable);
      return reactor;
    }
  }
  return nullptr;
}

}  // namespace derma::service
