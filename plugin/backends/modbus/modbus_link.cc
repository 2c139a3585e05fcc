#include "plugin/backends/modbus/modbus_link.h"

#include <modbus.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "plugin/backends/modbus/register_map.h"
#include "plugin/errors/errors.h"

namespace derma::modbus {
namespace {

constexpr int kRtuChecksumLength = 2;
constexpr int kLongestRtuFrame = 256;  // bytes: the Modbus RTU maximum

void SleepUntil(absl::Time t) {
  const absl::Duration left = t - absl::Now();
  if (left > absl::ZeroDuration()) absl::SleepFor(left);
}

}  // namespace

absl::Duration LinkSettings::CharTime() const {
  return rtu ? absl::Seconds(11.0 / baud) : absl::ZeroDuration();
}

absl::Duration LinkSettings::FrameGap() const { return CharTime() * 3.5; }

LinkSettings ResolveLinkSettings(const config::v1::ModbusLink& link) {
  LinkSettings s;
  s.name = link.name();
  if (link.has_rtu()) {
    const config::v1::ModbusRtu& rtu = link.rtu();
    s.rtu = true;
    s.device = rtu.device();
    if (rtu.baud() != 0) s.baud = rtu.baud();
    s.parity = rtu.parity() == config::v1::PARITY_NONE  ? 'N'
               : rtu.parity() == config::v1::PARITY_ODD ? 'O'
                                                        : 'E';
    s.stop_bits =
        rtu.stop_bits() != 0 ? static_cast<int>(rtu.stop_bits()) : (s.parity == 'N' ? 2 : 1);
  } else {
    s.host = link.tcp().host();
    if (link.tcp().port() != 0) s.port = link.tcp().port();
  }
  if (link.response_timeout_s() > 0) s.response_timeout = absl::Seconds(link.response_timeout_s());
  if (link.has_retries()) s.retries = link.retries();
  if (link.reconnect_backoff_s() > 0) s.backoff = absl::Seconds(link.reconnect_backoff_s());
  if (link.reconnect_backoff_max_s() > 0) {
    s.backoff_max = absl::Seconds(link.reconnect_backoff_max_s());
  }
  if (link.watchdog_s() > 0) s.watchdog = absl::Milliseconds(std::round(link.watchdog_s() * 1000));
  s.back_to_back = link.poll_back_to_back();
  return s;
}

ModbusLink::ModbusLink(LinkSettings settings, LinkMetrics& metrics)
    : settings_(std::move(settings)),
      metrics_(metrics),
      current_backoff_(settings_.backoff),
      // Until a device has told its own, assume it may answer as late as the timeout.
      max_reply_latency_(settings_.response_timeout),
      broadcast_turnaround_(settings_.FrameGap()) {}

ModbusLink::~ModbusLink() {
  Close();
  if (ctx_ != nullptr) modbus_free(ctx_);
}

void ModbusLink::NoteDeviceTiming(absl::Duration max_reply_latency,
                                  absl::Duration broadcast_turnaround) {
  if (!reported_timing_) {
    max_reply_latency_ = max_reply_latency;
    reported_timing_ = true;
  } else {
    max_reply_latency_ = std::max(max_reply_latency_, max_reply_latency);
  }
  broadcast_turnaround_ = std::max(broadcast_turnaround_, broadcast_turnaround);
}

bool ModbusLink::EnsureOpen() {
  if (open_) return true;
  const absl::Time now = absl::Now();
  if (now < next_open_attempt_) return false;
  if (ctx_ == nullptr) {
    ctx_ = settings_.rtu
               ? modbus_new_rtu(settings_.device.c_str(), static_cast<int>(settings_.baud),
                                settings_.parity, 8, settings_.stop_bits)
               : modbus_new_tcp_pi(settings_.host.c_str(), absl::StrCat(settings_.port).c_str());
    if (ctx_ == nullptr) {
      next_open_attempt_ = now + settings_.backoff_max;
      return false;
    }
    const timeval timeout = absl::ToTimeval(settings_.response_timeout);
    modbus_set_response_timeout(ctx_, static_cast<uint32_t>(timeout.tv_sec),
                                static_cast<uint32_t>(timeout.tv_usec));
    modbus_set_byte_timeout(ctx_, static_cast<uint32_t>(timeout.tv_sec),
                            static_cast<uint32_t>(timeout.tv_usec));
    modbus_set_error_recovery(ctx_, MODBUS_ERROR_RECOVERY_NONE);
  }
  if (modbus_connect(ctx_) == -1) {
    // Said once per outage, not at every attempt.
    if (!open_failure_reported_) {
      absl::FPrintF(stderr,
                    "derma: Modbus link %s: cannot open %s: %s (retrying, back-off up to %s)\n",
                    settings_.name, Endpoint(), std::strerror(errno),
                    absl::FormatDuration(settings_.backoff_max));
      open_failure_reported_ = true;
    }
    next_open_attempt_ = now + current_backoff_;
    current_backoff_ = std::min(current_backoff_ * 2, settings_.backoff_max);
    metrics_.SetUp(false);
    return false;
  }
  if (open_failure_reported_) {
    absl::FPrintF(stderr, "derma: Modbus link %s: %s open again\n", settings_.name, Endpoint());
    open_failure_reported_ = false;
  }
  open_ = true;
  if (ever_opened_) metrics_.CountReconnect();
  ever_opened_ = true;
  modbus_flush(ctx_);
  last_frame_end_ = absl::Now();
  return true;
}

std::string ModbusLink::Endpoint() const {
  return settings_.rtu ? settings_.device : absl::StrCat(settings_.host, ":", settings_.port);
}

void ModbusLink::Close() {
  if (!open_) return;
  modbus_close(ctx_);
  open_ = false;
  metrics_.SetUp(false);
}

ModbusLink::Outcome ModbusLink::Classify(int error) const {
  if (error == ETIMEDOUT) return Outcome::kTimeout;
  if (error == EMBBADCRC) return Outcome::kCrc;
  if (error > MODBUS_ENOBASE && error < MODBUS_ENOBASE + MODBUS_EXCEPTION_MAX) {
    return Outcome::kException;
  }
  if (error == EMBBADDATA || error == EMBBADEXC || error == EMBUNKEXC || error == EMBMDATA ||
      error == EMBBADSLAVE) {
    return Outcome::kForeign;
  }
  return Outcome::kTransport;  // ECONNRESET, EPIPE, EBADF, EIO, ...
}

void ModbusLink::Resynchronize() {
  // A reply still on its way arrives within the slowest device's latency plus one longest
  // frame; whatever has arrived by then is dropped, so it cannot answer the next request.
  absl::SleepFor(max_reply_latency_ + settings_.CharTime() * kLongestRtuFrame);
  if (open_) modbus_flush(ctx_);
  last_frame_end_ = absl::Now();
}

void ModbusLink::KeepFrameGap() {
  if (settings_.rtu) SleepUntil(last_frame_end_ + settings_.FrameGap());
}

template <typename Attempt>
absl::Status ModbusLink::Transact(int unit, const char* what, bool poll, Attempt attempt) {
  last_failure_ = Failure::kNone;
  int exceptions = 0;
  std::string last_error = "link closed";
  for (uint32_t attempt_index = 0; attempt_index <= settings_.retries; ++attempt_index) {
    if (!EnsureOpen()) break;
    modbus_set_slave(ctx_, unit);
    KeepFrameGap();
    const absl::Time start = absl::Now();
    errno = 0;
    const int rc = attempt(ctx_);
    const int error = errno;
    last_frame_end_ = absl::Now();
    last_request_[unit] = last_frame_end_;
    if (rc >= 0) {
      last_answered_sent_at_ = start;
      metrics_.Record(RequestOutcome::kOk, last_frame_end_ - start);
      metrics_.SetUp(true);
      current_backoff_ = settings_.backoff;
      return absl::OkStatus();
    }
    const Outcome outcome = Classify(error);
    last_error = modbus_strerror(error);
    switch (outcome) {
      case Outcome::kException:
        metrics_.Record(RequestOutcome::kException, last_frame_end_ - start);
        metrics_.SetUp(true);
        exception_code_ = error - MODBUS_ENOBASE;
        ++exceptions;
        if (!poll) {
          last_failure_ = Failure::kException;
          return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_DRIVER_ERROR,
                           absl::StrFormat("unit %d answered %s with exception %02d (%s)", unit,
                                           what, exception_code_, last_error));
        }
        break;
      case Outcome::kTimeout:
      case Outcome::kCrc:
      case Outcome::kForeign:
        metrics_.Record(outcome == Outcome::kTimeout ? RequestOutcome::kTimeout
                        : outcome == Outcome::kCrc   ? RequestOutcome::kCrcError
                                                     : RequestOutcome::kForeignReply,
                        last_frame_end_ - start);
        Resynchronize();
        break;
      case Outcome::kOk:
      case Outcome::kTransport:
        metrics_.Record(RequestOutcome::kTransportError, last_frame_end_ - start);
        Close();
        next_open_attempt_ = absl::InfinitePast();  // the first reopen is immediate
        break;
    }
  }
  if (exceptions == static_cast<int>(settings_.retries) + 1) {
    last_failure_ = Failure::kException;
    return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_DRIVER_ERROR,
                     absl::StrFormat("unit %d answered every %s with exception %02d", unit, what,
                                     exception_code_));
  }
  last_failure_ = Failure::kUnreachable;
  return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_DEVICE_OFFLINE,
                   absl::StrFormat("link %s: unit %d did not answer %s (%s)", settings_.name, unit,
                                   what, last_error));
}

absl::Status ModbusLink::ReadInputRegisters(int unit, uint16_t address, int count, uint16_t* out) {
  return Transact(unit, "a register read", /*poll=*/false, [&](modbus_t* ctx) {
    return modbus_read_input_registers(ctx, address, count, out);
  });
}

// RTU writes go out raw and their echo is compared in full: libmodbus checks only the function
// and the count, so a late echo of another write would otherwise pass. Over TCP the
// transaction id already ties a reply to its request.
int ModbusLink::RawWrite(modbus_t* ctx, int unit, const std::vector<uint8_t>& pdu) {
  std::vector<uint8_t> raw;
  raw.reserve(pdu.size() + 1);
  raw.push_back(static_cast<uint8_t>(unit));
  raw.insert(raw.end(), pdu.begin(), pdu.end());
  if (modbus_send_raw_request(ctx, raw.data(), static_cast<int>(raw.size())) == -1) return -1;
  uint8_t reply[MODBUS_RTU_MAX_ADU_LENGTH];
  const int length = modbus_receive_confirmation(ctx, reply);
  if (length <= 0) {
    if (length == 0) errno = EMBBADSLAVE;
    return -1;
  }
  const int header = modbus_get_header_length(ctx);
  const int pdu_length = length - header - kRtuChecksumLength;
  if (pdu_length >= 2 && reply[header] == (pdu[0] | 0x80)) {
    errno = MODBUS_ENOBASE + reply[header + 1];
    return -1;
  }
  // 05 and 06 echo the request; 16 echoes its function, address and quantity.
  const size_t expected = pdu[0] == 0x10 ? 5 : pdu.size();
  if (reply[0] != unit || pdu_length != static_cast<int>(expected) ||
      std::memcmp(reply + header, pdu.data(), expected) != 0) {
    errno = EMBBADDATA;
    return -1;
  }
  return 1;
}

absl::Status ModbusLink::WriteCoil(int unit, uint16_t address, bool value) {
  return Transact(unit, "a coil write", /*poll=*/false, [&](modbus_t* ctx) {
    if (!settings_.rtu) return modbus_write_bit(ctx, address, value ? 1 : 0);
    return RawWrite(ctx, unit,
                    {0x05, static_cast<uint8_t>(address >> 8), static_cast<uint8_t>(address),
                     static_cast<uint8_t>(value ? 0xFF : 0x00), 0x00});
  });
}

absl::Status ModbusLink::WriteRegister(int unit, uint16_t address, uint16_t value) {
  return Transact(unit, "a register write", /*poll=*/false, [&](modbus_t* ctx) {
    if (!settings_.rtu) return modbus_write_register(ctx, address, value);
    return RawWrite(ctx, unit,
                    {0x06, static_cast<uint8_t>(address >> 8), static_cast<uint8_t>(address),
                     static_cast<uint8_t>(value >> 8), static_cast<uint8_t>(value)});
  });
}

absl::Status ModbusLink::WriteRegisters(int unit, uint16_t address, int count,
                                        const uint16_t* values) {
  return Transact(unit, "a block write", /*poll=*/false, [&](modbus_t* ctx) {
    if (!settings_.rtu) return modbus_write_registers(ctx, address, count, values);
    std::vector<uint8_t> pdu = {0x10,
                                static_cast<uint8_t>(address >> 8),
                                static_cast<uint8_t>(address),
                                static_cast<uint8_t>(count >> 8),
                                static_cast<uint8_t>(count),
                                static_cast<uint8_t>(count * 2)};
    for (int i = 0; i < count; ++i) {
      pdu.push_back(static_cast<uint8_t>(values[i] >> 8));
      pdu.push_back(static_cast<uint8_t>(values[i]));
    }
    return RawWrite(ctx, unit, pdu);
  });
}

absl::Status ModbusLink::ReadSnapshot(int unit, uint16_t* snapshot) {
  return Transact(unit, "a poll", /*poll=*/true, [&](modbus_t* ctx) {
    const uint16_t tag = next_tag_++;
    const int rc = modbus_write_and_read_registers(ctx, modbus_map::kPollTag, 1, &tag,
                                                   modbus_map::kSnapshotAddress,
                                                   modbus_map::kSnapshotLength, snapshot);
    if (rc >= 0 && snapshot[0] != tag) {
      errno = EMBBADDATA;  // a reply to an earlier poll: never published
      return -1;
    }
    return rc;
  });
}

absl::Time ModbusLink::LastRequestTo(int unit) const {
  auto it = last_request_.find(unit);
  return it == last_request_.end() ? absl::InfinitePast() : it->second;
}

bool ModbusLink::BroadcastEmergencyStop() {
  if (!settings_.rtu || !EnsureOpen()) return false;
  KeepFrameGap();
  const uint8_t raw[] = {0x00, 0x05, 0x00, static_cast<uint8_t>(modbus_map::kCoilEmergencyStop),
                         0xFF, 0x00};
  modbus_set_slave(ctx_, 0);
  const bool sent = modbus_send_raw_request(ctx_, raw, sizeof(raw)) != -1;
  metrics_.CountBroadcast();
  if (sent) broadcast_pending_.insert(units_.begin(), units_.end());
  // The frame itself (8 bytes with the CRC), then the slowest device's turnaround.
  const absl::Time frame_end = absl::Now() + settings_.CharTime() * 8;
  SleepUntil(frame_end + broadcast_turnaround_);
  last_frame_end_ = absl::Now();
  if (!sent) {
    Close();
    next_open_attempt_ = absl::InfinitePast();
  }
  return sent;
}

}  // namespace derma::modbus
