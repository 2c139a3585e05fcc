// Scenarios: text-format files of timed simulator actions (derma.sim.v1.Scenario), their
// parsing and validation, and ScenarioPlayer, which hands out the actions as time reaches
// them. Layer: sim/. ParseScenarioText and ValidateScenario are thread-safe (pure functions);
// ScenarioPlayer is thread-compatible (no internal locking; the owner serialises calls).
#ifndef DERMA_SIM_SCENARIO_H_
#define DERMA_SIM_SCENARIO_H_

#include <cstddef>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "derma/sim/v1/simulator.pb.h"

namespace derma::sim {

// Parses a text-format Scenario. INVALID_ARGUMENT reason SCENARIO_INVALID whose message says
// "line L column C: <parser message>" (1-based) for every parse error.
absl::StatusOr<derma::sim::v1::Scenario> ParseScenarioText(absl::string_view text);

// The latest an action may be scheduled: a year after the scenario is loaded.
inline constexpr double kMaxScenarioAtSeconds = 365.0 * 24 * 3600;

// Checks every action: an action is set, at_s is within 0–kMaxScenarioAtSeconds, every name
// satisfies `device_exists` (called with the name as written, "devices/{id}"), fault kinds are set
// and impedances lie within 100–1e6 Ω. INVALID_ARGUMENT reason SCENARIO_INVALID with one
// FieldViolation per problem, e.g. "actions[2].inject_fault.name".
absl::Status ValidateScenario(const derma::sim::v1::Scenario& scenario,
                              const std::function<bool(absl::string_view name)>& device_exists);

// Plays a validated scenario: actions fire at load_time + at_s, in at_s order (ties keep file
// order), each exactly once. Thread-compatible.
class ScenarioPlayer {
 public:
  ScenarioPlayer(const derma::sim::v1::Scenario& scenario, absl::Time load_time);

  // Actions whose time is ≤ now and that were not returned before, in time order.
  std::vector<derma::sim::v1::ScenarioAction> TakeDue(absl::Time now);

  // Actions not yet returned.
  size_t pending() const { return actions_.size() - next_; }
  // True once every action was returned.
  bool done() const { return next_ >= actions_.size(); }
  // Time of the next pending action; InfiniteFuture when none.
  absl::Time NextDue() const;

 private:
  absl::Time load_time_;
  std::vector<derma::sim::v1::ScenarioAction> actions_;  // sorted by at_s
  size_t next_ = 0;
};

}  // namespace derma::sim

#endif  // DERMA_SIM_SCENARIO_H_
