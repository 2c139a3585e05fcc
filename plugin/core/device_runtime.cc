// Device time: advancing the driver through every deadline, accounting output-on time and
// dose, and reacting to what the instrument reports (faults, link loss).
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/time_util.h"
#include "plugin/core/device.h"

namespace derma {
namespace {

double SessionLimitSeconds(const v1::Settings& settings) {
  if (settings.has_microneedling()) return settings.microneedling().session_limit_s();
  if (settings.has_microcurrent()) return settings.microcurrent().session_limit_s();
  return 0;
}

}  // namespace

v1::Fault MakeFault(v1::FaultKind kind, const std::string& message, absl::Time t) {
  v1::Fault fault;
  fault.set_kind(kind);
  fault.set_message(message.empty() ? v1::FaultKind_Name(kind) : message);
  *fault.mutable_detect_time() =
      google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
  return fault;
}

v1::FaultKind FirstFaultKind(FaultMask mask) {
  for (int kind = 1; kind <= v1::FaultKind_MAX; ++kind) {
    if (mask & FaultBit(static_cast<v1::FaultKind>(kind))) return static_cast<v1::FaultKind>(kind);
  }
  return v1::FAULT_KIND_UNSPECIFIED;
}

// Deadlines are processed in time order; each one is handled at its exact device time so a
// dead-man stop or a step change never overshoots by a tick.
void Device::AdvanceTo(absl::Time t) {
  t = std::max(t, time_);
  for (int guard = 0; guard < 1000; ++guard) {
    absl::Time at;
    const Deadline which = NextDeadline(t, &at);
    Integrate(at);
    if (which == Deadline::kNone) return;
    HandleDeadline(which, at);
  }
}

Device::Deadline Device::NextDeadline(absl::Time limit, absl::Time* at) const {
  *at = limit;
  Deadline which = Deadline::kNone;
  auto consider = [&](absl::Time when, Deadline what) {
    if (when < *at || (when == *at && which == Deadline::kNone)) {  // ties: first listed wins
      *at = std::max(when, time_);
      which = what;
    }
  };
  if (std::optional<absl::Time> expiry = lease_.NextExpiry(); expiry.has_value()) {
    consider(*expiry, Deadline::kLease);
  }
  if (state_ == v1::DEVICE_STATE_RUNNING) {
    const double limit_s = SessionLimitSeconds(settings_);
    if (limit_s > 0) consider(time_ + absl::Seconds(limit_s) - session_on_, Deadline::kSession);
    if (run_.has_value()) {
      const v1::Run& run = run_->run;
      const absl::Duration step = absl::Seconds(run.steps(run.current_step()).duration_s());
      consider(time_ + std::max(absl::ZeroDuration(), step - run_->step_elapsed), Deadline::kStep);
    }
    // A shortfall in progress is judged at the instant its grace time ends.
    if (std::optional<absl::Time> trip = regulation_.TripTime();
        trip.has_value() && *trip > time_) {
      consider(*trip, Deadline::kRegulation);
    }
  }
  return which;
}

std::optional<absl::Time> Device::NextWakeup() const {
  absl::Time at;
  if (NextDeadline(absl::InfiniteFuture(), &at) == Deadline::kNone) return std::nullopt;
  return at;
}

void Device::Integrate(absl::Time t) {
  absl::StatusOr<DriverReading> next = driver_->Read(t);
  if (!next.ok()) {
    time_ = std::max(t, time_);
    FailDriver(next.status(), t);
    return;
  }
  const absl::Duration dt = t - time_;
  if (state_ == v1::DEVICE_STATE_RUNNING && dt > absl::ZeroDuration()) session_on_ += dt;
  // A model is read at t; an instrument behind a link when it took the poll (a deadline's
  // reading is taken when it is handled, which can be later than the deadline itself).
  const absl::Time taken = next->taken_at == absl::InfinitePast() ? t : next->taken_at;
  const ProgrammedDose programmed = AdvanceTrajectory(taken);
  if (run_.has_value()) {
    const bool on = state_ == v1::DEVICE_STATE_RUNNING;
    const uint64_t strokes = next->pen.strokes_total - reading_.pen.strokes_total;
    const double charge = next->stim.charge_delivered_uc - reading_.stim.charge_delivered_uc;
    AccountRun(on ? dt : absl::ZeroDuration(), strokes, charge, programmed);
  }
  const std::optional<std::string> shortfall = CheckRegulation(*next, programmed, t);
  reading_ = *std::move(next);
  time_ = t;
  // The driver holds the evidence (a confirmation, or the watchdog certainly expired).
  if (!reading_.output_unconfirmed) force_off_unconfirmed_ = false;
  // An output found on outside RUNNING (an off command the device did not take) goes off now.
  if (reading_.output_on && state_ != v1::DEVICE_STATE_RUNNING) ForceOff();
  if (driver_failed_) {
    driver_failed_ = false;
    const v1::Fault fault = MakeFault(v1::FAULT_KIND_UNSPECIFIED, "driver reads again", t);
    QueueEvent(v1::DEVICE_EVENT_TYPE_FAULT_CLEARED, fault.message(), &fault);
    PublishView();
  }
  HandleLink(reading_, t);
  HandleDeviceEstop(t);
  HandleFaults(reading_.faults, reading_.fault_detail, t);
  // What the device reports itself comes first; a shortfall faults a device still RUNNING.
  if (shortfall.has_value() && state_ == v1::DEVICE_STATE_RUNNING) FaultRegulation(*shortfall, t);
}

ProgrammedDose Device::AdvanceTrajectory(absl::Time until) {
  const bool on = state_ == v1::DEVICE_STATE_RUNNING;
  if (on != trajectory_.output_on()) {
    trajectory_.SetOutput(on);
    regulation_.Restart();
  }
  const absl::Duration dt = std::max(absl::ZeroDuration(), until - dose_time_);
  dose_time_ = std::max(until, dose_time_);
  if (!on) output_on_delay_ = absl::ZeroDuration();
  // The part of the interval before the instrument took the output-on command programs nothing.
  const absl::Duration waiting = std::min(dt, output_on_delay_);
  output_on_delay_ -= waiting;
  return trajectory_.Advance(dt - waiting);
}

void Device::CountDoseBeforeApply() {
  if (!driver_->Info().acts_when_called || state_ != v1::DEVICE_STATE_RUNNING) return;
  const ProgrammedDose before = AdvanceTrajectory(context_.clock.Now());
  if (run_.has_value()) AccountRun(absl::ZeroDuration(), 0, 0, before);
}

std::optional<std::string> Device::CheckRegulation(const DriverReading& next,
                                                   const ProgrammedDose& programmed, absl::Time t) {
  if (!trajectory_.output_on() || t <= time_ || !regulation_.enabled()) return std::nullopt;
  const bool pen = kind() == v1::DEVICE_KIND_MICRONEEDLING;
  const double delivered = pen ? next.pen.stroke_rate_hz
                               : next.stim.charge_delivered_uc - reading_.stim.charge_delivered_uc;
  const double wanted = pen ? trajectory_.rate_hz() : programmed.charge_uc;
  if (!regulation_.Observe(time_, t, delivered, wanted)) return std::nullopt;
  const double tolerance_pct = 100 * regulation_.tolerance();
  const double lasted_s = absl::ToDoubleSeconds(t - *regulation_.short_since());
  if (pen) {
    return absl::StrFormat(
        "needle motor at %.1f Hz, programmed %.1f Hz: more than %g %% short for %.3f s", delivered,
        wanted, tolerance_pct, lasted_s);
  }
  const double programmed_ua = trajectory_.amplitude_ua();
  const double delivered_ua = wanted > 0 ? programmed_ua * delivered / wanted : 0;
  const double ohms = next.stim.electrode_impedance_ohm;
  return absl::StrFormat(
      "delivered %.0f µA of %.0f µA programmed, more than %g %% short for %.3f s: electrode "
      "impedance %.0f Ω needs %.1f V at %.0f µA, compliance %.1f V",
      delivered_ua, programmed_ua, tolerance_pct, lasted_s, ohms, ohms * programmed_ua * 1e-6,
      programmed_ua, description_->capabilities.compliance_voltage_v());
}

void Device::FaultRegulation(const std::string& detail, absl::Time t) {
  ForceOff();
  const v1::FaultKind kind = this->kind() == v1::DEVICE_KIND_MICRONEEDLING
                                 ? v1::FAULT_KIND_MOTOR_UNDERSPEED
                                 : v1::FAULT_KIND_IMPEDANCE_SPIKE;
  view_.counters().CountFault(kind);
  const v1::Fault fault = MakeFault(kind, detail, t);
  QueueEvent(v1::DEVICE_EVENT_TYPE_FAULT_RAISED, fault.message(), &fault);
  active_fault_ = fault;
  EndRun(v1::RUN_END_REASON_FAULT, detail, v1::DEVICE_STATE_FAULT, "fault: " + detail);
}

void Device::HandleDeadline(Deadline which, absl::Time at) {
  switch (which) {
    case Deadline::kLease: {
      std::optional<LeaseGrant> expired = lease_.ExpireIfDue(at);
      if (!expired.has_value()) return;
      view_.counters().CountLeaseExpiration();
      const bool dead_man = state_ == v1::DEVICE_STATE_RUNNING || state_ == v1::DEVICE_STATE_PAUSED;
      if (dead_man) ForceOff();  // the dead-man switch: output off before anything reports it
      QueueEvent(v1::DEVICE_EVENT_TYPE_LEASE_EXPIRED,
                 absl::StrCat("lease of \"", expired->holder, "\" expired"));
      if (dead_man) {
        view_.counters().CountDeadManStop();
        EndRun(v1::RUN_END_REASON_LEASE_EXPIRED, "lease expired", v1::DEVICE_STATE_IDLE,
               "lease expired (dead-man stop)");
      } else {
        PublishView();
      }
      return;
    }
    case Deadline::kSession:
      ForceOff();
      EndRun(v1::RUN_END_REASON_SESSION_LIMIT, "session time limit reached", v1::DEVICE_STATE_IDLE,
             "session time limit reached");
      return;
    case Deadline::kStep:
      AdvanceStep(at);
      return;
    case Deadline::kRegulation:  // Integrate(at) has judged it
    case Deadline::kNone:
      return;
  }
}

void Device::HandleLink(const DriverReading& reading, absl::Time t) {
  if (!reading.link_up && state_ != v1::DEVICE_STATE_OFFLINE) {
    ForceOff();
    const v1::Fault fault = MakeFault(v1::FAULT_KIND_LINK_DROP, "communication link lost", t);
    view_.counters().CountFault(v1::FAULT_KIND_LINK_DROP);
    if (state_ == v1::DEVICE_STATE_ESTOPPED) estop_pending_ = true;
    if (state_ == v1::DEVICE_STATE_FAULT) fault_pending_ = active_fault_;
    active_fault_ = fault;
    QueueEvent(v1::DEVICE_EVENT_TYPE_FAULT_RAISED, fault.message(), &fault);
    EndRun(v1::RUN_END_REASON_LINK_LOST, "link lost", v1::DEVICE_STATE_OFFLINE, "link lost");
    return;
  }
  if (reading.link_up && state_ == v1::DEVICE_STATE_OFFLINE) {
    if (absl::Status s = ConnectDriver(t); !s.ok()) {
      if (!absl::IsUnavailable(s)) RefuseConnect(s, t);
      return;
    }
    const v1::Fault cleared = active_fault_.value_or(v1::Fault());
    active_fault_ = std::exchange(fault_pending_, std::nullopt);
    QueueEvent(v1::DEVICE_EVENT_TYPE_FAULT_CLEARED, "communication link restored", &cleared);
    // A latch in force when the link dropped, or a fault raised while offline, still holds.
    if (estop_pending_) {
      SetState(v1::DEVICE_STATE_ESTOPPED, "link restored");
    } else {
      LeaveLatch("link restored");
    }
  }
}

void Device::HandleDeviceEstop(absl::Time t) {
  if (!reading_.estop_latched || state_ == v1::DEVICE_STATE_ESTOPPED ||
      state_ == v1::DEVICE_STATE_OFFLINE) {
    return;
  }
  ForceOff();
  view_.counters().CountEmergencyStop();
  EndRun(v1::RUN_END_REASON_EMERGENCY_STOP, "the device latched its own emergency stop",
         v1::DEVICE_STATE_ESTOPPED, "the device latched its own emergency stop");
}

bool Device::LatchesFault(v1::FaultKind kind) {
  return kind != v1::FAULT_KIND_ELECTRODE_CONTACT_LOST && kind != v1::FAULT_KIND_LINK_DROP;
}

void Device::LeaveLatch(const std::string& cause) {
  const FaultMask present = reading_.faults & ~FaultBit(v1::FAULT_KIND_ELECTRODE_CONTACT_LOST);
  if (present != 0 && !(active_fault_.has_value() && LatchesFault(active_fault_->kind()))) {
    active_fault_ = MakeFault(FirstFaultKind(present), reading_.fault_detail, time_);
  }
  if (active_fault_.has_value() && LatchesFault(active_fault_->kind())) {
    SetState(v1::DEVICE_STATE_FAULT,
             cause + "; fault " + v1::FaultKind_Name(active_fault_->kind()) + " is still latched");
    return;
  }
  active_fault_.reset();
  SetState(v1::DEVICE_STATE_IDLE, cause);
}

// Output off first: every event below is published with the output already off.
void Device::HandleFaults(FaultMask faults, const std::string& detail, absl::Time t) {
  const FaultMask raised = faults & ~known_faults_;
  const FaultMask cleared = known_faults_ & ~faults;
  known_faults_ = faults;
  if (raised == 0 && cleared == 0) return;
  const FaultMask contact = FaultBit(v1::FAULT_KIND_ELECTRODE_CONTACT_LOST);
  const FaultMask latching = raised & ~contact;
  const bool operating = state_ == v1::DEVICE_STATE_IDLE || state_ == v1::DEVICE_STATE_RUNNING ||
                         state_ == v1::DEVICE_STATE_PAUSED;
  const bool contact_stop = (raised & contact) && state_ == v1::DEVICE_STATE_RUNNING;
  if ((latching != 0 && operating) || contact_stop) ForceOff();

  for (int kind = 1; kind <= v1::FaultKind_MAX; ++kind) {
    const FaultMask bit = FaultBit(static_cast<v1::FaultKind>(kind));
    if (((raised | cleared) & bit) == 0) continue;
    if (raised & bit) view_.counters().CountFault(static_cast<v1::FaultKind>(kind));
    const bool is_raised = (raised & bit) != 0;
    const v1::Fault fault =
        MakeFault(static_cast<v1::FaultKind>(kind),
                  is_raised ? (detail.empty() ? v1::FaultKind_Name(kind) : detail)
                            : absl::StrCat(v1::FaultKind_Name(kind), " condition cleared"),
                  t);
    QueueEvent(
        (raised & bit) ? v1::DEVICE_EVENT_TYPE_FAULT_RAISED : v1::DEVICE_EVENT_TYPE_FAULT_CLEARED,
        fault.message(), &fault);
  }
  if (latching != 0) {
    const v1::Fault fault = MakeFault(FirstFaultKind(latching), detail, t);
    if (operating) {
      active_fault_ = fault;
      EndRun(v1::RUN_END_REASON_FAULT, detail, v1::DEVICE_STATE_FAULT, "fault: " + detail);
      return;
    }
    // ESTOPPED or OFFLINE: the device is already safe; the fault latches when it leaves.
    if (state_ == v1::DEVICE_STATE_OFFLINE) {
      if (!fault_pending_.has_value()) fault_pending_ = fault;
    } else if (state_ == v1::DEVICE_STATE_ESTOPPED) {
      if (!active_fault_.has_value() || !LatchesFault(active_fault_->kind())) {
        active_fault_ = fault;
      }
    }
  } else if (contact_stop) {
    active_fault_ = MakeFault(v1::FAULT_KIND_ELECTRODE_CONTACT_LOST, detail, t);
    SetState(v1::DEVICE_STATE_PAUSED, "electrode contact lost");
    return;
  }
  PublishView();
}

// One failure condition raises one fault: a driver that keeps failing is reported once, and
// FAULT_CLEARED is reported when it reads again. The FAULT latch stays until ResetFault.
void Device::FailDriver(const absl::Status& status, absl::Time t) {
  ForceOff();
  if (driver_failed_) return;
  driver_failed_ = true;
  view_.counters().CountFault(v1::FAULT_KIND_UNSPECIFIED);
  const v1::Fault fault =
      MakeFault(v1::FAULT_KIND_UNSPECIFIED, absl::StrCat("driver error: ", status.ToString()), t);
  QueueEvent(v1::DEVICE_EVENT_TYPE_FAULT_RAISED, fault.message(), &fault);
  // A run is active only in RUNNING or PAUSED, which go to FAULT below.
  if (state_ == v1::DEVICE_STATE_OFFLINE) {
    if (!fault_pending_.has_value()) fault_pending_ = fault;
    PublishView();
    return;
  }
  if (state_ == v1::DEVICE_STATE_ESTOPPED || state_ == v1::DEVICE_STATE_FAULT) {
    if (!active_fault_.has_value()) active_fault_ = fault;
    PublishView();
    return;
  }
  active_fault_ = fault;
  EndRun(v1::RUN_END_REASON_FAULT, fault.message(), v1::DEVICE_STATE_FAULT, fault.message());
}

void Device::PublishSample(absl::Time t) {
  // Every path that queues an announcement publishes the view before it returns; this keeps a
  // device's samples and events in the order it made them should one be missed.
  if (!unsent_events_.empty() || !unpublished_runs_.empty()) PublishView();
  Sample sample;
  sample.device_index = index_;
  sample.kind = kind();
  sample.sequence = ++sample_sequence_;
  sample.device_time_us = absl::ToUnixMicros(t);
  sample.output_on = reading_.output_on;
  sample.output_unconfirmed = output_unconfirmed();
  sample.achieved_sample_rate_hz = achieved_rate_hz_;
  published_output_on_ = reading_.output_on;
  published_unconfirmed_ = sample.output_unconfirmed;
  sample.pen = reading_.pen;
  sample.stim = reading_.stim;
  view_.PublishSample(sample);
  context_.fanout.Publish(sample);
}

}  // namespace derma
