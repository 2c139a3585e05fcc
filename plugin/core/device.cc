#include "plugin/core/device.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "plugin/errors/errors.h"

namespace derma {

using google::protobuf::util::TimeUtil;

Device::Device(uint32_t index, std::string id, std::unique_ptr<Driver> driver,
               DeviceContext context)
    : index_(index),
      id_(std::move(id)),
      name_("devices/" + id_),
      driver_(std::move(driver)),
      context_(context),
      lease_(name_),
      trajectory_(driver_->Info().kind, v1::OutputRegulation()),
      regulation_(v1::OutputRegulation()) {
  v1::Device identity;
  identity.set_name(name_);
  identity.set_kind(driver_->Info().kind);
  identity.set_simulated(driver_->Info().simulated);
  view_.SetIdentity(std::move(identity));
  if (const DeviceDescription* known = driver_->Description(); known != nullptr) {
    AdoptDescription(*known);
  }
}

void Device::AdoptDescription(const DeviceDescription& description) {
  description_ = &description;
  settings_ = description.default_settings;
  trajectory_ = OutputTrajectory(kind(), description.capabilities.regulation());
  regulation_ = RegulationMonitor(description.capabilities.regulation());
  trajectory_.SetSettings(settings_);
  v1::Device identity;
  identity.set_name(name_);
  identity.set_kind(kind());
  identity.set_model(description.model);
  identity.set_serial_number(description.serial_number);
  identity.set_firmware_version(description.firmware_version);
  identity.set_simulated(driver_->Info().simulated);
  view_.SetIdentity(std::move(identity));
  view_.SetCapabilities(description.capabilities);
}

absl::Status Device::ConnectDriver(absl::Time t) {
  absl::Status status = driver_->Connect(t);
  if (status.ok() && description_ == nullptr) {
    const DeviceDescription* described = driver_->Description();
    if (described == nullptr) {
      return absl::InternalError("the driver connected without describing the device");
    }
    AdoptDescription(*described);
  }
  if (status.ok()) status = driver_->Apply(settings_, t);
  return status;
}

void Device::RefuseConnect(const absl::Status& status, absl::Time t) {
  FailDriver(status, t);  // OFFLINE: reports once and keeps the fault pending
  if (state_ != v1::DEVICE_STATE_OFFLINE) return;
  active_fault_ = std::exchange(fault_pending_, std::nullopt);
  if (!active_fault_.has_value()) {
    active_fault_ = MakeFault(v1::FAULT_KIND_UNSPECIFIED, std::string(status.message()), t);
  }
  SetState(v1::DEVICE_STATE_FAULT, absl::StrCat("connect refused: ", status.message()));
}

void Device::Initialize() {
  time_ = context_.clock.Now();
  dose_time_ = time_;
  rate_window_start_ = time_;
  if (absl::StatusOr<DriverReading> r = driver_->Read(time_); r.ok()) reading_ = *std::move(r);
  absl::Status connected = absl::UnavailableError("link down");
  if (reading_.link_up) connected = ConnectDriver(time_);
  if (connected.ok()) state_ = v1::DEVICE_STATE_IDLE;
  known_faults_ = reading_.faults;
  PublishView();
  if (!connected.ok() && !absl::IsUnavailable(connected)) RefuseConnect(connected, time_);
  PublishSample(time_);
}

void Device::CatchUp() {
  AdvanceTo(context_.clock.Now());
  if (published_output_on_ && !reading_.output_on) PublishSample(time_);
}

absl::Status Device::CheckCommand(Command command, const std::string& lease_id) {
  CatchUp();
  if (absl::Status s = CheckLegal(command, state_, name_); !s.ok()) {
    if (state_ != v1::DEVICE_STATE_FAULT || !active_fault_.has_value()) return s;
    // Name the latched fault, so the client knows what to clear.
    ErrorMetadata metadata = MetadataOf(s);
    metadata["fault"] = v1::FaultKind_Name(active_fault_->kind());
    return MakeError(
        s.code(), ReasonOf(s),
        absl::StrCat(s.message(), " (latched fault ", v1::FaultKind_Name(active_fault_->kind()),
                     ": ", active_fault_->message(), ")"),
        metadata, ViolationsOf(s));
  }
  return lease_.Check(lease_id, time_);
}

absl::StatusOr<LeaseGrant> Device::AcquireLease(const std::string& holder, absl::Duration ttl) {
  CatchUp();
  absl::StatusOr<LeaseGrant> grant = lease_.Acquire(holder, ttl, time_);
  if (grant.ok()) PublishView();
  return grant;
}

absl::StatusOr<LeaseGrant> Device::RenewLease(const std::string& lease_id, absl::Duration ttl) {
  CatchUp();
  absl::StatusOr<LeaseGrant> grant = lease_.Renew(lease_id, ttl, time_);
  if (grant.ok()) PublishView();
  return grant;
}

absl::Status Device::ReleaseLease(const std::string& lease_id) {
  CatchUp();
  absl::Status status = lease_.Release(lease_id, time_);
  if (status.ok()) PublishView();
  return status;
}

ValidationContext Device::MakeValidationContext() const {
  ValidationContext context;
  context.device = name_;
  context.kind = driver_->Info().kind;
  context.capabilities = &description_->capabilities;
  context.cartridge = reading_.cartridge;
  context.impedance_known = reading_.stim.electrode_contact;
  context.electrode_impedance_ohm = reading_.stim.electrode_impedance_ohm;
  return context;
}

absl::StatusOr<v1::Settings> Device::Configure(const std::string& lease_id,
                                               const v1::Settings& requested, bool validate_only) {
  if (absl::Status s = CheckCommand(Command::kConfigure, lease_id); !s.ok()) return s;
  if (absl::Status s = CheckNoRun("Configure"); !s.ok()) return s;
  absl::StatusOr<v1::Settings> applied =
      ValidateSettings(MakeValidationContext(), settings_, requested);
  if (!applied.ok() || validate_only) return applied;
  if (absl::Status s = driver_->Apply(*applied, time_); !s.ok()) {
    FailDriver(s, time_);
    return MakeError(absl::StatusCode::kInternal, v1::ERROR_REASON_DRIVER_ERROR,
                     absl::StrCat(name_, " driver rejected validated settings: ", s.message()),
                     {{"device", name_}});
  }
  CommitSettings(*applied);
  QueueEvent(v1::DEVICE_EVENT_TYPE_SETTINGS_APPLIED, "settings applied");
  PublishView();
  return applied;
}

void Device::CommitSettings(const v1::Settings& settings) {
  CountDoseBeforeApply();
  settings_ = settings;
  trajectory_.SetSettings(settings_);
  regulation_.Restart();
}

absl::Status Device::CheckNoRun(const std::string& command) {
  if (!run_.has_value()) return absl::OkStatus();
  return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_RUN_ACTIVE,
                   absl::StrCat(command, ": ", name_, " is executing run ", run_->run.name(),
                                "; cancel it first"),
                   {{"device", name_}, {"run", run_->run.name()}});
}

absl::Status Device::CheckStartInterlocks(const v1::Settings& settings, const std::string& prefix) {
  const ErrorMetadata meta = {{"device", name_}};
  if (const FaultMask present = reading_.faults & ~FaultBit(v1::FAULT_KIND_ELECTRODE_CONTACT_LOST);
      present != 0) {
    return MakeError(absl::StatusCode::kFailedPrecondition,
                     v1::ERROR_REASON_FAULT_CONDITION_PRESENT,
                     absl::StrCat(name_, " reports ", v1::FaultKind_Name(FirstFaultKind(present)),
                                  ": ", reading_.fault_detail),
                     {{"device", name_}, {"fault", v1::FaultKind_Name(FirstFaultKind(present))}});
  }
  if (kind() == v1::DEVICE_KIND_MICRONEEDLING &&
      reading_.cartridge.strokes_used() >= reading_.cartridge.strokes_rated()) {
    return MakeError(
        absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_CARTRIDGE_EXPIRED,
        absl::StrCat("the cartridge of ", name_, " has used ", reading_.cartridge.strokes_used(),
                     " of its ", reading_.cartridge.strokes_rated(), " rated strokes; replace it"),
        meta);
  }
  if (kind() == v1::DEVICE_KIND_MICROCURRENT && !reading_.stim.electrode_contact) {
    return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_NO_ELECTRODE_CONTACT,
                     absl::StrCat(name_, " has no electrode contact; apply the electrodes"), meta);
  }
  return CheckInterlocks(MakeValidationContext(), settings, prefix);
}

// Switches the driver output; a failure forces the output off and latches FAULT (or leaves
// the link-loss handling to the next reading when the link is down).
absl::Status Device::SwitchOutput(bool on) {
  absl::Status status = driver_->SetOutput(on, time_);
  if (status.ok()) {
    // Over a link that blocks, the instrument took the command some time after the reading at
    // dose_time_: the programmed output starts from the moment it went on.
    if (on && driver_->Info().acts_when_called) {
      output_on_delay_ = std::max(absl::ZeroDuration(), context_.clock.Now() - dose_time_);
    }
    return status;
  }
  if (absl::IsUnavailable(status)) {
    ForceOff();
    Integrate(time_);  // picks up the link loss
    return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_DEVICE_OFFLINE,
                     absl::StrCat(name_, " link is down: ", status.message()), {{"device", name_}});
  }
  FailDriver(status, time_);
  return MakeError(absl::StatusCode::kInternal, v1::ERROR_REASON_DRIVER_ERROR,
                   absl::StrCat(name_, " driver failed to switch output: ", status.message()),
                   {{"device", name_}});
}

absl::Status Device::Start(const std::string& lease_id, const std::string& request_id) {
  absl::Status reuse;
  if (auto seen = requests_.Find(request_id, "Start", &reuse)) return seen->status;
  if (!reuse.ok()) return reuse;
  absl::Status status = CheckNoRun("Start");
  if (status.ok()) status = CheckCommand(Command::kStart, lease_id);
  if (status.ok()) status = CheckStartInterlocks(settings_, "settings");
  if (status.ok()) status = SwitchOutput(true);
  if (status.ok()) {
    session_on_ = absl::ZeroDuration();
    SetState(v1::DEVICE_STATE_RUNNING, "Start");
    PublishFreshSample();
  }
  if (status.ok()) requests_.Remember(request_id, {"Start", status, ""});
  return status;
}

absl::Status Device::Pause(const std::string& lease_id) {
  if (absl::Status s = CheckCommand(Command::kPause, lease_id); !s.ok()) return s;
  ForceOff();
  SetState(v1::DEVICE_STATE_PAUSED, "Pause");
  PublishFreshSample();
  return absl::OkStatus();
}

absl::Status Device::Resume(const std::string& lease_id) {
  if (absl::Status s = CheckCommand(Command::kResume, lease_id); !s.ok()) return s;
  if (absl::Status s = CheckStartInterlocks(settings_, "settings"); !s.ok()) return s;
  if (absl::Status s = SwitchOutput(true); !s.ok()) return s;
  active_fault_.reset();
  SetState(v1::DEVICE_STATE_RUNNING, "Resume");
  PublishFreshSample();
  return absl::OkStatus();
}

void Device::Stop() {
  AdvanceTo(context_.clock.Now());
  ForceOff();
  const bool operating = state_ == v1::DEVICE_STATE_RUNNING || state_ == v1::DEVICE_STATE_PAUSED;
  EndRun(v1::RUN_END_REASON_STOPPED, "Stop", operating ? v1::DEVICE_STATE_IDLE : state_, "Stop");
  PublishFreshSample();
}

void Device::EmergencyStop() {
  EmergencyStopOutputOff();
  FinishEmergencyStop();
}

void Device::EmergencyStopOutputOff() {
  // Before anything else, even before accounting the time up to now. One reading of the clock:
  // the time accounted with the output on ends where the output went off, also when another
  // thread moves the clock meanwhile.
  const absl::Time now = std::max(time_, context_.clock.Now());
  force_off_unconfirmed_ = !driver_->EmergencyStop(now);
  estop_output_off_at_ = now;
}

void Device::FinishEmergencyStop() {
  if (!estop_output_off_at_.has_value()) EmergencyStopOutputOff();
  const absl::Time now = *std::exchange(estop_output_off_at_, std::nullopt);
  view_.counters().CountEmergencyStop();
  // Already latched, its output shown off and confirmed, nothing waiting to be announced: a
  // repeated fleet-wide stop changes nothing a reader could see, so nothing is republished (the
  // next tick accounts the time as usual). Most devices of a repeated stop-all are such.
  if (state_ == v1::DEVICE_STATE_ESTOPPED && !published_output_on_ && !published_unconfirmed_ &&
      !output_unconfirmed() && unsent_events_.empty() && unpublished_runs_.empty()) {
    return;
  }
  AdvanceTo(now);
  if (state_ == v1::DEVICE_STATE_OFFLINE) {
    // The link loss already ended any run; the latch waits for the link.
    estop_pending_ = true;
    QueueEvent(v1::DEVICE_EVENT_TYPE_STATE_CHANGED,
               "EmergencyStop while OFFLINE: latches on reconnect");
    PublishView();
  } else {
    EndRun(v1::RUN_END_REASON_EMERGENCY_STOP, "EmergencyStop", v1::DEVICE_STATE_ESTOPPED,
           "EmergencyStop");
  }
  // Shows the output off at once (the link may also have dropped since the last tick).
  PublishFreshSample();
}

absl::Status Device::ResetEmergencyStop(const std::string& lease_id) {
  if (absl::Status s = CheckCommand(Command::kResetEmergencyStop, lease_id); !s.ok()) return s;
  if (absl::Status s = driver_->ClearEmergencyStop(time_); !s.ok()) {
    if (absl::IsUnavailable(s)) {
      return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_DEVICE_OFFLINE,
                       absl::StrCat(name_, " link is down: ", s.message()), {{"device", name_}});
    }
    FailDriver(s, time_);
    return MakeError(
        absl::StatusCode::kInternal, v1::ERROR_REASON_DRIVER_ERROR,
        absl::StrCat(name_, " driver failed to clear its emergency stop: ", s.message()),
        {{"device", name_}});
  }
  reading_.estop_latched = false;
  estop_pending_ = false;
  LeaveLatch("ResetEmergencyStop");
  return absl::OkStatus();
}

absl::Status Device::ResetFault(const std::string& lease_id) {
  if (absl::Status s = CheckCommand(Command::kResetFault, lease_id); !s.ok()) return s;
  if (driver_failed_ || description_ == nullptr) {
    return MakeError(absl::StatusCode::kFailedPrecondition,
                     v1::ERROR_REASON_FAULT_CONDITION_PRESENT,
                     absl::StrCat("the driver of ", name_, " still fails to read the device"),
                     {{"device", name_}, {"fault", "FAULT_KIND_UNSPECIFIED"}});
  }
  if (reading_.faults != 0) {
    const std::string fault = active_fault_ ? v1::FaultKind_Name(active_fault_->kind()) : "";
    return MakeError(absl::StatusCode::kFailedPrecondition,
                     v1::ERROR_REASON_FAULT_CONDITION_PRESENT,
                     absl::StrCat("the fault condition on ", name_,
                                  " is still present: ", reading_.fault_detail),
                     {{"device", name_}, {"fault", fault}});
  }
  active_fault_.reset();
  SetState(v1::DEVICE_STATE_IDLE, "ResetFault");
  return absl::OkStatus();
}

void Device::Tick() {
  AdvanceTo(context_.clock.Now());
  // The rate achieved: ticks per second of device time over windows of about a second (a slow
  // link coalesces ticks); the first window reports from a tenth of a second on.
  ++rate_window_ticks_;
  const double window_s = absl::ToDoubleSeconds(time_ - rate_window_start_);
  if (window_s >= 0.1 && (achieved_rate_hz_ == 0 || window_s >= 1)) {
    achieved_rate_hz_ = rate_window_ticks_ / window_s;
  }
  if (window_s >= 1) {
    rate_window_start_ = time_;
    rate_window_ticks_ = 0;
  }
  PublishSample(time_);
  PublishRun(/*force=*/false);
}

void Device::Shutdown() {
  const absl::Time now = std::max(time_, context_.clock.Now());  // once, as EmergencyStop
  force_off_unconfirmed_ = !driver_->ForceOutputOff(now);
  AdvanceTo(now);
  const bool operating = state_ == v1::DEVICE_STATE_RUNNING || state_ == v1::DEVICE_STATE_PAUSED;
  EndRun(v1::RUN_END_REASON_SHUTDOWN, "service shutdown",
         operating ? v1::DEVICE_STATE_IDLE : state_, "service shutdown");
  PublishFreshSample();
}

// Reads the driver again at the current device time and publishes the sample, so telemetry
// shows the output switched as soon as a command returns.
void Device::PublishFreshSample() {
  Integrate(time_);
  PublishSample(time_);
}

void Device::ForceOff() {
  force_off_unconfirmed_ = !driver_->ForceOutputOff(time_);
  // The reading taken before the output went off must not be published as current: samples
  // that follow a fault event show the output off.
  if (absl::StatusOr<DriverReading> now = driver_->Read(time_); now.ok()) {
    reading_.output_on = now->output_on;
    reading_.output_unconfirmed = now->output_unconfirmed;
    reading_.pen = now->pen;
    reading_.stim = now->stim;
  }
}

void Device::SetState(v1::DeviceState next, const std::string& cause) {
  const bool changed = next != state_;
  QueueStateChange(next, cause);
  // Nothing to show when the state stays and no announcement waits (EmergencyStop on a stopped
  // device: EmergencyStop(all) must not rebuild the views of a fleet that is already stopped).
  if (changed || !unsent_events_.empty() || !unpublished_runs_.empty()) PublishView();
}

void Device::QueueStateChange(v1::DeviceState next, const std::string& cause) {
  if (next == state_) return;
  std::shared_ptr<v1::DeviceEvent> event = NewEvent(v1::DEVICE_EVENT_TYPE_STATE_CHANGED, cause);
  event->set_to_state(next);
  state_ = next;
  // IDLE carries no fault: leaving an automatic pause (contact loss) by a dead-man stop,
  // CancelRun or shutdown forgets its cause, as Stop does.
  if (next == v1::DEVICE_STATE_IDLE) active_fault_.reset();
  if (active_fault_.has_value()) *event->mutable_fault() = *active_fault_;
  unsent_events_.push_back(std::move(event));
  QueueRun();  // the run's state follows the device's (RUNNING or PAUSED)
}

std::shared_ptr<v1::DeviceEvent> Device::NewEvent(v1::DeviceEventType type,
                                                  const std::string& message) {
  auto event = std::make_shared<v1::DeviceEvent>();
  event->set_device(name_);
  event->set_sequence(++event_sequence_);
  event->set_device_time_us(absl::ToUnixMicros(time_));
  event->set_type(type);
  event->set_from_state(state_);
  event->set_to_state(state_);
  event->set_message(message);
  return event;
}

void Device::QueueEvent(v1::DeviceEventType type, const std::string& message,
                        const v1::Fault* fault, const std::string& run) {
  std::shared_ptr<v1::DeviceEvent> event = NewEvent(type, message);
  if (fault != nullptr) *event->mutable_fault() = *fault;
  event->set_run(run);
  unsent_events_.push_back(std::move(event));
}

void Device::PublishView() {
  const DriverInfo& info = driver_->Info();
  auto device = std::make_shared<v1::Device>();  // the identity is in the view already
  device->set_state(state_);
  *device->mutable_settings() = settings_;
  if (active_fault_.has_value()) *device->mutable_active_fault() = *active_fault_;
  if (const auto& lease = lease_.current(); lease.has_value()) {
    device->mutable_lease()->set_holder(lease->holder);
    *device->mutable_lease()->mutable_expire_time() =
        TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(lease->expire_time));
  }
  if (info.kind == v1::DEVICE_KIND_MICRONEEDLING) *device->mutable_cartridge() = reading_.cartridge;
  if (run_.has_value()) device->set_active_run(run_->run.name());
  // The view reflects every event numbered so far, sent or still queued.
  view_.Publish(std::move(device), event_sequence_);
  for (RunPtr& run : std::exchange(unpublished_runs_, {})) context_.runs.Publish(std::move(run));
  for (EventPtr& event : std::exchange(unsent_events_, {})) {
    context_.fanout.PublishEvent(index_, std::move(event));
  }
}

}  // namespace derma
