// dermactl subcommands that follow streams: watch (live table), run (progress bar), runs.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "plugin/cli/call_failure.h"
#include "plugin/cli/commands.h"

namespace derma::cli {
namespace {

bool Tty() { return isatty(STDOUT_FILENO) == 1; }

// Cancels `context` when interrupted, or after `duration` (0 = never), from its own thread.
class Canceller {
 public:
  Canceller(grpc::ClientContext& context, absl::Duration duration) {
    thread_ = std::thread([this, &context, duration] {
      const absl::Time until =
          duration > absl::ZeroDuration() ? absl::Now() + duration : absl::InfiniteFuture();
      while (!done_.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
        if (g_interrupted.load() || absl::Now() >= until) {
          context.TryCancel();
          return;
        }
      }
    });
  }
  ~Canceller() {
    done_.Notify();
    thread_.join();
  }

 private:
  absl::Notification done_;
  std::thread thread_;
};

std::string SampleText(const v1::TelemetrySample& sample) {
  if (sample.has_microneedling()) {
    const auto& r = sample.microneedling();
    return absl::StrFormat("depth %.2f mm  rate %5.1f Hz  strokes %8d  %.1f C", r.needle_depth_mm(),
                           r.stroke_rate_hz(), r.strokes_total(), r.motor_temperature_c());
  }
  const auto& r = sample.microcurrent();
  return absl::StrFormat("I %6.1f uA  Z %7.0f ohm  V %5.2f  charge %9.1f uC",
                         r.current_measured_ua(), r.electrode_impedance_ohm(), r.output_voltage_v(),
                         r.charge_delivered_uc());
}

}  // namespace

int Watch(Connection& c, const Options& o, const Args& args) {
  v1::StreamTelemetryRequest request;
  for (const std::string& arg : args) request.add_names(DeviceName(arg));
  request.set_sample_interval_s(o.json ? 0 : 0.25);
  std::unique_ptr<grpc::ClientContext> context = Call(/*stream=*/true);
  Canceller canceller(*context, absl::Seconds(o.duration_s));
  std::unique_ptr<grpc::ClientReader<v1::StreamTelemetryResponse>> reader =
      c.devices->StreamTelemetry(context.get(), request);

  struct Row {
    std::string state;
    std::string sample;
    std::string fault;
  };
  std::map<std::string, Row> rows;
  const bool tty = Tty();
  absl::Time next_print = absl::Now();
  v1::StreamTelemetryResponse message;
  while (reader->Read(&message)) {
    if (o.json) {
      absl::PrintF("%s\n", Json(message));
      std::fflush(stdout);
      continue;
    }
    switch (message.payload_case()) {
      case v1::StreamTelemetryResponse::kSnapshot: {
        const v1::Device& d = message.snapshot().device();
        rows[d.name()] = {v1::DeviceState_Name(d.state()), SampleText(d.latest_sample()), ""};
        break;
      }
      case v1::StreamTelemetryResponse::kEvent: {
        const v1::DeviceEvent& e = message.event();
        if (e.type() == v1::DEVICE_EVENT_TYPE_STATE_CHANGED) {
          rows[e.device()].state = v1::DeviceState_Name(e.to_state());
        }
        if (e.type() == v1::DEVICE_EVENT_TYPE_FAULT_RAISED) {
          rows[e.device()].fault = v1::FaultKind_Name(e.fault().kind());
        }
        if (!tty)
          absl::PrintF("event %s %s: %s\n", e.device(), v1::DeviceEventType_Name(e.type()),
                       e.message());
        break;
      }
      case v1::StreamTelemetryResponse::kBatch:
        for (const v1::DeviceSamples& d : message.batch().devices()) {
          if (d.samples_size() > 0) rows[d.device()].sample = SampleText(d.samples().rbegin()[0]);
        }
        break;
      default:
        break;
    }
    if (absl::Now() < next_print) continue;
    next_print = absl::Now() + absl::Milliseconds(500);
    std::string table;
    for (const auto& [name, row] : rows) {
      absl::StrAppendFormat(&table, "%-18s %-22s %s %s\n", name,
                            std::string(absl::StripPrefix(row.state, "DEVICE_STATE_")), row.sample,
                            row.fault);
    }
    absl::PrintF("%s%s", tty ? "\033[H\033[2J" : "", table);
    if (!tty) absl::PrintF("\n");
    std::fflush(stdout);
  }
  grpc::Status status = reader->Finish();
  if (status.error_code() == grpc::StatusCode::CANCELLED) return kOk;  // duration or Ctrl-C
  return status.ok() ? kOk : Report(c, status);
}

int RunProgram(Connection& c, const Options& o, const Args& args) {
  if (args.size() != 2) {
    absl::FPrintF(stderr, "dermactl: usage: dermactl run DEVICE PROGRAM_FILE\n");
    return kUsage;
  }
  std::ifstream file(args[1]);
  if (!file) {
    absl::FPrintF(stderr, "dermactl: cannot read %s\n", args[1]);
    return kUsage;
  }
  std::stringstream text;
  text << file.rdbuf();
  v1::RunProgram program;
  const std::string body = text.str();
  const bool json = absl::StartsWith(absl::StripLeadingAsciiWhitespace(body), "{");
  const bool parsed = json ? google::protobuf::util::JsonStringToMessage(body, &program).ok()
                           : google::protobuf::TextFormat::ParseFromString(body, &program);
  if (!parsed) {
    absl::FPrintF(stderr,
                  "dermactl: %s is not a RunProgram (text format or JSON), e.g.\n"
                  "  steps { settings { microneedling { needle_depth_mm: 1.0 "
                  "stroke_rate_hz: 100 } } duration_s: 30 }\n",
                  args[1]);
    return kUsage;
  }
  const std::string name = DeviceName(args[0]);
  LeaseKeeper lease(*c.devices, name);
  if (!lease.status().ok()) return Report(c, lease.status());
  v1::StartRunRequest start;
  start.set_parent(name);
  start.set_lease_id(lease.lease_id());
  *start.mutable_steps() = program.steps();
  v1::StartRunResponse started;
  grpc::Status status = c.devices->StartRun(Call().get(), start, &started);
  if (!status.ok()) return Report(c, status);
  const std::string run_name = started.run().name();
  if (!o.json) absl::PrintF("started %s\n", run_name);

  v1::WatchRunRequest watch;
  watch.set_name(run_name);
  std::unique_ptr<grpc::ClientContext> context = Call(/*stream=*/true);
  v1::Run last = started.run();
  {
    Canceller canceller(*context, absl::ZeroDuration());
    std::unique_ptr<grpc::ClientReader<v1::WatchRunResponse>> reader =
        c.devices->WatchRun(context.get(), watch);
    v1::WatchRunResponse update;
    const bool tty = Tty();
    uint32_t shown_step = UINT32_MAX;
    while (reader->Read(&update)) {
      last = update.run();
      if (o.json) continue;
      double done_s = last.step_elapsed_s();
      for (uint32_t i = 0; i < last.current_step(); ++i) done_s += last.steps(i).duration_s();
      const double fraction =
          last.total_duration_s() > 0 ? std::min(1.0, done_s / last.total_duration_s()) : 1;
      const int filled = static_cast<int>(fraction * 30);
      const std::string bar = std::string(filled, '#') + std::string(30 - filled, '.');
      if (tty) {
        absl::PrintF("\r[%s] %3.0f%%  step %d/%d  %.1f/%.1f s", bar, fraction * 100,
                     last.current_step() + 1, last.steps_size(), done_s, last.total_duration_s());
      } else if (last.current_step() != shown_step) {
        shown_step = last.current_step();
        absl::PrintF("step %d/%d\n", last.current_step() + 1, last.steps_size());
      }
      std::fflush(stdout);
    }
    status = reader->Finish();
    if (tty && !o.json) absl::PrintF("\n");
  }
  if (g_interrupted.load() && last.state() != v1::RUN_STATE_SUCCEEDED &&
      last.state() != v1::RUN_STATE_ENDED_EARLY) {
    // Ctrl-C: end the run we started (output off), then report it.
    v1::CancelRunRequest cancel;
    cancel.set_name(run_name);
    cancel.set_lease_id(lease.lease_id());
    v1::CancelRunResponse cancelled;
    grpc::Status s = c.devices->CancelRun(Call().get(), cancel, &cancelled);
    if (s.ok()) last = cancelled.run();
    absl::FPrintF(stderr, "dermactl: interrupted; run cancelled, output off\n");
  } else if (!status.ok()) {
    return Report(c, status);
  }
  if (o.json) {
    absl::PrintF("%s\n", Json(last));
  } else {
    absl::PrintF("%s %s (%s)\n", run_name, v1::RunState_Name(last.state()),
                 v1::RunEndReason_Name(last.end_reason()));
    const v1::DoseLedger& ledger = last.ledger();
    absl::PrintF(
        "ledger: strokes %d of %.1f programmed, charge %.1f of %.1f uC programmed, output on "
        "%.3f s\n",
        ledger.strokes_delivered(), ledger.strokes_programmed(), ledger.charge_delivered_uc(),
        ledger.charge_programmed_uc(), ledger.output_on_s());
    if (!last.end_message().empty() && last.state() != v1::RUN_STATE_SUCCEEDED) {
      absl::PrintF("ended: %s\n", last.end_message());
    }
  }
  return last.state() == v1::RUN_STATE_SUCCEEDED ? kOk : kDeviceError;
}

int Runs(Connection& c, const Options& o, const Args& args) {
  v1::ListRunsRequest request;
  request.set_parent(args.empty() ? "devices/-" : DeviceName(args[0]));
  request.set_page_size(1000);
  v1::ListRunsResponse response;
  grpc::Status status = c.devices->ListRuns(Call().get(), request, &response);
  if (!status.ok()) return Report(c, status);
  for (const v1::Run& run : response.runs()) {
    if (o.json) {
      absl::PrintF("%s\n", Json(run));
      continue;
    }
    absl::PrintF("%-44s %-20s %-24s strokes %d charge %.1f uC on %.1f s\n", run.name(),
                 v1::RunState_Name(run.state()), v1::RunEndReason_Name(run.end_reason()),
                 run.ledger().strokes_delivered(), run.ledger().charge_delivered_uc(),
                 run.ledger().output_on_s());
  }
  return kOk;
}

}  // namespace derma::cli
