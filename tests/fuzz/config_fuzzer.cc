// Fuzz target: fleet config files. The input is the contents of a config file, read with
// LoadFleetConfig (text format, or JSON when it starts with '{') and checked with
// ValidateFleetConfig, as dermad does at start-up. A valid config is expanded and, for its
// first devices, each simulated device is built from its model, overrides and setup, and run
// through Initialize and a tick. Checked on every input:
//   - load and validation errors are INVALID_ARGUMENT with reason INVALID_FIELD (the loader's
//     also name the file; the validator's list at least one field);
//   - a valid config expands to exactly its devices plus every group's count, with unique ids,
//     and its effective sample rate and speed factor are in range;
//   - a device the simulator refuses is refused with INVALID_ARGUMENT; one it builds has sane
//     capabilities (finite, min ≤ max, resolution ≥ 0) and comes up with its output off, IDLE
//     or (a setup that starts in a fault, e.g. a worn cartridge) FAULT.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "plugin/errors/errors.h"
#include "plugin/host/config_loader.h"
#include "sim/registry.h"
#include "tests/fuzz/fuzz_support.h"

namespace derma::fuzz {
namespace {

using config::v1::DeviceConfig;
using config::v1::FleetConfig;

// Configs expand to at most this many devices before the target builds them (a valid config
// may declare 100000 per group; validating it is part of the input, building them is not).
constexpr size_t kMaxExpanded = 2000;
constexpr size_t kMaxBuilt = 8;

// One scratch file per process: LoadFleetConfig reads a path, like dermad.
const std::string& ScratchPath() {
  static const std::string* path = [] {
    const char* dir = std::getenv("TMPDIR");
    std::string pattern = absl::StrCat(dir != nullptr ? dir : "/tmp", "/derma-config-fuzz-XXXXXX");
    const int fd = mkstemp(pattern.data());
    DERMA_FUZZ_CHECK(fd >= 0, pattern);
    close(fd);
    return new std::string(pattern);
  }();
  return *path;
}

void WriteScratch(const uint8_t* data, size_t size) {
  std::FILE* file = std::fopen(ScratchPath().c_str(), "wb");
  DERMA_FUZZ_CHECK(file != nullptr, ScratchPath());
  DERMA_FUZZ_CHECK(std::fwrite(data, 1, size, file) == size || size == 0, ScratchPath());
  std::fclose(file);
}

void CheckCapabilities(const v1::Capabilities& caps, const std::string& id) {
  for (const v1::ParameterCapability& p : caps.parameters()) {
    DERMA_FUZZ_CHECK(std::isfinite(p.min()) && std::isfinite(p.max()) && p.min() <= p.max() &&
                         std::isfinite(p.resolution()) && p.resolution() >= 0,
                     absl::StrCat(id, ": ", p.ShortDebugString()));
  }
}

void BuildDevice(const DeviceConfig& config) {
  absl::StatusOr<std::unique_ptr<sim::SimDevice>> driver =
      sim::CreateSimDevice({config, /*seed=*/7});
  if (!driver.ok()) {
    DERMA_FUZZ_CHECK(driver.status().code() == absl::StatusCode::kInvalidArgument,
                     driver.status().ToString());
    return;
  }
  VirtualClock clock;
  TelemetryFanout fanout;
  RunRegistry runs;
  Device device(0, config.id(), *std::move(driver), DeviceContext{clock, fanout, runs});
  device.Initialize();
  clock.Advance(absl::Milliseconds(10));
  device.Tick();
  CheckCapabilities(*device.view().capabilities(), config.id());
  DERMA_FUZZ_CHECK(
      device.state() == v1::DEVICE_STATE_IDLE || device.state() == v1::DEVICE_STATE_FAULT,
      absl::StrCat(config.id(), " is ", v1::DeviceState_Name(device.state())));
  DERMA_FUZZ_CHECK(!device.view().latest_sample().output_on, config.id() + " output on");
}

void CheckValid(const FleetConfig& config) {
  size_t expected = config.devices_size();
  for (const auto& group : config.groups()) expected += group.count();
  const double rate = host::EffectiveSampleRateHz(config);
  const double speed = host::EffectiveSpeedFactor(config);
  DERMA_FUZZ_CHECK(rate >= 1 && rate <= 1000, absl::StrCat("sample rate ", rate));
  DERMA_FUZZ_CHECK(speed >= 0.01 && speed <= 1000, absl::StrCat("speed factor ", speed));
  if (expected > kMaxExpanded) return;
  const std::vector<DeviceConfig> devices = host::ExpandFleet(config);
  DERMA_FUZZ_CHECK(devices.size() == expected, absl::StrCat(devices.size(), " != ", expected));
  absl::flat_hash_set<std::string> ids;
  for (const DeviceConfig& device : devices) {
    DERMA_FUZZ_CHECK(ids.insert(device.id()).second, "duplicate id " + device.id());
  }
  for (size_t i = 0; i < devices.size() && i < kMaxBuilt; ++i) BuildDevice(devices[i]);
}

}  // namespace
}  // namespace derma::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using derma::fuzz::ScratchPath;
  derma::fuzz::WriteScratch(data, size);
  absl::StatusOr<derma::config::v1::FleetConfig> config =
      derma::host::LoadFleetConfig(ScratchPath());
  if (!config.ok()) {
    DERMA_FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument,
                     config.status().ToString());
    DERMA_FUZZ_CHECK(derma::ReasonOf(config.status()) == derma::v1::ERROR_REASON_INVALID_FIELD,
                     config.status().ToString());
    DERMA_FUZZ_CHECK(derma::MetadataOf(config.status())["file"] == ScratchPath(),
                     config.status().ToString());
    return 0;
  }
  const absl::Status valid = derma::host::ValidateFleetConfig(*config);
  if (!valid.ok()) {
    DERMA_FUZZ_CHECK(valid.code() == absl::StatusCode::kInvalidArgument, valid.ToString());
    DERMA_FUZZ_CHECK(derma::ReasonOf(valid) == derma::v1::ERROR_REASON_INVALID_FIELD,
                     valid.ToString());
    DERMA_FUZZ_CHECK(!derma::ViolationsOf(valid).empty(), valid.ToString());
    return 0;
  }
  derma::fuzz::CheckValid(*config);
  return 0;
}
