// Telemetry throughput: samples per second through derma's StreamTelemetry (synthetic samples
// published straight into the fan-out, so the stream path is measured rather than device tick
// rates), the same for a bare gRPC stream of identical SampleBatch bytes, and the
// device-driven case (a real-clock fleet's own samples, counted per subscriber with drops).
// Part of tests/bench.
#ifndef DERMA_TESTS_BENCH_THROUGHPUT_H_
#define DERMA_TESTS_BENCH_THROUGHPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/bench/derma_server.h"
#include "tests/bench/fleet_load.h"
#include "tests/bench/synthetic_samples.h"

namespace derma::bench {

struct StreamRates {
  std::vector<double> per_stream;  // samples/s received by each client
  double total = 0;
  double samples_per_batch = 0;  // average over the window
  uint64_t dropped = 0;          // dropped_samples reported during the window
};

struct SyntheticOptions {
  int subscribers = 1;
  int producers = 1;
  // Samples the producers may run ahead of the slowest subscriber (below the stream's buffer,
  // so the rate measured is what the stream carries, not what it drops).
  uint64_t flow_window = 32768;
  absl::Duration warmup = absl::Milliseconds(300);
  absl::Duration window = absl::Seconds(3);
};

// `derma` must serve a virtual-clock fleet (nothing else publishes) that `samples` describes.
absl::StatusOr<StreamRates> MeasureSyntheticTelemetry(DermaServer& derma, SyntheticSamples& samples,
                                                      const SyntheticOptions& options);

// `streams` clients of the echo server's StreamBatches, reading flat out.
absl::StatusOr<StreamRates> MeasureBareStream(const std::string& echo_address, int streams,
                                              absl::Duration warmup, absl::Duration window);

struct DeviceTelemetryResult {
  absl::Duration window;
  std::vector<uint64_t> received;  // samples per subscriber during the window
  uint64_t made = 0;               // samples the devices made during the window
  double nominal = 0;              // devices × sample rate × window
  uint64_t dropped = 0;            // dropped_samples reported during the window, all subscribers
  uint64_t unexplained_gaps = 0;   // missing sequence numbers not covered by dropped_samples
  double cores_used = 0;  // the whole bench process (devices, service, readers) in the window
};

// Counts what the fleet's own streams receive during `window`, after `warmup` (which lets the
// streams work off what queued while they were opened).
absl::StatusOr<DeviceTelemetryResult> MeasureDeviceTelemetry(LoadedFleet& fleet,
                                                             absl::Duration warmup,
                                                             absl::Duration window);

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_THROUGHPUT_H_
