#include "tests/scenarios/estop_storm.h"

#include <set>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "tests/scenarios/scenario_fixture.h"

namespace derma::testing {
namespace {

using Stub = v1::DeviceControl::Stub;

const char* const kDevices[] = {kPen, kPen2, kPenShort, kPenWorn, kStim, kStim2};
constexpr int kDeviceCount = 6;
constexpr double kPenRateHz = 100;
constexpr double kStimCurrentUa = 300;

bool IsPen(const std::string& device) { return device.find("/pen") != std::string::npos; }

// DP-300 pens ramp at 800 Hz/s, DP-100 at 500 (sim/model_catalogue.h).
double PenAccel(const std::string& device) {
  return device == kPen2 || device == kPenShort ? 800 : 500;
}

// Every device a stop response names must be ESTOPPED (or OFFLINE, latching on reconnect)
// with its output off: the response is "returned once every targeted output is off".
// An all-devices response sent while resets run may instead show a device that was reset (and
// restarted) after its own stop: the service reads every device once the last one stopped, not
// each as its stop left it. `resets_may_run` records those as late views, not violations.
void CheckStopResponse(const v1::EmergencyStopResponse& response, int expected,
                       const std::string& call, bool resets_may_run, StormLog& log) {
  if (response.devices_size() != expected) {
    log.Violation(absl::StrCat(call, " returned ", response.devices_size(), " devices"));
  }
  for (const v1::Device& device : response.devices()) {
    log.Stopped(device.name());
    const bool latched =
        device.state() == v1::DEVICE_STATE_ESTOPPED || device.state() == v1::DEVICE_STATE_OFFLINE;
    const std::string what = absl::StrCat(call, " returned ", device.name(), " in ",
                                          v1::DeviceState_Name(device.state()));
    if (!latched && resets_may_run) {
      log.LateView(what);
    } else if (!latched) {
      log.Violation(what);
    } else if (device.latest_sample().output_on()) {
      log.Violation(what + " with its output on");
    }
  }
}

void StopOne(Client& client, int thread, StormLog& log) {
  for (int i = 0; i < 20; ++i) {
    v1::EmergencyStopRequest request;
    request.set_name(kDevices[(thread * 3 + i) % kDeviceCount]);
    request.set_view(i % 2 ? v1::STOP_RESPONSE_VIEW_SUMMARY : v1::STOP_RESPONSE_VIEW_FULL);
    v1::EmergencyStopResponse response;
    const grpc::Status status = Invoke(*client.control, &Stub::EmergencyStop, request, &response);
    log.Record("EmergencyStop", status);
    if (status.ok()) {
      CheckStopResponse(response, 1, "EmergencyStop(" + request.name() + ")", false, log);
    }
  }
}

void StopAllOnce(Client& client, bool resets_may_run, StormLog& log) {
  v1::EmergencyStopRequest request;
  request.set_all_devices(true);
  request.set_view(v1::STOP_RESPONSE_VIEW_SUMMARY);
  v1::EmergencyStopResponse response;
  const grpc::Status status = Invoke(*client.control, &Stub::EmergencyStop, request, &response);
  log.Record("EmergencyStop", status);
  if (status.ok()) {
    CheckStopResponse(response, kDeviceCount, "EmergencyStop(all)", resets_may_run, log);
  }
}

// Eight stops of every device during the storm, and a last one once the resets are over, so
// every device ends latched whatever order the rest ran in.
void StopAll(Client& client, absl::Notification& resets_done, StormLog& log) {
  for (int i = 0; i < 8; ++i) StopAllOnce(client, /*resets_may_run=*/true, log);
  resets_done.WaitForNotification();
  StopAllOnce(client, /*resets_may_run=*/false, log);
}

// Puts stopped devices back in service so the commands race the stops, not only a latch.
// stim-2 is left alone: its overcurrent must still be latched after the storm.
void Resets(Client& client, const std::map<std::string, std::string>& leases,
            absl::Notification& done, StormLog& log) {
  static const char* const kResettable[] = {kPen, kPen2, kPenShort, kPenWorn, kStim};
  for (int i = 0; i < 30; ++i) {
    v1::ResetEmergencyStopRequest request;
    request.set_name(kResettable[i % 5]);
    request.set_lease_id(leases.at(request.name()));
    v1::ResetEmergencyStopResponse response;
    log.Record("ResetEmergencyStop",
               Invoke(*client.control, &Stub::ResetEmergencyStop, request, &response));
  }
  done.Notify();
}

// One command on `name`: Configure, Start, StartRun or Stop by `op`.
void Command(Client& client, int op, const std::string& name, const std::string& lease,
             StormLog& log) {
  Stub& stub = *client.control;
  if (op == 0) {
    v1::ConfigureRequest request;
    request.set_name(name);
    request.set_lease_id(lease);
    *request.mutable_settings() = StormSettings(name);
    v1::ConfigureResponse response;
    log.Record("Configure", Invoke(stub, &Stub::Configure, request, &response));
  } else if (op == 1) {
    v1::StartRequest request;
    request.set_name(name);
    request.set_lease_id(lease);
    v1::StartResponse response;
    log.Record("Start", Invoke(stub, &Stub::Start, request, &response));
  } else if (op == 2) {
    v1::StartRunRequest request;
    request.set_parent(name);
    request.set_lease_id(lease);
    *request.add_steps() = Step(60, StormSettings(name));
    v1::StartRunResponse response;
    const grpc::Status status = Invoke(stub, &Stub::StartRun, request, &response);
    log.Record("StartRun", status);
    if (status.ok()) log.RunStarted(response.run().name());
  } else {
    v1::StopRequest request;
    request.set_name(name);
    v1::StopResponse response;
    log.Record("Stop", Invoke(stub, &Stub::Stop, request, &response));
  }
}

void Commands(Client& client, int thread, const std::map<std::string, std::string>& leases,
              StormLog& log) {
  for (int i = 0; i < 60; ++i) {
    const std::string name = kDevices[(thread * 2 + i / 4) % kDeviceCount];
    Command(client, i % 4, name, leases.at(name), log);
  }
}

void Clock(Client& client, StormLog& log) {
  for (int i = 0; i < 50; ++i) {
    sim::v1::AdvanceClockRequest request;
    request.set_duration_s(0.01);
    sim::v1::AdvanceClockResponse response;
    log.Record("AdvanceClock", Invoke(*client.simulator, &sim::v1::Simulator::Stub::AdvanceClock,
                                      request, &response));
  }
}

}  // namespace

void StormLog::Record(const std::string& method, const grpc::Status& status) {
  std::string outcome = method + " OK";
  if (!status.ok()) {
    outcome = absl::StrCat(
        method, " ", absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
        " ", ReasonOf(status));
  }
  absl::MutexLock lock(&mu_);
  ++outcomes_[outcome];
  ++calls_[method];
}

void StormLog::Violation(const std::string& what) {
  absl::MutexLock lock(&mu_);
  violations_.push_back(what);
}

void StormLog::LateView(const std::string& what) {
  absl::MutexLock lock(&mu_);
  late_views_.push_back(what);
}

void StormLog::RunStarted(const std::string& run) {
  absl::MutexLock lock(&mu_);
  runs_.push_back(run);
}

void StormLog::Stopped(const std::string& device) {
  absl::MutexLock lock(&mu_);
  ++stops_[device];
}

std::map<std::string, int> StormLog::outcomes() const {
  absl::MutexLock lock(&mu_);
  return outcomes_;
}

int StormLog::count(const std::string& outcome) const {
  absl::MutexLock lock(&mu_);
  auto it = outcomes_.find(outcome);
  return it == outcomes_.end() ? 0 : it->second;
}

int StormLog::calls(const std::string& method) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(method);
  return it == calls_.end() ? 0 : it->second;
}

std::vector<std::string> StormLog::violations() const {
  absl::MutexLock lock(&mu_);
  return violations_;
}

std::vector<std::string> StormLog::late_views() const {
  absl::MutexLock lock(&mu_);
  return late_views_;
}

std::vector<std::string> StormLog::runs() const {
  absl::MutexLock lock(&mu_);
  return runs_;
}

int StormLog::stops_of(const std::string& device) const {
  absl::MutexLock lock(&mu_);
  auto it = stops_.find(device);
  return it == stops_.end() ? 0 : it->second;
}

v1::Settings StormSettings(const std::string& device) {
  if (IsPen(device)) return PenSettings(0.5, kPenRateHz);
  v1::Settings settings = StimSettings(kStimCurrentUa);
  settings.mutable_microcurrent()->set_ramp_s(0);
  settings.mutable_microcurrent()->set_waveform(v1::WAVEFORM_BIPHASIC_SQUARE);
  return settings;
}

void RunStorm(const std::function<Client()>& new_client,
              const std::map<std::string, std::string>& leases, StormLog& log) {
  std::vector<Client> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(new_client());
    v1::ListDevicesRequest request;  // connect before the storm starts
    v1::ListDevicesResponse response;
    EXPECT_THAT(Invoke(*clients.back().control, &Stub::ListDevices, request, &response), IsOk());
  }
  absl::Notification go;
  absl::Notification resets_done;
  std::vector<std::thread> threads;
  auto spawn = [&](std::function<void()> body) {
    threads.emplace_back([&go, body = std::move(body)] {
      go.WaitForNotification();
      body();
    });
  };
  spawn([&] { StopOne(clients[0], 0, log); });
  spawn([&] { StopOne(clients[1], 1, log); });
  spawn([&] { StopAll(clients[2], resets_done, log); });
  for (int t = 0; t < 3; ++t) spawn([&, t] { Commands(clients[3 + t], t, leases, log); });
  spawn([&] { Clock(clients[6], log); });
  spawn([&] { Resets(clients[7], leases, resets_done, log); });
  go.Notify();
  for (std::thread& thread : threads) thread.join();
}

bool IsDocumentedStormOutcome(const std::string& outcome) {
  static const std::set<std::string> kDocumented = [] {
    std::set<std::string> out = {"EmergencyStop OK",
                                 "Stop OK",
                                 "AdvanceClock OK",
                                 "Configure FAILED_PRECONDITION RUN_ACTIVE",
                                 "ResetEmergencyStop OK",
                                 "ResetEmergencyStop FAILED_PRECONDITION ILLEGAL_TRANSITION",
                                 "ResetEmergencyStop UNAVAILABLE DEVICE_OFFLINE"};
    // Refusals of a latched or offline device, for every command that needs an operable one.
    for (const char* method : {"Configure", "Start", "StartRun"}) {
      out.insert(absl::StrCat(method, " OK"));
      out.insert(absl::StrCat(method, " FAILED_PRECONDITION ESTOP_LATCHED"));
      out.insert(absl::StrCat(method, " FAILED_PRECONDITION FAULT_LATCHED"));
      out.insert(absl::StrCat(method, " UNAVAILABLE DEVICE_OFFLINE"));
    }
    // Start and StartRun also meet devices that are busy or whose cartridge is spent (pen-worn).
    for (const char* method : {"Start", "StartRun"}) {
      out.insert(absl::StrCat(method, " FAILED_PRECONDITION RUN_ACTIVE"));
      out.insert(absl::StrCat(method, " FAILED_PRECONDITION ILLEGAL_TRANSITION"));
      out.insert(absl::StrCat(method, " FAILED_PRECONDITION CARTRIDGE_EXPIRED"));
    }
    return out;
  }();
  return kDocumented.count(outcome) > 0;
}

void ExpectStormRunConsistent(const v1::Run& run) {
  SCOPED_TRACE(run.name());
  EXPECT_EQ(run.state(), v1::RUN_STATE_ENDED_EARLY);
  static const std::set<v1::RunEndReason> kCut = {
      v1::RUN_END_REASON_EMERGENCY_STOP, v1::RUN_END_REASON_STOPPED, v1::RUN_END_REASON_FAULT,
      v1::RUN_END_REASON_LINK_LOST};
  EXPECT_EQ(kCut.count(run.end_reason()), 1u) << v1::RunEndReason_Name(run.end_reason());
  ASSERT_TRUE(run.has_end_time());
  const double on_s = Seconds(run.start_time(), run.end_time());
  EXPECT_GE(on_s, 0);
  EXPECT_NEAR(run.ledger().output_on_s(), on_s, 1e-9);
  if (IsPen(run.device())) {
    EXPECT_NEAR(static_cast<double>(run.ledger().strokes_delivered()),
                PenStrokes(kPenRateHz, PenAccel(run.device()), on_s), 1.0);
    EXPECT_EQ(run.ledger().charge_delivered_uc(), 0);
  } else {
    EXPECT_NEAR(run.ledger().charge_delivered_uc(), kStimCurrentUa * on_s, 1e-6);
    EXPECT_EQ(run.ledger().strokes_delivered(), 0u);
  }
}

}  // namespace derma::testing
