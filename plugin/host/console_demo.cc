#include "plugin/host/console_demo.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "plugin/core/state_machine.h"

namespace derma::host {
namespace {

constexpr char kHolder[] = "dermad-console-demo";

std::vector<v1::RunStep> ProgramFor(v1::DeviceKind kind) {
  std::vector<v1::RunStep> steps(2);
  for (int i = 0; i < 2; ++i) {
    steps[i].set_duration_s(15);
    if (kind == v1::DEVICE_KIND_MICRONEEDLING) {
      auto* pen = steps[i].mutable_settings()->mutable_microneedling();
      pen->set_needle_depth_mm(i == 0 ? 0.5 : 1.0);
      pen->set_stroke_rate_hz(i == 0 ? 80 : 120);
    } else {
      auto* stim = steps[i].mutable_settings()->mutable_microcurrent();
      stim->set_current_ua(i == 0 ? 200 : 400);
      stim->set_ramp_s(1);
    }
  }
  return steps;
}

}  // namespace

ConsoleDemo::ConsoleDemo(Fleet& fleet) : fleet_(fleet), leases_(fleet.devices().size()) {}

void ConsoleDemo::StartProgram(uint32_t index) {
  DeviceManager& devices = fleet_.devices();
  const std::string lease = leases_[index];
  absl::Status status = devices.Call(index, [&](Device& device) {
    return device.StartRun(lease, ProgramFor(device.kind()), "").status();
  });
  if (!status.ok()) {
    absl::FPrintF(stderr, "demo: %s: %s\n", devices.view(index).identity()->name(),
                  status.message());
  }
}

void ConsoleDemo::Step() {
  DeviceManager& devices = fleet_.devices();
  for (uint32_t i = 0; i < devices.size(); ++i) {
    std::string& lease = leases_[i];
    absl::StatusOr<LeaseGrant> grant = devices.Call(i, [&](Device& device) {
      return lease.empty() ? device.AcquireLease(kHolder, absl::Seconds(30))
                           : device.RenewLease(lease, absl::Seconds(30));
    });
    lease = grant.ok() ? grant->lease_id : "";
    if (!lease.empty() && devices.view(i).state() == v1::DEVICE_STATE_IDLE) StartProgram(i);
  }
}

std::string FormatFleetTable(Fleet& fleet) {
  DeviceManager& devices = fleet.devices();
  std::string out = absl::StrFormat("%-10s %-9s %-8s %-4s %s\n", "DEVICE", "MODEL", "STATE", "OUT",
                                    "MEASUREMENTS");
  for (uint32_t i = 0; i < devices.size(); ++i) {
    const v1::Device d = devices.view(i).Read();
    const v1::TelemetrySample& s = d.latest_sample();
    std::string values;
    if (s.has_microneedling()) {
      const auto& r = s.microneedling();
      values = absl::StrFormat("depth %.2f mm  rate %6.1f Hz  strokes %8d  motor %.2f A %5.1f C",
                               r.needle_depth_mm(), r.stroke_rate_hz(), r.strokes_total(),
                               r.motor_current_a(), r.motor_temperature_c());
    } else if (s.has_microcurrent()) {
      const auto& r = s.microcurrent();
      values = absl::StrFormat("I %6.1f/%6.1f uA  Z %7.0f ohm  V %5.2f  charge %9.1f uC",
                               r.current_setpoint_ua(), r.current_measured_ua(),
                               r.electrode_impedance_ohm(), r.output_voltage_v(),
                               r.charge_delivered_uc());
    }
    absl::StrAppendFormat(&out, "%-10s %-9s %-8s %-4s %s\n", d.name().substr(8), d.model(),
                          StateName(d.state()), s.output_on() ? "on" : "off", values);
  }
  return out;
}

}  // namespace derma::host
