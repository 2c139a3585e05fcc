// RtuBus (transport.h): Modbus RTU on a pseudo-terminal. A pty carries bytes at once, so the bus
// keeps the line's time itself: a request that arrives took its characters' time on the wire,
// the device answers within its latency, and the reply is handed over when its last character
// would have arrived. Frames are delimited by their function code's length (the master sends
// each in one write), or by a silence for anything else.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "sim/modbus_emulator/transport.h"

namespace derma::emulator {
namespace {

constexpr absl::Duration kDeviceLatency = absl::Microseconds(500);  // within kMaxReplyLatencyMs
constexpr size_t kMaxFrame = 256;

void SleepUntil(absl::Time t) {
  const absl::Duration left = t - absl::Now();
  if (left > absl::ZeroDuration()) absl::SleepFor(left);
}

void AppendCrc(std::vector<uint8_t>* frame) {
  const uint16_t crc = Crc16(frame->data(), frame->size());
  frame->push_back(static_cast<uint8_t>(crc));
  frame->push_back(static_cast<uint8_t>(crc >> 8));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RtuBus>> RtuBus::Start(const std::string& path, uint32_t baud,
                                                      std::vector<EmulatedDevice*> devices) {
  int master = -1, slave = -1;
  char name[128] = {};
  if (::openpty(&master, &slave, name, nullptr, nullptr) != 0) {
    return absl::UnavailableError(absl::StrCat("openpty: ", std::strerror(errno)));
  }
  termios raw{};
  ::tcgetattr(slave, &raw);
  ::cfmakeraw(&raw);
  ::tcsetattr(slave, TCSANOW, &raw);
  ::fcntl(master, F_SETFD, FD_CLOEXEC);
  ::fcntl(slave, F_SETFD, FD_CLOEXEC);
  // Replace the link atomically: a client opening the path finds the old or the new pty.
  const std::string temporary = absl::StrCat(path, ".new-", ::getpid());
  ::unlink(temporary.c_str());
  if (::symlink(name, temporary.c_str()) != 0 || ::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string error = std::strerror(errno);
    ::close(master);
    ::close(slave);
    return absl::UnavailableError(absl::StrCat("cannot link ", path, " to ", name, ": ", error));
  }
  return std::unique_ptr<RtuBus>(
      new RtuBus(master, slave, path, name, baud == 0 ? 19200 : baud, std::move(devices)));
}

RtuBus::RtuBus(int master, int slave, std::string path, std::string slave_name, uint32_t baud,
               std::vector<EmulatedDevice*> devices)
    : master_(master),
      slave_(slave),
      path_(std::move(path)),
      slave_name_(std::move(slave_name)),
      char_time_(absl::Seconds(11.0 / baud)),
      devices_(std::move(devices)) {
  thread_ = std::thread([this] { Loop(); });
}

RtuBus::~RtuBus() {
  stopping_ = true;
  thread_.join();
  char target[128] = {};
  if (::readlink(path_.c_str(), target, sizeof(target) - 1) > 0 && slave_name_ == target) {
    ::unlink(path_.c_str());
  }
  ::close(slave_);
  ::close(master_);
}

void RtuBus::Loop() {
  std::vector<uint8_t> buffer;
  const int silence_ms = std::max(2, static_cast<int>(absl::ToDoubleMilliseconds(char_time_ * 3.5)) + 1);
  while (!stopping_) {
    pollfd fd = {master_, POLLIN, 0};
    const int ready = ::poll(&fd, 1, buffer.empty() ? 20 : silence_ms);
    if (ready < 0 && errno != EINTR) return;
    if (ready > 0 && (fd.revents & POLLIN)) {
      uint8_t chunk[kMaxFrame];
      const ssize_t got = ::read(master_, chunk, sizeof(chunk));
      if (got > 0) buffer.insert(buffer.end(), chunk, chunk + got);
    } else if (!buffer.empty()) {
      // A silence ends whatever is pending: an unknown function's frame, or a broken one.
      Serve(buffer, absl::Now());
      buffer.clear();
      continue;
    }
    while (!buffer.empty()) {
      const int length = RtuRequestLength(buffer.data(), buffer.size());
      if (length <= 0 || buffer.size() < static_cast<size_t>(length)) break;
      const std::vector<uint8_t> frame(buffer.begin(), buffer.begin() + length);
      buffer.erase(buffer.begin(), buffer.begin() + length);
      Serve(frame, absl::Now());
    }
    if (buffer.size() > kMaxFrame) buffer.clear();
  }
}

void RtuBus::Serve(const std::vector<uint8_t>& frame, absl::Time received) {
  if (frame.size() < 4) return;
  const uint16_t crc = Crc16(frame.data(), frame.size() - 2);
  if (frame[frame.size() - 2] != static_cast<uint8_t>(crc) ||
      frame[frame.size() - 1] != static_cast<uint8_t>(crc >> 8)) {
    return;  // a corrupt frame is not a request: nobody answers, no watchdog is fed
  }
  // The request occupied the line for its characters' time, after the line was free.
  const absl::Time request_end =
      std::max(received, line_free_) + char_time_ * static_cast<double>(frame.size());
  SleepUntil(request_end);
  const uint8_t unit = frame[0];
  const uint8_t* pdu = frame.data() + 1;
  const size_t pdu_length = frame.size() - 3;
  line_free_ = request_end;
  if (unit == 0) {
    for (EmulatedDevice* device : devices_) device->HandleBroadcast(pdu, pdu_length, request_end);
    return;
  }
  EmulatedDevice* device = nullptr;
  for (EmulatedDevice* d : devices_) {
    if (d->unit() == unit) device = d;
  }
  if (device == nullptr) return;
  std::optional<Reply> reply = device->Handle(pdu, pdu_length, request_end);
  if (!reply.has_value() || reply->pdu.empty()) return;
  std::vector<uint8_t> out;
  static thread_local std::mt19937 garbage(7);
  for (int i = 0; i < reply->garbage_bytes; ++i) out.push_back(static_cast<uint8_t>(garbage()));
  std::vector<uint8_t> answer = {unit};
  answer.insert(answer.end(), reply->pdu.begin(), reply->pdu.end());
  AppendCrc(&answer);
  if (reply->corrupt_crc) answer.back() ^= 0x5A;
  out.insert(out.end(), answer.begin(), answer.end());
  Transmit(out, request_end + char_time_ * 3.5 + kDeviceLatency + reply->delay);
}

void RtuBus::Transmit(const std::vector<uint8_t>& bytes, absl::Time start) {
  const absl::Time end = start + char_time_ * static_cast<double>(bytes.size());
  SleepUntil(end);
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(master_, bytes.data() + written, bytes.size() - written);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    written += static_cast<size_t>(n);
  }
  line_free_ = end;
}

}  // namespace derma::emulator
