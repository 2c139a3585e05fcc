#include "tests/soak/device_sessions.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace derma::soak {
namespace {

using Stub = v1::DeviceControl::Stub;

constexpr double kLeaseTtlS = 10;  // sessions last under 3 s: a normal lease never runs out

const v1::ParameterCapability* Param(const FleetDevice& device, const std::string& field) {
  for (const v1::ParameterCapability& p : device.capabilities.parameters()) {
    if (p.field() == field) return &p;
  }
  return nullptr;
}

}  // namespace

void SessionCounts::Add(const SessionCounts& o) {
  sessions += o.sessions;
  lease_held += o.lease_held;
  runs_started += o.runs_started;
  runs_completed += o.runs_completed;
  runs_stopped += o.runs_stopped;
  runs_cancelled += o.runs_cancelled;
  dead_man_stops += o.dead_man_stops;
  retries_checked += o.retries_checked;
  watch_messages += o.watch_messages;
  estops += o.estops;
  stale_run_end_views += o.stale_run_end_views;
  max_stale_lag = std::max(max_stale_lag, o.max_stale_lag);
}

DeviceSessions::DeviceSessions(RpcCaller& caller, std::mt19937_64& random)
    : caller_(caller), random_(random) {}

void DeviceSessions::Run(const FleetDevice& device) {
  // Weights: manual 40, program 35, out-of-range 7, e-stop 7, dead-man 8.
  const int pick = std::uniform_int_distribution<int>(0, 96)(random_);
  if (pick >= 89) return DeadMan(device);
  std::optional<std::string> lease = Acquire(device, kLeaseTtlS);
  if (!lease.has_value()) return;
  if (pick < 40) {
    Manual(device, *lease);
  } else if (pick < 75) {
    Program(device, *lease);
  } else if (pick < 82) {
    OutOfRange(device, *lease);
  } else {
    Estop(device, *lease);
  }
  StopAndRelease(device, *lease);
}

std::optional<std::string> DeviceSessions::Acquire(const FleetDevice& device, double ttl_s) {
  v1::AcquireLeaseRequest request;
  request.set_name(device.name);
  request.set_holder(caller_.label());
  request.set_ttl_s(ttl_s);
  v1::AcquireLeaseResponse response;
  grpc::Status status = caller_.Call(Rpc::kAcquireLease, Expect::kNormal, device.name,
                                     &Stub::AcquireLease, request, &response);
  if (!status.ok()) {
    counts_.lease_held += ReasonOf(status) == "LEASE_HELD";
    return std::nullopt;
  }
  ++counts_.sessions;
  if (response.lease().device() != device.name || response.lease().lease_id().empty()) {
    caller_.Fail(absl::StrCat("AcquireLease ", device.name, " granted ",
                              response.lease().ShortDebugString()));
  }
  return response.lease().lease_id();
}

void DeviceSessions::Manual(const FleetDevice& device, const std::string& lease) {
  if (!Configure(device, lease) || !Start(device, lease)) return;
  Think(20, 150);
  if (random_() % 2 == 0) Renew(device, lease, kLeaseTtlS, Expect::kNormal);
  if (PauseConfigureResume(device, lease)) Think(20, 100);
}

bool DeviceSessions::Configure(const FleetDevice& device, const std::string& lease) {
  v1::ConfigureRequest request;
  request.set_name(device.name);
  request.set_lease_id(lease);
  *request.mutable_settings() = RandomSettings(device);
  v1::ConfigureResponse response;
  return caller_
      .Call(Rpc::kConfigure, Expect::kNormal, device.name, &Stub::Configure, request, &response)
      .ok();
}

bool DeviceSessions::Start(const FleetDevice& device, const std::string& lease) {
  v1::StartRequest request;
  request.set_name(device.name);
  request.set_lease_id(lease);
  if (random_() % 2 == 0) request.set_request_id(NextRequestId());
  v1::StartResponse response;
  if (!caller_.Call(Rpc::kStart, Expect::kNormal, device.name, &Stub::Start, request, &response)
           .ok()) {
    return false;
  }
  ExpectState(response.device(), v1::DEVICE_STATE_RUNNING, "Start");
  if (!request.request_id().empty() && random_() % 3 == 0) {
    ++counts_.retries_checked;  // the retry returns OK and never starts twice
    caller_.Call(Rpc::kStart, Expect::kNormal, device.name, &Stub::Start, request, &response);
  }
  return true;
}

void DeviceSessions::Renew(const FleetDevice& device, const std::string& lease, double ttl_s,
                           Expect expect) {
  v1::RenewLeaseRequest request;
  request.set_name(device.name);
  request.set_lease_id(lease);
  request.set_ttl_s(ttl_s);
  v1::RenewLeaseResponse response;
  caller_.Call(Rpc::kRenewLease, expect, device.name, &Stub::RenewLease, request, &response);
}

bool DeviceSessions::PauseConfigureResume(const FleetDevice& device, const std::string& lease) {
  v1::PauseRequest pause;
  pause.set_name(device.name);
  pause.set_lease_id(lease);
  v1::PauseResponse paused;
  if (!caller_.Call(Rpc::kPause, Expect::kNormal, device.name, &Stub::Pause, pause, &paused).ok()) {
    return false;  // a contender stopped the device
  }
  ExpectState(paused.device(), v1::DEVICE_STATE_PAUSED, "Pause");
  Think(10, 50);
  Configure(device, lease);  // live, while PAUSED
  v1::ResumeRequest resume;
  resume.set_name(device.name);
  resume.set_lease_id(lease);
  v1::ResumeResponse resumed;
  if (!caller_.Call(Rpc::kResume, Expect::kNormal, device.name, &Stub::Resume, resume, &resumed)
           .ok()) {
    return false;
  }
  ExpectState(resumed.device(), v1::DEVICE_STATE_RUNNING, "Resume");
  return true;
}

void DeviceSessions::OutOfRange(const FleetDevice& device, const std::string& lease) {
  const bool pen = device.kind == v1::DEVICE_KIND_MICRONEEDLING;
  const v1::ParameterCapability* p = Param(device, pen ? "stroke_rate_hz" : "frequency_hz");
  if (p == nullptr) return caller_.Fail(absl::StrCat(device.name, " lacks a rate capability"));
  v1::ConfigureRequest request;
  request.set_name(device.name);
  request.set_lease_id(lease);
  const double beyond = p->max() + 10 * p->resolution();
  if (pen) {
    request.mutable_settings()->mutable_microneedling()->set_stroke_rate_hz(beyond);
  } else {
    request.mutable_settings()->mutable_microcurrent()->set_frequency_hz(beyond);
  }
  v1::ConfigureResponse response;
  caller_.Call(Rpc::kConfigure, Expect::kOutOfRange, device.name, &Stub::Configure, request,
               &response);
}

void DeviceSessions::Estop(const FleetDevice& device, const std::string& lease) {
  v1::EmergencyStopRequest estop;
  estop.set_name(device.name);
  estop.set_view(v1::STOP_RESPONSE_VIEW_SUMMARY);
  v1::EmergencyStopResponse stopped;
  if (!caller_
           .Call(Rpc::kEmergencyStop, Expect::kNormal, device.name, &Stub::EmergencyStop, estop,
                 &stopped)
           .ok()) {
    return;
  }
  ++counts_.estops;
  if (stopped.devices_size() != 1) {
    caller_.Fail(absl::StrCat("EmergencyStop ", device.name, " returned ", stopped.devices_size(),
                              " devices"));
  } else {
    ExpectState(stopped.devices(0), v1::DEVICE_STATE_ESTOPPED, "EmergencyStop");
  }
  v1::StartRequest start;
  start.set_name(device.name);
  start.set_lease_id(lease);
  v1::StartResponse started;
  caller_.Call(Rpc::kStart, Expect::kEstopLatched, device.name, &Stub::Start, start, &started);
  v1::ResetEmergencyStopRequest reset;
  reset.set_name(device.name);
  reset.set_lease_id(lease);
  v1::ResetEmergencyStopResponse was_reset;
  if (caller_
          .Call(Rpc::kResetEmergencyStop, Expect::kNormal, device.name, &Stub::ResetEmergencyStop,
                reset, &was_reset)
          .ok()) {
    ExpectState(was_reset.device(), v1::DEVICE_STATE_IDLE, "ResetEmergencyStop");
  }
}

void DeviceSessions::StopAndRelease(const FleetDevice& device, const std::string& lease) {
  v1::StopRequest stop;
  stop.set_name(device.name);
  v1::StopResponse stopped;
  if (caller_.Call(Rpc::kStop, Expect::kNormal, device.name, &Stub::Stop, stop, &stopped).ok()) {
    ExpectState(stopped.device(), v1::DEVICE_STATE_IDLE, "Stop");
  }
  v1::ReleaseLeaseRequest release;
  release.set_name(device.name);
  release.set_lease_id(lease);
  v1::ReleaseLeaseResponse released;
  caller_.Call(Rpc::kReleaseLease, Expect::kNormal, device.name, &Stub::ReleaseLease, release,
               &released);
}

void DeviceSessions::ExpectState(const v1::Device& device, v1::DeviceState state,
                                 const char* after) {
  if (device.state() == state) return;
  caller_.Fail(absl::StrCat(device.name(), " is ", v1::DeviceState_Name(device.state()), " after ",
                            after, ", want ", v1::DeviceState_Name(state)));
}

v1::Settings DeviceSessions::RandomSettings(const FleetDevice& device) {
  auto uniform = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, std::max(lo, hi))(random_);
  };
  auto range = [&](const std::string& field, double lo_cap, double hi_cap) {
    const v1::ParameterCapability* p = Param(device, field);
    return p == nullptr ? lo_cap : uniform(std::max(p->min(), lo_cap), std::min(p->max(), hi_cap));
  };
  v1::Settings settings;
  if (device.kind == v1::DEVICE_KIND_MICRONEEDLING) {
    v1::MicroneedlingSettings* pen = settings.mutable_microneedling();
    pen->set_needle_depth_mm(range("needle_depth_mm", 0.1, device.needle_length_mm));
    pen->set_stroke_rate_hz(range("stroke_rate_hz", 0, 1e9));
    pen->set_session_limit_s(600);
    return settings;
  }
  v1::MicrocurrentSettings* stim = settings.mutable_microcurrent();
  // Keep current × impedance well under the compliance voltage (the interlock is not tested
  // here).
  const double max_ua =
      0.6 * device.capabilities.compliance_voltage_v() / device.electrode_impedance_ohm * 1e6;
  stim->set_current_ua(range("current_ua", 50, max_ua));
  stim->set_frequency_hz(range("frequency_hz", 0, 200));
  const auto& waveforms = device.capabilities.supported_waveforms();
  const auto& polarities = device.capabilities.supported_polarities();
  if (!waveforms.empty()) {
    stim->set_waveform(static_cast<v1::Waveform>(waveforms[random_() % waveforms.size()]));
  }
  if (!polarities.empty()) {
    stim->set_polarity(static_cast<v1::Polarity>(polarities[random_() % polarities.size()]));
  }
  stim->set_ramp_s(range("ramp_s", 0, 1));
  stim->set_session_limit_s(600);
  return settings;
}

std::string DeviceSessions::NextRequestId() {
  return absl::StrCat(caller_.label(), "-", ++request_counter_);
}

void DeviceSessions::Think(int min_ms, int max_ms) {
  absl::SleepFor(absl::Milliseconds(std::uniform_int_distribution<int>(min_ms, max_ms)(random_)));
}

}  // namespace derma::soak
