// ScenarioFixture: the integration tests' in-process server (ServerFixture: derma on
// 127.0.0.1:0, virtual clock, the shipped virtual fleet plus two interlock pens) with what the
// fault-scenario tests need: a shipped scenario file from sim/scenarios/ loaded from disk through
// Simulator.LoadScenario, a device's events and samples read off StreamTelemetry, a run's
// progress read off WatchRun, and derma's Prometheus series read as a scrape collects them.
// Layer: tests/scenarios.
#ifndef DERMA_TESTS_SCENARIOS_SCENARIO_FIXTURE_H_
#define DERMA_TESTS_SCENARIOS_SCENARIO_FIXTURE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/server_fixture.h"

namespace derma::testing {

// Path of a shipped scenario file, e.g. ScenarioPath("lease_loss.textproto").
std::string ScenarioPath(const std::string& file);
// Every *.textproto in sim/scenarios/, sorted.
std::vector<std::string> ScenarioFiles();

// "FAULT_RAISED(LINK_DROP)", "STATE_CHANGED(RUNNING->OFFLINE)", "RUN_ENDED", ... per event, so
// an event order reads (and fails) as one list.
std::vector<std::string> Describe(const std::vector<v1::DeviceEvent>& events);

// Strokes a pen makes in `on_s` seconds powered from rest towards `rate_hz`, with the model's
// linear motor ramp `accel_hz_per_s` (sim/pen_physics.h). The ledger counts whole strokes, so
// it lies within one stroke of this.
double PenStrokes(double rate_hz, double accel_hz_per_s, double on_s);

// Device time in seconds between two timestamps.
double Seconds(const google::protobuf::Timestamp& from, const google::protobuf::Timestamp& to);

// Samples of `d` showing the output on that arrived after its event number `after` (0-based)
// and before its event number `before` (the end of the log when past the last event).
size_t OutputOnSamplesBetween(const DeviceTelemetry& d, size_t after, size_t before);
// Samples of `d` that arrived after its event number `after`.
size_t SamplesAfter(const DeviceTelemetry& d, size_t after);
// The index of the first event of `d` described as `what` (see Describe); -1 when none.
int EventIndex(const DeviceTelemetry& d, const std::string& what);

// Every WatchRun update's ledger (strokes, charge, output-on time), step and step time never
// decrease, and the last update is `final` (ended, with the same ledger).
void ExpectLedgerMonotonic(const std::vector<v1::Run>& updates, const v1::Run& final);
// `run` ended early with `reason` exactly `at_s` seconds after it started (end time and end
// message set), with the output on for `on_s` of them.
void ExpectEndedEarly(const v1::Run& run, v1::RunEndReason reason, double at_s, double on_s);

class ScenarioFixture : public ServerFixture {
 protected:
  void TearDown() override;

  // Reads the shipped file from disk and loads it through Simulator.LoadScenario (its times
  // count from now); returns the number of actions scheduled, 0 (with a failure) on error.
  uint32_t LoadScenarioFile(const std::string& file);

  // Opens a telemetry stream on `device` (every sample) and reads its snapshot and sync marker.
  void Watch(const std::string& device);
  // Reads the watched device's stream until every event and sample the device has made so far
  // arrived; returns its bookkeeping (events, samples, and sequence errors — empty when none).
  const DeviceTelemetry& Drain(const std::string& device);

  // Opens WatchRun on `run`; ReadRunUpdates reads it to the end of the run.
  void WatchRunProgress(const std::string& run);
  std::vector<v1::Run> ReadRunUpdates();

  // The value of derma's series `family` for device `id` (without "devices/") with the extra
  // `labels`, from the collector a scrape of this plugin's fleet uses. -1 (with a failure) when
  // the series does not exist.
  double Metric(const std::string& family, const std::string& id,
                const std::map<std::string, std::string>& labels = {});

  // Commands on the default client.
  grpc::Status Resume(const std::string& name, const std::string& lease);
  grpc::Status ResetFault(const std::string& name, const std::string& lease);
  grpc::Status ResetEmergencyStop(const std::string& name, const std::string& lease);
  grpc::Status RenewLease(const std::string& name, const std::string& lease, double ttl_s);

  TelemetryLog telemetry_;
  std::map<std::string, std::unique_ptr<TelemetryReader>> streams_;
  std::unique_ptr<WatchRunReader> run_watch_;
};

}  // namespace derma::testing

#endif  // DERMA_TESTS_SCENARIOS_SCENARIO_FIXTURE_H_
