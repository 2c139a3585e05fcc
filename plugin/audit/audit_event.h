// AuditEvent: one record of the audit trail as the audit store reads and writes it, and its
// conversions to the derma.v1.AuditEvent contract message and to the short kind names kept in
// the database. Layer: plugin/audit. Thread-safe (plain values and pure functions).
#ifndef DERMA_PLUGIN_AUDIT_AUDIT_EVENT_H_
#define DERMA_PLUGIN_AUDIT_AUDIT_EVENT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "derma/v1/audit.pb.h"

namespace derma {

// Field meanings are those of derma.v1.AuditEvent (proto/derma/v1/audit.proto).
struct AuditEvent {
  int64_t id = 0;       // assigned by the store; ignored by Append
  int64_t time_us = 0;  // microseconds since the Unix epoch
  std::string principal;
  std::string device;  // "devices/{id}", or empty
  v1::AuditEventKind kind = v1::AUDIT_EVENT_KIND_UNSPECIFIED;
  std::string method;
  std::string summary;
  int code = 0;        // gRPC status code number, 0 = OK
  std::string reason;  // ErrorReason name without prefix, empty when OK
  std::string detail;
  int64_t count = 1;    // calls this record stands for (coalesced refusals), ≥ 1
  std::string peer_ip;  // AUTH_FAILURE: the caller's IP address, or "*" (overflow record)

  friend bool operator==(const AuditEvent&, const AuditEvent&) = default;
};

// "COMMAND", "STATE_CHANGE", …: the kind without its enum prefix, as stored.
std::string AuditKindName(v1::AuditEventKind kind);
// The inverse; AUDIT_EVENT_KIND_UNSPECIFIED for a name no kind has.
v1::AuditEventKind AuditKindFromName(absl::string_view name);

v1::AuditEvent AuditEventToProto(const AuditEvent& event);

}  // namespace derma

#endif  // DERMA_PLUGIN_AUDIT_AUDIT_EVENT_H_
