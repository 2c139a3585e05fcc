#include "sim/scenario.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "plugin/errors/errors.h"
#include "sim/fault_requests.h"

namespace derma::sim {
namespace {

using derma::sim::v1::ScenarioAction;

// Collects parser errors as "line L column C: message" (1-based).
class LineErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(absl::StrCat("line ", line + 1, " column ", column + 1, ": ", message));
  }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<std::string> errors_;
};

absl::Status ScenarioError(absl::string_view message, std::vector<FieldViolation> violations) {
  return MakeError(absl::StatusCode::kInvalidArgument, derma::v1::ERROR_REASON_SCENARIO_INVALID,
                   message, {}, violations);
}

// Appends the problems of one action's target (name, kind, impedance).
template <typename Request>
void CheckName(const Request& request, const std::string& path,
               const std::function<bool(absl::string_view)>& device_exists,
               std::vector<FieldViolation>* out) {
  if (!device_exists(request.name())) {
    out->push_back({path + ".name", absl::StrCat("no device named \"", request.name(), "\"")});
  }
}

void CheckAction(const ScenarioAction& action, const std::string& path,
                 const std::function<bool(absl::string_view)>& device_exists,
                 std::vector<FieldViolation>* out) {
  if (!(action.at_s() >= 0 && action.at_s() <= kMaxScenarioAtSeconds)) {
    out->push_back({path + ".at_s",
                    absl::StrCat("must be within 0–", static_cast<int64_t>(kMaxScenarioAtSeconds),
                                 " s (365 days), got ", action.at_s())});
  }
  switch (action.action_case()) {
    case ScenarioAction::kInjectFault:
      CheckName(action.inject_fault(), path + ".inject_fault", device_exists, out);
      CheckFaultKind(action.inject_fault().kind(), path + ".inject_fault.kind", out);
      break;
    case ScenarioAction::kClearFault:
      CheckName(action.clear_fault(), path + ".clear_fault", device_exists, out);
      CheckFaultKind(action.clear_fault().kind(), path + ".clear_fault.kind", out);
      break;
    case ScenarioAction::kSetElectrodeImpedance: {
      const auto& set = action.set_electrode_impedance();
      CheckName(set, path + ".set_electrode_impedance", device_exists, out);
      if (!(set.impedance_ohm() >= 100 && set.impedance_ohm() <= 1e6)) {
        out->push_back({path + ".set_electrode_impedance.impedance_ohm",
                        absl::StrCat("must be within 100–1000000 Ω, got ", set.impedance_ohm())});
      }
      break;
    }
    case ScenarioAction::kSetLink:
      CheckName(action.set_link(), path + ".set_link", device_exists, out);
      break;
    case ScenarioAction::kSetTransportFault:
      CheckName(action.set_transport_fault(), path + ".set_transport_fault", device_exists, out);
      CheckTransportFault(action.set_transport_fault(), path + ".set_transport_fault.", out);
      break;
    case ScenarioAction::ACTION_NOT_SET:
      out->push_back({path + ".action", "no action set"});
      break;
  }
}

}  // namespace

absl::StatusOr<derma::sim::v1::Scenario> ParseScenarioText(absl::string_view text) {
  LineErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  derma::sim::v1::Scenario scenario;
  if (parser.ParseFromString(std::string(text), &scenario)) return scenario;
  std::string message = errors.errors().empty() ? std::string("scenario text does not parse")
                                                : absl::StrJoin(errors.errors(), "; ");
  return ScenarioError(absl::StrCat("scenario: ", message), {{"scenario_text", message}});
}

absl::Status ValidateScenario(const derma::sim::v1::Scenario& scenario,
                              const std::function<bool(absl::string_view name)>& device_exists) {
  std::vector<FieldViolation> violations;
  for (int i = 0; i < scenario.actions_size(); ++i) {
    CheckAction(scenario.actions(i), absl::StrCat("actions[", i, "]"), device_exists, &violations);
  }
  if (violations.empty()) return absl::OkStatus();
  return ScenarioError(absl::StrCat("scenario has ", violations.size(), " problem(s); first: ",
                                    violations[0].field, ": ", violations[0].description),
                       violations);
}

ScenarioPlayer::ScenarioPlayer(const derma::sim::v1::Scenario& scenario, absl::Time load_time)
    : load_time_(load_time), actions_(scenario.actions().begin(), scenario.actions().end()) {
  std::stable_sort(
      actions_.begin(), actions_.end(),
      [](const ScenarioAction& a, const ScenarioAction& b) { return a.at_s() < b.at_s(); });
}

absl::Time ScenarioPlayer::NextDue() const {
  if (next_ >= actions_.size()) return absl::InfiniteFuture();
  return load_time_ + absl::Seconds(actions_[next_].at_s());
}

std::vector<derma::sim::v1::ScenarioAction> ScenarioPlayer::TakeDue(absl::Time now) {
  std::vector<ScenarioAction> due;
  while (next_ < actions_.size() && NextDue() <= now) due.push_back(actions_[next_++]);
  return due;
}

}  // namespace derma::sim
