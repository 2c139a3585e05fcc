#include "plugin/metrics/metrics_endpoint.h"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "plugin/metrics/text_format.h"

namespace derma::metrics {

struct MetricsEndpoint::Connection {
  enum class State { kReading, kWriting, kDraining };
  int fd = -1;
  State state = State::kReading;
  std::string request;
  size_t scanned = 0;      // bytes of `request` already searched for the head's end
  bool head_only = false;  // a HEAD request: no body in any answer
  std::string response;
  size_t sent = 0;
  absl::Time deadline;  // steady clock: of the head, of the response, of the drain
};

namespace {

// Deadlines follow a clock that never steps (the wall clock may, by NTP or by hand).
absl::Time SteadyNow() {
  return absl::UnixEpoch() + absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

// After its response, a connection is read and discarded until the client closes it, for at
// most this long: closing with input unread would reset it and could cut the response short.
constexpr absl::Duration kDrainTime = absl::Seconds(2);
// How long the listener rests after accept failed for want of resources (descriptors, memory):
// the pending connection stays queued, so polling it at once would spin.
constexpr absl::Duration kAcceptPause = absl::Milliseconds(100);

absl::Status AddressError(absl::StatusCode code, const std::string& listen, absl::string_view why) {
  return absl::Status(code, absl::StrCat("metrics address \"", listen, "\": ", why));
}

// A bound, listening, non-blocking socket for HOST:PORT, and the port it got.
absl::StatusOr<std::pair<int, int>> Listen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return AddressError(absl::StatusCode::kInvalidArgument, listen, "expected HOST:PORT");
  }
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  int port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return AddressError(absl::StatusCode::kInvalidArgument, listen,
                        "the port is not a number from 0 to 65535");
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) {
    return AddressError(absl::StatusCode::kInvalidArgument, listen, "expected HOST:PORT");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int error = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found); error != 0) {
    return AddressError(absl::StatusCode::kInvalidArgument, listen, gai_strerror(error));
  }
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));  // restart while in TIME_WAIT
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
      last_error = std::strerror(errno);
      close(fd);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
    const int bound_port = bound.ss_family == AF_INET6
                               ? ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port)
                               : ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    freeaddrinfo(found);
    return std::make_pair(fd, bound_port);
  }
  freeaddrinfo(found);
  return AddressError(absl::StatusCode::kUnavailable, listen,
                      absl::StrCat("cannot listen: ", last_error));
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& listen, std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
    MetricsEndpointOptions options) {
  absl::StatusOr<std::pair<int, int>> socket = Listen(listen);
  if (!socket.ok()) return socket.status();
  const int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    close(socket->first);
    return absl::InternalError(absl::StrCat("metrics endpoint: eventfd: ", std::strerror(errno)));
  }
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(socket->first, socket->second, wake, std::move(collectables), options));
}

MetricsEndpoint::MetricsEndpoint(int listen_fd, int port, int wake_fd,
                                 std::vector<std::weak_ptr<prometheus::Collectable>> collectables,
                                 MetricsEndpointOptions options)
    : listen_fd_(listen_fd),
      port_(port),
      wake_fd_(wake_fd),
      collectables_(std::move(collectables)),
      options_(options),
      thread_([this] { Loop(); }) {}

MetricsEndpoint::~MetricsEndpoint() {
  Stop();
  close(wake_fd_);
}

void MetricsEndpoint::Stop() {
  if (!stopping_.exchange(true)) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = write(wake_fd_, &one, sizeof(one));
  }
  absl::MutexLock lock(&stop_mu_);  // concurrent Stops: one joins, the others wait for it
  if (thread_.joinable()) thread_.join();
}

void MetricsEndpoint::Loop() {
  std::vector<Connection> connections;
  std::vector<pollfd> polled;
  absl::Time accept_paused_until = absl::InfinitePast();
  bool reported_poll_error = false;
  while (!stopping_.load()) {
    const absl::Time before = SteadyNow();
    polled.clear();
    polled.push_back({wake_fd_, POLLIN, 0});
    // At the limit the listener is not polled: new clients wait in the backlog.
    const bool accepting =
        connections.size() < options_.max_connections && before >= accept_paused_until;
    polled.push_back({listen_fd_, static_cast<short>(accepting ? POLLIN : 0), 0});
    absl::Time next_deadline =
        before < accept_paused_until ? accept_paused_until : absl::InfiniteFuture();
    for (const Connection& c : connections) {
      const bool out = c.state == Connection::State::kWriting;
      polled.push_back({c.fd, static_cast<short>(out ? POLLOUT : POLLIN), 0});
      next_deadline = std::min(next_deadline, c.deadline);
    }
    int timeout_ms = -1;
    if (next_deadline != absl::InfiniteFuture()) {
      timeout_ms = static_cast<int>(std::clamp<int64_t>(
          absl::ToInt64Milliseconds(absl::Ceil(next_deadline - before, absl::Milliseconds(1))), 0,
          60'000));
    }
    if (poll(polled.data(), polled.size(), timeout_ms) < 0 && errno != EINTR) {
      // Out of memory for the poll set, say: keep serving once it passes.
      if (!std::exchange(reported_poll_error, true)) {
        std::fprintf(stderr, "derma: metrics endpoint: poll: %s; retrying\n", std::strerror(errno));
      }
      absl::SleepFor(absl::Milliseconds(10));
      continue;
    }
    if (polled[0].revents != 0 || stopping_.load()) break;  // Stop
    const absl::Time now = SteadyNow();
    for (size_t i = 0; i < connections.size(); ++i) {
      if (!Advance(connections[i], polled[i + 2].revents != 0, now)) {
        close(connections[i].fd);
        connections[i].fd = -1;
      }
    }
    connections.erase(std::remove_if(connections.begin(), connections.end(),
                                     [](const Connection& c) { return c.fd < 0; }),
                      connections.end());
    if (accepting && (polled[1].revents & POLLIN) != 0 && !Accept(connections)) {
      accept_paused_until = SteadyNow() + kAcceptPause;
    }
  }
  for (Connection& c : connections) close(c.fd);
  close(listen_fd_);
}

bool MetricsEndpoint::Advance(Connection& c, bool ready, absl::Time now) {
  switch (c.state) {
    case Connection::State::kReading:
      if (ready && !ReadRequest(c)) return false;
      if (c.state == Connection::State::kReading && now >= c.deadline) {
        Respond(c, "408 Request Timeout", "the request head did not arrive in time");
      }
      if (c.state != Connection::State::kWriting) return true;
      return WriteResponse(c, now);  // at once: most responses fit the socket's buffer
    case Connection::State::kWriting:
      if (now >= c.deadline) {
        // The client does not take its response: reset the connection, so the kernel does
        // not keep sending (and holding) the rest of it after the close.
        const linger reset{1, 0};
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        return false;
      }
      return !ready || WriteResponse(c, now);
    case Connection::State::kDraining:
      if (now >= c.deadline) return false;
      if (!ready) return true;
      for (;;) {
        char discard[4096];
        const ssize_t got = recv(c.fd, discard, sizeof(discard), 0);
        if (got > 0) continue;
        return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
      }
  }
  return false;
}

bool MetricsEndpoint::Accept(std::vector<Connection>& connections) {
  while (connections.size() < options_.max_connections) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      return false;  // EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays queued
    }
    Connection& c = connections.emplace_back();
    c.fd = fd;
    c.deadline = SteadyNow() + options_.request_timeout;
  }
  return true;
}

bool MetricsEndpoint::ReadRequest(Connection& c) {
  bool ended = false;  // the client finished sending (half-close) or failed
  while (c.request.size() <= options_.max_request_bytes) {
    char buffer[4096];
    const ssize_t got = recv(c.fd, buffer, sizeof(buffer), 0);
    if (got > 0) {
      c.request.append(buffer, static_cast<size_t>(got));
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    ended = got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    break;
  }
  // Only the new bytes are searched (and the 3 before them, a terminator may straddle).
  const size_t from = c.scanned > 3 ? c.scanned - 3 : 0;
  size_t end = c.request.find("\r\n\r\n", from);
  if (end == std::string::npos) end = c.request.find("\n\n", from);
  c.scanned = c.request.size();
  if (end != std::string::npos && end <= options_.max_request_bytes) {
    Answer(c, absl::string_view(c.request.data(), end));
    return true;
  }
  if (c.request.size() > options_.max_request_bytes) {
    Respond(c, "431 Request Header Fields Too Large",
            absl::StrCat("the request head is over ", options_.max_request_bytes, " bytes"));
    return true;
  }
  return !ended;  // a client that stopped sending an incomplete head gets nothing
}

void MetricsEndpoint::Answer(Connection& c, absl::string_view head) {
  const absl::string_view line = head.substr(0, head.find_first_of("\r\n"));
  const std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  const bool valid = parts.size() == 3 && !parts[0].empty() && !parts[1].empty() &&
                     (parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0");
  c.head_only = valid && parts[0] == "HEAD";
  if (!valid) {
    Respond(c, "400 Bad Request", "expected a request line: METHOD /metrics HTTP/1.1");
    return;
  }
  const absl::string_view method = parts[0];
  const absl::string_view path = parts[1].substr(0, parts[1].find('?'));
  if (path != "/metrics") {
    Respond(c, "404 Not Found", "metrics are served on /metrics");
  } else if (method != "GET" && method != "HEAD") {
    Respond(c, "405 Method Not Allowed", "use GET or HEAD", "Allow: GET, HEAD\r\n");
  } else {
    Respond(c, "200 OK", Scrape(), "", kTextFormatContentType);
  }
}

void MetricsEndpoint::Respond(Connection& c, absl::string_view status, std::string body,
                              absl::string_view extra_headers, absl::string_view content_type) {
  if (content_type.empty()) {
    content_type = "text/plain; charset=utf-8";
    body += '\n';  // a message, as a line
  }
  c.request.clear();
  c.request.shrink_to_fit();
  c.response = absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                            "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                            "Connection: close\r\n\r\n");
  if (!c.head_only) c.response.append(body);
  c.sent = 0;
  c.state = Connection::State::kWriting;
  c.deadline = SteadyNow() + options_.send_timeout;
}

bool MetricsEndpoint::WriteResponse(Connection& c, absl::Time now) {
  while (c.sent < c.response.size()) {
    const ssize_t sent =
        send(c.fd, c.response.data() + c.sent, c.response.size() - c.sent, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;  // else the client is gone
    }
    c.sent += static_cast<size_t>(sent);
  }
  // All sent: the client reads to the end and sees it closed; its own close ends the drain.
  shutdown(c.fd, SHUT_WR);
  c.response.clear();
  c.response.shrink_to_fit();
  c.state = Connection::State::kDraining;
  c.deadline = now + kDrainTime;
  return true;
}

std::string MetricsEndpoint::Scrape() {
  std::string body;
  body.reserve(last_body_bytes_ + last_body_bytes_ / 8);  // no regrowth while it is written
  for (const std::weak_ptr<prometheus::Collectable>& weak : collectables_) {
    if (const std::shared_ptr<prometheus::Collectable> collectable = weak.lock()) {
      AppendTextFormat(collectable->Collect(), body);
    }
  }
  last_body_bytes_ = body.size();
  return body;
}

}  // namespace derma::metrics
