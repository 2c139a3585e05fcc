// ModbusLink: one Modbus wire (a TCP connection or an RTU serial line) through libmodbus, with
// the failure handling the register map promises (REGISTER_MAP.md §8–9): per-request response
// timeout and retries, a wait-out-and-flush after every timeout or corrupt reply so a late
// reply is never taken for a later request's, reconnection with exponential back-off, the
// tagged poll whose echo proves a snapshot belongs to its request, and the RTU stop broadcast.
// Layer: plugin/backends/modbus. Link-confined: every call runs on the link's own thread (its
// LinkExecutor); only metrics() is read from other threads.
#ifndef DERMA_PLUGIN_BACKENDS_MODBUS_MODBUS_LINK_H_
#define DERMA_PLUGIN_BACKENDS_MODBUS_MODBUS_LINK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "derma/config/v1/config.pb.h"
#include "plugin/backends/modbus/link_metrics.h"

typedef struct _modbus modbus_t;

namespace derma::modbus {

// The link's settings with every default filled in (config.proto's ModbusLink).
struct LinkSettings {
  std::string name;
  bool rtu = false;
  std::string host;  // TCP
  uint32_t port = 502;
  std::string device;  // RTU
  uint32_t baud = 19200;
  char parity = 'E';  // 'N', 'E', 'O'
  int stop_bits = 1;
  absl::Duration response_timeout = absl::Milliseconds(100);
  uint32_t retries = 2;
  absl::Duration backoff = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(5);
  absl::Duration watchdog = absl::Seconds(1);
  bool back_to_back = false;

  // One character on the line (11 bits), and the 3.5-character silence between frames (RTU).
  absl::Duration CharTime() const;
  absl::Duration FrameGap() const;
};

LinkSettings ResolveLinkSettings(const config::v1::ModbusLink& link);

// What failed, for the caller's decision (REGISTER_MAP.md §8).
enum class Failure {
  kNone,
  kUnreachable,  // every try timed out or was corrupt/foreign, or the transport is down
  kException,    // the device answered with an exception (exception_code())
};

class ModbusLink {
 public:
  ModbusLink(LinkSettings settings, LinkMetrics& metrics);
  ~ModbusLink();
  ModbusLink(const ModbusLink&) = delete;
  ModbusLink& operator=(const ModbusLink&) = delete;

  const LinkSettings& settings() const { return settings_; }

  // Requests to `unit`, each tried up to retries + 1 times. OK, or UNAVAILABLE (reason
  // DEVICE_OFFLINE; last_failure() kUnreachable) when no try got a trustworthy reply, or
  // FAILED_PRECONDITION (kException) naming the function and exception code. A poll (the
  // tagged snapshot read) also retries exception replies.
  absl::Status ReadInputRegisters(int unit, uint16_t address, int count, uint16_t* out);
  absl::Status WriteCoil(int unit, uint16_t address, bool value);
  absl::Status WriteRegister(int unit, uint16_t address, uint16_t value);
  absl::Status WriteRegisters(int unit, uint16_t address, int count, const uint16_t* values);
  // The tagged poll (REGISTER_MAP.md §5): writes a fresh poll_tag and reads the 32-register
  // snapshot in one function-23 transaction; a reply whose tag_echo differs is discarded and the
  // poll tried again.
  absl::Status ReadSnapshot(int unit, uint16_t* snapshot);
  // RTU only: function 05 to unit 0, coil emergency_stop = 1, sent without waiting for a reply
  // (none comes), then the bus turnaround. Every unit registered with AddUnit then has a stop
  // to take (TakeBroadcastStop). False when the line could not be written.
  bool BroadcastEmergencyStop();
  // Setup: a device of this link.
  void AddUnit(int unit) { units_.push_back(unit); }
  // True once after a broadcast stop reached `unit`'s bus: its stop is sent, only confirm it.
  bool TakeBroadcastStop(int unit) { return broadcast_pending_.erase(unit) > 0; }
  // When the last request to `unit` left derma at the latest (the end of its last try): the
  // device's watchdog restarted no later than this.
  absl::Time LastRequestTo(int unit) const;
  // When the last request that was answered went out (its try's start, after the frame gap):
  // the instrument sampled what the reply carries at about this instant.
  absl::Time last_answered_sent_at() const { return last_answered_sent_at_; }

  // The longest reply latency and broadcast turnaround reported by the link's devices
  // (identification block), so waits after a timeout and a broadcast cover every device.
  void NoteDeviceTiming(absl::Duration max_reply_latency, absl::Duration broadcast_turnaround);

  Failure last_failure() const { return last_failure_; }
  int exception_code() const { return exception_code_; }
  // The transport is open (a TCP connection, an open serial device).
  bool open() const { return open_; }

 private:
  enum class Outcome { kOk, kTimeout, kCrc, kForeign, kException, kTransport };
  // Runs `attempt` (one libmodbus call returning < 0 on failure) with retries. `poll` makes
  // exception replies retryable too.
  template <typename Attempt>
  absl::Status Transact(int unit, const char* what, bool poll, Attempt attempt);
  Outcome Classify(int error) const;
  // Opens the transport if it is closed and the back-off allows; false when it stays closed.
  bool EnsureOpen();
  void Close();
  // "host:port" or the serial device, for messages.
  std::string Endpoint() const;
  // After a timeout or a corrupt or foreign reply: waits out the slowest device's latency and
  // the longest reply, then drops whatever arrived.
  void Resynchronize();
  // RTU: keeps the 3.5-character silence before the next frame.
  void KeepFrameGap();
  // One RTU write sent raw, its echo compared in full. Returns as the libmodbus calls do.
  int RawWrite(modbus_t* ctx, int unit, const std::vector<uint8_t>& pdu);

  const LinkSettings settings_;
  LinkMetrics& metrics_;
  modbus_t* ctx_ = nullptr;
  bool open_ = false;
  absl::Time next_open_attempt_ = absl::InfinitePast();
  absl::Duration current_backoff_;
  bool ever_opened_ = false;
  bool open_failure_reported_ = false;
  absl::Time last_frame_end_ = absl::InfinitePast();
  absl::Duration max_reply_latency_;
  absl::Duration broadcast_turnaround_;
  bool reported_timing_ = false;
  std::vector<int> units_;
  absl::flat_hash_set<int> broadcast_pending_;
  absl::flat_hash_map<int, absl::Time> last_request_;
  absl::Time last_answered_sent_at_ = absl::InfinitePast();
  uint16_t next_tag_ = 1;
  Failure last_failure_ = Failure::kNone;
  int exception_code_ = 0;
};

}  // namespace derma::modbus

#endif  // DERMA_PLUGIN_BACKENDS_MODBUS_MODBUS_LINK_H_
