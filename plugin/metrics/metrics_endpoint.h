// MetricsEndpoint: dermad's Prometheus endpoint. A small HTTP/1.1 server on one thread of its
// own that answers GET and HEAD /metrics with every collectable's families in the text
// exposition format (AppendTextFormat), encoded per scrape from values read at that moment.
// An embedding host keeps using its own prometheus-cpp Exposer (Plugin::RegisterMetrics); this
// exists because that Exposer's encoder took two thirds of a scrape.
//
// Built for a network it does not trust. A request head larger than `max_request_bytes` gets
// 431; one not complete within `request_timeout` of the accept gets 408; a client that stops
// sending (half-closes) before its head is complete is closed without an answer. A response the
// client has not taken `send_timeout` after it was ready is abandoned and the connection reset,
// however much was read. At most `max_connections` are open at once (others wait in the listen
// backlog). Every response carries Connection: close; after it the connection is read and
// discarded until the client closes it, for at most 2 s. Bodies are never compressed. Deadlines
// follow the steady clock. A scrape runs on the endpoint's thread, so a client scraping in a
// loop keeps at most that one thread busy. Memory: per open connection its request head (at
// most `max_request_bytes` + 4 KiB) or one response; while a scrape is encoded, its families
// and the body twice (about 1.8 KB per device each).
//
// Layer: plugin/metrics. Thread-safe: Start, and Stop from any thread but the endpoint's own
// (a collectable must not stop it); collectables are called on the endpoint's thread
// (prometheus::Collectable::Collect must be thread-safe anyway).
#ifndef DERMA_PLUGIN_METRICS_METRICS_ENDPOINT_H_
#define DERMA_PLUGIN_METRICS_METRICS_ENDPOINT_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/collectable.h"

namespace derma::metrics {

struct MetricsEndpointOptions {
  size_t max_connections = 16;
  size_t max_request_bytes = 8192;                     // request line and headers
  absl::Duration request_timeout = absl::Seconds(10);  // from accept to the end of the head
  absl::Duration send_timeout = absl::Seconds(30);     // for the client to take the response
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
  // Moves one connection on after poll (`ready`: it had events); false when it is to be closed.
  bool Advance(Connection& connection, bool ready, absl::Time now);
  // Accepts queued clients up to the limit; false when accept failed for want of resources.
  bool Accept(std::vector<Connection>& connections);
  // Reads what arrived; once the head is complete (or too large), prepares the answer. False
  // when the connection is to be closed.
  bool ReadRequest(Connection& connection);
  void Answer(Connection& connection, absl::string_view head);
  // Prepares the response: `body` as text/plain with a newline added, unless `content_type` is
  // given; no body for a HEAD request.
  void Respond(Connection& connection, absl::string_view status, std::string body,
               absl::string_view extra_headers = "", absl::string_view content_type = "");
  // Sends what the socket takes; when all is sent, half-closes and drains. False when the
  // client is gone.
  bool WriteResponse(Connection& connection, absl::Time now);
  std::string Scrape();

  const int listen_fd_;
  const int port_;
  const int wake_fd_;  // an eventfd Stop writes to
  const std::vector<std::weak_ptr<prometheus::Collectable>> collectables_;
  const MetricsEndpointOptions options_;
  std::atomic<bool> stopping_{false};
  absl::Mutex stop_mu_;         // serializes the join of concurrent Stops
  size_t last_body_bytes_ = 0;  // the endpoint's thread only
  std::thread thread_;
};

}  // namespace derma::metrics

#endif  // DERMA_PLUGIN_METRICS_METRICS_ENDPOINT_H_
