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
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "derma/v1/device.pb.h"
#include "plugin/core/sample.h"

namespace derma {

// Static description of the instrument behind a driver.
struct DriverInfo {
  v1::DeviceKind kind = v1::DEVICE_KIND_UNSPECIFIED;
  std::string model;
  std::string serial_number;
  std::string firmware_version;
  bool simulated = false;
  // True when no hook ever waits (no I/O, no sleeping; the simulator): the core may then run
  // a command on the thread that received it while the device's strand is idle, saving a
  // hand-off to an executor thread. False (the default, for real links) keeps every call on
  // the executor's threads, so a slow instrument never holds a gRPC thread.
  bool hooks_never_block = false;
  // Limits, and (capabilities.regulation) how the delivered output follows the setpoints: the
  // core holds the device to that trajectory (regulation check, programmed dose), so a driver
  // declares what its instrument really does. grace_s 0 switches the check off.
  v1::Capabilities capabilities;
  v1::Settings default_settings;  // full settings of the kind, within capabilities
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
  FaultMask faults = 0;      // conditions present now (LINK_DROP is reported via link_up)
  std::string fault_detail;  // human-readable detail of the faults, empty when none
  PenReading pen;            // pens
  v1::Cartridge cartridge;   // pens: installed cartridge
  StimulatorReading stim;    // stimulators
};

class Driver {
 public:
  virtual ~Driver() = default;

  // Static description. Must not change after construction.
  virtual const DriverInfo& Info() const = 0;

  // Opens the link; called when the device is OFFLINE and its last reading had link_up.
  // UNAVAILABLE when the link is down.
  virtual absl::Status Connect(absl::Time now) = 0;

  // Applies a complete, validated and quantized settings message of the driver's kind.
  // The output state does not change. Called in any connected state, also while RUNNING.
  virtual absl::Status Apply(const v1::Settings& settings, absl::Time now) = 0;

  // Switches the output (needle motor / current) on or off.
  virtual absl::Status SetOutput(bool on, absl::Time now) = 0;

  // Advances the instrument to `now` and returns what it measures then. Counters
  // (strokes_total, charge_delivered_uc) are monotonic.
  virtual absl::StatusOr<DriverReading> Read(absl::Time now) = 0;

  // Forces the output off. Must not fail, also with the link down (models the hardware
  // interlock line every device has). Used by EmergencyStop, faults and link loss.
  virtual void ForceOutputOff(absl::Time now) = 0;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_DRIVER_H_
