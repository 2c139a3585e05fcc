// PenClient: one connection to a derma server that holds a pen's lease and calls GetDevice and
// Configure on it, each call bounded by the bench's deadline. Part of tests/bench. Not
// thread-safe: one per client thread.
#ifndef DERMA_TESTS_BENCH_PEN_CLIENT_H_
#define DERMA_TESTS_BENCH_PEN_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "derma/v1/device_control.grpc.pb.h"

namespace derma::bench {

class PenClient {
 public:
  // A channel of its own to `derma_address`; `pen` is "devices/{id}" of a microneedling pen.
  PenClient(const std::string& derma_address, std::string pen);

  absl::Status AcquireLease();
  // Renews the lease when it was taken or renewed more than 10 s ago (its TTL is 60 s).
  absl::Status RenewLeaseIfOld();
  void ReleaseLease();

  // GetDevice of the pen; an error if the answer names another device.
  absl::Status GetDevice();
  // Configure under the lease, alternating two depths so every call changes the applied
  // settings; an error if the applied depth is not the one asked for.
  absl::Status Configure();

 private:
  std::unique_ptr<v1::DeviceControl::Stub> derma_;
  const std::string pen_;
  std::string lease_id_;
  absl::Time renewed_;
  uint64_t configure_calls_ = 0;
};

}  // namespace derma::bench

#endif  // DERMA_TESTS_BENCH_PEN_CLIENT_H_
