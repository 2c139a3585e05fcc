// dermactl audit: the service's audit trail (ListAuditEvents), newest first, one line per record.
#include <algorithm>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/time_util.h"
#include "plugin/cli/call_failure.h"
#include "plugin/cli/commands.h"

namespace derma::cli {
namespace {

constexpr int kMaxPage = 1000;  // the service's page limit

std::string TimeText(const google::protobuf::Timestamp& t) {
  const absl::Time time =
      absl::FromUnixMicros(google::protobuf::util::TimeUtil::TimestampToMicroseconds(t));
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

// "Configure" from "/derma.v1.DeviceControl/Configure"; device events have no method.
std::string MethodText(const std::string& method) {
  const size_t slash = method.rfind('/');
  return slash == std::string::npos ? method : method.substr(slash + 1);
}

void PrintLine(const v1::AuditEvent& event) {
  std::string kind = v1::AuditEventKind_Name(event.kind());
  if (kind.rfind("AUDIT_EVENT_KIND_", 0) == 0) kind = kind.substr(17);
  std::string outcome;
  if (!event.method().empty()) {
    outcome =
        event.code() == 0 ? "OK" : absl::StrFormat("code %d %s", event.code(), event.reason());
  }
  absl::PrintF("%s %-10s %-16s %-18s %-20s %s %s\n", TimeText(event.time()),
               event.principal().empty() ? "-" : event.principal(), kind,
               event.device().empty() ? "-" : event.device(),
               event.method().empty() ? "-" : MethodText(event.method()), outcome,
               event.summary().empty() ? event.detail() : event.summary());
}

}  // namespace

int Audit(Connection& c, const Options& o, const Args& args) {
  if (args.size() > 1) {
    absl::FPrintF(stderr, "dermactl: audit takes at most one DEVICE (see dermactl --help)\n");
    return kUsage;
  }
  v1::ListAuditEventsRequest request;
  if (!args.empty()) request.set_device(DeviceName(args[0]));
  request.set_principal(o.principal);
  if (o.since > absl::ZeroDuration()) {
    *request.mutable_start_time() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
        absl::ToUnixMicros(absl::Now() - o.since));
  }
  int left = o.limit;
  do {
    request.set_page_size(std::min(left, kMaxPage));
    v1::ListAuditEventsResponse response;
    grpc::Status status = c.devices->ListAuditEvents(Call().get(), request, &response);
    if (!status.ok()) return Report(c, status);
    for (const v1::AuditEvent& event : response.events()) {
      if (o.json) {
        absl::PrintF("%s\n", Json(event));
      } else {
        PrintLine(event);
      }
    }
    left -= response.events_size();
    request.set_page_token(response.next_page_token());
  } while (left > 0 && !request.page_token().empty() && !g_interrupted.load());
  return kOk;
}

}  // namespace derma::cli
