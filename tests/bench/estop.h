// EmergencyStop(all_devices) latency on a loaded fleet, and whether every output was off when
// it returned. Part of tests/bench.
#ifndef DERMA_TESTS_BENCH_ESTOP_H_
#define DERMA_TESTS_BENCH_ESTOP_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/bench/fleet_load.h"
#include "tests/bench/table.h"

namespace derma::bench {

struct EstopResult {
  Percentiles latency;  // every call
  // ListDevices of every device right after each stop: the same response (every Device, built,
  // encoded, sent and decoded) without the stop, to tell the two costs apart.
  Percentiles list_devices;
  // A bare gRPC Echo (other server, same client) made between the stops, under the same load:
  // what the machine itself gives any unary call while the streams saturate it.
  Percentiles echo_under_load;
  absl::Duration first;  // the first call, when every device was RUNNING
  int calls = 0;
  int restarted_per_call = 0;    // devices RUNNING again before each later call
  uint64_t devices_checked = 0;  // Device entries over all responses
  uint64_t missing = 0;          // devices absent from a response
  uint64_t not_estopped = 0;     // entries not in state ESTOPPED
  uint64_t outputs_on = 0;       // entries whose latest_sample.output_on was true
  size_t response_bytes = 0;     // serialized size of the last response
};

// Calls EmergencyStop(all_devices) `calls` times. Before each call after the first,
// `restart_per_call` devices (a rotating subset) are reset and started again, so each call
// stops running outputs; and before each call, `echo_calls` bare Echo calls to the server at
// `echo_address`. Errors only when an RPC fails.
absl::StatusOr<EstopResult> MeasureEmergencyStop(LoadedFleet& fleet, int calls,
                                                 int restart_per_call,
                                                 const std::string& echo_address, int echo_calls);

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_ESTOP_H_
