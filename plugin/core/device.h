// Device: the core of one instrument — state machine, validation, interlocks, lease, run
// engine and telemetry — on top of a Driver. Layer: plugin/core; knows nothing of gRPC.
//
// Strand-confined: every method runs on the device's strand (DeviceManager posts there), so
// the object needs no lock. Other threads read the device through view(), which is
// thread-safe. Public methods check the state table, call driver hooks, and commit a new
// state only when the hook succeeded. Safety rules enforced here:
//   - the output is on only in RUNNING;
//   - a fault, link loss, lease expiry while RUNNING, session limit or EmergencyStop forces the
//     output off FIRST, then changes state, ends the run and emits events;
//   - device time advances through every deadline (step end, session limit, lease expiry) in
//     order, so run ledgers are exact on a virtual clock.
// Publication order: on every change the device publishes its view (state, active run,
// settings, fault, lease) BEFORE it publishes the run to the registry, and both BEFORE it
// emits the events that announce the change. Whoever learns of a change from WatchRun, GetRun
// or a telemetry event and then reads the view (GetDevice) finds the device in at least that
// state. The view counts those events in its last_event_sequence, so a telemetry snapshot
// taken in between neither misses nor repeats one.
#ifndef DERMA_PLUGIN_CORE_DEVICE_H_
#define DERMA_PLUGIN_CORE_DEVICE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "derma/v1/device_control.pb.h"
#include "plugin/core/clock.h"
#include "plugin/core/device_view.h"
#include "plugin/core/lease_table.h"
#include "plugin/core/output_trajectory.h"
#include "plugin/core/request_log.h"
#include "plugin/core/run_registry.h"
#include "plugin/core/settings_validator.h"
#include "plugin/core/state_machine.h"
#include "plugin/core/telemetry_fanout.h"
#include "plugin/driver.h"

namespace derma {

// Shared services a device publishes into. All thread-safe; they outlive the device.
struct DeviceContext {
  Clock& clock;
  TelemetryFanout& fanout;
  RunRegistry& runs;
};

// Helpers shared by the device's translation units.
v1::Fault MakeFault(v1::FaultKind kind, const std::string& message, absl::Time t);
// The lowest fault kind set in `mask` (UNSPECIFIED when none).
v1::FaultKind FirstFaultKind(FaultMask mask);

class Device {
 public:
  static constexpr size_t kMaxRunSteps = 100;
  static constexpr double kMaxStepSeconds = 3600;

  // `id` without the "devices/" prefix; `index` is the device's position in its manager.
  Device(uint32_t index, std::string id, std::unique_ptr<Driver> driver, DeviceContext context);
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // Connects the driver and publishes the first view. OFFLINE when the link is down (a device
  // that describes itself stays without capabilities until its first connect).
  void Initialize();

  // Lease commands. Legal in every state.
  absl::StatusOr<LeaseGrant> AcquireLease(const std::string& holder, absl::Duration ttl);
  absl::StatusOr<LeaseGrant> RenewLease(const std::string& lease_id, absl::Duration ttl);
  absl::Status ReleaseLease(const std::string& lease_id);

  // Returns the applied settings (complete, quantized).
  absl::StatusOr<v1::Settings> Configure(const std::string& lease_id, const v1::Settings& requested,
                                         bool validate_only);
  absl::Status Start(const std::string& lease_id, const std::string& request_id);
  absl::Status Pause(const std::string& lease_id);
  absl::Status Resume(const std::string& lease_id);
  // Output off; RUNNING/PAUSED → IDLE, run ends STOPPED. Always OK.
  void Stop();
  // Output off before anything else; latches ESTOPPED (or a pending latch while OFFLINE).
  // The same as EmergencyStopOutputOff() then FinishEmergencyStop().
  void EmergencyStop();
  // EmergencyStop in two halves, for a fleet-wide stop that switches every output off before
  // it does any device's bookkeeping. EmergencyStopOutputOff only switches the output off (the
  // driver's stop, at one reading of the clock). FinishEmergencyStop must be the device's next
  // call, with no other task of its strand in between: it latches the state, ends the run and
  // publishes the view, events and a fresh sample (alone, it does the whole EmergencyStop).
  void EmergencyStopOutputOff();
  void FinishEmergencyStop();
  // Clears the ESTOPPED latch: to IDLE, or to FAULT when a latching fault was raised before
  // or during the stop (or is still present).
  absl::Status ResetEmergencyStop(const std::string& lease_id);
  absl::Status ResetFault(const std::string& lease_id);

  absl::StatusOr<RunPtr> StartRun(const std::string& lease_id,
                                  const std::vector<v1::RunStep>& steps,
                                  const std::string& request_id);
  // CancelRun of the device's active run `run_name`. RUN_NOT_FOUND when it is not active here.
  absl::StatusOr<RunPtr> CancelRun(const std::string& lease_id, const std::string& run_name);

  // Advances to the clock's now, publishes one sample. Called at the sample rate.
  void Tick();
  // The next instant something is due without a command (a step's end, the session limit, a
  // lease's expiry, a regulation shortfall's grace end), if any: a device on a slow link is
  // woken then instead of at its next tick, so output-off deadlines are met to a transaction.
  std::optional<absl::Time> NextWakeup() const;
  // Service shutdown: output off, run ends SHUTDOWN, state IDLE (unless latched).
  void Shutdown();

  // Thread-safe reads.
  const DeviceView& view() const { return view_; }
  const std::string& name() const { return name_; }
  uint32_t index() const { return index_; }
  v1::DeviceKind kind() const { return driver_->Info().kind; }

  // Strand-confined reads, for tests and the manager.
  v1::DeviceState state() const { return state_; }
  const v1::Settings& settings() const { return settings_; }
  const DriverReading& last_reading() const { return reading_; }
  // What the device is and can do; null until it has described itself.
  const DeviceDescription* description() const { return description_; }
  // True when the last ForceOutputOff could not be confirmed by the device and its output is
  // not yet known to be off (DriverReading::output_unconfirmed).
  bool output_unconfirmed() const { return force_off_unconfirmed_ || reading_.output_unconfirmed; }

 private:
  struct ActiveRun {
    v1::Run run;  // ledger strokes/charge kept current; times below are exact
    absl::Duration step_elapsed;
    absl::Duration output_on;
    absl::Time last_published;
  };
  enum class Deadline { kNone, kLease, kSession, kStep, kRegulation };

  // Time and physics (device_runtime.cc).
  void AdvanceTo(absl::Time t);
  // AdvanceTo(now) at the start of a command. When that switched the output off (a fault, link
  // loss or lease expiry found before the next tick), publishes a sample at once, so the view
  // never shows a latched or offline device with the output on.
  void CatchUp();
  Deadline NextDeadline(absl::Time limit, absl::Time* at) const;
  void Integrate(absl::Time t);
  void HandleDeadline(Deadline which, absl::Time at);
  void HandleLink(const DriverReading& reading, absl::Time t);
  void HandleFaults(FaultMask faults, const std::string& detail, absl::Time t);
  // The instrument reports its own emergency stop latched: the device latches ESTOPPED too.
  void HandleDeviceEstop(absl::Time t);
  void FailDriver(const absl::Status& status, absl::Time t);
  // The output's programmed dose over [dose_time_, until] (0 unless RUNNING); turns the
  // trajectory on or off with the state first. Leaves dose_time_ at `until`.
  ProgrammedDose AdvanceTrajectory(absl::Time until);
  // An instrument behind a link takes new settings when Apply reaches it, after the reading at
  // dose_time_: while RUNNING, the dose programmed until Apply returned is counted at the
  // settings before (into the run's ledger when there is one). Nothing for a model.
  void CountDoseBeforeApply();
  // The regulation check of one interval [time_, t] against the reading `next` taken at its
  // end: the detail of the fault to raise once the shortfall has lasted the grace time.
  std::optional<std::string> CheckRegulation(const DriverReading& next,
                                             const ProgrammedDose& programmed, absl::Time t);
  // The output could not follow its trajectory: output off, FAULT (MOTOR_UNDERSPEED or
  // IMPEDANCE_SPIKE), the run ends FAULT.
  void FaultRegulation(const std::string& detail, absl::Time t);
  // Connects the driver, adopts its description the first time, and applies the settings in
  // force. UNAVAILABLE while the link is down; another error means the driver refuses the
  // device it found (another identity or kind).
  absl::Status ConnectDriver(absl::Time t);
  // The first Connect of a device that describes itself: its identity, capabilities, default
  // settings and regulation, fixed from now on.
  void AdoptDescription(const DeviceDescription& description);
  // A Connect refused for another reason than the link: output off, FAULT with the driver's
  // reason (ResetFault stays refused while the driver refuses the device).
  void RefuseConnect(const absl::Status& status, absl::Time t);
  // Leaving ESTOPPED or OFFLINE: to FAULT when a latching fault is recorded or present, else
  // IDLE.
  void LeaveLatch(const std::string& cause);
  // Faults that latch FAULT; contact loss pauses and link loss goes OFFLINE instead.
  static bool LatchesFault(v1::FaultKind kind);
  void PublishSample(absl::Time t);
  void PublishFreshSample();

  // State changes and publication (device.cc).
  // QueueStateChange, then PublishView: the view, the run, then the queued events (STATE_CHANGED
  // last, when the state changed).
  void SetState(v1::DeviceState next, const std::string& cause);
  // Moves to `next` and queues its STATE_CHANGED and the active run's snapshot, for the next
  // PublishView to send. Nothing when already in `next`.
  void QueueStateChange(v1::DeviceState next, const std::string& cause);
  // Output off at device time (time_ is current: callers have advanced or are advancing).
  void ForceOff();
  // Numbers the event now and queues it; it is sent after the next PublishView, which the
  // caller makes before returning.
  void QueueEvent(v1::DeviceEventType type, const std::string& message,
                  const v1::Fault* fault = nullptr, const std::string& run = "");
  // An event numbered now, at device time, from and to the current state.
  std::shared_ptr<v1::DeviceEvent> NewEvent(v1::DeviceEventType type, const std::string& message);
  // Publishes the view, then what was queued to announce its changes: run snapshots to the
  // registry, then events to the fan-out.
  void PublishView();
  absl::Status CheckCommand(Command command, const std::string& lease_id);
  // RUN_ACTIVE while a run owns the device.
  absl::Status CheckNoRun(const std::string& command);
  absl::Status CheckStartInterlocks(const v1::Settings& settings, const std::string& prefix);
  absl::Status SwitchOutput(bool on);
  ValidationContext MakeValidationContext() const;
  // The settings in force from now on (the driver has applied them): the dose programmed so far
  // is counted at the settings before (CountDoseBeforeApply), then the trajectory follows them
  // and the regulation grace time starts afresh.
  void CommitSettings(const v1::Settings& settings);

  // Runs (device_runs.cc).
  absl::Status ValidateProgram(const std::vector<v1::RunStep>& steps,
                               std::vector<v1::Settings>* applied);
  void BeginRun(const std::vector<v1::RunStep>& steps, std::vector<v1::Settings> applied,
                const std::string& request_id, const std::string& holder);
  void AdvanceStep(absl::Time at);
  // Ends the active run (if any) with `reason` and moves to `next` (`cause` in STATE_CHANGED),
  // then publishes: the view, the ended run, then RUN_ENDED and STATE_CHANGED. The caller has
  // already forced the output off.
  void EndRun(v1::RunEndReason reason, const std::string& message, v1::DeviceState next,
              const std::string& cause);
  // The active run's current snapshot (progress fields brought up to date).
  RunPtr SnapshotRun();
  // Queues the active run's snapshot for the next PublishView.
  void QueueRun();
  // Publishes the active run's progress now: on every call with `force`, else at most every
  // 100 ms of device time. Only for changes the view already shows.
  void PublishRun(bool force);
  void AccountRun(absl::Duration on_time, uint64_t strokes, double charge_uc,
                  const ProgrammedDose& programmed);
  // Ends the run whose every step finished: COMPLETED when the delivered dose is within
  // tolerance of the programmed one, else DOSE_OUT_OF_TOLERANCE.
  void CompleteRun();

  const uint32_t index_;
  const std::string id_;
  const std::string name_;
  std::unique_ptr<Driver> driver_;
  const DeviceDescription* description_ = nullptr;  // the driver's, once adopted
  DeviceContext context_;
  DeviceView view_;
  LeaseTable lease_;
  RequestLog requests_;

  v1::DeviceState state_ = v1::DEVICE_STATE_OFFLINE;
  v1::Settings settings_;
  OutputTrajectory trajectory_;  // the programmed output, for the ledger and regulation
  RegulationMonitor regulation_;
  std::optional<v1::Fault> active_fault_;
  FaultMask known_faults_ = 0;
  bool estop_pending_ = false;  // EmergencyStop while OFFLINE: latch on reconnect
  // Set by EmergencyStopOutputOff: when the output went off, for FinishEmergencyStop.
  std::optional<absl::Time> estop_output_off_at_;
  std::optional<v1::Fault> fault_pending_;  // FAULT to latch when the link is back
  bool driver_failed_ = false;              // driver error reported; cleared on a good read
  bool force_off_unconfirmed_ = false;      // the last ForceOutputOff was not confirmed
  absl::Time rate_window_start_;            // the achieved sample rate's current window
  int rate_window_ticks_ = 0;               // ticks in it
  double achieved_rate_hz_ = 0;             // of the last complete window (or the first one)
  DriverReading reading_;
  absl::Time time_;            // device time of reading_
  absl::Duration session_on_;  // output-on time since Start / StartRun
  // The instant the programmed dose is counted up to: reading_.taken_at for an instrument
  // behind a link (DriverInfo::acts_when_called), else the device time of the last reading.
  absl::Time dose_time_;
  // How long after dose_time_ the instrument took the last output-on command (acts_when_called);
  // the trajectory skips it.
  absl::Duration output_on_delay_;
  std::optional<ActiveRun> run_;
  std::vector<v1::Settings> run_settings_;  // applied settings per step of the active run
  uint64_t sample_sequence_ = 0;
  bool published_output_on_ = false;    // output_on of the last published sample
  bool published_unconfirmed_ = false;  // output_unconfirmed of the last published sample
  uint64_t event_sequence_ = 0;
  // Announcements of changes the view does not show yet; PublishView sends them after it.
  std::vector<RunPtr> unpublished_runs_;
  std::vector<EventPtr> unsent_events_;
};

}  // namespace derma

#endif  // DERMA_PLUGIN_CORE_DEVICE_H_
