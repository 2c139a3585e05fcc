// EmulatedDevice: one simulated pen or stimulator behind derma's Modbus register map
// (plugin/backends/modbus/REGISTER_MAP.md): the sim/ physics model of its kind, the map's
// registers, coils and latches, and its communication watchdog, plus the faults the emulator
// can give its transport (SetTransportFault). The emulator's transports hand it the requests
// addressed to its unit id; its controls run the Simulator's actions on its model.
// Layer: sim/modbus_emulator. Thread-safe (one lock per device).
#ifndef DERMA_SIM_MODBUS_EMULATOR_EMULATED_DEVICE_H_
#define DERMA_SIM_MODBUS_EMULATOR_EMULATED_DEVICE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "derma/config/v1/config.pb.h"
#include "derma/sim/v1/simulator.pb.h"
#include "plugin/backends/modbus/register_map.h"
#include "sim/modbus_emulator/modbus_pdu.h"
#include "sim/simulator_control.h"

namespace derma::emulator {

// Timing the device declares in its identification block (REGISTER_MAP.md §3.1).
inline constexpr uint16_t kMaxReplyLatencyMs = 20;
inline constexpr uint16_t kOutputOffReactionMs = 10;
inline constexpr uint16_t kBroadcastTurnaroundMs = 2;

// Where an emulated device reports what it does, for people and tests watching the emulator.
// Implementations are thread-safe.
class EmulatorLog {
 public:
  virtual ~EmulatorLog() = default;
  // Something the device did at `t`: "output on", "output off", "watchdog expired (output was
  // on)", "emergency stop latched", ...
  virtual void Event(absl::Time t, const std::string& device, const std::string& what) = 0;
  // A tagged poll's reply: its tag, the dose counter it carried (pens: strokes_total;
  // stimulators: charge_delivered in 0.001 µC) and whether it left on time (false: late or lost).
  virtual void PollReply(absl::Time t, const std::string& device, uint16_t tag, uint64_t counter,
                         bool on_time) = 0;
};

// What the transport does with one request's reply.
struct Reply {
  std::vector<uint8_t> pdu;      // the reply PDU; empty: none (nothing is sent)
  absl::Duration delay;          // extra delay before it is sent (LATE_REPLY)
  bool corrupt_crc = false;      // RTU: send it with a wrong CRC (BAD_CRC)
  int garbage_bytes = 0;         // random bytes sent before it (GARBAGE)
  bool drop_connection = false;  // TCP: close the connection instead (DROP_CONNECTION)
};

class EmulatedDevice : private RegisterSpace {
 public:
  // A device for a BACKEND_MODBUS device config (kind, model, serial, overrides, setup, unit id),
  // powered up at `now`. `rtu`: its transport is a serial bus (for the faults that apply).
  // `log` (optional) must outlive the device.
  static absl::StatusOr<std::unique_ptr<EmulatedDevice>> Create(
      const config::v1::DeviceConfig& config, uint64_t seed, bool rtu, absl::Time now,
      EmulatorLog* log = nullptr);

  int unit() const { return unit_; }
  const std::string& name() const { return name_; }

  // One request PDU addressed to this unit, arrived intact at `now`; nullopt when the device
  // ignores it (its link is dropped: LINK_DROP / SetLink(false)).
  std::optional<Reply> Handle(const uint8_t* pdu, size_t length, absl::Time now);
  // A broadcast request PDU (RTU unit 0): only the emergency-stop coil write acts.
  void HandleBroadcast(const uint8_t* pdu, size_t length, absl::Time now);
  // Advances the device to `now`: the watchdog switches the output off when it runs out.
  void Tick(absl::Time now);

  // Runs a Simulator action on the device's model (LINK_DROP and SetLink act on the device's
  // link instead: a dropped device ignores every request).
  absl::Status RunControl(sim::DeviceAction action, absl::Time now);
  absl::Status SetTransportFault(const sim::v1::SetTransportFaultRequest& request);

  // For tests: the output is on now; the emergency stop is latched.
  bool output_on() const;
  bool estop_latched() const;

 private:
  class ControlFacade;
  EmulatedDevice(std::string name, int unit, bool rtu, std::unique_ptr<sim::SimDevice> model,
                 absl::Time now, EmulatorLog* log);
  void Log(const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // RegisterSpace, called under mu_ from Handle.
  uint8_t ReadCoils(uint16_t address, uint16_t count, std::vector<bool>* out) override;
  uint8_t ReadDiscreteInputs(uint16_t address, uint16_t count, std::vector<bool>* out) override;
  uint8_t ReadHolding(uint16_t address, uint16_t count, uint16_t* out) override;
  uint8_t ReadInput(uint16_t address, uint16_t count, uint16_t* out) override;
  uint8_t WriteCoils(uint16_t address, const std::vector<bool>& values) override;
  uint8_t WriteRegisters(uint16_t address, const uint16_t* values, uint16_t count,
                         WriteFunction function) override;
  uint8_t CheckHoldingRead(uint16_t address, uint16_t count) override;

  void AdvanceLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The snapshot at the current request's time, built once per request.
  const std::array<uint16_t, modbus_map::kSnapshotLength>& Snapshot()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint8_t WriteSetpoints(const uint16_t* values) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Output enable = 1 is refused (exception 03) with either latch, a fault condition present,
  // or a used-up cartridge (REGISTER_MAP.md §6).
  uint8_t CheckOutputEnable(bool estop_latched, bool watchdog_expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OutputOff() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply ApplyTransportFault(std::vector<uint8_t> pdu, const uint8_t* request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string name_;
  const int unit_;
  const bool rtu_;
  const v1::DeviceKind kind_;
  const absl::Time power_up_;
  EmulatorLog* const log_;
  // The identification and capability blocks (fixed) and each parameter's limits in register
  // units (min, max, resolution) for setpoint checks.
  std::vector<uint16_t> ident_;
  std::vector<uint16_t> caps_;
  struct Limits {
    int64_t min, max, resolution;
  };
  std::vector<Limits> limits_;
  uint16_t supported_waveforms_ = 0;
  uint16_t supported_polarities_ = 0;

  mutable absl::Mutex mu_;
  std::unique_ptr<sim::SimDevice> model_ ABSL_GUARDED_BY(mu_);
  absl::Time now_ ABSL_GUARDED_BY(mu_);  // the model's time; never goes back
  DriverReading reading_ ABSL_GUARDED_BY(mu_);
  bool snapshot_valid_ ABSL_GUARDED_BY(mu_) = false;
  std::array<uint16_t, modbus_map::kSnapshotLength> snapshot_ ABSL_GUARDED_BY(mu_){};
  std::vector<uint16_t> setpoints_ ABSL_GUARDED_BY(mu_);
  uint16_t watchdog_ms_ ABSL_GUARDED_BY(mu_) = modbus_map::kWatchdogPowerUpMs;
  uint16_t poll_tag_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_request_ ABSL_GUARDED_BY(mu_);
  bool watchdog_running_ ABSL_GUARDED_BY(mu_) = true;
  bool watchdog_expired_ ABSL_GUARDED_BY(mu_) = false;
  bool estop_latched_ ABSL_GUARDED_BY(mu_) = false;
  bool link_up_ ABSL_GUARDED_BY(mu_) = true;
  sim::v1::SetTransportFaultRequest transport_fault_ ABSL_GUARDED_BY(mu_);
  uint32_t transport_fault_left_ ABSL_GUARDED_BY(mu_) = 0;  // 0 with a fault: until cleared
};

}  // namespace derma::emulator

#endif  // DERMA_SIM_MODBUS_EMULATOR_EMULATED_DEVICE_H_
