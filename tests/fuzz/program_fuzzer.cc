// Fuzz target: program files and StartRun. The input is a program file as `dermactl run` reads
// it (a derma.v1.RunProgram, JSON when it starts with '{', text format otherwise); its steps
// start a run on a fresh simulated device of every catalogue model, and the run is driven on
// the virtual clock to its end (lease renewed for up to 10 minutes, then left to lapse, which
// ends longer runs through the dead-man switch). Checked on every input:
//   - a refused program leaves the device IDLE with its output off and no run;
//   - an accepted one is RUNNING with the output on, and its run copies the steps and their
//     total duration;
//   - once the clock is past the program's end every run has ended, the output is off, the
//     device is IDLE or FAULT, and the dose ledger is finite, non-negative and has the output
//     on no longer than the program lasts.
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "derma/v1/run.pb.h"
#include "plugin/errors/errors.h"
#include "tests/fuzz/fuzz_support.h"

namespace derma::fuzz {
namespace {

constexpr absl::Duration kChunk = absl::Seconds(20);  // a third of the 60 s lease
constexpr int kRenewedChunks = 30;

bool IsProgramReason(v1::ErrorReason reason) {
  return reason == v1::ERROR_REASON_INVALID_FIELD ||
         reason == v1::ERROR_REASON_SETTING_OUT_OF_RANGE ||
         reason == v1::ERROR_REASON_SETTING_NOT_SUPPORTED ||
         reason == v1::ERROR_REASON_INTERLOCK_DEPTH_EXCEEDS_NEEDLE ||
         reason == v1::ERROR_REASON_INTERLOCK_COMPLIANCE;
}

void CheckEnded(const v1::Run& run, double total_s, const Device& device) {
  DERMA_FUZZ_CHECK(RunEnded(run), run.ShortDebugString());
  DERMA_FUZZ_CHECK(!device.view().latest_sample().output_on, "output on after the run ended");
  DERMA_FUZZ_CHECK(
      device.state() == v1::DEVICE_STATE_IDLE || device.state() == v1::DEVICE_STATE_FAULT,
      v1::DeviceState_Name(device.state()));
  const v1::DoseLedger& ledger = run.ledger();
  DERMA_FUZZ_CHECK(std::isfinite(ledger.charge_delivered_uc()) && ledger.charge_delivered_uc() >= 0,
                   ledger.ShortDebugString());
  DERMA_FUZZ_CHECK(std::isfinite(ledger.output_on_s()) && ledger.output_on_s() >= 0 &&
                       ledger.output_on_s() <= total_s + 1e-6,
                   absl::StrCat(ledger.ShortDebugString(), " for a ", total_s, " s program"));
}

void RunOne(const config::v1::DeviceConfig& config, const std::vector<v1::RunStep>& steps) {
  SimBench bench(config);
  Device& device = bench.device();
  absl::StatusOr<RunPtr> started = device.StartRun(bench.lease(), steps, "fuzz-request");
  if (!started.ok()) {
    DERMA_FUZZ_CHECK(IsProgramReason(ReasonOf(started.status())), started.status().ToString());
    DERMA_FUZZ_CHECK(device.state() == v1::DEVICE_STATE_IDLE, v1::DeviceState_Name(device.state()));
    DERMA_FUZZ_CHECK(!device.view().latest_sample().output_on, "output on after a refused run");
    DERMA_FUZZ_CHECK(bench.runs().List("", 0, 10).empty(), "a refused program left a run");
    return;
  }
  const v1::Run& run = **started;
  DERMA_FUZZ_CHECK(device.state() == v1::DEVICE_STATE_RUNNING,
                   v1::DeviceState_Name(device.state()));
  DERMA_FUZZ_CHECK(device.view().latest_sample().output_on, "RUNNING with the output off");
  DERMA_FUZZ_CHECK(run.steps_size() == static_cast<int>(steps.size()), run.ShortDebugString());
  double total_s = 0;
  for (const v1::RunStep& step : steps) total_s += step.duration_s();
  DERMA_FUZZ_CHECK(std::fabs(run.total_duration_s() - total_s) <= 1e-9 * total_s,
                   absl::StrCat(run.total_duration_s(), " != ", total_s));

  const std::string name = run.name();
  absl::Duration elapsed;
  const absl::Duration end = absl::Seconds(total_s) + absl::Seconds(1);
  for (int i = 0; i < kRenewedChunks && elapsed < end; ++i) {
    absl::StatusOr<LeaseGrant> renewed = device.RenewLease(bench.lease(), absl::Seconds(60));
    DERMA_FUZZ_CHECK(renewed.ok(), renewed.status().ToString());
    bench.Advance(kChunk);
    elapsed += kChunk;
  }
  if (elapsed < end) bench.Advance(end - elapsed + absl::Seconds(60));  // the lease lapses
  RunPtr final_run = bench.runs().Get(name);
  DERMA_FUZZ_CHECK(final_run != nullptr, name);
  CheckEnded(*final_run, total_s, device);
}

}  // namespace
}  // namespace derma::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  derma::v1::RunProgram program;
  if (!derma::fuzz::ParseTextOrJson({reinterpret_cast<const char*>(data), size}, &program)) {
    return -1;  // dermactl refuses it before any RPC: keep it out of the corpus
  }
  // dermactl copies the program's steps into StartRunRequest.steps; the service passes them on.
  const std::vector<derma::v1::RunStep> steps(program.steps().begin(), program.steps().end());
  for (const derma::config::v1::DeviceConfig& config : derma::fuzz::CatalogueDevices()) {
    derma::fuzz::RunOne(config, steps);
  }
  return 0;
}
