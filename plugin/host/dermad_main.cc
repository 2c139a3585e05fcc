// dermad: the derma host. Today it runs the fleet in the console: it loads the fleet config,
// starts the simulated devices, keeps them busy with a demo program (unless --demo=false) and
// prints a live telemetry table. SIGINT/SIGTERM stop every output and exit 0. Bad config:
// message naming the file, line and field, exit code 2, nothing started.
#include <atomic>
#include <csignal>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "plugin/core/state_machine.h"
#include "plugin/host/config_loader.h"
#include "plugin/host/console_demo.h"
#include "plugin/host/fleet.h"

ABSL_FLAG(std::string, config, "deploy/fleet.textproto", "Fleet config file (text format or JSON)");
ABSL_FLAG(bool, demo, true, "Keep every device busy with a two-step demo program");
ABSL_FLAG(double, print_interval_s, 1.0, "Seconds between telemetry tables (0 = print none)");
ABSL_FLAG(double, duration_s, 0, "Exit after this many seconds (0 = run until a signal)");

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

bool SleepUnlessStopped(absl::Duration d) {
  const absl::Time until = absl::Now() + d;
  while (!g_stop.load() && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
  return !g_stop.load();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("dermad --config=FILE: run a derma device fleet");
  absl::ParseCommandLine(argc, argv);
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<derma::config::v1::FleetConfig> config = derma::host::LoadFleetConfig(path);
  absl::StatusOr<std::unique_ptr<derma::host::Fleet>> fleet =
      config.ok() ? derma::host::Fleet::Create(*config) : config.status();
  if (!fleet.ok()) {
    absl::FPrintF(stderr, "dermad: bad config %s: %s\n", path, fleet.status().message());
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  (*fleet)->Start();
  absl::FPrintF(stdout, "dermad: %d simulated devices from %s; Ctrl-C stops every output\n",
                (*fleet)->devices().size(), path);
  derma::host::ConsoleDemo demo(**fleet);
  const double interval_s = absl::GetFlag(FLAGS_print_interval_s);
  const absl::Duration interval = absl::Seconds(interval_s > 0 ? interval_s : 1);
  const double duration_s = absl::GetFlag(FLAGS_duration_s);
  const absl::Time deadline =
      duration_s > 0 ? absl::Now() + absl::Seconds(duration_s) : absl::InfiniteFuture();
  while (!g_stop.load() && absl::Now() < deadline) {
    if (absl::GetFlag(FLAGS_demo)) demo.Step();
    if ((*fleet)->clock().IsVirtual()) {
      (*fleet)->simulator().AdvanceClock(absl::ToDoubleSeconds(interval), [](auto) {});
    }
    if (interval_s > 0) {
      absl::FPrintF(stdout, "\n%s", derma::host::FormatFleetTable(**fleet));
      std::fflush(stdout);
    }
    SleepUnlessStopped(interval);
  }
  (*fleet)->Shutdown();
  absl::FPrintF(stdout, "\ndermad: stopped; every output is off\n%s",
                derma::host::FormatFleetTable(**fleet));
  return 0;
}
