// derma_soak: a bounded soak of the real dermad binary. Starts dermad on a fleet of 100
// simulated devices (real clock), drives it with 50 client threads, each on its own channel —
// telemetry subscribers (fast readers, and slow ones that stall so samples are dropped) and
// command clients mixing leases, Configure, Start/Pause/Resume/Stop, EmergencyStop, watched
// treatment programs, reads and Prometheus scrapes, contending for devices on purpose — for a
// fixed time, then prints one report and exits 0 only if every check passed: no status outside
// the expected table (expected_errors.cc), no lost telemetry event or sample, dermad alive with
// bounded memory growth, server metrics equal to the clients' counts, and a clean exit 0 on
// SIGTERM. Part of tests/soak.
//
//   cmake --build build -j2 --target derma_soak dermad
//   build/tests/soak/derma_soak --dermad=build/plugin/host/dermad --duration_s=3600
//
// ctest runs it for 2 minutes (label soak). Exit codes: 0 pass, 1 a check failed, 2 usage or
// dermad could not be started.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/soak/soak_runner.h"

ABSL_FLAG(std::string, dermad, "", "Path to the dermad binary (required).");
ABSL_FLAG(std::string, fleet, DERMA_SOAK_DEFAULT_FLEET, "Fleet config dermad serves.");
ABSL_FLAG(std::vector<std::string>, dermad_args, {},
          "More dermad flags, comma-separated (e.g. --executor... as dermad takes them).");
ABSL_FLAG(std::string, audit_db, "auto",
          "dermad --audit_db: 'auto' passes a file in a fresh temporary directory when dermad "
          "has the flag, 'none' passes nothing, anything else is the path.");
ABSL_FLAG(double, duration_s, 120, "Seconds of load (CI: 120; the documented soak: 3600).");
ABSL_FLAG(double, warmup_s, -1,
          "Seconds of load whose highest dermad RSS is the baseline of the growth check (-1: half "
          "the duration).");
ABSL_FLAG(int, clients, 50, "Client threads, each with its own channel.");
ABSL_FLAG(int, subscribers, 6, "Of the clients, telemetry subscribers (half of them slow).");
ABSL_FLAG(double, think_ms, 10, "Mean pause of a command client between actions.");
ABSL_FLAG(double, rpc_deadline_s, 5, "Deadline of every unary call.");
ABSL_FLAG(double, scrape_interval_s, 0.5, "Least time between two metrics scrapes (all clients).");
ABSL_FLAG(double, stream_life_s, 30,
          "Mean life of a telemetry subscription before its client subscribes again (each life is "
          "drawn from 0.5-1.5 times this).");
ABSL_FLAG(double, slow_read_s, 2, "Slow subscribers read this long between stalls.");
ABSL_FLAG(double, slow_stall_s, 12, "Slow subscribers stop reading this long.");
ABSL_FLAG(double, rss_growth_percent, 10, "Allowed RSS growth: this percent of the baseline...");
ABSL_FLAG(double, rss_growth_mib, 20, "... plus this many MiB.");
ABSL_FLAG(double, deadline_exceeded_per_100k, 1, "DEADLINE_EXCEEDED budget per 100,000 calls.");
ABSL_FLAG(double, shutdown_timeout_s, 5, "dermad must exit 0 this soon after SIGTERM.");
ABSL_FLAG(bool, strict_run_end_view, true,
          "Fail when GetDevice still shows a run that WatchRun reported ended (the device "
          "publishes its view before it announces a change); false: reported only.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of every client's choices.");

namespace {

std::atomic<bool> g_interrupted{false};

void OnSignal(int) { g_interrupted.store(true); }

// True when `dermad --helpfull` lists the flag.
bool DermadHasFlag(const std::string& dermad, const std::string& flag) {
  const std::string command = absl::StrCat("'", dermad, "' --helpfull 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return false;
  std::string help;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) help.append(buffer, n);
  pclose(pipe);
  return absl::StrContains(help, absl::StrCat("-", flag, " "));
}

// A fresh temporary directory (removed by the caller), or "" when none could be made.
std::string MakeTempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/derma_soak.XXXXXX");
  return mkdtemp(pattern.data()) != nullptr ? pattern : "";
}

derma::soak::SoakOptions OptionsFromFlags(const std::string& temp_dir) {
  derma::soak::SoakOptions o;
  o.dermad.binary = absl::GetFlag(FLAGS_dermad);
  o.dermad.config = absl::GetFlag(FLAGS_fleet);
  o.dermad.extra = absl::GetFlag(FLAGS_dermad_args);
  const std::string audit = absl::GetFlag(FLAGS_audit_db);
  if (audit == "auto" && !temp_dir.empty() && DermadHasFlag(o.dermad.binary, "audit_db")) {
    o.dermad.extra.push_back(absl::StrCat("--audit_db=", temp_dir, "/audit.db"));
  } else if (audit != "auto" && audit != "none") {
    o.dermad.extra.push_back(absl::StrCat("--audit_db=", audit));
  }
  o.duration = absl::Seconds(absl::GetFlag(FLAGS_duration_s));
  const double warmup_s = absl::GetFlag(FLAGS_warmup_s);
  o.warmup = warmup_s >= 0 ? absl::Seconds(warmup_s) : o.duration / 2;
  o.clients = absl::GetFlag(FLAGS_clients);
  o.subscribers = absl::GetFlag(FLAGS_subscribers);
  o.think = absl::Milliseconds(absl::GetFlag(FLAGS_think_ms));
  o.rpc_deadline = absl::Seconds(absl::GetFlag(FLAGS_rpc_deadline_s));
  o.scrape_interval = absl::Seconds(absl::GetFlag(FLAGS_scrape_interval_s));
  o.stream_life = absl::Seconds(absl::GetFlag(FLAGS_stream_life_s));
  o.slow_read = absl::Seconds(absl::GetFlag(FLAGS_slow_read_s));
  o.slow_stall = absl::Seconds(absl::GetFlag(FLAGS_slow_stall_s));
  o.rss_growth_fraction = absl::GetFlag(FLAGS_rss_growth_percent) / 100;
  o.rss_growth_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_rss_growth_mib) * (1 << 20));
  o.deadline_per_100k = absl::GetFlag(FLAGS_deadline_exceeded_per_100k);
  o.shutdown_timeout = absl::Seconds(absl::GetFlag(FLAGS_shutdown_timeout_s));
  o.strict_run_end_view = absl::GetFlag(FLAGS_strict_run_end_view);
  o.seed = absl::GetFlag(FLAGS_seed);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "derma_soak --dermad=PATH [--duration_s=3600]: soak a real dermad with 50 clients");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_dermad).empty() || absl::GetFlag(FLAGS_clients) < 2 ||
      absl::GetFlag(FLAGS_duration_s) <= 0) {
    std::cerr << "derma_soak: --dermad is required; --clients >= 2, --duration_s > 0\n";
    return 2;
  }
  const std::string temp_dir = MakeTempDir();
  // SIGINT/SIGTERM end the load early: dermad is still stopped, the report still printed.
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  derma::soak::SoakRunner runner(OptionsFromFlags(temp_dir), g_interrupted);
  absl::StatusOr<derma::soak::SoakResult> result = runner.Run();
  if (!temp_dir.empty()) std::system(absl::StrCat("rm -rf '", temp_dir, "'").c_str());
  if (!result.ok()) {
    std::cerr << "derma_soak: " << result.status().message() << "\n";
    return 2;
  }
  derma::soak::PrintReport(*result, std::cout);
  for (const derma::soak::Check& check : result->checks) {
    if (!check.pass) return 1;
  }
  return 0;
}
