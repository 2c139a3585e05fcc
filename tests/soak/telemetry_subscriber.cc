#include "tests/soak/telemetry_subscriber.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace derma::soak {
namespace {

constexpr size_t kFailuresPerStream = 5;  // enough to diagnose, without flooding the log

}  // namespace

void SubscriberCounts::Add(const SubscriberCounts& o) {
  streams += o.streams;
  messages += o.messages;
  samples += o.samples;
  dropped += o.dropped;
  missing += o.missing;
  events += o.events;
  event_gaps += o.event_gaps;
  unexplained_missing += o.unexplained_missing;
  order_errors += o.order_errors;
  heartbeats += o.heartbeats;
  stalls += o.stalls;
  same_time += o.same_time;
}

TelemetrySubscriber::TelemetrySubscriber(std::shared_ptr<grpc::Channel> channel,
                                         SubscriberOptions options, CallTally& tally,
                                         FailureLog& failures, LiveCounters& live)
    : stub_(v1::DeviceControl::NewStub(channel)),
      options_(std::move(options)),
      tally_(tally),
      failures_(failures),
      live_(live),
      random_(options_.seed) {}

void TelemetrySubscriber::Run(const std::atomic<bool>& stop, absl::Time deadline) {
  while (!stop.load() && absl::Now() < deadline) StreamOnce(stop, deadline);
}

void TelemetrySubscriber::StreamOnce(const std::atomic<bool>& stop, absl::Time deadline) {
  std::uniform_int_distribution<int64_t> life_ms(
      absl::ToInt64Milliseconds(options_.min_stream_life),
      absl::ToInt64Milliseconds(options_.max_stream_life));
  const absl::Time start = absl::Now();
  const absl::Time end = std::min(deadline, start + absl::Milliseconds(life_ms(random_)));
  devices_.clear();
  snapshots_ = 0;
  stream_failures_ = 0;
  ++counts_.streams;

  v1::StreamTelemetryRequest request;
  for (const std::string& name : options_.names) request.add_names(name);
  request.set_sample_interval_s(options_.sample_interval_s);
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->StreamTelemetry(&context, request);
  v1::StreamTelemetryResponse message;
  bool synced = false;
  bool cancelled = false;
  absl::Duration to_sync = absl::ZeroDuration();
  absl::Time next_stall = start + options_.read_time;
  while (stream->Read(&message)) {
    const bool was_synced = synced;
    Check(message, &synced);
    if (synced && !was_synced) to_sync = absl::Now() - start;
    if (stop.load() || absl::Now() >= end) {
      context.TryCancel();
      cancelled = true;
      continue;  // Read returns false once the cancel lands
    }
    MaybeStall(stop, end, &next_stall);
  }
  Finish(stream->Finish(), cancelled, synced, cancelled ? to_sync : absl::Now() - start);
}

void TelemetrySubscriber::MaybeStall(const std::atomic<bool>& stop, absl::Time end,
                                     absl::Time* next_stall) {
  const absl::Time now = absl::Now();
  if (options_.stall_time <= absl::ZeroDuration() || now < *next_stall) return;
  ++counts_.stalls;
  const absl::Time resume = std::min(end, now + options_.stall_time);
  while (!stop.load() && absl::Now() < resume) absl::SleepFor(absl::Milliseconds(50));
  *next_stall = absl::Now() + options_.read_time;
}

void TelemetrySubscriber::Finish(const grpc::Status& status, bool cancelled, bool synced,
                                 absl::Duration latency) {
  live_.calls.fetch_add(1, std::memory_order_relaxed);
  if (cancelled && status.error_code() == grpc::StatusCode::CANCELLED) {
    tally_.Record(Rpc::kStreamTelemetry, synced ? Verdict::kOk : Verdict::kUnexpected,
                  grpc::Status::OK, latency);
    if (!synced) Fail("the stream was cancelled before its SyncMarker arrived");
    return;
  }
  // The server never ends a healthy stream on its own while the soak runs.
  const Verdict verdict =
      status.ok() ? Verdict::kUnexpected : Classify(Rpc::kStreamTelemetry, Expect::kNormal, status);
  tally_.Record(Rpc::kStreamTelemetry, verdict, status, latency);
  if (verdict != Verdict::kExpected) {
    Fail(absl::StrCat("stream ended by the server: ", CodeName(status.error_code()), " ",
                      ReasonOf(status), " \"", status.error_message(), "\""));
  }
}

void TelemetrySubscriber::Check(const v1::StreamTelemetryResponse& message, bool* synced) {
  ++counts_.messages;
  switch (message.payload_case()) {
    case v1::StreamTelemetryResponse::kSnapshot:
      CheckSnapshot(message.snapshot(), *synced);
      return;
    case v1::StreamTelemetryResponse::kSync: {
      const size_t want = options_.names.empty() ? options_.fleet_size : options_.names.size();
      if (*synced || snapshots_ != want || message.sync().device_count() != want) {
        Fail(absl::StrCat("SyncMarker after ", snapshots_, " snapshots (device_count ",
                          message.sync().device_count(), "), want ", want, " once"));
      }
      *synced = true;
      return;
    }
    case v1::StreamTelemetryResponse::kEvent:
      if (!*synced) Fail("an event before the SyncMarker");
      CheckEvent(message.event());
      return;
    case v1::StreamTelemetryResponse::kBatch:
      if (!*synced) Fail("a sample batch before the SyncMarker");
      for (const v1::DeviceSamples& samples : message.batch().devices()) CheckSamples(samples);
      return;
    case v1::StreamTelemetryResponse::kHeartbeat:
      ++counts_.heartbeats;
      return;
    default:
      Fail("a message with no payload");
  }
}

void TelemetrySubscriber::CheckSnapshot(const v1::DeviceSnapshot& snapshot, bool synced) {
  const v1::Device& device = snapshot.device();
  auto [it, inserted] = devices_.try_emplace(device.name());
  if (synced || !inserted) {
    Fail(absl::StrCat("snapshot of ", device.name(), synced ? " after the SyncMarker" : " twice"));
  }
  ++snapshots_;
  it->second.last_event = snapshot.last_event_sequence();
  it->second.last_sample = device.latest_sample().sequence();
}

void TelemetrySubscriber::CheckEvent(const v1::DeviceEvent& event) {
  ++counts_.events;
  auto it = devices_.find(event.device());
  if (it == devices_.end()) {
    Fail(absl::StrCat("event of ", event.device(), ", which has no snapshot on this stream"));
    return;
  }
  if (event.sequence() != it->second.last_event + 1) {
    ++counts_.event_gaps;
    Fail(absl::StrCat("lost events: ", event.device(), " event ", event.sequence(), " (",
                      v1::DeviceEventType_Name(event.type()), ") follows event ",
                      it->second.last_event));
  }
  it->second.last_event = std::max(it->second.last_event, event.sequence());
}

void TelemetrySubscriber::CheckSamples(const v1::DeviceSamples& samples) {
  auto it = devices_.find(samples.device());
  if (it == devices_.end()) {
    Fail(absl::StrCat("samples of ", samples.device(), ", which has no snapshot on this stream"));
    return;
  }
  DeviceTrack& track = it->second;
  const int64_t interval_us = static_cast<int64_t>(options_.sample_interval_s * 1e6);
  track.dropped += samples.dropped_samples();
  counts_.dropped += samples.dropped_samples();
  counts_.samples += samples.samples_size();
  live_.samples.fetch_add(samples.samples_size(), std::memory_order_relaxed);
  live_.dropped.fetch_add(samples.dropped_samples(), std::memory_order_relaxed);
  for (const v1::TelemetrySample& sample : samples.samples()) {
    // Device time never goes back; a sample published at once after a command (output off
    // before the next tick) may share the previous tick's time, so equal times are counted,
    // not failed. A sampled stream forwards no two samples closer than its interval.
    const int64_t since = sample.device_time_us() - track.last_sample_time_us;
    const bool backwards =
        sample.sequence() <= track.last_sample ||
        (track.have_sample_time && (since < 0 || (interval_us > 0 && since < interval_us)));
    if (backwards) {
      ++counts_.order_errors;
      Fail(absl::StrCat(samples.device(), " sample ", sample.sequence(), " at ",
                        sample.device_time_us(), " µs follows sample ", track.last_sample, " at ",
                        track.last_sample_time_us, " µs (interval ", interval_us, " µs)"));
    } else if (interval_us == 0) {
      const uint64_t skipped = sample.sequence() - track.last_sample - 1;
      track.missing += skipped;
      counts_.missing += skipped;
      counts_.same_time += track.have_sample_time && since == 0;
    }
    track.last_sample = std::max(track.last_sample, sample.sequence());
    track.last_sample_time_us = sample.device_time_us();
    track.have_sample_time = true;
  }
  if (interval_us == 0 && track.missing > track.dropped) {
    counts_.unexplained_missing += track.missing - track.dropped;
    Fail(absl::StrCat("lost samples: ", samples.device(), " is missing ", track.missing,
                      " samples on this stream but only ", track.dropped,
                      " were reported dropped"));
    track.dropped = track.missing;  // report each loss once
  }
}

void TelemetrySubscriber::Fail(const std::string& what) {
  if (++stream_failures_ > kFailuresPerStream) return;
  failures_.Add(absl::StrCat("telemetry ", options_.label, ": ", what));
}

}  // namespace derma::soak
