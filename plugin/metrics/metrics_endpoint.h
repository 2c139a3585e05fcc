// MetricsEndpoint: dermad's Prometheus endpoint. A small HTTP/1.1 server on one thread of its
// own that answers GET and HEAD /metrics with every collectable's families in the text
// exposition format (AppendTextFormat), encoded per scrape from values read at that moment.
// An embedding host keeps using its own prometheus-cpp Exposer (Plugin::RegisterMetrics); this
// exists because that Exposer's encoder took two thirds of a scrape.
//
// Built for a network it does not trust: a request head larger than `max_request_bytes` gets
// 431, one not complete within `request_timeout` is closed (408), a response the client does
// not take within `send_timeout` is abandoned, and at most `max_connections` are open at once
// (others wait in the listen backlog until one closes). Every response closes its connection
// (Connection: close). Bodies are never compressed. Memory: at most `max_connections` response
// bodies at a time, each about 1.8 KB per device.
//
// Layer: plugin/metrics. Thread-safe: Start and Stop from any thread; collectables are called
// on the endpoint's thread (prometheus::Collectable::Collect must be thread-safe anyway).
#ifndef DERMA_PLUGIN_METRICS_METRICS_ENDPOINT_H_
#define DERMA_PLUGIN_METRICS_METRICS_ENDPOINT_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "prometheus/collectable.h"

namespace derma::metrics {

struct MetricsEndpointOptions {
  size_t max_connections = 16;
  size_t max_request_bytes = 8192;                        // request line and headers
  absl::Duration request_timeout = absl::Seconds(10);   // from accept to the end of the head
  absl::Duration send_timeout = absl::Seconds(30);      // for the client to take the response
};

class MetricsEndpoint {
 public:
  // Listens on `listen`, HOST:PORT: an IPv4 address, a bracketed IPv6 address ("[::1]:9464")
  // or a host name resolving to one; port 0 picks a free port. Errors (InvalidArgument for a
  // malformed address, Unavailable when it cannot be bound) name the address.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& listen, std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
      MetricsEndpointOptions options = {});
  ~MetricsEndpoint();  // Stop()
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // The bound port (the one chosen, for port 0).
  int port() const { return port_; }
  // Closes the listener and every connection, and joins the thread. Idempotent; prompt.
  void Stop();

 private:
  struct Connection;
  MetricsEndpoint(int listen_fd, int port, int wake_fd,
                  std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
                  MetricsEndpointOptions options);
  void Loop();
  void Accept(std::vector<Connection>& connections);
  // Reads what arrived; once the head is complete (or cannot be), prepares the response.
  void ReadRequest(Connection& connection);
  // Sends what the socket takes; false once the connection is done (sent, or failed).
  bool WriteResponse(Connection& connection);
  void Respond(Connection& connection, const std::string& head);
  std::string Scrape();

  const int listen_fd_;
  const int port_;
  const int wake_fd_;  // an eventfd Stop writes to
  const std::vector<std::weak_ptr<prometheus::Collectable>> collectables_;
  const MetricsEndpointOptions options_;
  std::atomic<bool> stopping_{false};
  size_t last_body_bytes_ = 0;  // the endpoint's thread only
  std::thread thread_;
};

}  // namespace derma::metrics

#endif  // DERMA_PLUGIN_METRICS_METRICS_ENDPOINT_H_
