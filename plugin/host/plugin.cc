#include "plugin/host/plugin.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "plugin/audit/audit_trail.h"
#include "plugin/auth/authorizer.h"
#include "plugin/core/telemetry_fanout.h"
#include "plugin/host/transport_limits.h"
#include "plugin/metrics/emergency_stop_collector.h"
#include "plugin/metrics/fleet_collector.h"
#include "plugin/metrics/grpc_metrics.h"
#include "plugin/service/call_audit.h"
#include "plugin/service/device_control_service.h"
#include "plugin/service/health_service.h"
#include "plugin/service/malformed_request.h"
#include "plugin/service/stream_registry.h"
#include "prometheus/exposer.h"

namespace derma {
namespace {

// Threads that build stream messages, apart from the device pool so a busy stream never
// delays a device.
constexpr size_t kStreamThreads = 2;

// "derma: audit chain head at start-up: length N, record I, sha256 <64 hex digits>" on stderr:
// whoever keeps these lines can later show that the newest records were removed.
void LogChainHead(const AuditStore& store, absl::string_view when) {
  const AuditStore::ChainHead head = store.head();
  std::fprintf(stderr, "derma: audit chain head at %s: length %lld, record %lld, sha256 %s\n",
               std::string(when).c_str(), static_cast<long long>(head.length),
               static_cast<long long>(head.id), ToHex(head.hash).c_str());
}

// Opens the audit store and ends the runs the previous process left unended, recording each.
absl::StatusOr<std::unique_ptr<AuditStore>> OpenAuditStore(const PluginOptions& options) {
  std::string key;
  if (!options.audit_hmac_key_file.empty()) {
    absl::StatusOr<std::string> read = ReadHmacKeyFile(options.audit_hmac_key_file);
    if (!read.ok()) return read.status();
    key = *std::move(read);
  }
  absl::StatusOr<std::unique_ptr<AuditStore>> store =
      AuditStore::Open(options.audit_db, options.audit_retention, std::move(key));
  if (!store.ok()) return store.status();
  absl::StatusOr<std::vector<v1::Run>> interrupted = (*store)->EndInterruptedRuns();
  if (!interrupted.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("audit store ", options.audit_db,
                     ": cannot end interrupted runs: ", interrupted.status().message()));
  }
  // Audit records carry server time (the run's end_time is device time).
  const absl::Time now = absl::Now();
  std::vector<AuditEvent> records;
  for (const v1::Run& run : *interrupted) {
    AuditEvent& record = records.emplace_back();
    record.time_us = absl::ToUnixMicros(now);
    record.device = run.device();
    record.kind = v1::AUDIT_EVENT_KIND_RUN;
    record.summary = "RUN_ENDED";
    record.detail =
        absl::StrCat("run ended ", run.name(), ": INTERRUPTED (", run.end_message(), ")");
  }
  if (absl::Status s = (*store)->AppendBatch(records); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("audit store ", options.audit_db, ": ", s.message()));
  }
  LogChainHead(**store, "start-up");
  return store;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Plugin>> Plugin::Create(const config::v1::FleetConfig& config,
                                                       PluginOptions options) {
  std::optional<auth::CredentialsStore> credentials;
  if (!options.tokens_file.empty()) {
    absl::StatusOr<auth::CredentialsStore> loaded =
        auth::CredentialsStore::Load(options.tokens_file);
    if (!loaded.ok()) return loaded.status();
    credentials = *std::move(loaded);
  }
  absl::StatusOr<std::unique_ptr<host::Fleet>> fleet = host::Fleet::Create(config);
  if (!fleet.ok()) return fleet.status();
  std::unique_ptr<AuditStore> audit_store;
  if (!options.audit_db.empty()) {
    absl::StatusOr<std::unique_ptr<AuditStore>> opened = OpenAuditStore(options);
    if (!opened.ok()) return opened.status();
    audit_store = *std::move(opened);
  }
  std::unique_ptr<Plugin> plugin(new Plugin());
  plugin->options_ = options;
  plugin->fleet_ = *std::move(fleet);
  plugin->fleet_->telemetry().set_sample_budget(options.telemetry_memory_bytes /
                                                TelemetrySubscription::kBytesPerHeldSample);
  if (audit_store != nullptr) {
    plugin->audit_store_ = std::move(audit_store);
    plugin->audit_trail_ = std::make_unique<AuditTrail>(
        *plugin->audit_store_, plugin->fleet_->telemetry(), plugin->fleet_->runs(),
        AuditTrailOptions{.prune_interval = options.audit_prune_interval, .refusals = {}});
  }
  plugin->call_audit_ = std::make_unique<service::CallAudit>(plugin->audit_trail_.get());
  plugin->stream_executor_ =
      std::make_unique<ThreadPoolExecutor>(kStreamThreads, options.stream_thread_nice);
  plugin->streams_ = std::make_unique<service::StreamRegistry>(options.max_streams,
                                                               options.max_streams_per_principal);
  plugin->authorizer_ = std::make_unique<auth::Authorizer>(std::move(credentials));
  host::Fleet& f = *plugin->fleet_;
  plugin->device_control_ = std::make_unique<service::DeviceControlService>(
      f.devices(), f.runs(), f.telemetry(), *plugin->streams_, *plugin->stream_executor_,
      *plugin->authorizer_, *plugin->call_audit_,
      service::DeviceControlOptions{options.stream_sample_capacity, options.heartbeat_interval,
                                    &plugin->stop_times_});
  const ServiceContext service_context{*plugin->authorizer_, *plugin->call_audit_};
  for (const std::unique_ptr<Backend>& backend : f.backends()) {
    for (std::unique_ptr<grpc::Service>& s : backend->MakeServices(service_context)) {
      plugin->backend_services_.push_back(std::move(s));
    }
    if (auto metrics = backend->Metrics()) plugin->backend_metrics_.push_back(std::move(metrics));
  }
  if (options.health_service) plugin->health_ = std::make_unique<service::HealthService>();
  plugin->collector_ = std::make_shared<metrics::FleetCollector>(
      f.devices(), f.telemetry(), plugin->authorizer_.get(), plugin->audit_trail_.get());
  plugin->stop_collector_ = std::make_shared<metrics::EmergencyStopCollector>(plugin->stop_times_);
  plugin->grpc_metrics_ = std::make_unique<metrics::GrpcMetrics>();
  return plugin;
}

Plugin::~Plugin() {
  Shutdown();
  // Streams may still hold tasks on the stream executor; join it before the services go.
  stream_executor_.reset();
  // Calls still waiting for their records are answered (or told the trail closed) before the
  // services and the fleet go.
  if (audit_trail_ != nullptr) {
    audit_trail_->Close();
    LogChainHead(*audit_store_, "shutdown");
  }
}

void Plugin::Register(grpc::ServerBuilder& builder) {
  builder.RegisterService(device_control_.get());
  for (const std::unique_ptr<grpc::Service>& service : backend_services_) {
    builder.RegisterService(service.get());
  }
  if (health_ != nullptr) builder.RegisterService(health_.get());
  host::ApplyTransportLimits(builder);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(service::MakeMalformedRequestInterceptorFactory());  // before the metrics
  creators.push_back(grpc_metrics_->MakeInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(creators));
}

void Plugin::RegisterMetrics(prometheus::Exposer& exposer) {
  for (const auto& collectable : MetricsCollectables()) exposer.RegisterCollectable(collectable);
}

std::vector<std::weak_ptr<prometheus::Collectable>> Plugin::MetricsCollectables() const {
  std::vector<std::weak_ptr<prometheus::Collectable>> out = {collector_, stop_collector_,
                                                             grpc_metrics_->registry()};
  out.insert(out.end(), backend_metrics_.begin(), backend_metrics_.end());
  return out;
}

void Plugin::Start() {
  if (started_ || shut_down_) return;
  started_ = true;
  fleet_->Start();
  heartbeat_thread_ = std::thread([this] {
    const absl::Duration period = options_.heartbeat_interval / 4;
    uint64_t closed_before = 0;
    while (!stop_heartbeats_.WaitForNotificationWithTimeout(period)) {
      streams_->HeartbeatAll(absl::Now());
      // What closed streams freed goes back to the system, not only to malloc's free lists
      // (a few ms of this thread, only after streams closed).
      if (const uint64_t closed = streams_->closed_count(); closed != closed_before) {
        closed_before = closed;
        malloc_trim(0);
      }
    }
  });
}

void Plugin::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (health_ != nullptr) health_->SetServing(false);
  device_control_->BeginShutdown();
  fleet_->Shutdown();                                  // every output off, runs end with SHUTDOWN
  if (audit_trail_ != nullptr) audit_trail_->Flush();  // ...and all of that is on disk
  streams_->ShutdownAll();
  stop_heartbeats_.Notify();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
}

}  // namespace derma
