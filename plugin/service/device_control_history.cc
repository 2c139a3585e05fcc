// DeviceControlService's history reads: GetRun, ListRuns and ListAuditEvents. Active runs come
// from the run registry; with an audit trail, every run (it records each one as it starts,
// steps and ends) and the trail itself are read from the audit store on the trail's query
// thread, never on a gRPC thread.
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "plugin/errors/errors.h"
#include "plugin/service/device_control_service.h"
#include "plugin/service/request_checks.h"
#include "plugin/service/status_mapping.h"

namespace derma::service {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kDefaultRunPage = 100;
constexpr int kMaxRunPage = 1000;
constexpr size_t kMaxRunOffset = 1u << 31;

// A storage error without a reason of its own becomes AUDIT_UNAVAILABLE, keeping its message.
absl::Status StoreError(const absl::Status& status) {
  if (status.ok() || ReasonOf(status) != v1::ERROR_REASON_UNSPECIFIED) return status;
  return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_AUDIT_UNAVAILABLE,
                   absl::StrCat("the audit trail cannot be read: ", status.message()));
}

absl::Status NoAuditTrail() {
  return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_AUDIT_UNAVAILABLE,
                   "this service runs without an audit trail (dermad --audit_db is empty)");
}

// Microseconds of a filter time; 0 (no bound) when unset. INVALID_FIELD when out of range.
absl::Status TimeBound(const v1::ListAuditEventsRequest& request, bool start, int64_t* out) {
  const bool set = start ? request.has_start_time() : request.has_end_time();
  *out = 0;
  if (!set) return absl::OkStatus();
  const google::protobuf::Timestamp& t = start ? request.start_time() : request.end_time();
  const char* field = start ? "start_time" : "end_time";
  if (t.seconds() < TimeUtil::kTimestampMinSeconds ||
      t.seconds() > TimeUtil::kTimestampMaxSeconds || t.nanos() < 0 || t.nanos() > 999999999) {
    return InvalidField(field, "is not a valid timestamp (years 1-9999, nanos 0-999999999)");
  }
  *out = TimeUtil::TimestampToMicroseconds(t);
  if (*out == 0) *out = 1;  // the epoch itself is a bound, not "no bound"
  return absl::OkStatus();
}

absl::Status ParseAuditFilter(const v1::ListAuditEventsRequest& request, AuditEventFilter* filter) {
  if (request.device().size() > DeviceManager::kMaxDeviceNameBytes) {
    return InvalidField("device", absl::StrCat("is ", request.device().size(),
                                               " bytes long; a device name is at most ",
                                               DeviceManager::kMaxDeviceNameBytes, " bytes"));
  }
  if (!request.device().empty() && !absl::StartsWith(request.device(), "devices/")) {
    return InvalidField("device",
                        absl::StrCat("must be \"devices/{id}\", got \"", request.device(), "\""));
  }
  filter->device = request.device();
  filter->principal = request.principal();
  if (absl::Status s = TimeBound(request, true, &filter->since_us); !s.ok()) return s;
  if (absl::Status s = TimeBound(request, false, &filter->until_us); !s.ok()) return s;
  if (filter->since_us != 0 && filter->until_us != 0 && filter->until_us <= filter->since_us) {
    return InvalidField("end_time", "must be after start_time");
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* DeviceControlService::GetRun(Context* context,
                                                       const v1::GetRunRequest* request,
                                                       v1::GetRunResponse* response) {
  if (Unary* denied = Deny(context, "/derma.v1.DeviceControl/GetRun", *request)) return denied;
  if (absl::Status s = devices_.FindRunDevice(request->name()).status(); !s.ok()) {
    return FinishNow(context, s);
  }
  if (RunPtr run = runs_.Get(request->name()); run != nullptr) {
    *response->mutable_run() = *run;
    return FinishNow(context, absl::OkStatus());
  }
  if (audit_.enabled()) return GetStoredRun(context, request, response);
  return FinishNow(context, MakeError(absl::StatusCode::kNotFound, v1::ERROR_REASON_RUN_NOT_FOUND,
                                      absl::StrCat("no run named ", request->name()),
                                      {{"run", request->name()}}));
}

grpc::ServerUnaryReactor* DeviceControlService::GetStoredRun(Context* context,
                                                             const v1::GetRunRequest* request,
                                                             v1::GetRunResponse* response) {
  Unary* reactor = context->DefaultReactor();
  audit_.trail()->Query([reactor, request, response](AuditStore& store) {
    absl::StatusOr<v1::Run> run = store.GetRun(request->name());
    if (run.ok()) *response->mutable_run() = *std::move(run);
    reactor->Finish(ToGrpcStatus(StoreError(run.status())));
  });
  return reactor;
}

grpc::ServerUnaryReactor* DeviceControlService::ListRuns(Context* context,
                                                         const v1::ListRunsRequest* request,
                                                         v1::ListRunsResponse* response) {
  if (Unary* denied = Deny(context, "/derma.v1.DeviceControl/ListRuns", *request)) return denied;
  std::string device;
  if (request->parent() != "devices/-") {
    absl::StatusOr<uint32_t> index = devices_.Find(request->parent(), "parent");
    if (!index.ok()) return FinishNow(context, index.status());
    device = request->parent();
  }
  size_t size = 0, offset = 0;
  // Runs are not counted here (stored ones are paged by the store): past the end is an empty
  // last page; the bound only keeps offsets from wrapping.
  if (absl::Status s = ParsePage(request->page_size(), request->page_token(), kDefaultRunPage,
                                 kMaxRunPage, kMaxRunOffset, &size, &offset);
      !s.ok()) {
    return FinishNow(context, s);
  }
  if (audit_.enabled()) return ListStoredRuns(context, device, offset, size, response);
  // One extra tells whether there is a next page.
  std::vector<RunPtr> runs = runs_.List(device, offset, size + 1);
  for (size_t i = 0; i < runs.size() && i < size; ++i) *response->add_runs() = *runs[i];
  if (runs.size() > size) response->set_next_page_token(absl::StrCat(offset + size));
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* DeviceControlService::ListStoredRuns(Context* context,
                                                               const std::string& device,
                                                               size_t offset, size_t size,
                                                               v1::ListRunsResponse* response) {
  // Every run is in the store from its start (StartRun is acknowledged only after), so the
  // store pages; the registry's snapshot replaces the stored one while it is fresher.
  Unary* reactor = context->DefaultReactor();
  audit_.trail()->Query([this, reactor, device, offset, size, response](AuditStore& store) {
    absl::StatusOr<std::vector<v1::Run>> runs =
        store.ListRuns(device, static_cast<int64_t>(offset), static_cast<int64_t>(size) + 1);
    if (!runs.ok()) {
      reactor->Finish(ToGrpcStatus(StoreError(runs.status())));
      return;
    }
    for (size_t i = 0; i < runs->size() && i < size; ++i) {
      v1::Run* out = response->add_runs();
      if (RunPtr live = runs_.Get((*runs)[i].name()); live != nullptr) {
        *out = *live;
      } else {
        *out = std::move((*runs)[i]);
      }
    }
    if (runs->size() > size) response->set_next_page_token(absl::StrCat(offset + size));
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* DeviceControlService::ListAuditEvents(
    Context* context, const v1::ListAuditEventsRequest* request,
    v1::ListAuditEventsResponse* response) {
  if (Unary* denied = Deny(context, "/derma.v1.DeviceControl/ListAuditEvents", *request)) {
    return denied;
  }
  if (!audit_.enabled()) return FinishNow(context, NoAuditTrail());
  AuditEventFilter filter;
  if (absl::Status s = ParseAuditFilter(*request, &filter); !s.ok()) return FinishNow(context, s);
  Unary* reactor = context->DefaultReactor();
  audit_.trail()->Query([reactor, request, response, filter](AuditStore& store) {
    absl::StatusOr<AuditEventPage> page =
        store.ListEvents(filter, request->page_size(), request->page_token());
    if (page.ok()) {
      response->mutable_events()->Reserve(static_cast<int>(page->events.size()));
      for (const AuditEvent& event : page->events) {
        *response->add_events() = AuditEventToProto(event);
      }
      response->set_next_page_token(page->next_page_token);
    }
    reactor->Finish(ToGrpcStatus(StoreError(page.status())));
  });
  return reactor;
}

grpc::ServerUnaryReactor* DeviceControlService::VerifyAuditTrail(
    Context* context, const v1::VerifyAuditTrailRequest* request,
    v1::VerifyAuditTrailResponse* response) {
  if (Unary* denied = Deny(context, "/derma.v1.DeviceControl/VerifyAuditTrail", *request)) {
    return denied;
  }
  if (!audit_.enabled()) return FinishNow(context, NoAuditTrail());
  std::optional<std::string> expected;
  if (const std::string& head = request->expected_head(); !head.empty()) {
    if (head.size() < 12 || head.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
      return FinishNow(context,
                       MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                                 "expected_head: must be at least 12 hex digits", {},
                                 {{"expected_head", "at least 12 hex digits"}}));
    }
    expected = head;
  }
  Unary* reactor = context->DefaultReactor();
  audit_.trail()->Query([reactor, response, expected](AuditStore& store) {
    absl::StatusOr<ChainReport> report = store.Verify(expected);
    if (report.ok()) {
      response->set_intact(report->intact);
      response->set_unchained_records(report->unchained);
      response->set_chained_records(report->chained);
      response->set_chain_length(report->length);
      response->set_head_id(report->head_id);
      response->set_head_sha256(ToHex(report->head_hash));
      response->set_has_checkpoint(report->checkpoint);
      response->set_broken_id(report->broken_id);
      response->set_problem(report->problem);
    }
    reactor->Finish(ToGrpcStatus(StoreError(report.status())));
  });
  return reactor;
}

}  // namespace derma::service
