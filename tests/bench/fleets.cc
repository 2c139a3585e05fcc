#include "tests/bench/fleets.h"

#include "plugin/host/config_loader.h"

namespace derma::bench {
namespace {

void AddGroup(config::v1::FleetConfig& config, const char* prefix, int count, v1::DeviceKind kind,
              const char* model) {
  if (count <= 0) return;
  config::v1::DeviceGroup* group = config.add_groups();
  group->set_id_prefix(prefix);
  group->set_count(count);
  group->mutable_device()->set_kind(kind);
  group->mutable_device()->set_model(model);
}

}  // namespace

config::v1::FleetConfig MakeFleet(int devices, bool virtual_clock) {
  config::v1::FleetConfig config;
  config.mutable_clock()->set_mode(virtual_clock ? config::v1::CLOCK_MODE_VIRTUAL
                                                 : config::v1::CLOCK_MODE_REAL);
  if (!virtual_clock) config.mutable_clock()->set_speed_factor(1);
  config.set_sim_seed(42);
  const int pens = (devices + 1) / 2;
  AddGroup(config, "pen-", pens, v1::DEVICE_KIND_MICRONEEDLING, "DP-100");
  AddGroup(config, "stim-", devices - pens, v1::DEVICE_KIND_MICROCURRENT, "MC-10");
  return config;
}

absl::StatusOr<config::v1::FleetConfig> LoadFleet(const std::string& path) {
  absl::StatusOr<config::v1::FleetConfig> config = host::LoadFleetConfig(path);
  if (!config.ok()) return config.status();
  if (absl::Status valid = host::ValidateFleetConfig(*config); !valid.ok()) return valid;
  return config;
}

double FleetSampleRate(const config::v1::FleetConfig& config) {
  return static_cast<double>(host::ExpandFleet(config).size()) *
         host::EffectiveSampleRateHz(config) * host::EffectiveSpeedFactor(config);
}

}  // namespace derma::bench
