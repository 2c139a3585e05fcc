// Audit latency: what acknowledging a command only after its audit record is durable costs,
// against its floor. The floor is one fdatasync of a record-sized append in the audit trail's
// own directory, measured in the same run; the concurrent row has several clients configuring
// different pens at once, each acknowledged only after its own record is durable, and counts
// the trail's commits (one fsync each). Part of tests/bench.
#ifndef DERMA_TESTS_BENCH_AUDIT_LATENCY_H_
#define DERMA_TESTS_BENCH_AUDIT_LATENCY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "plugin/audit/audit_trail.h"
#include "tests/bench/table.h"

namespace derma::bench {

// Clients of the concurrent audit row, each on its own pen.
inline constexpr int kAuditClients = 8;

// `count` appends of 256 bytes to a new file in `dir`, each followed by fdatasync, their
// latencies appended to `out`; the file is removed after. With `echo_address` set, each append
// follows an (untimed) echo call to it, so the disk and the CPUs have been idle for a round
// trip, as before a command's commit; back to back otherwise.
absl::Status MeasureFdatasync(const std::string& dir, int count, std::vector<absl::Duration>& out,
                              const std::string& echo_address = "");

// Where a single client's audited Configure spends its time beyond a plain Configure.
struct AuditFloor {
  Percentiles fdatasync;        // back to back: the floor
  Percentiles paced_fdatasync;  // each after an echo round trip, as a command's commit is
  absl::Duration commit_mean;   // the trail's commits during the single-client row, mean
};

struct ConcurrentConfigureResult {
  Percentiles configure;  // every client's calls together
  int clients = 0;
  double calls_per_s = 0;
  double commits_per_s = 0;       // the trail's transactions, one fsync each
  double records_per_commit = 0;  // measured Configure calls per commit
};

// One thread per pen, each with its own connection and the pen's lease, making `calls`
// Configure calls back to back (after `warmup` unmeasured ones); `trail` is the server's.
absl::StatusOr<ConcurrentConfigureResult> MeasureConcurrentConfigure(
    const std::string& derma_address, const std::vector<std::string>& pens, int warmup, int calls,
    const AuditTrail& trail);

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_AUDIT_LATENCY_H_
