// ControlClient: one of the soak's command clients, on its own channel. Until the soak ends it
// picks, at random with fixed weights: a leased session on one of its home devices, or on any
// device (contending with that device's owner), a Stop of another client's device (no lease
// needed, so it interrupts sessions), GetDevice, ListDevices (whole or paged), ListRuns, GetRun
// of one of its runs, and, when the shared scrape interval has passed, a Prometheus scrape of
// /metrics. Each read is checked (names, order, every device up). Part of tests/soak.
// Not thread-safe: runs on the thread that calls Run; ScrapeGate is shared and thread-safe.
#ifndef DERMA_TESTS_SOAK_CONTROL_CLIENT_H_
#define DERMA_TESTS_SOAK_CONTROL_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tests/soak/device_sessions.h"
#include "tests/soak/rpc_caller.h"

namespace derma::soak {

// Lets one client at a time scrape, at most once per interval across all clients (as one
// Prometheus server would).
class ScrapeGate {
 public:
  explicit ScrapeGate(absl::Duration interval) : interval_ns_(absl::ToInt64Nanoseconds(interval)) {}
  bool TryTake(absl::Time now);

 private:
  const int64_t interval_ns_;
  std::atomic<int64_t> next_ns_{0};
};

struct ReadCounts {
  uint64_t scrapes = 0;
  uint64_t scrape_bytes = 0;
  uint64_t scrape_series = 0;
  uint64_t contender_stops = 0;
  uint64_t foreign_sessions = 0;
  void Add(const ReadCounts& other);
};

struct ControlOptions {
  std::string label;
  const std::vector<FleetDevice>* fleet = nullptr;
  std::vector<size_t> home;                       // indexes into *fleet
  absl::Duration think = absl::Milliseconds(10);  // mean pause between actions
  int metrics_port = 0;
  uint64_t seed = 1;
};

class ControlClient {
 public:
  ControlClient(RpcCaller& caller, ControlOptions options, ScrapeGate& scrapes);

  void Run(const std::atomic<bool>& stop, absl::Time deadline);
  const SessionCounts& sessions() const { return sessions_.counts(); }
  const ReadCounts& reads() const { return reads_; }

 private:
  void Step();
  const FleetDevice& AnyDevice();
  void GetDevice();
  void ListDevices();
  void ListRuns();
  void GetRun();
  void Scrape();
  void InterfereStop();

  RpcCaller& caller_;
  const ControlOptions options_;
  ScrapeGate& scrapes_;
  std::mt19937_64 random_;
  DeviceSessions sessions_;
  ReadCounts reads_;
};

}  // namespace derma::soak

#endif  // DERMA_TESTS_SOAK_CONTROL_CLIENT_H_
