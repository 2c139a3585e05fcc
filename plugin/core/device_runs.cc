// The run engine of a Device: a treatment program is a list of steps (settings + duration)
// executed with the output on; each run keeps an exact dose ledger.
#include <cmath>
#include <optional>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/time_util.h"
#include "plugin/core/device.h"
#include "plugin/errors/errors.h"

namespace derma {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

// The dose check of run.proto's DoseLedger: the difference it finds, if outside tolerance.
std::optional<std::string> DoseOutOfTolerance(const v1::DoseLedger& ledger, double tolerance) {
  constexpr double kStrokeSlack = 1;
  constexpr double kChargeSlackUc = 0.01;
  const double strokes = static_cast<double>(ledger.strokes_delivered());
  if (std::abs(strokes - ledger.strokes_programmed()) >
      tolerance * ledger.strokes_programmed() + kStrokeSlack) {
    return absl::StrFormat("delivered %d strokes of %.1f programmed (tolerance %g %% + 1 stroke)",
                           ledger.strokes_delivered(), ledger.strokes_programmed(),
                           100 * tolerance);
  }
  const double charge = ledger.charge_delivered_uc();
  if (std::abs(charge - ledger.charge_programmed_uc()) >
      tolerance * ledger.charge_programmed_uc() + kChargeSlackUc) {
    return absl::StrFormat("delivered %.2f µC of %.2f µC programmed (tolerance %g %% + 0.01 µC)",
                           charge, ledger.charge_programmed_uc(), 100 * tolerance);
  }
  return std::nullopt;
}

std::string Fingerprint(const std::vector<v1::RunStep>& steps) {
  std::string out = "StartRun";
  for (const v1::RunStep& step : steps) out += step.SerializeAsString();
  return out;
}

}  // namespace

// Validates every step (settings cumulative from the current ones) and reports the problems
// of all steps in one error.
absl::Status Device::ValidateProgram(const std::vector<v1::RunStep>& steps,
                                     std::vector<v1::Settings>* applied) {
  std::vector<FieldViolation> violations;
  absl::Status first;
  if (steps.empty() || steps.size() > kMaxRunSteps) {
    violations.push_back(
        {"steps", absl::StrCat("needs 1–", kMaxRunSteps, " steps, got ", steps.size())});
  }
  v1::Settings current = settings_;
  const ValidationContext context = MakeValidationContext();
  for (size_t i = 0; i < steps.size(); ++i) {
    const double d = steps[i].duration_s();
    if (!(d > 0 && d <= kMaxStepSeconds)) {
      violations.push_back({absl::StrCat("steps[", i, "].duration_s"),
                            absl::StrFormat("%g s is outside (0, %g] s", d, kMaxStepSeconds)});
    }
    absl::StatusOr<v1::Settings> merged = ValidateSettings(context, current, steps[i].settings(),
                                                           absl::StrCat("steps[", i, "].settings"));
    if (!merged.ok()) {
      if (first.ok()) first = merged.status();
      for (FieldViolation& v : ViolationsOf(merged.status())) violations.push_back(std::move(v));
      continue;
    }
    current = *merged;
    applied->push_back(current);
  }
  if (violations.empty()) return absl::OkStatus();
  // The first failing step's settings error decides code, reason and metadata, so an interlock
  // refusal says what Configure's says (needle_length_mm, impedance_ohm, …) for any step.
  const v1::ErrorReason reason = first.ok() ? v1::ERROR_REASON_INVALID_FIELD : ReasonOf(first);
  const absl::StatusCode code = first.ok() ? absl::StatusCode::kInvalidArgument : first.code();
  const ErrorMetadata metadata = first.ok() ? ErrorMetadata{{"device", name_}} : MetadataOf(first);
  std::string message = absl::StrCat("invalid program for ", name_, ": ");
  for (size_t i = 0; i < violations.size(); ++i) {
    absl::StrAppend(&message, i ? "; " : "", violations[i].field, ": ", violations[i].description);
  }
  return MakeError(code, reason, message, metadata, violations);
}

absl::StatusOr<RunPtr> Device::StartRun(const std::string& lease_id,
                                        const std::vector<v1::RunStep>& steps,
                                        const std::string& request_id) {
  absl::Status reuse;
  if (auto seen = requests_.Find(request_id, Fingerprint(steps), &reuse)) {
    if (RunPtr run = context_.runs.Get(seen->result)) return run;
    return MakeError(absl::StatusCode::kNotFound, v1::ERROR_REASON_RUN_NOT_FOUND,
                     absl::StrCat("request_id \"", request_id, "\" started ", seen->result,
                                  ", which is no longer retained"),
                     {{"device", name_}, {"run", seen->result}, {"request_id", request_id}});
  }
  if (!reuse.ok()) return reuse;
  absl::Status status = CheckNoRun("StartRun");
  if (status.ok()) status = CheckCommand(Command::kStartRun, lease_id);
  std::vector<v1::Settings> applied;
  if (status.ok()) status = ValidateProgram(steps, &applied);
  if (status.ok()) status = CheckStartInterlocks(applied[0], "steps[0].settings");
  if (status.ok()) status = driver_->Apply(applied[0], time_);
  if (status.ok()) status = SwitchOutput(true);
  if (!status.ok()) return status;  // nothing started: a retry with the same id may try again
  BeginRun(steps, std::move(applied), request_id, lease_.current()->holder);
  requests_.Remember(request_id, {Fingerprint(steps), status, run_->run.name()});
  return context_.runs.Get(run_->run.name());
}

void Device::BeginRun(const std::vector<v1::RunStep>& steps, std::vector<v1::Settings> applied,
                      const std::string& request_id, const std::string& holder) {
  static thread_local absl::BitGen random;
  ActiveRun active;
  v1::Run& run = active.run;
  run.set_name(
      absl::StrFormat("%s/runs/%012x", name_, absl::Uniform<uint64_t>(random) & 0xffffffffffffULL));
  run.set_device(name_);
  double total = 0;
  for (const v1::RunStep& step : steps) {
    *run.add_steps() = step;
    total += step.duration_s();
  }
  run.set_total_duration_s(total);
  run.set_state(v1::RUN_STATE_RUNNING);
  *run.mutable_start_time() = ToTimestamp(time_);
  run.set_request_id(request_id);
  run.set_holder(holder);
  run_ = std::move(active);
  run_settings_ = std::move(applied);
  CommitSettings(run_settings_[0]);
  session_on_ = absl::ZeroDuration();
  QueueEvent(v1::DEVICE_EVENT_TYPE_RUN_STARTED, "run started", nullptr, run_->run.name());
  SetState(v1::DEVICE_STATE_RUNNING, "StartRun " + run_->run.name());
  PublishFreshSample();
  PublishRun(/*force=*/true);
}

absl::StatusOr<RunPtr> Device::CancelRun(const std::string& lease_id, const std::string& run_name) {
  CatchUp();
  if (!run_.has_value() || run_->run.name() != run_name) {
    if (RunPtr known = context_.runs.Get(run_name); known != nullptr && RunEnded(*known)) {
      return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_RUN_ENDED,
                       absl::StrCat(run_name, " already ended (",
                                    v1::RunEndReason_Name(known->end_reason()), ")"),
                       {{"device", name_}, {"run", run_name}});
    }
    return MakeError(absl::StatusCode::kNotFound, v1::ERROR_REASON_RUN_NOT_FOUND,
                     absl::StrCat(run_name, " is not active on ", name_),
                     {{"device", name_}, {"run", run_name}});
  }
  if (absl::Status s = CheckCommand(Command::kCancelRun, lease_id); !s.ok()) return s;
  ForceOff();
  EndRun(v1::RUN_END_REASON_CANCELLED, "CancelRun", v1::DEVICE_STATE_IDLE, "CancelRun");
  PublishFreshSample();
  return context_.runs.Get(run_name);
}

void Device::AccountRun(absl::Duration on_time, uint64_t strokes, double charge_uc,
                        const ProgrammedDose& programmed) {
  run_->output_on += on_time;
  run_->step_elapsed += on_time;
  v1::DoseLedger* ledger = run_->run.mutable_ledger();
  ledger->set_strokes_delivered(ledger->strokes_delivered() + strokes);
  ledger->set_charge_delivered_uc(ledger->charge_delivered_uc() + charge_uc);
  ledger->set_strokes_programmed(ledger->strokes_programmed() + programmed.strokes);
  ledger->set_charge_programmed_uc(ledger->charge_programmed_uc() + programmed.charge_uc);
}

void Device::CompleteRun() {
  ForceOff();
  const double tolerance = description_->capabilities.regulation().dose_tolerance();
  const v1::DoseLedger& ledger = run_->run.ledger();
  if (std::optional<std::string> off = DoseOutOfTolerance(ledger, tolerance); off.has_value()) {
    EndRun(v1::RUN_END_REASON_DOSE_OUT_OF_TOLERANCE, *off, v1::DEVICE_STATE_IDLE,
           "run ended: dose out of tolerance");
    return;
  }
  EndRun(v1::RUN_END_REASON_COMPLETED, "every step finished", v1::DEVICE_STATE_IDLE,
         "run completed");
}

void Device::AdvanceStep(absl::Time at) {
  v1::Run& run = run_->run;
  const uint32_t next = run.current_step() + 1;
  if (next >= static_cast<uint32_t>(run.steps_size())) {
    CompleteRun();
    return;
  }
  if (absl::Status s = driver_->Apply(run_settings_[next], at); !s.ok()) {
    FailDriver(s, at);
    return;
  }
  CommitSettings(run_settings_[next]);
  run.set_current_step(next);
  run_->step_elapsed = absl::ZeroDuration();
  QueueEvent(v1::DEVICE_EVENT_TYPE_RUN_STEP,
             absl::StrCat("step ", next + 1, " of ", run.steps_size()), nullptr, run.name());
  QueueRun();
  PublishView();
}

// RUN_ENDED is numbered before the state changes, so it keeps the state the run ended in and
// precedes the STATE_CHANGED; both go out after the view and the ended run.
void Device::EndRun(v1::RunEndReason reason, const std::string& message, v1::DeviceState next,
                    const std::string& cause) {
  if (run_.has_value()) {
    v1::Run& run = run_->run;
    run.set_state(reason == v1::RUN_END_REASON_COMPLETED ? v1::RUN_STATE_SUCCEEDED
                                                         : v1::RUN_STATE_ENDED_EARLY);
    run.set_end_reason(reason);
    run.set_end_message(message);
    *run.mutable_end_time() = ToTimestamp(time_);
    view_.counters().ObserveRunDuration(absl::ToDoubleSeconds(
        time_ - absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(run.start_time()))));
    QueueRun();
    const std::string run_name = run.name();
    run_.reset();
    run_settings_.clear();
    QueueEvent(v1::DEVICE_EVENT_TYPE_RUN_ENDED, message, nullptr, run_name);
  }
  SetState(next, cause);
}

RunPtr Device::SnapshotRun() {
  v1::Run& run = run_->run;
  if (!RunEnded(run)) {
    run.set_state(state_ == v1::DEVICE_STATE_PAUSED ? v1::RUN_STATE_PAUSED : v1::RUN_STATE_RUNNING);
  }
  run.set_step_elapsed_s(absl::ToDoubleSeconds(run_->step_elapsed));
  run.mutable_ledger()->set_output_on_s(absl::ToDoubleSeconds(run_->output_on));
  run_->last_published = time_;
  return std::make_shared<const v1::Run>(run);
}

void Device::QueueRun() {
  if (run_.has_value()) unpublished_runs_.push_back(SnapshotRun());
}

void Device::PublishRun(bool force) {
  if (!run_.has_value()) return;
  if (!force && time_ - run_->last_published < absl::Milliseconds(100)) return;
  context_.runs.Publish(SnapshotRun());
}

}  // namespace derma
