// DeviceSessions' treatment programs: a watched program (retried, cancelled) and the dead-man
// session. See device_sessions.h.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/soak/device_sessions.h"

namespace derma::soak {
namespace {

using Stub = v1::DeviceControl::Stub;

constexpr double kDeadManTtlS = 2;
// Run steps end at exact device-time deadlines, so a completed run's output-on time equals its
// program; the allowance covers the sub-tick remainder of the last sample period only.
constexpr double kLedgerToleranceS = 0.02;
constexpr size_t kRecentRuns = 16;

bool Ended(const v1::Run& run) {
  return run.state() == v1::RUN_STATE_SUCCEEDED || run.state() == v1::RUN_STATE_ENDED_EARLY;
}

}  // namespace

void DeviceSessions::Program(const FleetDevice& device, const std::string& lease) {
  v1::StartRunRequest request;
  request.set_parent(device.name);
  request.set_lease_id(lease);
  for (v1::RunStep& step : RandomProgram(device, 2 + random_() % 2, 0.2, 0.6)) {
    *request.add_steps() = std::move(step);
  }
  if (random_() % 5 < 3) request.set_request_id(NextRequestId());
  std::optional<v1::Run> run = StartRun(device, request, Expect::kNormal);
  if (!run.has_value()) return;
  if (!request.request_id().empty() && random_() % 3 == 0) {
    ++counts_.retries_checked;  // the same request_id returns the same run, never a second one
    std::optional<v1::Run> again = StartRun(device, request, Expect::kNormal);
    if (again.has_value() && again->name() != run->name()) {
      caller_.Fail(absl::StrCat("StartRun retried with request_id ", request.request_id(),
                                " started ", again->name(), " besides ", run->name()));
    }
  }
  std::optional<absl::Time> cancel_at;
  if (random_() % 5 == 0) {
    cancel_at = absl::Now() + absl::Milliseconds(100 + random_() % 300);
  }
  bool cancelled = false;
  std::optional<v1::Run> ended =
      Watch(run->name(), lease, cancel_at,
            absl::Seconds(run->total_duration_s()) + absl::Seconds(10), &cancelled);
  if (!ended.has_value()) return;
  CheckEnded(*ended, cancelled, 0);
  CheckAfterRun(device, *ended);
}

void DeviceSessions::DeadMan(const FleetDevice& device) {
  std::optional<std::string> lease = Acquire(device, kDeadManTtlS);
  if (!lease.has_value()) return;
  // The server's expiry is at most TTL after this; the margin covers a tick under load.
  const absl::Time surely_expired = absl::Now() + absl::Seconds(kDeadManTtlS + 0.25);
  v1::StartRunRequest request;
  request.set_parent(device.name);
  request.set_lease_id(*lease);
  for (v1::RunStep& step : RandomProgram(device, 1, 8, 8)) *request.add_steps() = std::move(step);
  v1::StartRunResponse response;
  const grpc::Status started = caller_.Call(Rpc::kStartRun, Expect::kLeaseMayExpire, device.name,
                                            &Stub::StartRun, request, &response);
  if (started.ok()) {
    ++counts_.runs_started;
    bool cancelled = false;
    std::optional<v1::Run> ended = Watch(response.run().name(), *lease, std::nullopt,
                                         absl::Seconds(kDeadManTtlS + 10), &cancelled);
    if (ended.has_value()) CheckEnded(*ended, cancelled, kDeadManTtlS);
  } else if (ReasonOf(started) != "LEASE_EXPIRED") {
    return;  // already reported
  }
  // A contender's Stop may have ended the run before the lease ran out.
  absl::SleepFor(std::max(absl::ZeroDuration(), surely_expired - absl::Now()));
  Renew(device, *lease, kDeadManTtlS, Expect::kLeaseExpired);  // the switch fired: it is gone
}

std::optional<v1::Run> DeviceSessions::StartRun(const FleetDevice& device,
                                                const v1::StartRunRequest& request, Expect expect) {
  v1::StartRunResponse response;
  if (!caller_.Call(Rpc::kStartRun, expect, device.name, &Stub::StartRun, request, &response)
           .ok()) {
    return std::nullopt;
  }
  const v1::Run& run = response.run();
  if (run.device() != device.name || run.steps_size() != request.steps_size()) {
    caller_.Fail(absl::StrCat("StartRun on ", device.name, " returned ", run.name(), " of ",
                              run.device(), " with ", run.steps_size(), " steps"));
  }
  if (std::find(recent_runs_.begin(), recent_runs_.end(), run.name()) == recent_runs_.end()) {
    ++counts_.runs_started;
    recent_runs_.push_back(run.name());
    if (recent_runs_.size() > kRecentRuns) recent_runs_.erase(recent_runs_.begin());
  }
  return run;
}

std::optional<v1::Run> DeviceSessions::Watch(const std::string& run, const std::string& lease,
                                             std::optional<absl::Time> cancel_at,
                                             absl::Duration max_time, bool* cancelled) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + max_time));
  v1::WatchRunRequest request;
  request.set_name(run);
  const absl::Time start = absl::Now();
  std::unique_ptr<grpc::ClientReader<v1::WatchRunResponse>> reader =
      caller_.stub().WatchRun(&context, request);
  v1::WatchRunResponse message;
  std::optional<v1::Run> last;
  absl::Duration first_message = absl::ZeroDuration();
  while (reader->Read(&message)) {
    ++counts_.watch_messages;
    if (!last.has_value()) first_message = absl::Now() - start;
    CheckProgress(run, last, message.run());
    last = message.run();
    if (cancel_at.has_value() && absl::Now() >= *cancel_at && !Ended(*last)) {
      cancel_at.reset();
      *cancelled = Cancel(run, lease);
    }
  }
  const grpc::Status status = reader->Finish();
  caller_.Record(Rpc::kWatchRun, Expect::kNormal, run, status, first_message);
  if (!status.ok()) return std::nullopt;
  if (!last.has_value() || !Ended(*last)) {
    caller_.Fail(absl::StrCat("WatchRun ", run, " closed OK before the run ended: ",
                              last.has_value() ? last->ShortDebugString() : "no message"));
    return std::nullopt;
  }
  return last;
}

void DeviceSessions::CheckProgress(const std::string& run, const std::optional<v1::Run>& last,
                                   const v1::Run& now) {
  const bool regressed =
      last.has_value() && (Ended(*last) || now.current_step() < last->current_step() ||
                           now.ledger().output_on_s() < last->ledger().output_on_s() - 1e-9);
  if (now.name() == run && !regressed) return;
  caller_.Fail(absl::StrCat("WatchRun ", run, ": ", now.ShortDebugString(), " after ",
                            last.has_value() ? last->ShortDebugString() : "nothing"));
}

bool DeviceSessions::Cancel(const std::string& run, const std::string& lease) {
  v1::CancelRunRequest request;
  request.set_name(run);
  request.set_lease_id(lease);
  v1::CancelRunResponse response;
  return caller_.Call(Rpc::kCancelRun, Expect::kNormal, run, &Stub::CancelRun, request, &response)
      .ok();
}

void DeviceSessions::CheckEnded(const v1::Run& run, bool cancelled, double dead_man_ttl_s) {
  const double on_s = run.ledger().output_on_s();
  const bool completed =
      run.state() == v1::RUN_STATE_SUCCEEDED && run.end_reason() == v1::RUN_END_REASON_COMPLETED;
  const bool early = run.state() == v1::RUN_STATE_ENDED_EARLY;
  std::string problem;
  if (completed && dead_man_ttl_s == 0) {
    ++counts_.runs_completed;
    if (std::abs(on_s - run.total_duration_s()) > kLedgerToleranceS) problem = "output-on time";
  } else if (early && run.end_reason() == v1::RUN_END_REASON_STOPPED) {
    ++counts_.runs_stopped;  // a contender's Stop
  } else if (early && run.end_reason() == v1::RUN_END_REASON_CANCELLED && cancelled) {
    ++counts_.runs_cancelled;
  } else if (early && run.end_reason() == v1::RUN_END_REASON_LEASE_EXPIRED && dead_man_ttl_s) {
    ++counts_.dead_man_stops;
    if (on_s > dead_man_ttl_s + kLedgerToleranceS) problem = "output on after the lease expired";
  } else {
    problem = "end";
  }
  if (problem.empty() && on_s > 0.1) {
    const bool dosed =
        run.ledger().strokes_delivered() > 0 || run.ledger().charge_delivered_uc() > 0;
    if (!dosed) problem = "no dose delivered";
  }
  if (!problem.empty()) {
    caller_.Fail(absl::StrCat(
        "run ", run.name(), " unexpected ", problem, ": ", v1::RunState_Name(run.state()), " ",
        v1::RunEndReason_Name(run.end_reason()), " after ", on_s, " s on of ",
        run.total_duration_s(), " s (cancelled ", cancelled, ") ", run.end_message()));
  }
}

void DeviceSessions::CheckAfterRun(const FleetDevice& device, const v1::Run& ended) {
  v1::GetRunRequest get_run;
  get_run.set_name(ended.name());
  v1::GetRunResponse got_run;
  if (caller_.Call(Rpc::kGetRun, Expect::kNormal, ended.name(), &Stub::GetRun, get_run, &got_run)
          .ok() &&
      (got_run.run().state() != ended.state() || got_run.run().end_reason() != ended.end_reason() ||
       got_run.run().ledger().output_on_s() != ended.ledger().output_on_s())) {
    caller_.Fail(absl::StrCat("GetRun ", ended.name(), " says ", got_run.run().ShortDebugString(),
                              " but WatchRun ended with ", ended.ShortDebugString()));
  }
  // The device must show the run's end too: IDLE and owned by no run. A view that catches up
  // only later is counted (a failure unless --strict_run_end_view=false); one that never does
  // within a second is a device stuck in a run.
  const absl::Time ended_seen = absl::Now();
  v1::GetDeviceRequest get_device;
  get_device.set_name(device.name);
  for (int attempt = 0;; ++attempt) {
    v1::GetDeviceResponse got;
    if (!caller_
             .Call(Rpc::kGetDevice, Expect::kNormal, device.name, &Stub::GetDevice, get_device,
                   &got)
             .ok()) {
      return;
    }
    const v1::Device& now = got.device();
    const absl::Duration lag = absl::Now() - ended_seen;
    if (now.state() == v1::DEVICE_STATE_IDLE && now.active_run().empty()) {
      if (attempt > 0) {
        ++counts_.stale_run_end_views;
        counts_.max_stale_lag = std::max(counts_.max_stale_lag, lag);
      }
      return;
    }
    if (lag > absl::Seconds(1)) {
      return caller_.Fail(absl::StrCat(
          device.name, " is ", v1::DeviceState_Name(now.state()), " with active run \"",
          now.active_run(), "\" ", absl::FormatDuration(lag), " after WatchRun reported ",
          ended.name(), " ", v1::RunEndReason_Name(ended.end_reason())));
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
}

std::vector<v1::RunStep> DeviceSessions::RandomProgram(const FleetDevice& device, int steps,
                                                       double min_s, double max_s) {
  std::vector<v1::RunStep> program(steps);
  for (v1::RunStep& step : program) {
    *step.mutable_settings() = RandomSettings(device);
    // Whole milliseconds: the total is then exact in the ledger comparison.
    const double s = std::uniform_real_distribution<double>(min_s, max_s)(random_);
    step.set_duration_s(std::round(s * 1000) / 1000);
  }
  return program;
}

}  // namespace derma::soak
