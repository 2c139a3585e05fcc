#include "tests/bench/throughput.h"

#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/bench/big_fleet.h"
#include "tests/bench/echo.grpc.pb.h"
#include "tests/bench/stream_reader.h"

namespace derma::bench {
namespace {

constexpr size_t kChunk = 256;  // samples a producer publishes per window reservation
constexpr absl::Duration kSyncTimeout = absl::Seconds(30);

using Readers = std::vector<std::unique_ptr<StreamReader>>;

std::vector<StreamCounts> CountsOf(const Readers& readers) {
  std::vector<StreamCounts> counts;
  for (const std::unique_ptr<StreamReader>& reader : readers) counts.push_back(reader->counts());
  return counts;
}

// Rates over `window`, after `warmup`.
StreamRates Rates(const Readers& readers, absl::Duration warmup, absl::Duration window) {
  absl::SleepFor(warmup);
  const std::vector<StreamCounts> before = CountsOf(readers);
  const absl::Time start = absl::Now();
  absl::SleepFor(window);
  const std::vector<StreamCounts> after = CountsOf(readers);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  StreamRates rates;
  uint64_t samples = 0, batches = 0;
  for (size_t i = 0; i < readers.size(); ++i) {
    const uint64_t received = after[i].samples - before[i].samples;
    rates.per_stream.push_back(static_cast<double>(received) / seconds);
    rates.total += rates.per_stream.back();
    rates.dropped += after[i].dropped - before[i].dropped;
    samples += received;
    batches += after[i].batches - before[i].batches;
  }
  rates.samples_per_batch = batches == 0 ? 0 : static_cast<double>(samples) / batches;
  return rates;
}

absl::Status StopAll(Readers& readers) {
  absl::Status first;
  for (std::unique_ptr<StreamReader>& reader : readers) first.Update(reader->Stop());
  return first;
}

// Publishes samples of devices p, p + producers, … round-robin, as far as `window` allows.
void Produce(TelemetryFanout& fanout, SyntheticSamples& samples, FlowWindow& window, int p,
             int producers) {
  const uint32_t n = static_cast<uint32_t>(samples.device_count());
  uint32_t device = static_cast<uint32_t>(p);
  while (window.Reserve(kChunk)) {
    for (size_t i = 0; i < kChunk; ++i) {
      fanout.Publish(samples.Next(device));
      device += producers;
      if (device >= n) device = static_cast<uint32_t>(p);
    }
  }
}

}  // namespace

absl::StatusOr<StreamRates> MeasureSyntheticTelemetry(DermaServer& derma, SyntheticSamples& samples,
                                                      const SyntheticOptions& options) {
  FlowWindow window(options.subscribers, options.flow_window);
  Readers readers;
  for (int i = 0; i < options.subscribers; ++i) {
    std::shared_ptr<v1::DeviceControl::Stub> stub =
        v1::DeviceControl::NewStub(NewChannel(derma.address()));
    auto open = [stub](grpc::ClientContext* context) {
      return stub->StreamTelemetry(context, v1::StreamTelemetryRequest());
    };
    readers.push_back(std::make_unique<StreamReader>(
        open, StreamReader::Options{.window = &window, .window_slot = i}));
  }
  for (const std::unique_ptr<StreamReader>& reader : readers) {
    if (!reader->WaitForSync(kSyncTimeout)) {
      window.Stop();
      absl::Status status = StopAll(readers);
      return absl::DeadlineExceededError(
          absl::StrCat("telemetry stream sent no SyncMarker: ", status.ToString()));
    }
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < options.producers; ++p) {
    producers.emplace_back([&, p] {
      Produce(derma.plugin().fleet().telemetry(), samples, window, p, options.producers);
    });
  }
  StreamRates rates = Rates(readers, options.warmup, options.window);
  window.Stop();
  for (std::thread& producer : producers) producer.join();
  if (absl::Status status = StopAll(readers); !status.ok()) return status;
  return rates;
}

absl::StatusOr<StreamRates> MeasureBareStream(const std::string& echo_address, int streams,
                                              absl::Duration warmup, absl::Duration window) {
  Readers readers;
  for (int i = 0; i < streams; ++i) {
    std::shared_ptr<Echo::Stub> stub = Echo::NewStub(NewChannel(echo_address));
    auto open = [stub](grpc::ClientContext* context) {
      return stub->StreamBatches(context, StreamBatchesRequest());
    };
    readers.push_back(std::make_unique<StreamReader>(open, StreamReader::Options{}));
  }
  StreamRates rates = Rates(readers, warmup, window);
  if (absl::Status status = StopAll(readers); !status.ok()) return status;
  return rates;
}

absl::StatusOr<DeviceTelemetryResult> MeasureDeviceTelemetry(LoadedFleet& fleet,
                                                             absl::Duration warmup,
                                                             absl::Duration window) {
  absl::SleepFor(warmup);
  absl::StatusOr<uint64_t> made_before = fleet.SamplesMade();
  if (!made_before.ok()) return made_before.status();
  const std::vector<StreamCounts> before = CountsOf(fleet.readers());
  const absl::Duration cpu_before = ProcessCpuTime();
  const absl::Time start = absl::Now();
  absl::SleepFor(window);
  const std::vector<StreamCounts> after = CountsOf(fleet.readers());
  DeviceTelemetryResult result;
  result.window = absl::Now() - start;
  result.cores_used = absl::FDivDuration(ProcessCpuTime() - cpu_before, result.window);
  absl::StatusOr<uint64_t> made_after = fleet.SamplesMade();
  if (!made_after.ok()) return made_after.status();
  result.made = *made_after - *made_before;
  result.nominal = fleet.sample_rate() * absl::ToDoubleSeconds(result.window);
  for (size_t i = 0; i < before.size(); ++i) {
    result.received.push_back(after[i].samples - before[i].samples);
    result.dropped += after[i].dropped - before[i].dropped;
    result.unexplained_gaps += after[i].unexplained_gaps - before[i].unexplained_gaps;
  }
  return result;
}

}  // namespace derma::bench
