// SoakRunner: one soak run from start to verdict. Starts dermad on the soak fleet, reads the
// fleet, starts the client threads (telemetry subscribers, then command clients, each on its
// own channel), watches dermad (alive, VmRSS every few seconds, progress on stderr) until the
// duration has passed, stops the clients, cross-checks a final scrape against what the clients
// counted, stops dermad with SIGTERM and evaluates every check. Part of tests/soak.
// Not thread-safe: Run is called once, from main.
#ifndef DERMA_TESTS_SOAK_SOAK_RUNNER_H_
#define DERMA_TESTS_SOAK_SOAK_RUNNER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/soak/call_tally.h"
#include "tests/soak/control_client.h"
#include "tests/soak/dermad_process.h"
#include "tests/soak/metrics_scrape.h"
#include "tests/soak/report.h"
#include "tests/soak/rpc_caller.h"
#include "tests/soak/telemetry_subscriber.h"

namespace derma::soak {

struct SoakOptions {
  DermadOptions dermad;
  absl::Duration duration = absl::Minutes(2);
  absl::Duration warmup = absl::Minutes(1);  // its highest RSS is the growth check's baseline
  int clients = 50;
  int subscribers = 6;  // of the clients; even ones read fast, odd ones stall
  absl::Duration think = absl::Milliseconds(10);
  absl::Duration rpc_deadline = absl::Seconds(5);
  absl::Duration scrape_interval = absl::Milliseconds(500);
  // Subscribers re-subscribe after a life drawn from [0.5, 1.5] × this.
  absl::Duration stream_life = absl::Seconds(30);
  absl::Duration slow_read = absl::Seconds(2);
  absl::Duration slow_stall = absl::Seconds(12);
  absl::Duration shutdown_timeout = absl::Seconds(5);
  double rss_growth_fraction = 0.10;
  uint64_t rss_growth_bytes = 20 << 20;
  // Fail when GetDevice, right after WatchRun reported a run's end, still shows the run (the
  // device publishes its view before it announces a change). Off: reported only.
  bool strict_run_end_view = true;
  double deadline_per_100k = 1;  // DEADLINE_EXCEEDED budget per 100,000 calls
  uint64_t seed = 1;
};

class SoakRunner {
 public:
  // `interrupted` (set by a signal handler) ends the load early; the report still follows.
  SoakRunner(SoakOptions options, const std::atomic<bool>& interrupted)
      : options_(std::move(options)), interrupted_(interrupted) {}
  // The result and its checks; an error when dermad could not be started or its fleet read.
  absl::StatusOr<SoakResult> Run();

 private:
  // Everything one client thread owns.
  struct Client {
    CallTally tally;
    std::unique_ptr<RpcCaller> caller;
    std::unique_ptr<TelemetrySubscriber> subscriber;
    std::unique_ptr<ControlClient> control;
    bool slow = false;
    std::thread thread;
  };

  absl::Status LoadFleet();
  void StartClients();
  std::unique_ptr<Client> MakeSubscriber(int index);
  std::unique_ptr<Client> MakeControl(int index, int control_index, int controls);
  // Until the duration has passed or dermad died: RSS samples and progress lines.
  void Monitor(absl::Time start);
  void PrintProgress(absl::Duration elapsed, uint64_t recent_calls);
  void StopClients();
  void Collect();
  void CompareFinalScrape();
  void Shutdown();
  void AddChecks();
  void AddProcessChecks();
  void AddCallChecks();
  void AddTelemetryChecks();
  void AddCheck(std::string what, std::string measured, std::string bound, bool pass);

  const SoakOptions options_;
  const std::atomic<bool>& interrupted_;
  std::unique_ptr<DermadProcess> dermad_;
  std::vector<FleetDevice> fleet_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::unique_ptr<ScrapeGate> scrape_gate_;
  std::atomic<bool> stop_{false};
  absl::Time deadline_;
  CallTally setup_tally_;
  FailureLog failures_;
  LiveCounters live_;
  SoakResult result_;
  std::string dermad_death_;  // non-empty when dermad ended before SIGTERM
  std::string shutdown_outcome_;
  bool shutdown_ok_ = false;
  std::vector<std::string> metric_mismatches_;
  bool final_scrape_ok_ = false;
};

}  // namespace derma::soak

#endif  // DERMA_TESTS_SOAK_SOAK_RUNNER_H_
