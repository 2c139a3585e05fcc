// EmergencyStop(all_devices) on a loaded fleet: the time inside the server from the request
// reaching its handler to the last output off (EmergencyStopTimes, read in-process around each
// call), the client-side response time in each response view, and whether every output was
// off when it returned. Part of tests/bench.
#ifndef DERMA_TESTS_BENCH_ESTOP_H_
#define DERMA_TESTS_BENCH_ESTOP_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "derma/v1/device_control.pb.h"
#include "tests/bench/fleet_load.h"
#include "tests/bench/table.h"

namespace derma::bench {

// The views measured, in the order calls cycle through them.
inline constexpr std::array<v1::StopResponseView, 3> kStopViews = {
    v1::STOP_RESPONSE_VIEW_FULL, v1::STOP_RESPONSE_VIEW_SUMMARY, v1::STOP_RESPONSE_VIEW_COUNT};

// "FULL", "SUMMARY", "COUNT".
std::string StopViewName(v1::StopResponseView view);

struct EstopResult {
  // In the server, request to last output off, every call but the first.
  Percentiles in_server;
  // Response time at the client per view (kStopViews order), every call but the first.
  std::array<Percentiles, kStopViews.size()> response;
  std::array<size_t, kStopViews.size()> response_bytes{};  // serialized size, last call
  // ListDevices of every device right after each stop: the same Devices as a FULL response
  // (built, encoded, sent and decoded) without the stop; after a COUNT call, also what the
  // safety check reads.
  Percentiles list_devices;
  // A bare gRPC Echo (other server, same client) made between the stops, under the same load:
  // what the machine itself gives any unary call while the streams saturate it.
  Percentiles echo_under_load;
  absl::Duration first;            // the first call (FULL), when every device was RUNNING
  absl::Duration first_in_server;  // ... and its time in the server
  int calls = 0;
  int restarted_per_call = 0;    // devices RUNNING again before each later call
  uint64_t devices_checked = 0;  // Device entries over all responses (or ListDevices after COUNT)
  uint64_t missing = 0;          // devices absent from a response
  uint64_t not_estopped = 0;     // entries not in state ESTOPPED
  uint64_t outputs_on = 0;       // entries whose latest_sample.output_on was true
  uint64_t bad_counts = 0;       // responses whose stopped_count was not every device
  uint64_t unrecorded = 0;       // calls after which the in-server count did not grow by one
};

struct EstopOptions {
  int calls = 150;  // cycling through kStopViews; the first is FULL
  int restart_per_call = 50;
  std::string echo_address;
  int echo_calls = 10;
};

// Calls EmergencyStop(all_devices) `calls` times. Before each call after the first,
// `restart_per_call` devices (a rotating subset) are reset and started again, so each call
// stops running outputs; and before each call, `echo_calls` bare Echo calls to the server at
// `echo_address`. Errors only when an RPC fails.
absl::StatusOr<EstopResult> MeasureEmergencyStop(LoadedFleet& fleet, const EstopOptions& options);

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_ESTOP_H_
