#include "tests/bench/big_fleet.h"

#include <sys/resource.h>

#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/bench/derma_server.h"
#include "tests/bench/fleets.h"

namespace derma::bench {
namespace {

// VmRSS of this process in bytes (0 when /proc cannot be read).
int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t kib = 0;
    if (fields.size() >= 2 && absl::SimpleAtoi(fields[1], &kib)) return kib * 1024;
  }
  return 0;
}

}  // namespace

absl::Duration ProcessCpuTime() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return absl::DurationFromTimeval(usage.ru_utime) + absl::DurationFromTimeval(usage.ru_stime);
}

absl::StatusOr<BigFleetResult> MeasureBigFleet(int devices, absl::Duration run) {
  BigFleetResult result;
  result.devices = devices;
  const config::v1::FleetConfig config = MakeFleet(devices, /*virtual_clock=*/false);
  result.sample_rate_hz = FleetSampleRate(config) / devices;
  const int64_t rss_before = ResidentBytes();
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<DermaServer>> server = DermaServer::Start(config);
  if (!server.ok()) return server.status();
  result.startup = absl::Now() - start;
  const absl::Duration cpu_before = ProcessCpuTime();
  const absl::Time tick_start = absl::Now();
  absl::SleepFor(run);
  result.cores_used = absl::FDivDuration(ProcessCpuTime() - cpu_before, absl::Now() - tick_start);
  result.rss_added_bytes = ResidentBytes() - rss_before;
  return result;
}

}  // namespace derma::bench
