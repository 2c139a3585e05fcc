// Big fleet: how long derma takes to create and start a fleet of many real-clock devices in
// this process, how much resident memory it adds once they tick, and how much CPU their
// ticking takes. Part of tests/bench.
#ifndef DERMA_TESTS_BENCH_BIG_FLEET_H_
#define DERMA_TESTS_BENCH_BIG_FLEET_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace derma::bench {

struct BigFleetResult {
  int devices = 0;
  double sample_rate_hz = 0;   // per device, from the fleet's models
  absl::Duration startup;      // Plugin::Create + serve + Start
  int64_t rss_added_bytes = 0;  // VmRSS after `run` minus VmRSS before Create
  double cores_used = 0;       // process CPU time / wall time while the devices ticked
};

// User + system CPU time this process has used so far.
absl::Duration ProcessCpuTime();

// Starts `devices` devices (half pens, half stimulators) on a real clock, lets them tick for
// `run`, then shuts them down.
absl::StatusOr<BigFleetResult> MeasureBigFleet(int devices, absl::Duration run);

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_BIG_FLEET_H_
