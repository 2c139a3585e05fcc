// Fleet configs derma_bench runs derma with. Part of tests/bench. Thread-safe (pure functions).
#ifndef DERMA_TESTS_BENCH_FLEETS_H_
#define DERMA_TESTS_BENCH_FLEETS_H_

#include <string>

#include "absl/status/statusor.h"
#include "derma/config/v1/config.pb.h"

namespace derma::bench {

// `devices` devices like deploy/fleet-1000.textproto: pens "pen-1"… (DP-100) first, then
// stimulators "stim-1"… (MC-10), half each (one more pen when odd). Real clock unless
// `virtual_clock` (then nothing ticks: samples come only from whoever publishes them).
config::v1::FleetConfig MakeFleet(int devices, bool virtual_clock);

// Loads and validates a fleet config file.
absl::StatusOr<config::v1::FleetConfig> LoadFleet(const std::string& path);

// Samples per second the fleet's devices make (devices × sample rate × speed factor).
double FleetSampleRate(const config::v1::FleetConfig& config);

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_FLEETS_H_
