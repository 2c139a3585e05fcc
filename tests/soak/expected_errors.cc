#include "tests/soak/expected_errors.h"

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace derma::soak {
namespace {

using grpc::StatusCode;

constexpr const char* kNames[kRpcCount] = {
    "ListDevices", "GetDevice", "AcquireLease", "RenewLease", "ReleaseLease",  "Configure",
    "Start",       "Pause",     "Resume",       "Stop",       "EmergencyStop", "ResetEmergencyStop",
    "StartRun",    "GetRun",    "ListRuns",     "WatchRun",   "CancelRun",     "StreamTelemetry",
    "GET /metrics"};

bool Required(Expect expect) {
  return expect == Expect::kOutOfRange || expect == Expect::kEstopLatched ||
         expect == Expect::kLeaseExpired;
}

}  // namespace

const char* RpcName(Rpc rpc) { return kNames[static_cast<int>(rpc)]; }

std::string RpcMethod(Rpc rpc) {
  if (rpc == Rpc::kScrape) return "";
  return absl::StrCat("/derma.v1.DeviceControl/", RpcName(rpc));
}

const std::vector<Allowance>& Allowances() {
  static const auto* kTable = new std::vector<Allowance>{
      {Rpc::kAcquireLease, Expect::kNormal, StatusCode::ABORTED, "LEASE_HELD",
       "another client holds the device (clients contend for devices on purpose)"},
      {Rpc::kPause, Expect::kNormal, StatusCode::FAILED_PRECONDITION, "ILLEGAL_TRANSITION",
       "a contender's Stop (no lease needed) took the device to IDLE first"},
      {Rpc::kResume, Expect::kNormal, StatusCode::FAILED_PRECONDITION, "ILLEGAL_TRANSITION",
       "a contender's Stop took the device to IDLE first"},
      {Rpc::kCancelRun, Expect::kNormal, StatusCode::FAILED_PRECONDITION, "RUN_ENDED",
       "the run completed, or a contender's Stop ended it, before the cancel arrived"},
      {Rpc::kConfigure, Expect::kOutOfRange, StatusCode::INVALID_ARGUMENT, "SETTING_OUT_OF_RANGE",
       "deliberate: a value beyond the capability's max"},
      {Rpc::kStart, Expect::kEstopLatched, StatusCode::FAILED_PRECONDITION, "ESTOP_LATCHED",
       "deliberate: Start on a device this client emergency-stopped"},
      {Rpc::kStartRun, Expect::kLeaseMayExpire, StatusCode::ABORTED, "LEASE_EXPIRED",
       "dead-man session: the 2 s lease ran out before the StartRun arrived"},
      {Rpc::kRenewLease, Expect::kLeaseExpired, StatusCode::ABORTED, "LEASE_EXPIRED",
       "deliberate: renewing after the dead-man switch fired"},
      {Rpc::kRenewLease, Expect::kLeaseExpired, StatusCode::ABORTED, "LEASE_MISMATCH",
       "deliberate: renewing after the dead-man switch fired and a contender took the lease"},
  };
  return *kTable;
}

std::string ReasonOf(const grpc::Status& status) {
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
    return "";
  }
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.Is<google::rpc::ErrorInfo>() && any.UnpackTo(&info)) return info.reason();
  }
  return "";
}

const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kCodes[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kCodes[index] : "UNKNOWN";
}

Verdict Classify(Rpc rpc, Expect expect, const grpc::Status& status) {
  if (status.ok()) return Required(expect) ? Verdict::kUnexpected : Verdict::kOk;
  if (status.error_code() == StatusCode::DEADLINE_EXCEEDED) return Verdict::kDeadline;
  const std::string reason = ReasonOf(status);
  for (const Allowance& allowed : Allowances()) {
    if (allowed.rpc == rpc && allowed.expect == expect && allowed.code == status.error_code() &&
        reason == allowed.reason) {
      return Verdict::kExpected;
    }
  }
  // A dead-man session's other calls may also meet the races of normal calls.
  if (expect == Expect::kLeaseMayExpire) return Classify(rpc, Expect::kNormal, status);
  return Verdict::kUnexpected;
}

}  // namespace derma::soak
