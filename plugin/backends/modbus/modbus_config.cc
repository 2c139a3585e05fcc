// ValidateModbusFleet (modbus_backend.h): the Modbus parts of a fleet config, every problem in
// one pass.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "plugin/backends/modbus/modbus_backend.h"
#include "plugin/backends/modbus/modbus_link.h"
#include "plugin/errors/errors.h"

namespace derma::modbus {
namespace {

using config::v1::DeviceConfig;
using config::v1::FleetConfig;
using config::v1::ModbusLink;

constexpr uint32_t kMaxUnit = 247;
constexpr uint32_t kBauds[] = {1200,  2400,   4800,   9600,   19200, 38400,
                               57600, 115200, 230400, 460800, 921600};

bool IsValidName(const std::string& name) {
  if (name.empty() || name.size() > 63 || name.front() == '-') return false;
  for (char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-') return false;
  }
  return true;
}

// 0 (the default) or within [min, max]; false for NaN.
bool ZeroOrWithin(double value, double min, double max) {
  return value == 0 || (value >= min && value <= max);
}

class Problems {
 public:
  void Add(std::string field, std::string description) {
    list_.push_back({std::move(field), std::move(description)});
  }
  absl::Status ToStatus() const {
    if (list_.empty()) return absl::OkStatus();
    std::vector<std::string> all;
    for (const FieldViolation& v : list_) all.push_back(v.field + ": " + v.description);
    return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                     absl::StrCat("invalid Modbus config (", list_.size(), list_.size() == 1 ? " problem): " : " problems): ",
                                  absl::StrJoin(all, "; ")),
                     {}, list_);
  }

 private:
  std::vector<FieldViolation> list_;
};

void CheckClock(const FleetConfig& fleet, Problems& out) {
  if (fleet.clock().mode() == config::v1::CLOCK_MODE_VIRTUAL) {
    out.Add("clock.mode", "a fleet with Modbus devices runs on the real clock (REAL), not VIRTUAL");
  }
  const double speed = fleet.clock().speed_factor();
  if (speed != 0 && speed != 1) {
    out.Add("clock.speed_factor",
            absl::StrCat("a fleet with Modbus devices runs at speed 1, got ", speed));
  }
}

void CheckTransport(const ModbusLink& link, const std::string& where, Problems& out) {
  if (link.has_tcp()) {
    if (link.tcp().host().empty()) out.Add(where + ".tcp.host", "required");
    if (link.tcp().port() > 65535) {
      out.Add(where + ".tcp.port", absl::StrCat("must be 1–65535 (0 = 502), got ", link.tcp().port()));
    }
  } else if (link.has_rtu()) {
    const config::v1::ModbusRtu& rtu = link.rtu();
    if (rtu.device().empty()) out.Add(where + ".rtu.device", "required");
    bool baud_ok = rtu.baud() == 0;
    for (uint32_t b : kBauds) baud_ok |= rtu.baud() == b;
    if (!baud_ok) {
      out.Add(where + ".rtu.baud",
              absl::StrCat("must be one of ", absl::StrJoin(kBauds, ", "), " (0 = 19200), got ",
                           rtu.baud()));
    }
    if (!config::v1::Parity_IsValid(rtu.parity())) {
      out.Add(where + ".rtu.parity", absl::StrCat("unknown parity ", rtu.parity()));
    }
    if (rtu.stop_bits() > 2) {
      out.Add(where + ".rtu.stop_bits", absl::StrCat("must be 1 or 2 (0 = by parity), got ", rtu.stop_bits()));
    }
  } else {
    out.Add(where + ".transport", "set tcp or rtu");
  }
}

void CheckTiming(const FleetConfig& fleet, const ModbusLink& link, const std::string& where,
                 Problems& out) {
  if (!ZeroOrWithin(link.response_timeout_s(), 0.005, 10)) {
    out.Add(where + ".response_timeout_s",
            absl::StrCat("must be 0.005–10 s (0 = 0.1 s), got ", link.response_timeout_s()));
  }
  if (link.has_retries() && link.retries() > 10) {
    out.Add(where + ".retries", absl::StrCat("must be 0–10, got ", link.retries()));
  }
  if (!ZeroOrWithin(link.reconnect_backoff_s(), 0.01, 60)) {
    out.Add(where + ".reconnect_backoff_s",
            absl::StrCat("must be 0.01–60 s (0 = 0.1 s), got ", link.reconnect_backoff_s()));
  }
  const LinkSettings s = ResolveLinkSettings(link);
  if (!ZeroOrWithin(link.reconnect_backoff_max_s(), absl::ToDoubleSeconds(s.backoff), 600)) {
    out.Add(where + ".reconnect_backoff_max_s",
            absl::StrCat("must be reconnect_backoff_s–600 s (0 = 5 s), got ",
                         link.reconnect_backoff_max_s()));
  }
  const double watchdog = link.watchdog_s();
  if (!ZeroOrWithin(watchdog, 0.1, 60) ||
      std::abs(watchdog * 1000 - std::round(watchdog * 1000)) > 1e-6) {
    out.Add(where + ".watchdog_s",
            absl::StrCat("must be 0.1–60 s in whole milliseconds (0 = 1 s), got ", watchdog));
    return;
  }
  const double rate = fleet.sample_rate_hz() > 0 ? fleet.sample_rate_hz() : 100;
  const double unpolled =
      1 / rate + absl::ToDoubleSeconds(s.response_timeout) * (s.retries + 1);
  if (absl::ToDoubleSeconds(s.watchdog) <= unpolled) {
    out.Add(where + ".watchdog_s",
            absl::StrCat(absl::ToDoubleSeconds(s.watchdog),
                         " s does not exceed the longest a device may go unpolled: 1 / "
                         "sample_rate_hz + response_timeout_s × (retries + 1) = ",
                         unpolled, " s"));
  }
}

// The link names, each checked.
absl::flat_hash_set<std::string> CheckLinks(const FleetConfig& fleet, Problems& out) {
  absl::flat_hash_set<std::string> names;
  for (int i = 0; i < fleet.modbus_links_size(); ++i) {
    const ModbusLink& link = fleet.modbus_links(i);
    const std::string where = absl::StrCat("modbus_links[", i, "]");
    if (!IsValidName(link.name())) {
      out.Add(where + ".name",
              absl::StrCat("\"", link.name(), "\" is not [a-z0-9][a-z0-9-]{0,62}"));
    } else if (!names.insert(link.name()).second) {
      out.Add(where + ".name", absl::StrCat("duplicate link name \"", link.name(), "\""));
    }
    CheckTransport(link, where, out);
    CheckTiming(fleet, link, where, out);
  }
  return names;
}

// One device (or a group's template with `count` devices); `used` holds (link, unit) taken.
void CheckDevice(const DeviceConfig& device, uint32_t count, const std::string& where,
                 const absl::flat_hash_set<std::string>& links,
                 absl::flat_hash_map<std::string, std::string>& used, Problems& out) {
  const bool modbus = device.backend() == config::v1::BACKEND_MODBUS;
  if (!modbus) {
    if (device.has_modbus()) out.Add(where + ".modbus", "only for backend BACKEND_MODBUS");
    return;
  }
  if (device.has_pen() || device.has_stimulator()) {
    out.Add(where + (device.has_pen() ? ".pen" : ".stimulator"),
            "a Modbus device's state is its own: setup is for the simulator only");
  }
  if (!device.has_modbus()) {
    out.Add(where + ".modbus", "required for backend BACKEND_MODBUS (link and unit_id)");
    return;
  }
  const config::v1::ModbusDevice& m = device.modbus();
  if (!links.contains(m.link())) {
    out.Add(where + ".modbus.link", absl::StrCat("no link named \"", m.link(), "\" in modbus_links"));
  }
  const uint32_t last = m.unit_id() + count - 1;
  if (m.unit_id() < 1 || last > kMaxUnit) {
    out.Add(where + ".modbus.unit_id",
            count == 1 ? absl::StrCat("must be 1–247, got ", m.unit_id())
                       : absl::StrCat("the group's units ", m.unit_id(), "–", last,
                                      " must lie within 1–247"));
    return;
  }
  for (uint32_t unit = m.unit_id(); unit <= last; ++unit) {
    auto [it, inserted] = used.try_emplace(absl::StrCat(m.link(), "/", unit), where);
    if (!inserted) {
      out.Add(where + ".modbus.unit_id",
              absl::StrCat("unit ", unit, " on link \"", m.link(), "\" is also ", it->second, "'s"));
      return;
    }
  }
}

}  // namespace

absl::Status ValidateModbusFleet(const FleetConfig& fleet) {
  Problems out;
  const absl::flat_hash_set<std::string> links = CheckLinks(fleet, out);
  absl::flat_hash_map<std::string, std::string> used;
  bool any_device = false;
  for (int i = 0; i < fleet.devices_size(); ++i) {
    any_device |= fleet.devices(i).backend() == config::v1::BACKEND_MODBUS;
    CheckDevice(fleet.devices(i), 1, absl::StrCat("devices[", i, "]"), links, used, out);
  }
  for (int g = 0; g < fleet.groups_size(); ++g) {
    const auto& group = fleet.groups(g);
    any_device |= group.device().backend() == config::v1::BACKEND_MODBUS;
    CheckDevice(group.device(), std::max<uint32_t>(group.count(), 1),
                absl::StrCat("groups[", g, "].device"), links, used, out);
  }
  if (any_device) CheckClock(fleet, out);
  return out.ToStatus();
}

}  // namespace derma::modbus
