#include "plugin/audit/audit_event.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace derma {
namespace {
constexpr absl::string_view kKindPrefix = "AUDIT_EVENT_KIND_";
}  // namespace

std::string AuditKindName(v1::AuditEventKind kind) {
  std::string name = v1::AuditEventKind_Name(kind);
  if (absl::StartsWith(name, kKindPrefix)) name.erase(0, kKindPrefix.size());
  return name;
}

v1::AuditEventKind AuditKindFromName(absl::string_view name) {
  v1::AuditEventKind kind = v1::AUDIT_EVENT_KIND_UNSPECIFIED;
  if (!v1::AuditEventKind_Parse(absl::StrCat(kKindPrefix, name), &kind)) {
    return v1::AUDIT_EVENT_KIND_UNSPECIFIED;
  }
  return kind;
}

v1::AuditEvent AuditEventToProto(const AuditEvent& event) {
  v1::AuditEvent out;
  out.set_id(event.id);
  const absl::Time time = absl::FromUnixMicros(event.time_us);
  const int64_t seconds = absl::ToUnixSeconds(time);
  out.mutable_time()->set_seconds(seconds);
  out.mutable_time()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
  out.set_principal(event.principal);
  out.set_device(event.device);
  out.set_kind(event.kind);
  out.set_method(event.method);
  out.set_summary(event.summary);
  out.set_code(event.code);
  out.set_reason(event.reason);
  out.set_detail(event.detail);
  out.set_count(event.count);
  out.set_peer_ip(event.peer_ip);
  return out;
}

}  // namespace derma
