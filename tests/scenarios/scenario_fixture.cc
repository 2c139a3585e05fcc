#include "tests/scenarios/scenario_fixture.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "plugin/core/state_machine.h"
#include "plugin/metrics/fleet_collector.h"

namespace derma::testing {

using Stub = v1::DeviceControl::Stub;

std::string ScenarioPath(const std::string& file) {
  return absl::StrCat(DERMA_SCENARIO_DIR, "/", file);
}

std::vector<std::string> ScenarioFiles() {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(DERMA_SCENARIO_DIR)) {
    if (entry.path().extension() == ".textproto") files.push_back(entry.path().filename());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> Describe(const std::vector<v1::DeviceEvent>& events) {
  std::vector<std::string> out;
  for (const v1::DeviceEvent& e : events) {
    std::string type = v1::DeviceEventType_Name(e.type());
    type.erase(0, sizeof("DEVICE_EVENT_TYPE_") - 1);
    std::string fault = v1::FaultKind_Name(e.fault().kind());
    fault.erase(0, sizeof("FAULT_KIND_") - 1);
    switch (e.type()) {
      case v1::DEVICE_EVENT_TYPE_STATE_CHANGED:
        out.push_back(
            absl::StrCat(type, "(", StateName(e.from_state()), "->", StateName(e.to_state()), ")"));
        break;
      case v1::DEVICE_EVENT_TYPE_FAULT_RAISED:
      case v1::DEVICE_EVENT_TYPE_FAULT_CLEARED:
        out.push_back(absl::StrCat(type, "(", fault, ")"));
        break;
      default:
        out.push_back(type);
    }
  }
  return out;
}

double PenStrokes(double rate_hz, double accel_hz_per_s, double on_s) {
  const double ramp_s = rate_hz / accel_hz_per_s;
  if (on_s <= ramp_s) return 0.5 * accel_hz_per_s * on_s * on_s;
  return 0.5 * rate_hz * ramp_s + rate_hz * (on_s - ramp_s);
}

double Seconds(const google::protobuf::Timestamp& from, const google::protobuf::Timestamp& to) {
  return static_cast<double>(Micros(to) - Micros(from)) / 1e6;
}

size_t OutputOnSamplesBetween(const DeviceTelemetry& d, size_t after, size_t before) {
  size_t on = 0;
  for (size_t i = 0; i < d.sample_log.size(); ++i) {
    if (d.events_before[i] > after && d.events_before[i] <= before)
      on += d.sample_log[i].output_on();
  }
  return on;
}

size_t SamplesAfter(const DeviceTelemetry& d, size_t after) {
  return std::count_if(d.events_before.begin(), d.events_before.end(),
                       [after](size_t events) { return events > after; });
}

int EventIndex(const DeviceTelemetry& d, const std::string& what) {
  const std::vector<std::string> described = Describe(d.events);
  auto it = std::find(described.begin(), described.end(), what);
  return it == described.end() ? -1 : static_cast<int>(it - described.begin());
}

void ExpectLedgerMonotonic(const std::vector<v1::Run>& updates, const v1::Run& final) {
  ASSERT_FALSE(updates.empty()) << "WatchRun sent nothing";
  for (size_t i = 1; i < updates.size(); ++i) {
    const v1::Run& a = updates[i - 1];
    const v1::Run& b = updates[i];
    EXPECT_GE(b.ledger().strokes_delivered(), a.ledger().strokes_delivered()) << "update " << i;
    EXPECT_GE(b.ledger().charge_delivered_uc(), a.ledger().charge_delivered_uc()) << "update " << i;
    EXPECT_GE(b.ledger().output_on_s(), a.ledger().output_on_s()) << "update " << i;
    EXPECT_GE(b.current_step(), a.current_step()) << "update " << i;
    if (b.current_step() == a.current_step()) {
      EXPECT_GE(b.step_elapsed_s(), a.step_elapsed_s()) << "update " << i;
    }
  }
  const v1::Run& last = updates.back();
  EXPECT_EQ(last.state(), final.state());
  EXPECT_EQ(last.end_reason(), final.end_reason());
  EXPECT_EQ(Micros(last.end_time()), Micros(final.end_time()));
  EXPECT_EQ(last.ledger().strokes_delivered(), final.ledger().strokes_delivered());
  EXPECT_DOUBLE_EQ(last.ledger().charge_delivered_uc(), final.ledger().charge_delivered_uc());
  EXPECT_DOUBLE_EQ(last.ledger().output_on_s(), final.ledger().output_on_s());
}

void ExpectEndedEarly(const v1::Run& run, v1::RunEndReason reason, double at_s, double on_s) {
  EXPECT_EQ(run.state(), v1::RUN_STATE_ENDED_EARLY) << run.ShortDebugString();
  EXPECT_EQ(run.end_reason(), reason) << v1::RunEndReason_Name(run.end_reason());
  EXPECT_TRUE(run.has_end_time());
  EXPECT_FALSE(run.end_message().empty());
  EXPECT_DOUBLE_EQ(Seconds(run.start_time(), run.end_time()), at_s);
  EXPECT_DOUBLE_EQ(run.ledger().output_on_s(), on_s);
}

void ScenarioFixture::TearDown() {
  streams_.clear();
  run_watch_.reset();
  ServerFixture::TearDown();
}

uint32_t ScenarioFixture::LoadScenarioFile(const std::string& file) {
  std::ifstream in(ScenarioPath(file));
  if (!in) {
    ADD_FAILURE() << "cannot read " << ScenarioPath(file);
    return 0;
  }
  std::stringstream text;
  text << in.rdbuf();
  sim::v1::LoadScenarioRequest request;
  request.set_scenario_text(text.str());
  sim::v1::LoadScenarioResponse response;
  grpc::Status status =
      Invoke(*simulator_, &sim::v1::Simulator::Stub::LoadScenario, request, &response);
  EXPECT_THAT(status, IsOk()) << file;
  return response.action_count();
}

void ScenarioFixture::Watch(const std::string& device) {
  std::unique_ptr<TelemetryReader>& reader = streams_[device];
  reader = StreamTelemetry({device});
  ReadOpening(*reader, 1, telemetry_);
}

const DeviceTelemetry& ScenarioFixture::Drain(const std::string& device) {
  const uint64_t last = LastEventSequence(device);
  DeviceTelemetry& d = telemetry_.device(device);
  auto it = streams_.find(device);
  if (it == streams_.end()) {
    ADD_FAILURE() << device << " is not watched";
    return d;
  }
  const uint64_t last_sample = GetDevice(device).latest_sample().sequence();
  ReadUntil(*it->second, telemetry_,
            [&] { return d.next_event > last && d.next_sample > last_sample; });
  return d;
}

void ScenarioFixture::WatchRunProgress(const std::string& run) { run_watch_ = WatchRun(run); }

std::vector<v1::Run> ScenarioFixture::ReadRunUpdates() {
  std::vector<v1::Run> runs;
  if (run_watch_ == nullptr) {
    ADD_FAILURE() << "no run is watched";
    return runs;
  }
  std::vector<v1::WatchRunResponse> messages;
  std::optional<grpc::Status> status = run_watch_->Finish(kStreamWait, &messages);
  EXPECT_TRUE(status.has_value()) << "WatchRun did not end with the run";
  if (status.has_value()) {
    EXPECT_THAT(*status, IsOk());
  }
  for (v1::WatchRunResponse& m : messages) runs.push_back(std::move(*m.mutable_run()));
  return runs;
}

double ScenarioFixture::Metric(const std::string& family, const std::string& id,
                               const std::map<std::string, std::string>& labels) {
  const metrics::FleetCollector collector(plugin_->fleet().devices(), plugin_->fleet().telemetry());
  for (const prometheus::MetricFamily& f : collector.Collect()) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      std::map<std::string, std::string> have;
      for (const prometheus::ClientMetric::Label& l : m.label) have[l.name] = l.value;
      if (have["device"] != id) continue;
      if (!std::all_of(labels.begin(), labels.end(),
                       [&](const auto& want) { return have[want.first] == want.second; })) {
        continue;
      }
      return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  ADD_FAILURE() << "no series " << family << "{device=\"" << id << "\"} with the labels asked";
  return -1;
}

grpc::Status ScenarioFixture::Resume(const std::string& name, const std::string& lease) {
  v1::ResumeRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  v1::ResumeResponse response;
  return Invoke(*control_, &Stub::Resume, request, &response);
}

grpc::Status ScenarioFixture::ResetFault(const std::string& name, const std::string& lease) {
  v1::ResetFaultRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  v1::ResetFaultResponse response;
  return Invoke(*control_, &Stub::ResetFault, request, &response);
}

grpc::Status ScenarioFixture::ResetEmergencyStop(const std::string& name,
                                                 const std::string& lease) {
  v1::ResetEmergencyStopRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  v1::ResetEmergencyStopResponse response;
  return Invoke(*control_, &Stub::ResetEmergencyStop, request, &response);
}

grpc::Status ScenarioFixture::RenewLease(const std::string& name, const std::string& lease,
                                         double ttl_s) {
  v1::RenewLeaseRequest request;
  request.set_name(name);
  request.set_lease_id(lease);
  request.set_ttl_s(ttl_s);
  v1::RenewLeaseResponse response;
  return Invoke(*control_, &Stub::RenewLease, request, &response);
}

}  // namespace derma::testing
