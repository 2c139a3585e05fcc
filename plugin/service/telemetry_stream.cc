#include "plugin/service/telemetry_stream.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "plugin/core/sample.h"
#include "plugin/errors/errors.h"
#include "plugin/service/status_mapping.h"
#include "plugin/service/telemetry_request.h"

namespace derma::service {
namespace {

constexpr size_t kMaxEntriesPerDrain = 16384;

// A snapshot or an event fits in a few kilobytes; a batch is one string on the heap.
google::protobuf::ArenaOptions MessageArena() {
  google::protobuf::ArenaOptions options;
  options.start_block_size = 1024;
  options.max_block_size = 1 << 20;
  return options;
}

}  // namespace

TelemetryStream::Outgoing::Outgoing()
    : arena_(MessageArena()), message_(google::protobuf::Arena::CreateMessage<Response>(&arena_)) {}

std::unique_ptr<TelemetryStream::Outgoing> TelemetryStream::NewMessage() {
  return std::make_unique<Outgoing>();
}

grpc::ServerWriteReactor<v1::StreamTelemetryResponse>* TelemetryStream::Begin(
    const StreamDeps& deps, const v1::StreamTelemetryRequest& request) {
  auto stream = std::make_shared<TelemetryStream>(deps);
  stream->self_ = stream;
  stream->Open(request);
  return stream.get();
}

TelemetryStream::TelemetryStream(const StreamDeps& deps)
    : deps_(deps), wire_(deps.devices.size()) {}

void TelemetryStream::Open(const v1::StreamTelemetryRequest& request) {
  absl::Status status = deps_.registry.Open(shared_from_this(), deps_.principal);
  if (status.ok()) status = Subscribe(request);
  absl::MutexLock lock(&mu_);
  if (!status.ok()) {
    FinishLocked(ToGrpcStatus(status));
    return;
  }
  SchedulePump();
}

// Subscribes first, then snapshots: anything published after a device's snapshot is in the
// subscription, and anything the snapshot already reflects is skipped by sequence number.
absl::Status TelemetryStream::Subscribe(const v1::StreamTelemetryRequest& request) {
  absl::StatusOr<TelemetryRequestPlan> plan = ParseTelemetryRequest(deps_.devices, request);
  if (!plan.ok()) return plan.status();
  SubscriptionOptions options;
  // A device named twice is streamed once (one snapshot, counted once in the SyncMarker).
  options.devices = std::move(plan->devices);
  options.sample_interval = plan->sample_interval;
  options.sample_capacity = deps_.sample_capacity;
  if (options.devices.empty()) {
    for (uint32_t i = 0; i < deps_.devices.size(); ++i) options.devices.push_back(i);
  }
  std::vector<uint32_t> wanted = options.devices;
  subscription_ = deps_.fanout.Subscribe(std::move(options));

  snapshot_sample_seq_.assign(deps_.devices.size(), 0);
  snapshot_event_seq_.assign(deps_.devices.size(), 0);
  {
    absl::MutexLock lock(&mu_);
    AddSnapshots(wanted);
  }
  // Runs on a device strand: only flags and schedules, never takes mu_, which Pump holds while
  // it encodes (DESIGN.md, Threads).
  std::weak_ptr<TelemetryStream> weak = weak_from_this();
  subscription_->SetWakeup([weak] {
    if (std::shared_ptr<TelemetryStream> stream = weak.lock()) stream->SchedulePump();
  });
  return absl::OkStatus();
}

void TelemetryStream::AddSnapshots(const std::vector<uint32_t>& wanted) {
  for (uint32_t index : wanted) {
    std::unique_ptr<Outgoing> message = NewMessage();
    uint64_t last_event = 0;
    *message->get()->mutable_snapshot()->mutable_device() =
        deps_.devices.view(index).Read(&last_event);
    message->get()->mutable_snapshot()->set_last_event_sequence(last_event);
    snapshot_sample_seq_[index] = message->get()->snapshot().device().latest_sample().sequence();
    snapshot_event_seq_[index] = last_event;
    outbox_.push_back(std::move(message));
  }
  std::unique_ptr<Outgoing> sync = NewMessage();
  sync->get()->mutable_sync()->set_device_count(static_cast<uint32_t>(wanted.size()));
  outbox_.push_back(std::move(sync));
}

// Sends what is already queued (the devices' last samples and events), then finishes.
void TelemetryStream::End(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (!end_.has_value()) end_ = ToGrpcStatus(status);
  SchedulePump();
}

void TelemetryStream::Heartbeat(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (finished_ || writing_ || !outbox_.empty()) return;
  if (now - last_write_ < deps_.heartbeat_interval) return;
  std::unique_ptr<Outgoing> message = NewMessage();
  *message->get()->mutable_heartbeat()->mutable_server_time() =
      google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
  outbox_.push_back(std::move(message));
  SchedulePump();
}

void TelemetryStream::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  in_flight_.reset();
  if (!ok && !finish_.has_value()) {
    finish_ = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  }
  SchedulePump();
}

void TelemetryStream::OnCancel() {
  absl::MutexLock lock(&mu_);
  if (!finish_.has_value()) finish_ = grpc::Status::CANCELLED;
  SchedulePump();
}

void TelemetryStream::OnDone() {
  if (subscription_ != nullptr) {
    subscription_->SetWakeup(nullptr);
    deps_.fanout.Unsubscribe(subscription_.get());
  }
  deps_.registry.Close(this);
  std::shared_ptr<TelemetryStream> self = std::move(self_);  // may delete this on return
}

void TelemetryStream::SchedulePump() {
  if (pump_scheduled_.exchange(true)) return;
  deps_.executor.Schedule([self = shared_from_this()] { self->Pump(); });
}

void TelemetryStream::Pump() {
  Response* next = nullptr;
  {
    absl::MutexLock lock(&mu_);
    // Cleared before Fill drains: a wakeup that comes after this schedules another pump, and
    // one that came before it is drained by this one. An exchange, so it reads the wakeup's
    // flag and sees everything offered before it.
    pump_scheduled_.exchange(false);
    if (finished_ || writing_) return;
    if (finish_.has_value()) {
      FinishLocked(*finish_);
      return;
    }
    if (outbox_.empty()) Fill();
    if (outbox_.empty()) {
      if (end_.has_value()) FinishLocked(*end_);
      return;  // the subscription's wakeup is armed again
    }
    in_flight_ = std::move(outbox_.front());
    outbox_.pop_front();
    writing_ = true;
    last_write_ = absl::Now();
    next = in_flight_->get();
  }
  StartWrite(next);
}

// A drain whose entries the snapshots all reflect queues nothing: drain again, or no wakeup is
// armed and the stream stalls.
void TelemetryStream::Fill() {
  while (outbox_.empty() && !finished_) {
    if (subscription_->overflowed()) {
      FinishLocked(ToGrpcStatus(
          MakeError(absl::StatusCode::kResourceExhausted, v1::ERROR_REASON_STREAM_LIMIT,
                    "the client read too slowly: the stream's event queue overflowed; reconnect")));
      return;
    }
    TelemetryDrain drain = subscription_->Drain(kMaxEntriesPerDrain);
    const bool rearmed = !drain.more;
    if (deps_.encode_hook) deps_.encode_hook(drain);
    Encode(drain);
    if (rearmed) return;
  }
}

void TelemetryStream::Encode(TelemetryDrain& drain) {
  auto flush = [&] {
    if (wire_.empty()) return;
    std::unique_ptr<Outgoing> message = NewMessage();
    Response* response = message->get();
    // The batch goes out as the wire bytes of field `batch` in the message's unknown fields,
    // which protobuf writes verbatim: on the wire, exactly a response with `batch` set, without
    // building a TelemetrySample message per sample.
    wire_.Finish(deps_.names,
                 response->GetReflection()->MutableUnknownFields(response)->AddLengthDelimited(
                     Response::kBatchFieldNumber));
    outbox_.push_back(std::move(message));
  };
  for (const TelemetryEntry& entry : drain.entries) {
    if (entry.event != nullptr) {
      absl::StatusOr<uint32_t> index = deps_.devices.Find(entry.event->device());
      if (index.ok() && entry.event->sequence() <= snapshot_event_seq_[*index]) continue;
      flush();  // keeps every device's samples and events in the order it made them
      std::unique_ptr<Outgoing> message = NewMessage();
      *message->get()->mutable_event() = *entry.event;
      outbox_.push_back(std::move(message));
      continue;
    }
    const Sample& sample = entry.sample;
    if (sample.sequence <= snapshot_sample_seq_[sample.device_index]) continue;
    // A drop is reported with the device's first entry after it.
    if (!drain.dropped.empty()) {
      if (auto dropped = drain.dropped.find(sample.device_index); dropped != drain.dropped.end()) {
        wire_.SetDropped(sample.device_index, dropped->second);
        drain.dropped.erase(dropped);
      }
    }
    wire_.AddSample(sample);
    if (wire_.samples() >= kMaxSamplesPerMessage) flush();
  }
  for (const auto& [index, count] : drain.dropped) {
    if (count > 0) wire_.SetDropped(index, count);  // drops of devices with no sample here
  }
  flush();
}

void TelemetryStream::FinishLocked(const grpc::Status& status) {
  if (finished_) return;
  if (writing_) {  // finish once the write in flight completes
    if (!finish_.has_value()) finish_ = status;
    return;
  }
  finished_ = true;
  Finish(status);
}

}  // namespace derma::service
