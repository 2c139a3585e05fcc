// The audit records of device events: what the audit trail writes for each DeviceEvent.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "plugin/audit/audit_trail.h"

namespace derma {
namespace {

std::string Short(const std::string& name, absl::string_view prefix) {
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

std::string StateName(v1::DeviceState state) {
  return Short(v1::DeviceState_Name(state), "DEVICE_STATE_");
}

std::string FaultText(const v1::Fault& fault) {
  return absl::StrCat(Short(v1::FaultKind_Name(fault.kind()), "FAULT_KIND_"), ": ",
                      fault.message());
}

v1::AuditEventKind KindOf(const v1::DeviceEvent& event) {
  switch (event.type()) {
    case v1::DEVICE_EVENT_TYPE_STATE_CHANGED:
      return event.to_state() == v1::DEVICE_STATE_ESTOPPED ||
                     event.from_state() == v1::DEVICE_STATE_ESTOPPED
                 ? v1::AUDIT_EVENT_KIND_ESTOP
                 : v1::AUDIT_EVENT_KIND_STATE_CHANGE;
    case v1::DEVICE_EVENT_TYPE_FAULT_RAISED:
    case v1::DEVICE_EVENT_TYPE_FAULT_CLEARED:
      return v1::AUDIT_EVENT_KIND_FAULT;
    case v1::DEVICE_EVENT_TYPE_LEASE_EXPIRED:
      return v1::AUDIT_EVENT_KIND_LEASE;
    case v1::DEVICE_EVENT_TYPE_RUN_STARTED:
    case v1::DEVICE_EVENT_TYPE_RUN_STEP:
    case v1::DEVICE_EVENT_TYPE_RUN_ENDED:
      return v1::AUDIT_EVENT_KIND_RUN;
    default:
      return v1::AUDIT_EVENT_KIND_STATE_CHANGE;  // settings applied, and any later type
  }
}

std::string DetailOf(const v1::DeviceEvent& event) {
  std::string detail;
  switch (event.type()) {
    case v1::DEVICE_EVENT_TYPE_STATE_CHANGED:
      detail = absl::StrCat(StateName(event.from_state()), " -> ", StateName(event.to_state()));
      if (event.has_fault()) absl::StrAppend(&detail, " (fault ", FaultText(event.fault()), ")");
      break;
    case v1::DEVICE_EVENT_TYPE_FAULT_RAISED:
      detail = absl::StrCat("fault raised ", FaultText(event.fault()));
      break;
    case v1::DEVICE_EVENT_TYPE_FAULT_CLEARED:
      detail = absl::StrCat("fault cleared ", FaultText(event.fault()));
      break;
    case v1::DEVICE_EVENT_TYPE_LEASE_EXPIRED:
      detail = "lease expired";
      break;
    case v1::DEVICE_EVENT_TYPE_RUN_STARTED:
      detail = absl::StrCat("run started ", event.run());
      break;
    case v1::DEVICE_EVENT_TYPE_RUN_STEP:
      detail = absl::StrCat("run next step ", event.run());
      break;
    case v1::DEVICE_EVENT_TYPE_RUN_ENDED:
      detail = absl::StrCat("run ended ", event.run());
      break;
    default:
      detail = Short(v1::DeviceEventType_Name(event.type()), "DEVICE_EVENT_TYPE_");
      break;
  }
  if (!event.message().empty()) absl::StrAppend(&detail, ": ", event.message());
  absl::StrAppend(&detail, " [event ", event.sequence(), ", device time ", event.device_time_us(),
                  " us]");
  return detail;
}

}  // namespace

AuditEvent AuditEventFromDeviceEvent(const v1::DeviceEvent& event, absl::Time now) {
  AuditEvent record;
  record.time_us = absl::ToUnixMicros(now);
  record.device = event.device();
  record.kind = KindOf(event);
  record.summary = Short(v1::DeviceEventType_Name(event.type()), "DEVICE_EVENT_TYPE_");
  record.detail = DetailOf(event);
  return record;
}

}  // namespace derma
