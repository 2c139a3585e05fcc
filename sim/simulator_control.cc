#include "sim/simulator_control.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "plugin/errors/errors.h"
#include "sim/fault_requests.h"

namespace derma::sim {

absl::Status VirtualClockRequired() {
  return MakeError(absl::StatusCode::kFailedPrecondition,
                   ::derma::v1::ERROR_REASON_VIRTUAL_CLOCK_REQUIRED,
                   "AdvanceClock needs the virtual clock (clock mode VIRTUAL)");
}

void SimDeviceHost::SetTransportFault(const sim::v1::SetTransportFaultRequest& request,
                                      StatusCallback done) {
  std::move(done)(MakeError(absl::StatusCode::kFailedPrecondition,
                            ::derma::v1::ERROR_REASON_FAULT_NOT_APPLICABLE,
                            absl::StrCat(request.name(),
                                         " has no Modbus transport: transport faults apply to "
                                         "the devices of the Modbus emulator"),
                            {{"device", request.name()}}));
}

namespace {

// The request's fault kind, or INVALID_FIELD naming `kind`.
absl::Status CheckKind(int kind) {
  std::vector<FieldViolation> violations;
  CheckFaultKind(kind, "kind", &violations);
  return InvalidFields(violations);
}

}  // namespace

void SimulatorControl::InjectFault(const sim::v1::InjectFaultRequest& request,
                                   StatusCallback done) {
  if (absl::Status s = CheckKind(request.kind()); !s.ok()) {
    std::move(done)(s);
    return;
  }
  const ::derma::v1::FaultKind kind = request.kind();
  host_.RunOnDevice(
      request.name(),
      [kind](sim::SimDevice& sim, absl::Time now) { return sim.InjectFault(kind, now); },
      std::move(done));
}

void SimulatorControl::ClearFault(const sim::v1::ClearFaultRequest& request, StatusCallback done) {
  if (absl::Status s = CheckKind(request.kind()); !s.ok()) {
    std::move(done)(s);
    return;
  }
  const ::derma::v1::FaultKind kind = request.kind();
  host_.RunOnDevice(
      request.name(),
      [kind](sim::SimDevice& sim, absl::Time now) { return sim.ClearFault(kind, now); },
      std::move(done));
}

void SimulatorControl::SetElectrodeImpedance(const sim::v1::SetElectrodeImpedanceRequest& request,
                                             StatusCallback done) {
  const double ohms = request.impedance_ohm();
  host_.RunOnDevice(
      request.name(),
      [ohms](sim::SimDevice& sim, absl::Time now) { return sim.SetElectrodeImpedance(ohms, now); },
      std::move(done));
}

void SimulatorControl::SetLink(const sim::v1::SetLinkRequest& request, StatusCallback done) {
  const bool up = request.up();
  host_.RunOnDevice(
      request.name(),
      [up](sim::SimDevice& sim, absl::Time now) {
        sim.SetLink(up, now);
        return absl::OkStatus();
      },
      std::move(done));
}

void SimulatorControl::SetTransportFault(const sim::v1::SetTransportFaultRequest& request,
                                         StatusCallback done) {
  std::vector<FieldViolation> violations;
  CheckTransportFault(request, "", &violations);
  if (!violations.empty()) {
    std::move(done)(InvalidFields(violations));
    return;
  }
  host_.SetTransportFault(request, std::move(done));
}

void SimulatorControl::AdvanceClock(double duration_s, ClockCallback done) {
  if (!(duration_s > 0 && duration_s <= 86400)) {
    const std::string what = absl::StrFormat("%g s is outside (0, 86400] s", duration_s);
    std::move(done)(MakeError(absl::StatusCode::kInvalidArgument,
                              ::derma::v1::ERROR_REASON_INVALID_FIELD, "duration_s: " + what, {},
                              {{"duration_s", what}}));
    return;
  }
  host_.AdvanceClock(absl::Seconds(duration_s), std::move(done));
}

absl::StatusOr<size_t> SimulatorControl::LoadScenario(const sim::v1::LoadScenarioRequest& request) {
  sim::v1::Scenario scenario = request.scenario();
  if (request.has_scenario_text()) {
    absl::StatusOr<sim::v1::Scenario> parsed = sim::ParseScenarioText(request.scenario_text());
    if (!parsed.ok()) return parsed.status();
    scenario = *std::move(parsed);
  }
  absl::Status valid = sim::ValidateScenario(
      scenario, [this](absl::string_view name) { return host_.HasDevice(name); });
  if (!valid.ok()) return valid;
  const size_t count = scenario.actions_size();
  absl::MutexLock lock(&mu_);
  players_.push_back(std::make_unique<sim::ScenarioPlayer>(scenario, host_.Now()));
  return count;
}

void SimulatorControl::OnTick(absl::Time now) {
  std::vector<sim::v1::ScenarioAction> due;
  {
    absl::MutexLock lock(&mu_);
    for (auto& player : players_) {
      for (sim::v1::ScenarioAction& action : player->TakeDue(now)) due.push_back(std::move(action));
    }
    players_.erase(
        std::remove_if(players_.begin(), players_.end(), [](const auto& p) { return p->done(); }),
        players_.end());
  }
  for (const sim::v1::ScenarioAction& action : due) Dispatch(action);
}

// Scenario actions were validated at load time; one that still fails when it fires (e.g. a
// fault kind that does not apply to that device) is logged, since nobody waits for it.
void SimulatorControl::Dispatch(const sim::v1::ScenarioAction& action) {
  auto report = [at_s = action.at_s()](absl::Status status) {
    if (!status.ok()) {
      absl::FPrintF(stderr, "scenario action at %g s failed: %s\n", at_s, status.ToString());
    }
  };
  switch (action.action_case()) {
    case sim::v1::ScenarioAction::kInjectFault:
      InjectFault(action.inject_fault(), report);
      break;
    case sim::v1::ScenarioAction::kClearFault:
      ClearFault(action.clear_fault(), report);
      break;
    case sim::v1::ScenarioAction::kSetElectrodeImpedance:
      SetElectrodeImpedance(action.set_electrode_impedance(), report);
      break;
    case sim::v1::ScenarioAction::kSetLink:
      SetLink(action.set_link(), report);
      break;
    case sim::v1::ScenarioAction::kSetTransportFault:
      SetTransportFault(action.set_transport_fault(), report);
      break;
    case sim::v1::ScenarioAction::ACTION_NOT_SET:
      break;
  }
}

}  // namespace derma::sim
