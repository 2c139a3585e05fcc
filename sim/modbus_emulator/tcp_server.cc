// TcpServer (transport.h): Modbus TCP. One thread per connection reads MBAP frames (7-byte
// header: transaction id, protocol id 0, length, unit id; then the PDU) and answers each before
// reading the next.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "sim/modbus_emulator/transport.h"

namespace derma::emulator {
namespace {

constexpr size_t kMbapLength = 7;
constexpr size_t kMaxPdu = 253;

bool ReadExactly(int fd, uint8_t* out, size_t n) {
  while (n > 0) {
    const ssize_t got = ::recv(fd, out, n, 0);
    if (got <= 0) {
      if (got < 0 && errno == EINTR) continue;
      return false;
    }
    out += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool WriteAll(int fd, const uint8_t* data, size_t n) {
  while (n > 0) {
    const ssize_t sent = ::send(fd, data, n, MSG_NOSIGNAL);
    if (sent <= 0) {
      if (sent < 0 && errno == EINTR) continue;
      return false;
    }
    data += sent;
    n -= static_cast<size_t>(sent);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpServer>> TcpServer::Start(const std::string& host,
                                                            uint16_t port,
                                                            std::vector<EmulatedDevice*> devices) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), absl::StrCat(port).c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve ", host, ": ", ::gai_strerror(rc)));
  }
  int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const bool bound = fd >= 0 && ::bind(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                     ::listen(fd, 16) == 0;
  ::freeaddrinfo(found);
  if (!bound) {
    const std::string error = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port, ": ", error));
  }
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const uint16_t bound_port =
      ntohs(address.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  return std::unique_ptr<TcpServer>(new TcpServer(fd, bound_port, std::move(devices)));
}

TcpServer::TcpServer(int listen_fd, uint16_t port, std::vector<EmulatedDevice*> devices)
    : listen_fd_(listen_fd), port_(port), devices_(std::move(devices)) {
  if (::pipe2(wake_, O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TcpServer::~TcpServer() {
  stopping_ = true;
  if (wake_[1] >= 0) (void)::write(wake_[1], "x", 1);
  accept_thread_.join();
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);  // unblocks their reads
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
  ::close(listen_fd_);
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

void TcpServer::AcceptLoop() {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (stopping_) return;
    if (!(fds[0].revents & POLLIN)) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    absl::MutexLock lock(&mu_);
    connections_.push_back(fd);
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

EmulatedDevice* TcpServer::Find(int unit) const {
  for (EmulatedDevice* device : devices_) {
    if (device->unit() == unit) return device;
  }
  return nullptr;
}

void TcpServer::Serve(int fd) {
  std::mt19937 garbage(static_cast<uint32_t>(fd));
  uint8_t header[kMbapLength];
  uint8_t pdu[kMaxPdu];
  while (!stopping_ && ReadExactly(fd, header, kMbapLength)) {
    const size_t length = (header[4] << 8) | header[5];
    if (header[2] != 0 || header[3] != 0 || length < 2 || length - 1 > kMaxPdu) break;
    if (!ReadExactly(fd, pdu, length - 1)) break;
    EmulatedDevice* device = Find(header[6]);
    if (device == nullptr) continue;  // no such unit here: silence, as on a bus
    std::optional<Reply> reply = device->Handle(pdu, length - 1, absl::Now());
    if (!reply.has_value() || (reply->pdu.empty() && !reply->drop_connection)) continue;
    if (reply->drop_connection) break;
    if (reply->delay > absl::ZeroDuration()) absl::SleepFor(reply->delay);
    std::vector<uint8_t> out;
    for (int i = 0; i < reply->garbage_bytes; ++i) out.push_back(static_cast<uint8_t>(garbage()));
    const size_t reply_length = reply->pdu.size() + 1;
    out.insert(out.end(), {header[0], header[1], 0, 0, static_cast<uint8_t>(reply_length >> 8),
                           static_cast<uint8_t>(reply_length), header[6]});
    out.insert(out.end(), reply->pdu.begin(), reply->pdu.end());
    if (!WriteAll(fd, out.data(), out.size())) break;
  }
  absl::MutexLock lock(&mu_);
  ::close(fd);
  connections_.erase(std::remove(connections_.begin(), connections_.end(), fd),
                     connections_.end());
}

}  // namespace derma::emulator
