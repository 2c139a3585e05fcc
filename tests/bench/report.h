// Report: turns the bench's measurements into rows of the result table, each against its goal
// from the issue, and says which findings are errors (exit non-zero) rather than missed goals.
// Part of tests/bench. Not thread-safe.
#ifndef DERMA_TESTS_BENCH_REPORT_H_
#define DERMA_TESTS_BENCH_REPORT_H_

#include <string>
#include <vector>

#include "tests/bench/audit_latency.h"
#include "tests/bench/big_fleet.h"
#include "tests/bench/estop.h"
#include "tests/bench/latency.h"
#include "tests/bench/scrape.h"
#include "tests/bench/table.h"
#include "tests/bench/throughput.h"

namespace derma::bench {

// Goals, as ratios to the bare echo p50 or absolute rates.
inline constexpr double kGetDeviceGoal = 1.1;  // the second round's (the first: 1.2)
inline constexpr double kConfigureGoal = 1.5;
inline constexpr double kAuditedConfigureGoal = 1.1;
// EmergencyStop(all), 1000 devices under 4 streams: in the server, request to last output off;
// and the response in the COUNT view against a bare echo's p99 under the same load.
inline constexpr absl::Duration kEstopInServerP99Goal = absl::Milliseconds(1);
inline constexpr double kEstopCountVsEchoP99Goal = 2;
inline constexpr double kOneSubscriberRateGoal = 2e6;
inline constexpr double kOneSubscriberVsBareGoal = 0.8;  // the second round's (the first: 0.5)
// Every one of 4 subscribers with the same filter, against 4 bare streams, with 0 drops.
inline constexpr double kManySubscribersVsBareGoal = 0.6;
inline constexpr int kBigFleetDevices = 10000;
inline constexpr int64_t kBigFleetRssGoalBytes = int64_t{500} << 20;
inline constexpr absl::Duration kBigFleetStartupGoal = absl::Seconds(2);
// Cores 10,000 idle simulated devices may use ticking at 100 Hz (a smaller --quick fleet is
// held to its share).
inline constexpr double kBigFleetCoresGoalPer10k = 0.5;

struct ThroughputResults {
  StreamRates bare_one;
  StreamRates bare_many;
  StreamRates derma_one;
  StreamRates derma_many;
};

class Report {
 public:
  void AddLatency(const LatencyResult& latency);
  // Needs AddLatency first (ratios to the echo p50).
  void AddEstop(const EstopResult& estop, size_t devices, int streams);
  // The same with the audit trail on: information, no goal.
  void AddAuditedEstop(const EstopResult& estop, size_t devices, int streams);
  void AddThroughput(const ThroughputResults& throughput);
  void AddDeviceTelemetry(const DeviceTelemetryResult& telemetry, size_t devices,
                          double sample_rate_hz);

  // Configure on a plugin with an audit trail, acknowledged after its record's fsync: p50 ≤
  // (echo p50 + fdatasync p50 of the same directory) × kAuditedConfigureGoal; then the
  // concurrent clients' p50/p99 and the trail's commits per second. Needs AddLatency first.
  // Also, as information, the same against the fdatasync paced like the calls and the trail's
  // mean commit time (where the time beyond the floor goes).
  void AddAuditedConfigure(const Percentiles& configure, const AuditFloor& floor,
                           const ConcurrentConfigureResult& concurrent);
  // 10,000 devices: start-up ≤ 2 s, resident memory added ≤ 500 MiB; CPU as information.
  void AddBigFleet(const BigFleetResult& fleet);

  // Metrics scrape time and body size per fleet size; goal ≤ 50 ms at 1000 devices.
  void AddScrapes(const std::vector<ScrapeResult>& scrapes);

  const Table& table() const { return table_; }
  // Findings that make the run fail (not performance goals): outputs on after EmergencyStop.
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  void AddUnary(const std::string& method, const Percentiles& p, double goal);
  std::string VersusEcho(absl::Duration d) const;
  // "1.23 ms / 4.56 ms = 2.10× echo p99"
  static std::string VersusEchoP99(const Percentiles& p, const EstopResult& estop);
  // Adds the checks of every call of `estop` to errors_ (an output on, a wrong count).
  void CheckEstop(const EstopResult& estop, const std::string& what);

  Table table_;
  std::vector<std::string> errors_;
  absl::Duration echo_p50_ = absl::ZeroDuration();
  absl::Duration configure_p50_ = absl::ZeroDuration();  // without the audit trail
};

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_REPORT_H_
