// CallAudit: the service's side of the audit trail. Builds the record of a call (principal,
// method, device, a request summary without lease ids, the result) and finishes the call only
// once that record is durable, so a client never sees a command acknowledged that the trail
// could lose. A refused call is answered at once; its record goes through the trail's refusal
// coalescing (refusal_coalescer.h). Without an audit trail it finishes at once. Every call a client
// sends is recorded with kind COMMAND, whatever its method (leases, emergency stops and runs
// included), or AUTH_FAILURE when refused; this is the one place those kinds are chosen (what
// devices raise on their own keeps its kinds: audit_device_events.cc). Layer: plugin/service.
// Thread-safe.
#ifndef DERMA_PLUGIN_SERVICE_CALL_AUDIT_H_
#define DERMA_PLUGIN_SERVICE_CALL_AUDIT_H_

#include <string>

#include "absl/status/status.h"
#include "derma/v1/audit.pb.h"
#include "google/protobuf/message.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "plugin/audit/audit_trail.h"
#include "plugin/auth/authorizer.h"

namespace derma::service {

// How a call is audited.
enum class CallClass {
  kRead,     // not recorded (only a refusal is)
  kCommand,  // recorded; refused while the trail cannot be written
  kSafety,   // recorded; runs even while the trail cannot be written (it only makes devices safer)
};

// What a call's audit record says about the call itself.
struct AuditedCall {
  const char* method = "";
  std::string principal;
  std::string summary;  // the request, without lease ids, at most kMaxSummaryBytes
  std::string peer_ip;  // the caller's IP address without its port (coalesces refusals)
};

// The IP address of the caller of `context` ("127.0.0.1", "::1"), without its port.
std::string PeerIpOf(const grpc::ServerContextBase& context);

class CallAudit {
 public:
  static constexpr size_t kMaxSummaryBytes = 512;

  // `trail` may be null: no audit trail.
  explicit CallAudit(AuditTrail* trail) : trail_(trail) {}

  bool enabled() const { return trail_ != nullptr; }
  AuditTrail* trail() const { return trail_; }

  // The request as text for the record: lease ids removed (they grant control), cut to
  // kMaxSummaryBytes. Empty without a trail (nothing will read it).
  std::string Summarize(const google::protobuf::Message& request) const;

  // Finishes `reactor` with `status` once the call's record (kind COMMAND) is durable. When the
  // record cannot be written, a successful call finishes with UNAVAILABLE (AUDIT_UNAVAILABLE,
  // metadata command_carried_out=true) instead; a failed one, which changed nothing, with its
  // own error.
  void Finish(grpc::ServerUnaryReactor* reactor, const AuditedCall& call, const std::string& device,
              absl::Status status) const;
  // Finishes a refused call with `refusal` at once and hands its record (kind AUTH_FAILURE) to
  // the trail's refusal coalescing (AuditTrail::RecordRefusal): a flood of refusals never
  // waits for the disk, and writes a bounded number of records with counts.
  void FinishRefused(grpc::ServerUnaryReactor* reactor, const AuditedCall& call,
                     const absl::Status& refusal) const;
  // Records a refused stream call the same way; the stream is refused by the caller at once.
  void RecordRefused(const AuditedCall& call, const absl::Status& refusal) const;
  // OK, or UNAVAILABLE (AUDIT_UNAVAILABLE) while the trail cannot be written: checked by
  // commands that must not run unrecorded (all but the ones that only make a device safer).
  absl::Status CheckWritable() const;

 private:
  AuditEvent MakeRecord(const AuditedCall& call, v1::AuditEventKind kind, const std::string& device,
                        const absl::Status& status) const;

  AuditTrail* const trail_;
};

// Authorizes a call to `method` and fills `call` (principal, request summary). When the caller
// may not call it, or (kCommand) the trail cannot be written, records the refusal, finishes the
// call and returns its reactor; nullptr when the call may go on.
grpc::ServerUnaryReactor* AdmitCall(const auth::Authorizer& auth, const CallAudit& audit,
                                    grpc::CallbackServerContext* context, const char* method,
                                    const google::protobuf::Message& request, CallClass call_class,
                                    AuditedCall* call);

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_CALL_AUDIT_H_
