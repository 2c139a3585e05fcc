// Shared pieces of the fuzz targets (tests/fuzz): a simulated device of each catalogue model on
// a virtual clock with a lease held, the text-or-JSON parsing that program and config files
// use, and the check that turns a broken invariant into a crash libFuzzer records.
// Single-threaded: every target drives its devices from the fuzzing thread (it plays the strand).
#ifndef DERMA_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define DERMA_TESTS_FUZZ_FUZZ_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "derma/config/v1/config.pb.h"
#include "google/protobuf/message.h"
#include "plugin/core/clock.h"
#include "plugin/core/device.h"
#include "plugin/core/run_registry.h"
#include "plugin/core/telemetry_fanout.h"

// Every fuzz target defines this; libFuzzer or replay_main.cc calls it once per input.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace derma::fuzz {

// Prints `what` (and the file and line) and aborts when `condition` is false.
#define DERMA_FUZZ_CHECK(condition, what) \
  ::derma::fuzz::Check((condition), #condition, (what), __FILE__, __LINE__)
void Check(bool condition, const char* expression, const std::string& what, const char* file,
           int line);

// One device per simulated catalogue model: pens DP-100 and DP-300, stimulators MC-10 and MC-5.
const std::vector<config::v1::DeviceConfig>& CatalogueDevices();

// One simulated device built from `config`, initialized (IDLE), ticked once so a stimulator
// has measured its electrode impedance, with a 60 s lease held by "fuzz".
class SimBench {
 public:
  explicit SimBench(const config::v1::DeviceConfig& config);

  Device& device() { return *device_; }
  const std::string& lease() const { return lease_; }
  RunRegistry& runs() { return runs_; }
  const v1::Capabilities& capabilities() const { return device_->description()->capabilities; }
  // Moves the clock forward by `delta` and ticks the device once.
  void Advance(absl::Duration delta);

 private:
  VirtualClock clock_;
  TelemetryFanout fanout_;
  RunRegistry runs_;
  std::unique_ptr<Device> device_;
  std::string lease_;
};

// Parses text-format `data` into `out` without logging parser errors (they would flood the
// fuzzer's output). False when it does not parse.
bool ParseText(std::string_view data, google::protobuf::Message* out);

// Parses `data` into `out` as dermactl reads program files: JSON when the first non-space
// character is '{', text format otherwise. False when it does not parse.
bool ParseTextOrJson(std::string_view data, google::protobuf::Message* out);

// True when `a` and `b` hold the same fields and values.
bool SameMessage(const google::protobuf::Message& a, const google::protobuf::Message& b);

}  // namespace derma::fuzz

#endif  // DERMA_TESTS_FUZZ_FUZZ_SUPPORT_H_
