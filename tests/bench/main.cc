// derma_bench: measures derma against a bare gRPC server in one run and prints one table:
// unary latency (GetDevice, Configure vs a bare echo), EmergencyStop(all) on a 1000-device
// fleet under telemetry load (its time in the server to the last output off, its response in each
// view against a bare echo under the same load, with and without the audit trail, and that every
// output was off when it returned), and telemetry
// throughput (synthetic and device-driven) beside a bare stream of the same bytes. Goals are
// reported, not asserted: the exit status is non-zero only when something broke (an RPC
// failed, or an output was on after EmergencyStop). Part of tests/bench.
//
//   cmake --build build -j2 --target derma_bench && build/tests/bench/derma_bench [--quick]
//
// The full run takes about two minutes on 2 cores; --quick about 10 s (ctest derma_bench_smoke).
#include <stdlib.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "tests/bench/audit_latency.h"
#include "tests/bench/big_fleet.h"
#include "tests/bench/derma_server.h"
#include "tests/bench/echo_server.h"
#include "tests/bench/estop.h"
#include "tests/bench/fleet_load.h"
#include "tests/bench/fleets.h"
#include "tests/bench/latency.h"
#include "tests/bench/report.h"
#include "tests/bench/scrape.h"
#include "tests/bench/synthetic_samples.h"
#include "tests/bench/throughput.h"

ABSL_FLAG(bool, quick, false,
          "Short smoke run for CI: small counts and durations for every flag below not given "
          "another value.");
ABSL_FLAG(int, latency_calls, 2000, "Measured calls per unary method.");
ABSL_FLAG(int, latency_warmup, 200, "Unmeasured calls per unary method before measuring.");
ABSL_FLAG(int, latency_devices, 4, "Devices of the (real-clock) fleet the latency rows use.");
ABSL_FLAG(std::string, fleet, DERMA_BENCH_DEFAULT_FLEET,
          "Fleet config of the EmergencyStop and device-driven telemetry rows.");
ABSL_FLAG(int, streams, 4, "Telemetry subscribers (and bare stream clients) of the 'many' rows.");
ABSL_FLAG(int, estop_calls, 151,
          "EmergencyStop(all_devices) calls measured, cycling through the FULL, SUMMARY and COUNT "
          "views (the first, with every device RUNNING, has its own row).");
ABSL_FLAG(int, estop_echo_calls, 10,
          "Bare Echo calls before each EmergencyStop(all_devices) call, under the same load.");
ABSL_FLAG(int, estop_audit_calls, 61,
          "EmergencyStop(all_devices) calls of the audit-trail rows (a second loaded fleet).");
ABSL_FLAG(std::vector<std::string>, sections,
          std::vector<std::string>({"big", "audit", "loaded", "loaded-audit", "throughput",
                                    "scrape"}),
          "Sections to run besides the unary latency rows, which always run (they are the "
          "baseline): big (10,000 devices), audit (Configure with the audit trail), loaded "
          "(EmergencyStop(all) and device-driven telemetry), loaded-audit (EmergencyStop(all) "
          "with the audit trail), throughput (StreamTelemetry vs a bare stream), scrape "
          "(metrics).");
ABSL_FLAG(int, estop_restart, 50, "Devices reset and started again before each later call.");
ABSL_FLAG(double, device_window_s, 5, "Seconds the device-driven telemetry is counted.");
ABSL_FLAG(int, synthetic_devices, 1000, "Devices of the virtual fleet synthetic samples use.");
ABSL_FLAG(int, producers, 1, "Threads publishing synthetic samples.");
ABSL_FLAG(int, flow_window, 32768, "Samples producers may run ahead of the slowest subscriber.");
ABSL_FLAG(int, batch_samples, 4096, "Samples per SampleBatch of the bare stream.");
ABSL_FLAG(double, throughput_window_s, 3, "Seconds each throughput rate is measured.");
ABSL_FLAG(bool, mutex_deadlock_detection, false,
          "Keep abseil's absl::Mutex lock-order checker on (Debian's abseil turns it on; dermad "
          "turns it off unless --mutex_deadlock_detection, the test suites keep it on). false, "
          "the default, measures derma as dermad runs.");
ABSL_FLAG(bool, echo_interceptor, false,
          "Give the bare echo server derma's gRPC metrics interceptor too (diagnosis: how much of "
          "derma's unary ratios the interceptor accounts for).");
ABSL_FLAG(int, scrapes, 20, "Metrics scrapes measured per fleet size (100, 1000, 10000 devices).");
ABSL_FLAG(double, warmup_s, 0.3, "Seconds each stream runs before its rate is measured.");
ABSL_FLAG(int, stream_thread_nice, derma::PluginOptions().stream_thread_nice,
          "PluginOptions::stream_thread_nice of the loaded fleet (0: telemetry encoding at the "
          "same priority as devices and commands).");

namespace derma::bench {

// Progress on stderr (the table goes to stdout), with seconds since the run began.
void Progress(absl::string_view what) {
  static const absl::Time start = absl::Now();
  std::cerr << absl::StreamFormat("derma_bench [%5.1f s] %s\n",
                                  absl::ToDoubleSeconds(absl::Now() - start), what);
}

namespace {

struct Settings {
  LatencyOptions latency;
  int latency_devices;
  std::string fleet;
  int streams;
  int estop_calls;
  int estop_restart;
  int estop_echo_calls;
  int estop_audit_calls;
  absl::flat_hash_set<std::string> sections;
  absl::Duration device_warmup;
  absl::Duration device_window;
  int synthetic_devices;
  SyntheticOptions synthetic;
  int batch_samples;
};

// The flag's value; with --quick, `quick_value` unless the flag was given another value.
template <typename T>
T Pick(const absl::Flag<T>& flag, T quick_value) {
  const absl::CommandLineFlag& handle = absl::GetFlagReflectionHandle(flag);
  if (!absl::GetFlag(FLAGS_quick) || handle.CurrentValue() != handle.DefaultValue()) {
    return absl::GetFlag(flag);
  }
  return quick_value;
}

constexpr absl::string_view kSections[] = {"big",          "audit",      "loaded",
                                           "loaded-audit", "throughput", "scrape"};

absl::StatusOr<Settings> SettingsFromFlags() {
  Settings s;
  s.latency = {.calls = Pick(FLAGS_latency_calls, 200), .warmup = Pick(FLAGS_latency_warmup, 50)};
  s.latency_devices = absl::GetFlag(FLAGS_latency_devices);
  s.fleet = absl::GetFlag(FLAGS_fleet);
  s.streams = absl::GetFlag(FLAGS_streams);
  s.estop_calls = Pick(FLAGS_estop_calls, 7);
  s.estop_audit_calls = Pick(FLAGS_estop_audit_calls, 4);
  s.estop_restart = Pick(FLAGS_estop_restart, 10);
  s.estop_echo_calls = Pick(FLAGS_estop_echo_calls, 5);
  const std::vector<std::string> sections = absl::GetFlag(FLAGS_sections);
  for (const std::string& section : sections) {
    if (!absl::c_linear_search(kSections, section)) {
      return absl::InvalidArgumentError(absl::StrCat("--sections: no section \"", section,
                                                     "\" (known: ", absl::StrJoin(kSections, ", "),
                                                     ")"));
    }
    s.sections.insert(section);
  }
  s.device_warmup = absl::Seconds(absl::GetFlag(FLAGS_quick) ? 0.2 : 1);
  s.device_window = absl::Seconds(Pick(FLAGS_device_window_s, 0.5));
  s.synthetic_devices = absl::GetFlag(FLAGS_synthetic_devices);
  s.synthetic = {.producers = absl::GetFlag(FLAGS_producers),
                 .flow_window = static_cast<uint64_t>(absl::GetFlag(FLAGS_flow_window)),
                 .warmup = absl::Seconds(Pick(FLAGS_warmup_s, 0.1)),
                 .window = absl::Seconds(Pick(FLAGS_throughput_window_s, 0.5))};
  s.batch_samples = absl::GetFlag(FLAGS_batch_samples);
  if (s.latency.calls < 1 || s.latency.warmup < 0 || s.latency_devices < 1 || s.streams < 1 ||
      s.estop_calls < 1 || s.estop_audit_calls < 1 || s.estop_restart < 0 ||
      s.estop_echo_calls < 0 || s.synthetic_devices < 1 || s.synthetic.producers < 1 ||
      s.synthetic.flow_window < 256 || s.batch_samples < 1) {
    return absl::InvalidArgumentError("every count must be positive (flow_window ≥ 256)");
  }
  return s;
}

absl::Status MeasureThroughput(const Settings& s, const EchoServer& echo, Report& report) {
  const config::v1::FleetConfig config = MakeFleet(s.synthetic_devices, /*virtual_clock=*/true);
  SyntheticSamples samples(config);
  ThroughputResults t;
  Progress("bare gRPC stream, 1 client");
  absl::StatusOr<StreamRates> rates =
      MeasureBareStream(echo.address(), 1, s.synthetic.warmup, s.synthetic.window);
  if (!rates.ok()) return rates.status();
  t.bare_one = *rates;
  Progress(absl::StrCat("bare gRPC stream, ", s.streams, " clients"));
  rates = MeasureBareStream(echo.address(), s.streams, s.synthetic.warmup, s.synthetic.window);
  if (!rates.ok()) return rates.status();
  t.bare_many = *rates;

  absl::StatusOr<std::unique_ptr<DermaServer>> derma = DermaServer::Start(config);
  if (!derma.ok()) return derma.status();
  SyntheticOptions options = s.synthetic;
  options.subscribers = 1;
  Progress("StreamTelemetry (synthetic samples), 1 subscriber");
  rates = MeasureSyntheticTelemetry(**derma, samples, options);
  if (!rates.ok()) return rates.status();
  t.derma_one = *rates;
  options.subscribers = s.streams;
  Progress(absl::StrCat("StreamTelemetry (synthetic samples), ", s.streams, " subscribers"));
  rates = MeasureSyntheticTelemetry(**derma, samples, options);
  if (!rates.ok()) return rates.status();
  t.derma_many = *rates;
  report.AddThroughput(t);
  return absl::OkStatus();
}

struct LoadedFleetResults {
  EstopResult estop;
  DeviceTelemetryResult telemetry;
  size_t devices = 0;
  double sample_rate_hz = 0;  // per device
};

EstopOptions EstopOptionsFor(const Settings& s, int calls, const std::string& echo_address) {
  return {.calls = calls,
          .restart_per_call = s.estop_restart,
          .echo_address = echo_address,
          .echo_calls = s.estop_echo_calls};
}

absl::StatusOr<LoadedFleetResults> MeasureLoadedFleet(const Settings& s,
                                                      const config::v1::FleetConfig& config,
                                                      const std::string& echo_address) {
  Progress(absl::StrCat("loading ", s.fleet, ": lease and start every device, open ", s.streams,
                        " telemetry streams"));
  PluginOptions options;
  options.stream_thread_nice = absl::GetFlag(FLAGS_stream_thread_nice);
  absl::StatusOr<std::unique_ptr<LoadedFleet>> fleet =
      LoadedFleet::Start(config, s.streams, options);
  if (!fleet.ok()) return fleet.status();
  LoadedFleetResults results;
  results.devices = (*fleet)->names().size();
  results.sample_rate_hz = (*fleet)->sample_rate() / results.devices;
  Progress("device-driven telemetry");
  absl::StatusOr<DeviceTelemetryResult> telemetry =
      MeasureDeviceTelemetry(**fleet, s.device_warmup, s.device_window);
  if (!telemetry.ok()) return telemetry.status();
  results.telemetry = *telemetry;
  Progress("EmergencyStop(all_devices)");
  absl::StatusOr<EstopResult> estop =
      MeasureEmergencyStop(**fleet, EstopOptionsFor(s, s.estop_calls, echo_address));
  if (!estop.ok()) return estop.status();
  results.estop = *estop;
  if (absl::Status status = (*fleet)->StopStreams(); !status.ok()) return status;
  return results;
}

// EmergencyStop(all) on the loaded fleet again, with an audit trail in a temporary directory:
// the response then waits for the stop's record to be durable.
absl::Status MeasureAuditedEstop(const Settings& s, const config::v1::FleetConfig& config,
                                 const std::string& echo_address, Report& report) {
  std::string dir = (std::filesystem::temp_directory_path() / "derma-bench-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) return absl::InternalError("cannot make a temp directory");
  PluginOptions options;
  options.stream_thread_nice = absl::GetFlag(FLAGS_stream_thread_nice);
  options.audit_db = dir + "/audit.db";
  absl::StatusOr<EstopResult> estop;
  size_t devices = 0;
  {
    Progress(absl::StrCat("loading ", s.fleet, " with the audit trail"));
    absl::StatusOr<std::unique_ptr<LoadedFleet>> fleet =
        LoadedFleet::Start(config, s.streams, options);
    if (!fleet.ok()) return fleet.status();
    devices = (*fleet)->names().size();
    Progress("EmergencyStop(all_devices) with the audit trail");
    estop = MeasureEmergencyStop(**fleet, EstopOptionsFor(s, s.estop_audit_calls, echo_address));
  }
  std::filesystem::remove_all(dir);
  if (!estop.ok()) return estop.status();
  report.AddAuditedEstop(*estop, devices, s.streams);
  return absl::OkStatus();
}

// Configure latency of a plugin with an audit trail in a temporary directory: one client
// (interleaved with echo, as the other unary rows), then kAuditClients clients at once, each on
// its own pen; the floor, fdatasync in the same directory, is measured before and after.
absl::Status MeasureAuditedConfigure(const Settings& s, const std::string& echo_address,
                                     Report& report) {
  std::string dir = (std::filesystem::temp_directory_path() / "derma-bench-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) return absl::InternalError("cannot make a temp directory");
  PluginOptions options;
  options.audit_db = dir + "/audit.db";
  absl::StatusOr<LatencyResult> latency;
  absl::StatusOr<ConcurrentConfigureResult> concurrent;
  std::vector<absl::Duration> fsync, paced_fsync;
  absl::Status fsync_before = MeasureFdatasync(dir, s.latency.calls / 4, fsync);
  absl::Status paced_before = MeasureFdatasync(dir, s.latency.calls / 4, paced_fsync, echo_address);
  DurationHistogram::Totals commits_before, commits_after;
  {
    absl::StatusOr<std::unique_ptr<DermaServer>> derma = DermaServer::Start(
        MakeFleet(std::max(s.latency_devices, 2 * kAuditClients), /*virtual_clock=*/false),
        options);
    if (!derma.ok()) return derma.status();
    Progress("unary latency with the audit trail");
    const AuditTrail& trail = *(*derma)->plugin().audit_trail();
    commits_before = trail.commit_times().totals();
    latency = MeasureLatency(echo_address, (*derma)->address(), "devices/pen-1", s.latency);
    commits_after = trail.commit_times().totals();
    Progress(absl::StrCat(kAuditClients, " clients configuring with the audit trail"));
    std::vector<std::string> pens;
    for (int i = 1; i <= kAuditClients; ++i) pens.push_back(absl::StrCat("devices/pen-", i));
    if (latency.ok()) {
      concurrent =
          MeasureConcurrentConfigure((*derma)->address(), pens, s.latency.warmup,
                                     s.latency.calls / 2, *(*derma)->plugin().audit_trail());
    }
  }
  absl::Status fsync_after = MeasureFdatasync(dir, s.latency.calls / 4, fsync);
  absl::Status paced_after = MeasureFdatasync(dir, s.latency.calls / 4, paced_fsync, echo_address);
  std::filesystem::remove_all(dir);
  for (const absl::Status& status : {latency.status(), concurrent.status(), fsync_before,
                                     fsync_after, paced_before, paced_after}) {
    if (!status.ok()) return status;
  }
  AuditFloor floor;
  floor.fdatasync = ComputePercentiles(std::move(fsync));
  floor.paced_fdatasync = ComputePercentiles(std::move(paced_fsync));
  const uint64_t commits = commits_after.count - commits_before.count;
  if (commits > 0) {
    floor.commit_mean = (commits_after.sum - commits_before.sum) / static_cast<int64_t>(commits);
  }
  report.AddAuditedConfigure(latency->configure, floor, *concurrent);
  return absl::OkStatus();
}

absl::Status Run(const Settings& s, Report& report) {
  absl::StatusOr<config::v1::FleetConfig> fleet = LoadFleet(s.fleet);  // fail before measuring
  if (!fleet.ok()) return fleet.status();
  const bool quick = absl::GetFlag(FLAGS_quick);
  // First, so the memory it adds is not hidden by heap the other sections freed.
  if (s.sections.contains("big")) {
    Progress(absl::StrCat(quick ? 1000 : kBigFleetDevices, " devices in one process"));
    absl::StatusOr<BigFleetResult> big =
        MeasureBigFleet(quick ? 1000 : kBigFleetDevices, absl::Seconds(quick ? 1 : 3));
    if (!big.ok()) return big.status();
    report.AddBigFleet(*big);
  }
  Progress("starting the bare echo server");
  SyntheticSamples batch_source(MakeFleet(s.synthetic_devices, /*virtual_clock=*/true));
  absl::StatusOr<std::unique_ptr<EchoServer>> echo = EchoServer::Start(
      batch_source.SerializedBatch(s.batch_samples), absl::GetFlag(FLAGS_echo_interceptor));
  if (!echo.ok()) return echo.status();
  {
    absl::StatusOr<std::unique_ptr<DermaServer>> derma =
        DermaServer::Start(MakeFleet(s.latency_devices, /*virtual_clock=*/false));
    if (!derma.ok()) return derma.status();
    Progress("unary latency: Echo, GetDevice, Configure");
    absl::StatusOr<LatencyResult> latency =
        MeasureLatency((*echo)->address(), (*derma)->address(), "devices/pen-1", s.latency);
    if (!latency.ok()) return latency.status();
    report.AddLatency(*latency);
  }
  if (s.sections.contains("audit")) {
    if (absl::Status status = MeasureAuditedConfigure(s, (*echo)->address(), report);
        !status.ok()) {
      return status;
    }
  }
  absl::StatusOr<LoadedFleetResults> loaded;
  if (s.sections.contains("loaded")) {
    loaded = MeasureLoadedFleet(s, *fleet, (*echo)->address());
    if (!loaded.ok()) return loaded.status();
    report.AddEstop(loaded->estop, loaded->devices, s.streams);
  }
  if (s.sections.contains("loaded-audit")) {
    if (absl::Status status = MeasureAuditedEstop(s, *fleet, (*echo)->address(), report);
        !status.ok()) {
      return status;
    }
  }
  if (s.sections.contains("throughput")) {
    if (absl::Status status = MeasureThroughput(s, **echo, report); !status.ok()) return status;
  }
  if (loaded.ok()) {
    report.AddDeviceTelemetry(loaded->telemetry, loaded->devices, loaded->sample_rate_hz);
  }
  if (s.sections.contains("scrape")) {
    Progress("metrics scrapes: 100, 1000, 10000 devices");
    absl::StatusOr<std::vector<ScrapeResult>> scrapes =
        MeasureScrapes(quick ? std::vector<int>{100} : std::vector<int>{100, 1000, 10000},
                       quick ? 3 : absl::GetFlag(FLAGS_scrapes));
    if (!scrapes.ok()) return scrapes.status();
    report.AddScrapes(*scrapes);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace derma::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Benchmarks derma against a bare gRPC server on loopback and prints one table.\n"
      "  derma_bench [--quick] [--flag=value ...]");
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_mutex_deadlock_detection)) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  absl::StatusOr<derma::bench::Settings> settings = derma::bench::SettingsFromFlags();
  if (!settings.ok()) {
    std::cerr << "derma_bench: " << settings.status() << "\n";
    return 2;
  }
  std::cout << "derma_bench" << (absl::GetFlag(FLAGS_quick) ? " --quick" : "") << " on "
            << std::thread::hardware_concurrency() << " cores, loopback 127.0.0.1"
            << (absl::GetFlag(FLAGS_mutex_deadlock_detection) ? ", mutex deadlock detection on"
                                                              : "")
            << (absl::GetFlag(FLAGS_echo_interceptor) ? ", echo with derma's metrics interceptor"
                                                      : "")
            << "\n"
            << std::flush;
  derma::bench::Report report;
  const absl::Status status = derma::bench::Run(*settings, report);
  derma::bench::Progress("done");
  report.table().Print(std::cout);
  if (!status.ok()) {
    std::cerr << "derma_bench: ERROR: " << status << "\n";
    return 1;
  }
  for (const std::string& error : report.errors())
    std::cerr << "derma_bench: ERROR: " << error << "\n";
  return report.errors().empty() ? 0 : 1;
}
