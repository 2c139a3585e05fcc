#include "tests/bench/stream_reader.h"

#include <algorithm>
#include <utility>

#include "google/protobuf/arena.h"
#include "tests/bench/derma_server.h"

namespace derma::bench {
namespace {

constexpr size_t kArenaBlockBytes = 4 << 20;  // a full SampleBatch parses into about 1 MiB

}  // namespace

FlowWindow::FlowWindow(int consumers, uint64_t window) : window_(window) {
  consumed_.assign(consumers, 0);
}

bool FlowWindow::HasRoom(uint64_t n) const {
  const uint64_t slowest = *std::min_element(consumed_.begin(), consumed_.end());
  return stopped_ || published_ + n <= slowest + window_;
}

bool FlowWindow::Reserve(uint64_t n) {
  struct Need {
    FlowWindow* window;
    uint64_t n;
  } need{this, n};
  absl::MutexLock lock(&mu_, absl::Condition(
                                 +[](Need* need) {
                                   need->window->mu_.AssertHeld();
                                   return need->window->HasRoom(need->n);
                                 },
                                 &need));
  if (stopped_) return false;
  published_ += n;
  return true;
}

void FlowWindow::Consumed(int slot, uint64_t n) {
  absl::MutexLock lock(&mu_);
  consumed_[slot] += n;
}

void FlowWindow::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

StreamReader::StreamReader(Open open, Options options) : options_(options) {
  thread_ = std::thread([this, open = std::move(open)]() mutable { Run(std::move(open)); });
}

StreamReader::~StreamReader() { Stop().IgnoreError(); }

// Each message is parsed onto an arena that is reset after it is counted, as an efficient
// client would: a batch is thousands of small messages, and the heap would otherwise allocate
// and free each of them (a oneof payload is freed, not reused, when the next is parsed).
void StreamReader::Run(Open open) {
  std::unique_ptr<Stream> stream = open(&context_);
  std::vector<char> block(kArenaBlockBytes);
  google::protobuf::ArenaOptions arena_options;
  arena_options.initial_block = block.data();
  arena_options.initial_block_size = block.size();
  google::protobuf::Arena arena(arena_options);
  while (true) {
    auto* message = google::protobuf::Arena::CreateMessage<v1::StreamTelemetryResponse>(&arena);
    if (!stream->Read(message)) break;
    Count(*message);
    arena.Reset();
  }
  const grpc::Status status = stream->Finish();
  if (stopping_.load() && status.error_code() == grpc::StatusCode::CANCELLED) {
    result_ = absl::OkStatus();
  } else {
    result_ = status.ok() ? absl::AbortedError("the stream ended before it was cancelled")
                          : CallStatus(status, "stream");
  }
  ended_.Notify();
}

void StreamReader::Count(const v1::StreamTelemetryResponse& message) {
  messages_.fetch_add(1, std::memory_order_relaxed);
  switch (message.payload_case()) {
    case v1::StreamTelemetryResponse::kSnapshot:
      if (options_.check_sequences) {
        const v1::Device& device = message.snapshot().device();
        last_sequence_[device.name()] = device.latest_sample().sequence();
      }
      return;
    case v1::StreamTelemetryResponse::kSync:
      synced_.Notify();
      return;
    case v1::StreamTelemetryResponse::kBatch:
      break;
    default:
      return;
  }
  uint64_t samples = 0;
  uint64_t dropped = 0;
  for (const v1::DeviceSamples& device : message.batch().devices()) {
    samples += device.samples_size();
    dropped += device.dropped_samples();
    if (options_.check_sequences) CheckSequences(device);
  }
  batches_.fetch_add(1, std::memory_order_relaxed);
  samples_.fetch_add(samples, std::memory_order_relaxed);
  dropped_.fetch_add(dropped, std::memory_order_relaxed);
  if (options_.window != nullptr)
    options_.window->Consumed(options_.window_slot, samples + dropped);
}

void StreamReader::CheckSequences(const v1::DeviceSamples& samples) {
  if (samples.samples_size() == 0) return;
  auto [it, first] = last_sequence_.try_emplace(samples.device(), 0);
  uint64_t last = first ? samples.samples(0).sequence() - 1 : it->second;
  uint64_t missing = 0;
  for (const v1::TelemetrySample& sample : samples.samples()) {
    if (sample.sequence() > last + 1) missing += sample.sequence() - last - 1;
    last = sample.sequence();
  }
  it->second = last;
  if (missing > samples.dropped_samples()) {
    gaps_.fetch_add(missing - samples.dropped_samples(), std::memory_order_relaxed);
  }
}

bool StreamReader::WaitForSync(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!synced_.HasBeenNotified()) {
    if (ended_.HasBeenNotified() || absl::Now() >= deadline) return false;
    synced_.WaitForNotificationWithTimeout(absl::Milliseconds(10));
  }
  return true;
}

StreamCounts StreamReader::counts() const {
  return {messages_.load(), batches_.load(), samples_.load(), dropped_.load(), gaps_.load()};
}

absl::Status StreamReader::Stop() {
  if (!thread_.joinable()) return result_.value_or(absl::OkStatus());
  if (!ended_.HasBeenNotified()) {
    stopping_ = true;
    context_.TryCancel();
  }
  thread_.join();
  return *result_;
}

}  // namespace derma::bench
