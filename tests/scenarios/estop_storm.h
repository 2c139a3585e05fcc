// The emergency-stop storm of estop_storm_test.cc: its threads, what they may see, and what
// they record. Layer: tests/scenarios.
#ifndef DERMA_TESTS_SCENARIOS_ESTOP_STORM_H_
#define DERMA_TESTS_SCENARIOS_ESTOP_STORM_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "tests/integration/server_fixture.h"

namespace derma::testing {

// What the storm's threads saw: call outcomes ("Start FAILED_PRECONDITION ESTOP_LATCHED",
// "EmergencyStop OK"), contract violations and late views in stop responses, runs started,
// stops per device.
// Thread-safe.
class StormLog {
 public:
  void Record(const std::string& method, const grpc::Status& status);
  void Violation(const std::string& what);
  // An all-devices stop response showed a device no longer latched: reset after its stop.
  void LateView(const std::string& what);
  void RunStarted(const std::string& run);
  // One EmergencyStop executed on `device` ("devices/{id}").
  void Stopped(const std::string& device);

  std::map<std::string, int> outcomes() const;
  int count(const std::string& outcome) const;
  int calls(const std::string& method) const;
  std::vector<std::string> violations() const;
  std::vector<std::string> late_views() const;
  std::vector<std::string> runs() const;
  int stops_of(const std::string& device) const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, int> outcomes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> violations_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> late_views_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> runs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> stops_ ABSL_GUARDED_BY(mu_);
};

// The settings the storm gives a device: pens 0.5 mm at 100 Hz, stimulators 300 µA biphasic
// without a ramp (so run ledgers have a closed form).
v1::Settings StormSettings(const std::string& device);

// Runs one storm on clients made by `new_client`, every thread released at once, and returns
// when all have finished: 2 threads × 20 EmergencyStop(one device); 1 × 8 EmergencyStop(all)
// plus a last one after the resets; 3 × 60 commands cycling Configure / Start / StartRun / Stop
// over every device; 1 × 30 ResetEmergencyStop over every device but stim-2 (so commands race
// the stops, not only a latch); and 1 × 50 AdvanceClock(0.01 s).
void RunStorm(const std::function<Client()>& new_client,
              const std::map<std::string, std::string>& leases, StormLog& log);

// True for "EmergencyStop OK", "Start FAILED_PRECONDITION ESTOP_LATCHED", ...: outcomes
// derma.v1 documents for that call, and that the storm's devices can produce.
bool IsDocumentedStormOutcome(const std::string& outcome);

// A run the storm cut: ended early (EMERGENCY_STOP, STOPPED, FAULT or LINK_LOST) with its end
// time set; the output was on from start to end (nothing pauses); strokes (pens) or charge
// (stimulators) match that time for the storm's settings.
void ExpectStormRunConsistent(const v1::Run& run);

}  // namespace derma::testing

#endif  // DERMA_TESTS_SCENARIOS_ESTOP_STORM_H_
