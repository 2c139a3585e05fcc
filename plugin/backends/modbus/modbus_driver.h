// ModbusDriver: the Driver of one device that implements derma's Modbus register map
// (REGISTER_MAP.md), on a ModbusLink shared with the other devices of its wire. It reads the
// device's identity and capabilities at its first connect (and refuses another identity after
// a reconnect), writes setpoints and coils as the map says, polls with the tagged snapshot
// read, keeps the dose counters monotonic across device restarts, and reports an output it
// cannot confirm off until the device's watchdog has certainly expired.
// Layer: plugin/backends/modbus. Link-confined: every hook runs on the link's thread.
#ifndef DERMA_PLUGIN_BACKENDS_MODBUS_MODBUS_DRIVER_H_
#define DERMA_PLUGIN_BACKENDS_MODBUS_MODBUS_DRIVER_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "derma/config/v1/config.pb.h"
#include "plugin/backends/modbus/modbus_link.h"
#include "plugin/backends/modbus/register_map.h"
#include "plugin/driver.h"

namespace derma::modbus {

class ModbusDriver : public Driver {
 public:
  // `config` is the device's expanded config (kind, expected model and serial, overrides,
  // modbus.unit_id). The link must outlive the driver.
  ModbusDriver(const config::v1::DeviceConfig& config, ModbusLink& link);

  const DriverInfo& Info() const override { return info_; }
  const DeviceDescription* Description() const override {
    return description_.has_value() ? &*description_ : nullptr;
  }
  absl::Status Connect(absl::Time now) override;
  absl::Status Apply(const v1::Settings& settings, absl::Time now) override;
  absl::Status SetOutput(bool on, absl::Time now) override;
  absl::StatusOr<DriverReading> Read(absl::Time now) override;
  bool ForceOutputOff(absl::Time now) override;
  bool EmergencyStop(absl::Time now) override;
  absl::Status ClearEmergencyStop(absl::Time now) override;

  int unit() const { return unit_; }

 private:
  using Snapshot = std::array<uint16_t, modbus_map::kSnapshotLength>;

  // The identification and capability blocks, read at every connect.
  struct Identity {
    std::vector<uint16_t> ident;
    std::vector<uint16_t> caps;
  };
  absl::StatusOr<Identity> ReadIdentity();
  // The first connect: the description from the blocks, with the config's narrowing
  // overrides and expected model / serial checked. FAILED_PRECONDITION naming the field.
  absl::Status Describe(const Identity& identity);
  // Arms the watchdog, clears its latch and switches the output off (REGISTER_MAP.md §8).
  absl::Status Prepare();
  // One tagged poll into reading_. UNAVAILABLE when the device is unreachable (the link is
  // then lost), FAILED_PRECONDITION for exception replies.
  absl::Status Poll(absl::Time now);
  // The device stopped answering, restarted or stopped hearing derma: OFFLINE until it
  // connects again. The output counts unconfirmed if it may still be on.
  void LoseLink(absl::Time now, absl::Duration next_probe_in);
  // Marks reading_.output_unconfirmed from what is known (link down only).
  void UpdateUnconfirmed(absl::Time now);
  // A request's failure: the link is lost when the device is unreachable; the status as the
  // Driver contract wants it (UNAVAILABLE, or the exception as an error that faults).
  absl::Status Failed(const absl::Status& status, absl::Time now);
  // Decodes into reading_ (link_up kept). True when the device restarted since the last
  // snapshot (its uptime or a counter went backwards): its counters continue from what it had
  // counted, so the core's stay monotonic.
  bool Decode(const Snapshot& snapshot);

  DriverInfo info_;
  const config::v1::DeviceConfig config_;
  ModbusLink& link_;
  const int unit_;
  std::optional<DeviceDescription> description_;
  Identity first_identity_;
  absl::Duration output_off_reaction_;

  bool connected_ = false;
  DriverReading reading_;
  bool have_reading_ = false;
  absl::Time last_read_ = absl::InfinitePast();
  absl::Time next_probe_ = absl::InfinitePast();
  absl::Duration probe_backoff_;
  // The output may be on: switched on (or a switch-on sent) and not since seen or confirmed off.
  bool output_maybe_on_ = false;
  // Dose counters: the device's raw values and what earlier power cycles added.
  uint64_t last_uptime_ms_ = 0;
  uint64_t raw_strokes_ = 0;
  uint64_t raw_charge_nc_ = 0;
  uint64_t strokes_base_ = 0;
  uint64_t charge_base_nc_ = 0;
};

}  // namespace derma::modbus

#endif  // DERMA_PLUGIN_BACKENDS_MODBUS_MODBUS_DRIVER_H_
