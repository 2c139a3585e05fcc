// The soak's end-of-run report: everything measured (SoakResult) printed as plain-text tables —
// calls and rates per RPC with latencies, errors by RPC, code and reason with their verdict,
// telemetry, sessions and runs, dermad's memory and shutdown — then every check with PASS or
// FAIL. Part of tests/soak. Not thread-safe.
#ifndef DERMA_TESTS_SOAK_REPORT_H_
#define DERMA_TESTS_SOAK_REPORT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "tests/soak/call_tally.h"
#include "tests/soak/control_client.h"
#include "tests/soak/device_sessions.h"
#include "tests/soak/telemetry_subscriber.h"

namespace derma::soak {

// Rows of left-aligned text columns, printed with " | " between them and a rule under the
// header.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

struct Check {
  std::string what;
  std::string measured;
  std::string bound;
  bool pass = false;
};

struct SoakResult {
  std::string setup;       // one line: clients, devices, duration, dermad flags
  absl::Duration elapsed;  // load time
  CallTally calls;
  SubscriberCounts fast;
  SubscriberCounts slow;
  SessionCounts sessions;
  ReadCounts reads;
  std::vector<std::pair<absl::Duration, uint64_t>> rss;  // (time since start, bytes)
  uint64_t rss_start = 0;                                // the warm-up's highest reading
  uint64_t rss_end = 0;                                  // when the load ended
  uint64_t rss_idle = 0;                                 // after the clients stopped
  absl::Duration dermad_cpu;                             // CPU time dermad used during the load
  absl::Duration soak_cpu;            // CPU time the soak's clients used during the load
  std::vector<std::string> failures;  // the first ones, in full
  uint64_t failure_count = 0;
  std::vector<Check> checks;
};

// "12.3 MiB".
std::string FormatMiB(uint64_t bytes);
void PrintReport(const SoakResult& result, std::ostream& out);

}  // namespace derma::soak

#endif  // DERMA_TESTS_SOAK_REPORT_H_
