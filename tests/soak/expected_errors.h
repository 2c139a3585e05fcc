// The soak test's calls and the one table of errors it accepts. Every non-OK status is
// classified by RPC, gRPC code and ErrorInfo reason: a status listed for the situation the call
// was made in is expected (clients contend for devices, so some calls lose races); a
// DEADLINE_EXCEEDED counts against a small budget; anything else fails the soak. Part of
// tests/soak. Thread-safe (pure functions over constant tables).
#ifndef DERMA_TESTS_SOAK_EXPECTED_ERRORS_H_
#define DERMA_TESTS_SOAK_EXPECTED_ERRORS_H_

#include <string>
#include <vector>

#include "grpcpp/support/status.h"

namespace derma::soak {

// What the soak calls: the DeviceControl methods it uses and the HTTP metrics scrape.
enum class Rpc {
  kListDevices,
  kGetDevice,
  kAcquireLease,
  kRenewLease,
  kReleaseLease,
  kConfigure,
  kStart,
  kPause,
  kResume,
  kStop,
  kEmergencyStop,
  kResetEmergencyStop,
  kStartRun,
  kGetRun,
  kListRuns,
  kWatchRun,
  kCancelRun,
  kStreamTelemetry,
  kScrape,
};
inline constexpr int kRpcCount = static_cast<int>(Rpc::kScrape) + 1;

// "GetDevice", or "GET /metrics".
const char* RpcName(Rpc rpc);
// "/derma.v1.DeviceControl/GetDevice" (the server's metric label); empty for kScrape.
std::string RpcMethod(Rpc rpc);

// The situation a call is made in, which decides the errors it may meet.
enum class Expect {
  // An ordinary call in a session or a read: only the races of contended devices (kRaces).
  kNormal,
  // A Configure with a value beyond the capability's max: must fail SETTING_OUT_OF_RANGE.
  kOutOfRange,
  // A Start on a device this client emergency-stopped: must fail ESTOP_LATCHED.
  kEstopLatched,
  // A call made with a lease whose short TTL was meant to run out (the dead-man session):
  // OK while it had not, or LEASE_EXPIRED, or LEASE_MISMATCH once another client took it.
  kLeaseMayExpire,
  // A RenewLease after the dead-man switch fired: must fail LEASE_EXPIRED or LEASE_MISMATCH.
  kLeaseExpired,
};

enum class Verdict {
  kOk,
  kExpected,    // a listed error
  kDeadline,    // DEADLINE_EXCEEDED: counted against --deadline_exceeded_per_100k
  kUnexpected,  // fails the soak (including OK where an error was required)
};

// One accepted error and why a healthy server returns it in the soak.
struct Allowance {
  Rpc rpc;
  Expect expect;
  grpc::StatusCode code;
  const char* reason;  // ErrorInfo.reason
  const char* why;
};
// The whole table, for the report.
const std::vector<Allowance>& Allowances();

// ErrorInfo.reason of the status details (domain "derma"); "" when there is none.
std::string ReasonOf(const grpc::Status& status);
// "ABORTED".
const char* CodeName(grpc::StatusCode code);

Verdict Classify(Rpc rpc, Expect expect, const grpc::Status& status);

}  // namespace derma::soak

#endif  // DERMA_TESTS_SOAK_EXPECTED_ERRORS_H_
