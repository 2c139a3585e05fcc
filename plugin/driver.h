// Driver: the small interface between the device core and one physical (or simulated)
// instrument. Layer: plugin/driver, below plugin/core.
//
// The core owns the state machine, validation, leases and runs; a driver only talks to
// hardware. Every hook is called on the device's strand (never concurrently for one driver),
// with the device time `now`, which never goes backwards between calls. Drivers are therefore
// strand-confined and need no locks. A hook returns a non-OK status only when the hardware
// misbehaves; the core then forces the output off and latches FAULT.
#ifndef DERMA_PLUGIN_DRIVER_H_
#define DERMA_PLUGIN_DRIVER_H_

#include <cstdint>
#include <numbers>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "derma/v1/device.pb.h"

namespace derma {

// What a pen measures. Units in the field names.
struct PenReading {
  double needle_depth_mm = 0;
  double stroke_rate_hz = 0;
  uint64_t strokes_total = 0;
  double motor_current_a = 0;
  double motor_temperature_c = 0;
  uint64_t cartridge_strokes_used = 0;
};

// What a stimulator measures. Units in the field names.
struct StimulatorReading {
  double current_setpoint_ua = 0;
  double current_measured_ua = 0;
  double electrode_impedance_ohm = 0;
  double output_voltage_v = 0;
  double charge_delivered_uc = 0;
  bool electrode_contact = false;
};

// What the instrument is and what it can be set to. A simulated device knows it from its
// catalogue; a real device reports it (the Modbus backend reads it from the device).
struct DeviceDescription {
  std::string model;
  std::string serial_number;
  std::string firmware_version;
  // Limits, and (capabilities.regulation) how the delivered output follows the setpoints: the
  // core holds the device to that trajectory (regulation check, programmed dose), so a driver
  // declares what its instrument really does. grace_s 0 switches the check off.
  v1::Capabilities capabilities;
  v1::Settings default_settings;  // full settings of the kind, within capabilities
};

// Static facts of the driver. Never changes after construction.
struct DriverInfo {
  v1::DeviceKind kind = v1::DEVICE_KIND_UNSPECIFIED;
  bool simulated = false;
  // True when no hook ever waits (no I/O, no sleeping; the simulator): the core may then run
  // a command on the thread that received it while the device's strand is idle, saving a
  // hand-off to an executor thread. False (the default, for real links) keeps every call on
  // the executor's threads, so a slow instrument never holds a gRPC thread.
  bool hooks_never_block = false;
  // True for an instrument behind a real link: a hook takes effect when its request reaches the
  // instrument (on the wall clock, after `now`), not at `now` as a model's does. The core then
  // starts an output's programmed dose, ledger and session when SetOutput(true) returned.
  bool acts_when_called = false;
  // Set when the description is known before the first Connect (the simulator); empty for a
  // device that reports its own, which Description() returns after the first Connect.
  std::optional<DeviceDescription> description;
};

// The mean of |shape| over one period of a stimulator waveform, as the Waveform enum defines
// the shapes: a charge counter advances at amplitude × this. BIPHASIC_SQUARE 1,
// MONOPHASIC_SQUARE and ALTERNATING_POLARITY 0.5 (50 % duty), SINE 2/π.
inline double WaveformMeanAbsShape(v1::Waveform waveform) {
  switch (waveform) {
    case v1::WAVEFORM_MONOPHASIC_SQUARE:
    case v1::WAVEFORM_ALTERNATING_POLARITY:
      return 0.5;
    case v1::WAVEFORM_SINE:
      return 2 / std::numbers::pi;
    default:
      return 1;
  }
}

// Bit set over v1::FaultKind: bit (1 << kind) is set while that condition is present.
using FaultMask = uint32_t;
constexpr FaultMask FaultBit(v1::FaultKind kind) { return FaultMask{1} << static_cast<int>(kind); }

// What the driver measured at `now`.
struct DriverReading {
  bool link_up = true;
  bool output_on = false;
  // True while the output is not known to be off: the link went down (or a confirmation
  // failed) after the output was on, and neither has the device confirmed it off nor has its
  // communication watchdog certainly expired. output_on is false then (derma has commanded it
  // off); the simulator never sets it.
  bool output_unconfirmed = false;
  // The instrument holds its own emergency stop latched (one it latched by itself, a stop
  // button, or one derma sent). The core then holds the device ESTOPPED until a client resets
  // it, which clears the instrument's latch (ClearEmergencyStop).
  bool estop_latched = false;
  FaultMask faults = 0;      // conditions present now (LINK_DROP is reported via link_up)
  std::string fault_detail;  // human-readable detail of the faults, empty when none
  PenReading pen;            // pens
  v1::Cartridge cartridge;   // pens: installed cartridge
  StimulatorReading stim;    // stimulators
  // When the instrument took the request this reading answers, on the wall clock: set by a
  // driver that acts_when_called, whose counters are sampled then rather than at the `now`
  // Read was given (a poll can start late, or wait for the bus). The core counts the programmed
  // dose up to this instant, so it covers the same interval as the delivered counters.
  // InfinitePast (a model): the reading is at `now`.
  absl::Time taken_at = absl::InfinitePast();
};

class Driver {
 public:
  virtual ~Driver() = default;

  // Static facts. Never change after construction.
  virtual const DriverInfo& Info() const = 0;

  // What the instrument is and can do: Info().description, or (a device that reports its own)
  // what the first successful Connect read; null until then. Once non-null it never changes.
  virtual const DeviceDescription* Description() const = 0;

  // Opens the link and prepares the instrument (a real device: reads its identity, arms its
  // watchdog, switches its output off); called when the device is OFFLINE and its last reading
  // had link_up, at start and after a link loss. UNAVAILABLE when the link is down (the core
  // tries again later). Any other error (FAILED_PRECONDITION: the instrument answering is not the
  // one first described, or not of the configured kind) faults the device: it never adopts
  // another description.
  virtual absl::Status Connect(absl::Time now) = 0;

  // Applies a complete, validated and quantized settings message of the driver's kind.
  // The output state does not change. Called in any connected state, also while RUNNING.
  virtual absl::Status Apply(const v1::Settings& settings, absl::Time now) = 0;

  // Switches the output (needle motor / current) on or off. UNAVAILABLE when the link is down.
  virtual absl::Status SetOutput(bool on, absl::Time now) = 0;

  // Advances the instrument to `now` and returns what it measures then. Counters
  // (strokes_total, charge_delivered_uc) are monotonic. A second Read with the same `now` may
  // be answered without I/O: it returns the previous reading with the effect of the hooks
  // called since (an output switched off reads off). A driver that cannot trust a reading (a
  // late or foreign reply) never returns it: it retries, or reports the link down.
  virtual absl::StatusOr<DriverReading> Read(absl::Time now) = 0;

  // Forces the output off. Must not fail. Returns true when the output is certainly off: the
  // device confirmed it, or (the simulator) it cannot be otherwise. False when the link is down
  // and the device could not confirm: a device without a hardware interlock line then switches
  // itself off by its communication watchdog, and the driver's readings carry
  // output_unconfirmed until that watchdog has certainly expired or the device confirms.
  // Used by EmergencyStop, Stop, Pause, faults, link loss, the dead-man switch and shutdown.
  virtual bool ForceOutputOff(absl::Time now) = 0;

  // EmergencyStop: the output off through the instrument's own latched stop where it has one
  // (the Modbus map's emergency_stop coil, or a bus-wide broadcast the backend sent just
  // before), confirmed by a reading. Must not fail; returns as ForceOutputOff. Default:
  // ForceOutputOff.
  virtual bool EmergencyStop(absl::Time now) { return ForceOutputOff(now); }
  // Clears the instrument's own emergency-stop latch (ResetEmergencyStop). UNAVAILABLE when the
  // link is down. Default: nothing to clear.
  virtual absl::Status ClearEmergencyStop(absl::Time now) { return absl::OkStatus(); }
};

// What the core calls, so a driver over a slow link knows its cost (one bus transaction per
// Read at a new `now`, one per write):
//   tick: Read(now) — plus one Read per deadline (step end, lease expiry, session limit) passed
//     since the last tick, at that deadline's time.
//   a command (Configure, Start, Pause, Resume, Stop, StartRun, CancelRun, resets, leases):
//     Read(now) to catch up, then only what it changes: Apply (Configure, a run's step),
//     SetOutput(true) (Start, Resume, StartRun), ForceOutputOff (Pause, Stop, CancelRun); the
//     sample it publishes afterwards reads again at the same `now` (no I/O needed).
//   EmergencyStop: EmergencyStop(now) first, then Read(now) (no I/O: same `now`).
//   ResetEmergencyStop: Read(now), then ClearEmergencyStop(now).
//   link restored: Connect, then Apply of the settings in force.
}  // namespace derma

#endif  // DERMA_PLUGIN_DRIVER_H_
