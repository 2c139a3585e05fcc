// LoadedFleet: derma serving a large real-clock fleet (deploy/fleet-1000.textproto) with every
// device leased and RUNNING, and N StreamTelemetry clients (every device, every sample)
// reading flat out: the setting of the EmergencyStop and device-driven telemetry rows.
// Part of tests/bench. Not thread-safe (one bench thread drives it; readers run their own).
#ifndef DERMA_TESTS_BENCH_FLEET_LOAD_H_
#define DERMA_TESTS_BENCH_FLEET_LOAD_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "derma/config/v1/config.pb.h"
#include "derma/v1/device_control.grpc.pb.h"
#include "tests/bench/derma_server.h"
#include "tests/bench/stream_reader.h"

namespace derma::bench {

class LoadedFleet {
 public:
  // Serves `config`, leases and starts every device, opens `streams` telemetry streams and
  // waits until each has passed its snapshots.
  static absl::StatusOr<std::unique_ptr<LoadedFleet>> Start(const config::v1::FleetConfig& config,
                                                            int streams,
                                                            PluginOptions options = {});
  ~LoadedFleet();  // streams, then derma

  v1::DeviceControl::Stub& stub() { return *stub_; }
  // The plugin under test (for in-process readings such as its EmergencyStopTimes).
  Plugin& plugin() { return server_->plugin(); }
  // Device names in ListDevices order.
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<std::unique_ptr<StreamReader>>& readers() const { return readers_; }
  // Samples per second the fleet's devices make.
  double sample_rate() const { return sample_rate_; }

  // Samples the devices have made so far: the sum of their latest sample sequence numbers.
  absl::StatusOr<uint64_t> SamplesMade();
  // ESTOPPED → IDLE → RUNNING for device `i` (by names() index), with its lease.
  absl::Status Restart(size_t i);
  // Renews every lease once the oldest is half its TTL old (not a measured call).
  absl::Status RenewLeasesIfOld();
  // Cancels the streams; the first stream error, if any.
  absl::Status StopStreams();

 private:
  LoadedFleet() = default;
  absl::StatusOr<v1::ListDevicesResponse> ListAll();
  absl::Status LeaseAndStartAll();
  absl::Status OpenStreams(int streams);

  std::unique_ptr<DermaServer> server_;
  std::unique_ptr<v1::DeviceControl::Stub> stub_;
  std::vector<std::string> names_;
  std::vector<std::string> lease_ids_;
  absl::Time leased_;
  double sample_rate_ = 0;
  std::vector<std::unique_ptr<StreamReader>> readers_;
};

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_FLEET_LOAD_H_
