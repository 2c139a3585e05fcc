// dermad: the derma host. Loads the fleet config, serves derma.v1.DeviceControl,
// derma.sim.v1.Simulator, grpc.health.v1 and reflection on --listen, and ticks the simulated
// devices. SIGINT/SIGTERM: health NOT_SERVING, every output off, open streams end with
// UNAVAILABLE (SHUTTING_DOWN), exit 0. Bad config or flags, or an audit database that cannot be
// opened or is not a trail (an empty file included): a message naming the file (and line and
// field), exit code 2, nothing started.
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpc/support/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "plugin/auth/credentials_store.h"
#include "plugin/host/command_line.h"
#include "plugin/host/config_loader.h"
#include "plugin/host/console_demo.h"
#include "plugin/host/plugin.h"
#include "plugin/host/protobuf_log.h"
#include "plugin/host/server_security.h"
#include "plugin/metrics/metrics_endpoint.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "Address to serve gRPC on (host:port)");
ABSL_FLAG(std::string, tls_cert, "", "PEM server certificate chain (TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM server private key (TLS)");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: require and verify client certificates (mTLS)");
ABSL_FLAG(bool, insecure, false,
          "Allow plaintext (no TLS) on a non-loopback --listen address (logs a warning)");
ABSL_FLAG(std::string, tokens_file, "",
          "Bearer tokens and client certificates with their roles (empty: no authentication, "
          "loopback development only)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Address to serve Prometheus metrics on (host:port; empty = no metrics endpoint)");
ABSL_FLAG(std::string, config, "deploy/fleet.textproto",
          "Fleet config file (protobuf text format, or JSON when it starts with '{')");
ABSL_FLAG(std::string, clock, "", "Clock mode, overriding the config: real or virtual");
ABSL_FLAG(double, speed_factor, 0,
          "Real-clock speed factor, overriding the config (0 = the config's; 0.01-1000)");
ABSL_FLAG(std::string, log_level, "info", "Least severe messages printed: debug, info, error");
ABSL_FLAG(bool, demo, false,
          "Lease every device and keep it busy with a demo program (blocks client leases)");
ABSL_FLAG(double, print_interval_s, 0, "Seconds between console telemetry tables (0 = none)");
ABSL_FLAG(double, duration_s, 0, "Exit after this many seconds (0 = run until a signal)");
ABSL_FLAG(std::string, state_dir, "",
          "Directory for dermad's durable state (default: $STATE_DIRECTORY, else /var/lib/derma; "
          "created when missing)");
ABSL_FLAG(std::string, audit_db, "",
          "Audit trail SQLite file (default: <state_dir>/audit.db); every command is acknowledged "
          "only once its record is durable there");
ABSL_FLAG(bool, audit, true, "Keep an audit trail (--noaudit: none, with a warning)");
ABSL_FLAG(absl::Duration, audit_max_age, absl::InfiniteDuration(),
          "Prune audit records and runs older than this (e.g. 2160h = 90 days; inf = keep)");
ABSL_FLAG(std::string, audit_hmac_key_file, "",
          "File of at least 16 secret bytes keying the HMAC that seals the audit chain's "
          "checkpoints when records are pruned (without it a full rewrite of the chain is caught "
          "only against an exported head)");
ABSL_FLAG(int64_t, audit_max_rows, 0,
          "Keep at most this many audit records and as many runs (0 = no limit)");
ABSL_FLAG(int32_t, max_streams, 128,
          "Most concurrently open streams (StreamTelemetry + WatchRun) in all");
ABSL_FLAG(int32_t, max_streams_per_principal, 32,
          "Most of those one principal may hold (without --tokens_file every caller is one "
          "principal); 0 = no limit of its own");
ABSL_FLAG(int32_t, telemetry_memory_mib, 128,
          "MiB of queued telemetry samples all streams together may hold before the streams "
          "holding most (stalled readers) drop their oldest; 0 = no bound");
ABSL_FLAG(bool, mutex_deadlock_detection, false,
          "Check the lock order of every absl::Mutex (a debugging aid that costs CPU on every "
          "lock; the test suites run with it on)");

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

bool g_quiet = false;  // --log_level=error

template <typename... Args>
void Info(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (g_quiet) return;
  absl::FPrintF(stdout, format, args...);
  std::fflush(stdout);
}

// Applies --clock and --speed_factor. False (with a message) for a bad value.
bool ApplyClockFlags(derma::config::v1::FleetConfig* config) {
  const std::string clock = absl::GetFlag(FLAGS_clock);
  if (clock == "real") {
    config->mutable_clock()->set_mode(derma::config::v1::CLOCK_MODE_REAL);
  } else if (clock == "virtual") {
    config->mutable_clock()->set_mode(derma::config::v1::CLOCK_MODE_VIRTUAL);
  } else if (!clock.empty()) {
    absl::FPrintF(stderr, "dermad: --clock must be real or virtual, got \"%s\"\n", clock);
    return false;
  }
  if (const double speed = absl::GetFlag(FLAGS_speed_factor); speed != 0) {
    config->mutable_clock()->set_speed_factor(speed);
  }
  return true;
}

// --print_interval_s, --duration_s and --speed_factor: finite and ≥ 0 (0 = off / unset).
bool CheckTimingFlags() {
  const std::pair<const char*, double> values[] = {
      {"print_interval_s", absl::GetFlag(FLAGS_print_interval_s)},
      {"duration_s", absl::GetFlag(FLAGS_duration_s)},
      {"speed_factor", absl::GetFlag(FLAGS_speed_factor)},
  };
  for (const auto& [name, value] : values) {
    if (!(value >= 0 && std::isfinite(value))) {
      absl::FPrintF(stderr, "dermad: --%s must be a finite number ≥ 0, got %g\n", name, value);
      return false;
    }
  }
  return true;
}

bool ApplyLogLevel() {
  const std::string level = absl::GetFlag(FLAGS_log_level);
  if (level == "debug") {
    gpr_set_log_verbosity(GPR_LOG_SEVERITY_DEBUG);
  } else if (level == "info") {
    gpr_set_log_verbosity(GPR_LOG_SEVERITY_INFO);
  } else if (level == "error") {
    gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
    g_quiet = true;
  } else {
    absl::FPrintF(stderr, "dermad: --log_level must be debug, info or error, got \"%s\"\n", level);
    return false;
  }
  return true;
}

// The audit database path from --audit, --audit_db and --state_dir ("" = no trail), creating
// the default state directory when missing. False (with a message) when it cannot.
bool AuditDbPath(std::string* path) {
  path->clear();
  if (!absl::GetFlag(FLAGS_audit)) {
    absl::FPrintF(stderr,
                  "dermad: WARNING: --noaudit: commands are not recorded and run history is lost "
                  "at exit\n");
    return true;
  }
  if (std::string db = absl::GetFlag(FLAGS_audit_db); !db.empty()) {
    *path = db;
    return true;
  }
  std::string dir = absl::GetFlag(FLAGS_state_dir);
  if (dir.empty()) {
    const char* systemd_state = std::getenv("STATE_DIRECTORY");
    dir = systemd_state != nullptr && *systemd_state != '\0' ? systemd_state : "/var/lib/derma";
  }
  if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    absl::FPrintF(stderr, "dermad: cannot create the state directory %s: %s\n", dir,
                  std::strerror(errno));
    return false;
  }
  *path = dir + "/audit.db";
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("dermad --config=FILE --listen=HOST:PORT: serve a derma fleet");
  if (absl::Status s = derma::host::CheckCommandLine(argc, argv); !s.ok()) {
    absl::FPrintF(stderr, "dermad: %s\n", s.message());
    return 2;
  }
  absl::ParseCommandLine(argc, argv);
  if (!ApplyLogLevel() || !CheckTimingFlags()) return 2;
  derma::host::InstallRateLimitedProtobufLog();
  // Debian's abseil is built with the lock-order checker on. It is for tests, which keep it
  // (and start dermad with --mutex_deadlock_detection); a production daemon does not pay
  // for it on every lock.
  if (!absl::GetFlag(FLAGS_mutex_deadlock_detection)) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<derma::config::v1::FleetConfig> config = derma::host::LoadFleetConfig(path);
  if (!config.ok()) {
    absl::FPrintF(stderr, "dermad: bad config %s: %s\n", path, config.status().message());
    return 2;
  }
  if (!ApplyClockFlags(&*config)) return 2;

  // Transport security next: a plaintext network address stops dermad before anything opens.
  std::string warning;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      derma::host::MakeServerCredentials(
          {absl::GetFlag(FLAGS_listen), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
           absl::GetFlag(FLAGS_tls_client_ca), absl::GetFlag(FLAGS_insecure)},
          &warning);
  if (!credentials.ok()) {
    absl::FPrintF(stderr, "dermad: %s\n", credentials.status().message());
    return 2;
  }
  if (!warning.empty()) absl::FPrintF(stderr, "dermad: %s\n", warning);

  derma::PluginOptions options;
  options.tokens_file = absl::GetFlag(FLAGS_tokens_file);
  options.max_streams = absl::GetFlag(FLAGS_max_streams);
  options.max_streams_per_principal = absl::GetFlag(FLAGS_max_streams_per_principal);
  const int32_t telemetry_mib = absl::GetFlag(FLAGS_telemetry_memory_mib);
  if (options.max_streams < 1 || options.max_streams_per_principal < 0 || telemetry_mib < 0 ||
      telemetry_mib > 65536) {
    absl::FPrintF(stderr,
                  "dermad: --max_streams must be ≥ 1, --max_streams_per_principal ≥ 0 and "
                  "--telemetry_memory_mib within 0–65536\n");
    return 2;
  }
  options.telemetry_memory_bytes = static_cast<size_t>(telemetry_mib) << 20;
  // Checked here too so that its errors name the tokens file, not the fleet config.
  if (!options.tokens_file.empty()) {
    if (absl::Status s = derma::auth::CredentialsStore::Load(options.tokens_file).status();
        !s.ok()) {
      absl::FPrintF(stderr, "dermad: %s\n", s.message());
      return 2;
    }
  }
  options.audit_retention.max_age = absl::GetFlag(FLAGS_audit_max_age);
  options.audit_retention.max_rows = absl::GetFlag(FLAGS_audit_max_rows);
  options.audit_hmac_key_file = absl::GetFlag(FLAGS_audit_hmac_key_file);
  if (options.audit_retention.max_age <= absl::ZeroDuration() ||
      options.audit_retention.max_rows < 0) {
    absl::FPrintF(stderr, "dermad: --audit_max_age must be > 0 and --audit_max_rows ≥ 0\n");
    return 2;
  }
  if (!AuditDbPath(&options.audit_db)) return 2;
  absl::StatusOr<std::unique_ptr<derma::Plugin>> plugin = derma::Plugin::Create(*config, options);
  if (!plugin.ok()) {
    if (plugin.status().code() == absl::StatusCode::kFailedPrecondition) {
      absl::FPrintF(stderr, "dermad: cannot use the audit trail: %s\n", plugin.status().message());
    } else {
      absl::FPrintF(stderr, "dermad: bad config %s: %s\n", path, plugin.status().message());
    }
    return 2;
  }
  // The metrics endpoint first: a port that cannot be bound stops dermad before it serves.
  std::unique_ptr<derma::metrics::MetricsEndpoint> metrics_endpoint;
  if (const std::string metrics = absl::GetFlag(FLAGS_metrics_listen); !metrics.empty()) {
    absl::StatusOr<std::unique_ptr<derma::metrics::MetricsEndpoint>> endpoint =
        derma::metrics::MetricsEndpoint::Start(metrics, (*plugin)->MetricsCollectables());
    if (!endpoint.ok()) {
      absl::FPrintF(stderr, "dermad: cannot serve metrics on %s: %s\n", metrics,
                    endpoint.status().message());
      return 2;
    }
    metrics_endpoint = *std::move(endpoint);
  }

  const std::string listen = absl::GetFlag(FLAGS_listen);

  // Server reflection (grpcurl, buf curl) is a process-wide gRPC setting, so the host turns it
  // on, not the plugin.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, *credentials, &port);
  (*plugin)->Register(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    absl::FPrintF(stderr, "dermad: cannot listen on %s (address in use or invalid)\n", listen);
    return 1;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  (*plugin)->Start();
  derma::host::Fleet& fleet = (*plugin)->fleet();
  // The port line is what scripts (and the end-to-end tests, with --listen=...:0) read: it is
  // printed at every log level.
  absl::FPrintF(stdout,
                "dermad: serving %d devices from %s on %s, port %d (%s clock); SIGINT/SIGTERM "
                "stop every output\n",
                fleet.devices().size(), path, listen, port,
                fleet.clock().IsVirtual() ? "virtual" : "real");
  if (metrics_endpoint != nullptr) {
    // With --metrics_listen=HOST:0 this is the only place the chosen port shows.
    const std::string metrics = absl::GetFlag(FLAGS_metrics_listen);
    absl::FPrintF(stdout, "dermad: metrics on http://%s:%d/metrics\n",
                  metrics.substr(0, metrics.rfind(':')), metrics_endpoint->port());
  }
  std::fflush(stdout);
  if (!options.audit_db.empty()) Info("dermad: audit trail %s\n", options.audit_db);

  derma::host::ConsoleDemo demo(fleet);
  const bool run_demo = absl::GetFlag(FLAGS_demo);
  const double print_s = absl::GetFlag(FLAGS_print_interval_s);
  const double duration_s = absl::GetFlag(FLAGS_duration_s);
  const absl::Time deadline =
      duration_s > 0 ? absl::Now() + absl::Seconds(duration_s) : absl::InfiniteFuture();
  absl::Time next_step = absl::Now();
  while (!g_stop.load() && absl::Now() < deadline) {
    if ((run_demo || print_s > 0) && absl::Now() >= next_step) {
      if (run_demo) demo.Step();
      if (print_s > 0) Info("\n%s", derma::host::FormatFleetTable(fleet));
      next_step = absl::Now() + absl::Seconds(print_s > 0 ? print_s : 1);
    }
    absl::SleepFor(absl::Milliseconds(10));
  }

  const absl::Time stop_start = absl::Now();
  (*plugin)->Shutdown();  // NOT_SERVING, outputs off, streams ended
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(1000));
  server->Wait();
  Info("dermad: stopped in %d ms; every output is off\n",
       absl::ToInt64Milliseconds(absl::Now() - stop_start));
  return 0;  // the metrics endpoint stops first: it was made after the plugin it reads
}
