// Plugin: the embedding API of derma. A host (dermad, the in-process test server, or a lab
// framework that already runs a gRPC server) creates the plugin from a fleet config, registers
// its services on its own grpc::ServerBuilder, builds and starts the server, starts the plugin,
// and shuts the plugin down before the server:
//
//   auto plugin = derma::Plugin::Create(config);          // validates; builds the fleet
//   grpc::ServerBuilder builder;
//   builder.AddListeningPort("127.0.0.1:50051", grpc::InsecureServerCredentials());
//   grpc::reflection::InitProtoReflectionServerBuilderPlugin();  // optional, process-wide
//   (*plugin)->Register(builder);                          // services + channel arguments
//   std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
//   (*plugin)->Start();                                    // devices start ticking
//   ...
//   (*plugin)->Shutdown();   // NOT_SERVING, every output off, open streams end
//   server->Shutdown();
//
// Layer: plugin/host (wiring). Thread-safe after Create; Register before the server starts.
#ifndef DERMA_PLUGIN_HOST_PLUGIN_H_
#define DERMA_PLUGIN_HOST_PLUGIN_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "derma/config/v1/config.pb.h"
#include "grpcpp/server_builder.h"
#include "plugin/audit/audit_store.h"
#include "plugin/core/emergency_stop_times.h"
#include "plugin/host/fleet.h"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace derma {

namespace auth {
class Authorizer;
}  // namespace auth

namespace metrics {
class EmergencyStopCollector;
class FleetCollector;
class GrpcMetrics;
}  // namespace metrics

class AuditTrail;

namespace service {
class CallAudit;
class DeviceControlService;
class HealthService;
class StreamRegistry;
}  // namespace service

struct PluginOptions {
  // Most concurrently open streams (StreamTelemetry + WatchRun) per plugin; one more is
  // refused with RESOURCE_EXHAUSTED (reason STREAM_LIMIT).
  int max_streams = 128;
  // Most of those one principal may hold (0 = no limit of its own): one more is refused with
  // RESOURCE_EXHAUSTED (STREAM_LIMIT, metadata `principal`). Without a tokens file every caller
  // is the one principal "local", so this is then the limit for all callers together.
  int max_streams_per_principal = 32;
  // What every telemetry stream together may hold in queued samples (bytes, at
  // TelemetrySubscription::kBytesPerHeldSample each) before the streams holding more than their
  // share drop their oldest (counted in dropped_samples): a stalled reader cannot pin more than
  // its share (telemetry_fanout.h). 0 = no process-wide bound.
  size_t telemetry_memory_bytes = size_t{128} << 20;
  // A telemetry stream sends a Heartbeat after this long without another message.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Samples a telemetry stream buffers for a slow client before it drops the oldest.
  size_t stream_sample_capacity = 65536;
  // How much lower (Linux nice) the threads that encode telemetry streams run than devices,
  // commands and emergency stops; 0 = the same priority. Nice also ranks them below every
  // other process on the machine, so telemetry lags whenever the machine is busy; and on 2
  // cores it did not measurably shorten EmergencyStop under saturated streams. Hence 0.
  int stream_thread_nice = 0;
  // Tokens file (plugin/auth/credentials_store.h): callers must present a bearer token (or a
  // known client certificate) and the method's role. Empty: no authentication, every caller
  // is admin — for loopback development only.
  std::string tokens_file;
  // Register grpc.health.v1.Health (turn off when the host serves its own health service).
  bool health_service = true;
  // The audit trail's SQLite file (plugin/audit): every command is acknowledged only once its
  // record is durable there, and run history survives restarts. Created when missing (its
  // directory must exist). Empty: no audit trail (ListAuditEvents fails AUDIT_UNAVAILABLE).
  std::string audit_db;
  // How long the trail keeps records (by age and/or row count), and how often it prunes.
  RetentionOptions audit_retention;
  // A file of at least 16 bytes whose contents key the HMAC that seals the audit chain's
  // checkpoints (audit_chain.h); empty: checkpoints are sealed with a plain SHA-256.
  std::string audit_hmac_key_file;
  absl::Duration audit_prune_interval = absl::Minutes(10);
};

class Plugin {
 public:
  // Validates the config and builds the fleet (devices connected, not ticking yet), then opens
  // the audit trail and ends the runs it finds unended (INTERRUPTED: the previous process
  // died). INVALID_ARGUMENT listing every config problem, or naming the bad tokens file line;
  // FAILED_PRECONDITION naming the audit file when it cannot be opened, is empty or corrupt,
  // or naming the HMAC key file when it cannot be read. Logs the audit chain's head on stderr
  // here and again when the plugin is destroyed (after the trail's last record).
  static absl::StatusOr<std::unique_ptr<Plugin>> Create(const config::v1::FleetConfig& config,
                                                        PluginOptions options = {});
  ~Plugin();  // Shutdown()
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  // Adds derma.v1.DeviceControl, the services of the fleet's backends (derma.sim.v1.Simulator
  // when the fleet has simulated devices) and health, plus derma's transport limits
  // (transport_limits.h): keepalive that tolerates client pings every 5 s, a connection that
  // pings much faster closed with too_many_pings, and SO_REUSEPORT off so a taken port fails
  // loudly. Installs the gRPC metrics interceptor (this replaces
  // interceptor creators set on `builder` before).
  void Register(grpc::ServerBuilder& builder);
  // Adds derma's Prometheus metrics (devices read at scrape time, gRPC server metrics,
  // derma_build_info) to the host's exposer. The exposer must not outlive the plugin.
  void RegisterMetrics(prometheus::Exposer& exposer);
  // The same collectables, in the same order, for an endpoint of the host's own (dermad's
  // metrics::MetricsEndpoint). They must not be collected after the plugin is destroyed.
  std::vector<std::weak_ptr<prometheus::Collectable>> MetricsCollectables() const;
  // Starts device ticking on a real clock (a virtual clock moves only by AdvanceClock).
  void Start();
  // Health goes NOT_SERVING, mutating commands are refused with UNAVAILABLE (SHUTTING_DOWN),
  // every output is turned off (runs end with SHUTDOWN), open streams end with UNAVAILABLE
  // (SHUTTING_DOWN), and the audit trail has written all of it. Returns when all of that is
  // done. Idempotent.
  void Shutdown();

  host::Fleet& fleet() { return *fleet_; }
  // Null without an audit trail.
  AuditTrail* audit_trail() { return audit_trail_.get(); }
  // Each EmergencyStop's time to the last output off (derma_emergency_stop_duration_seconds).
  const EmergencyStopTimes& emergency_stop_times() const { return stop_times_; }

 private:
  Plugin() = default;

  PluginOptions options_;
  EmergencyStopTimes stop_times_;  // before the service that records into it
  std::unique_ptr<host::Fleet> fleet_;
  std::unique_ptr<AuditStore> audit_store_;
  std::unique_ptr<AuditTrail> audit_trail_;
  std::unique_ptr<service::CallAudit> call_audit_;
  std::unique_ptr<ThreadPoolExecutor> stream_executor_;
  std::unique_ptr<service::StreamRegistry> streams_;
  std::unique_ptr<auth::Authorizer> authorizer_;
  std::unique_ptr<service::DeviceControlService> device_control_;
  std::vector<std::unique_ptr<grpc::Service>> backend_services_;  // e.g. derma.sim.v1.Simulator
  std::vector<std::shared_ptr<prometheus::Collectable>> backend_metrics_;
  std::unique_ptr<service::HealthService> health_;
  std::shared_ptr<metrics::FleetCollector> collector_;
  std::shared_ptr<metrics::EmergencyStopCollector> stop_collector_;
  std::unique_ptr<metrics::GrpcMetrics> grpc_metrics_;
  std::thread heartbeat_thread_;
  absl::Notification stop_heartbeats_;
  bool started_ = false;
  bool shut_down_ = false;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_HOST_PLUGIN_H_
