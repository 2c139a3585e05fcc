// Small pieces every simulated device shares: the link model (up/down, connected), seeded sensor
// noise and the standard simulator errors. Layer: sim/, below plugin/core.
// SimLink and SensorNoise are strand-confined (owned by one device); the error builders are
// thread-safe pure functions.
#ifndef DERMA_SIM_SIM_SUPPORT_H_
#define DERMA_SIM_SIM_SUPPORT_H_

#include <cstdint>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "derma/config/v1/config.pb.h"
#include "derma/v1/device.pb.h"
#include "plugin/driver.h"

namespace derma::sim {

// The communication link of one simulated device. The device is "connected" after Connect
// succeeds and stays connected until the link drops; a restored link needs Connect again.
// Strand-confined.
class SimLink {
 public:
  explicit SimLink(std::string device_id) : device_id_(std::move(device_id)) {}

  bool up() const { return up_; }
  bool connected() const { return up_ && connected_; }
  // UNAVAILABLE (DEVICE_OFFLINE) while the link is down.
  absl::Status Connect();
  // Drops or restores the link. Dropping also disconnects.
  void Set(bool up);
  // OK when the link is up (and, if `need_connected`, Connect has succeeded); UNAVAILABLE
  // (DEVICE_OFFLINE) otherwise. `what` names the refused operation.
  absl::Status Require(absl::string_view what, bool need_connected) const;

 private:
  std::string device_id_;
  bool up_ = true;
  bool connected_ = false;
};

// Deterministic sensor noise: std::mt19937_64 mapped to uniform values by bit arithmetic
// (not std::*_distribution, whose output differs between standard libraries), so the same seed
// gives the same readings on every platform. Strand-confined.
class SensorNoise {
 public:
  explicit SensorNoise(uint64_t seed) : engine_(seed) {}
  // Uniform in [0, 1).
  double Unit();
  // Uniform in [-amplitude, amplitude).
  double Symmetric(double amplitude) { return (2.0 * Unit() - 1.0) * amplitude; }

 private:
  std::mt19937_64 engine_;
};

// INVALID_ARGUMENT, reason FAULT_NOT_APPLICABLE: `fault` does not fit a device of `kind`.
absl::Status FaultNotApplicable(derma::v1::FaultKind fault, derma::v1::DeviceKind kind);
// INVALID_ARGUMENT, reason SETTING_NOT_SUPPORTED: settings of the wrong kind (a core contract
// violation, since the core validates first).
absl::Status WrongSettingsKind(const derma::v1::Settings& settings, derma::v1::DeviceKind kind);

// DriverInfo of a simulated device: serial from the config or "SIM-<id>", firmware
// "sim-1.0.0", simulated = true.
DriverInfo MakeSimInfo(const config::v1::DeviceConfig& config, const std::string& model,
                       const derma::v1::Capabilities& capabilities,
                       const derma::v1::Settings& defaults);

// INVALID_ARGUMENT, reason INVALID_FIELD, for one bad config field ("devices[<id>].<field>").
absl::Status InvalidConfigField(const config::v1::DeviceConfig& config, absl::string_view field,
                                absl::string_view problem);

}  // namespace derma::sim

#endif  // DERMA_SIM_SIM_SUPPORT_H_
