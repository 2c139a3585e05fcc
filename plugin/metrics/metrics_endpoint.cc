#include "plugin/metrics/metrics_endpoint.h"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "plugin/metrics/text_format.h"

namespace derma::metrics {

struct MetricsEndpoint::Connection {
  int fd = -1;
  std::string request;
  std::string response;
  size_t sent = 0;
  bool writing = false;
  absl::Time deadline;
};

namespace {

absl::Status AddressError(absl::StatusCode code, const std::string& listen,
                          absl::string_view why) {
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
    const int bound_port =
        bound.ss_family == AF_INET6
            ? ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port)
            : ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    freeaddrinfo(found);
    return std::make_pair(fd, bound_port);
  }
  freeaddrinfo(found);
  return AddressError(absl::StatusCode::kUnavailable, listen,
                      absl::StrCat("cannot listen: ", last_error));
}

std::string Head(absl::string_view status, absl::string_view content_type, size_t length,
                 absl::string_view extra = "") {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", length, "\r\n", extra,
                      "Connection: close\r\n\r\n");
}

std::string Error(absl::string_view status, absl::string_view message,
                  absl::string_view extra = "") {
  const std::string body = absl::StrCat(message, "\n");
  return absl::StrCat(Head(status, "text/plain; charset=utf-8", body.size(), extra), body);
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
  return std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint(
      socket->first, socket->second, wake, std::move(collectables), options));
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
  if (thread_.joinable()) thread_.join();
}

void MetricsEndpoint::Loop() {
  std::vector<Connection> connections;
  std::vector<pollfd> polled;
  while (!stopping_.load()) {
    polled.clear();
    polled.push_back({wake_fd_, POLLIN, 0});
    // At the limit the listener is not polled: new clients wait in the backlog.
    const bool accepting = connections.size() < options_.max_connections;
    polled.push_back({listen_fd_, static_cast<short>(accepting ? POLLIN : 0), 0});
    absl::Time next_deadline = absl::InfiniteFuture();
    for (const Connection& c : connections) {
      polled.push_back({c.fd, static_cast<short>(c.writing ? POLLOUT : POLLIN), 0});
      next_deadline = std::min(next_deadline, c.deadline);
    }
    int timeout_ms = -1;
    if (next_deadline != absl::InfiniteFuture()) {
      timeout_ms = static_cast<int>(std::clamp<int64_t>(
          absl::ToInt64Milliseconds(absl::Ceil(next_deadline - absl::Now(), absl::Milliseconds(1))),
          0, 60'000));
    }
    if (poll(polled.data(), polled.size(), timeout_ms) < 0 && errno != EINTR) break;
    if (polled[0].revents != 0) break;  // Stop
    const absl::Time now = absl::Now();
    for (size_t i = 0; i < connections.size(); ++i) {
      Connection& c = connections[i];
      const short events = polled[i + 2].revents;
      bool open = true;
      if (!c.writing && events != 0) ReadRequest(c);
      if (!c.writing && c.fd >= 0 && now >= c.deadline) {
        Respond(c, Error("408 Request Timeout", "the request head did not arrive in time"));
      }
      if (c.fd < 0) {
        open = false;
      } else if (c.writing && (events != 0 || c.sent == 0)) {
        open = WriteResponse(c);
      }
      if (open && c.writing && now >= c.deadline) {
        // The client does not read: reset the connection, so the kernel does not keep
        // sending (and holding) the rest of the response after the close.
        const linger reset{1, 0};
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        open = false;
      }
      if (!open && c.fd >= 0) {
        close(c.fd);
        c.fd = -1;
      }
    }
    connections.erase(std::remove_if(connections.begin(), connections.end(),
                                     [](const Connection& c) { return c.fd < 0; }),
                      connections.end());
    if (accepting && (polled[1].revents & POLLIN) != 0) Accept(connections);
  }
  for (Connection& c : connections) close(c.fd);
  close(listen_fd_);
}

void MetricsEndpoint::Accept(std::vector<Connection>& connections) {
  while (connections.size() < options_.max_connections) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a client that gave up: nothing to do either way
    Connection& c = connections.emplace_back();
    c.fd = fd;
    c.deadline = absl::Now() + options_.request_timeout;
  }
}

void MetricsEndpoint::ReadRequest(Connection& c) {
  char buffer[4096];
  for (;;) {
    const ssize_t got = recv(c.fd, buffer, sizeof(buffer), 0);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      close(c.fd);  // the client went away before finishing its request
      c.fd = -1;
      return;
    }
    if (got < 0) {
      if (errno == EINTR) continue;
      break;
    }
    c.request.append(buffer, static_cast<size_t>(got));
    if (c.request.size() > options_.max_request_bytes) break;
  }
  size_t end = c.request.find("\r\n\r\n");
  if (end == std::string::npos) end = c.request.find("\n\n");
  if (end == std::string::npos || end > options_.max_request_bytes) {
    if (c.request.size() > options_.max_request_bytes) {
      Respond(c, Error("431 Request Header Fields Too Large",
                       absl::StrCat("the request head is over ", options_.max_request_bytes,
                                    " bytes")));
    }
    return;  // wait for the rest
  }
  const absl::string_view head(c.request.data(), end);
  const absl::string_view line = head.substr(0, head.find_first_of("\r\n"));
  const std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.") || parts[1].empty()) {
    Respond(c, Error("400 Bad Request", "expected a request line: METHOD /metrics HTTP/1.1"));
    return;
  }
  const absl::string_view method = parts[0];
  const absl::string_view path = parts[1].substr(0, parts[1].find('?'));
  if (path != "/metrics") {
    Respond(c, Error("404 Not Found", "metrics are served on /metrics"));
  } else if (method != "GET" && method != "HEAD") {
    Respond(c, Error("405 Method Not Allowed", "use GET or HEAD", "Allow: GET, HEAD\r\n"));
  } else {
    const std::string body = Scrape();
    std::string response = Head("200 OK", kTextFormatContentType, body.size());
    if (method == "GET") response += body;
    Respond(c, response);
  }
}

void MetricsEndpoint::Respond(Connection& c, const std::string& response) {
  c.request.clear();
  c.request.shrink_to_fit();
  c.response = response;
  c.sent = 0;
  c.writing = true;
  c.deadline = absl::Now() + options_.send_timeout;
}

bool MetricsEndpoint::WriteResponse(Connection& c) {
  while (c.sent < c.response.size()) {
    const ssize_t sent =
        send(c.fd, c.response.data() + c.sent, c.response.size() - c.sent, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;  // else the client is gone
    }
    c.sent += static_cast<size_t>(sent);
  }
  shutdown(c.fd, SHUT_WR);  // all sent: the client reads to the end, then sees it closed
  return false;
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
