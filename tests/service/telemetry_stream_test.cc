// TelemetryStream never makes a device wait for its encoding (issue 12 §3, DESIGN.md Threads):
// while a stream's encoding is held inside Fill (StreamDeps::encode_hook blocks it with the
// stream's lock held), device ticks and an EmergencyStop finish, and once it is released the
// stream still delivers what they published. The stream runs without a server, bound to a
// FakeStreamWriter; devices are FakeDrivers on a real ThreadPoolExecutor. Waits are for
// conditions, bounded so that a device blocked by the stream fails the test instead of hanging.
#include "plugin/service/telemetry_stream.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "plugin/core/clock.h"
#include "plugin/core/run_registry.h"
#include "tests/core/fake_driver.h"
#include "tests/service/fake_stream_writer.h"

namespace derma::service {
namespace {

using Response = v1::StreamTelemetryResponse;
using Writer = testing::FakeStreamWriter<Response>;

// Generous: on a loaded machine under ThreadSanitizer a tick takes milliseconds, not seconds.
constexpr absl::Duration kWait = absl::Seconds(15);

bool HasSampleAfter(const Writer::Messages& written, uint64_t sequence) {
  for (const Response& message : written) {
    for (const v1::DeviceSamples& device : message.batch().devices()) {
      for (const v1::TelemetrySample& sample : device.samples()) {
        if (sample.sequence() > sequence) return true;
      }
    }
  }
  return false;
}

bool HasEvent(const Writer::Messages& written, v1::DeviceState new_state) {
  for (const Response& message : written) {
    if (message.has_event() && message.event().to_state() == new_state) {
      return true;
    }
  }
  return false;
}

class TelemetryStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    device_executor_ = std::make_unique<ThreadPoolExecutor>(2);
    stream_executor_ = std::make_unique<ThreadPoolExecutor>(2);
    devices_ =
        std::make_unique<DeviceManager>(*device_executor_, DeviceContext{clock_, fanout_, runs_});
    ASSERT_TRUE(devices_
                    ->AddDevice("pen", std::make_unique<derma::testing::FakeDriver>(
                                           derma::testing::FakePenInfo()))
                    .ok());
    devices_->InitializeAll();
  }

  // Releases a held encoding in every path, then ends the stream and stops the threads.
  void TearDown() override {
    Release();
    if (reactor_ != nullptr) {
      reactor_->OnCancel();
      if (writer_.WaitForFinish(kWait).has_value()) reactor_->OnDone();
    }
    stream_executor_.reset();  // runs the pumps still queued, then joins
    device_executor_.reset();  // before the strands (in devices_) go away
    devices_.reset();
  }

  // Opens a stream of every device; returns once its snapshot and SyncMarker are written.
  void OpenStream() {
    const StreamDeps deps{*devices_,
                          fanout_,
                          registry_,
                          *stream_executor_,
                          names_,
                          /*sample_capacity=*/16384,
                          /*heartbeat_interval=*/absl::Seconds(30),
                          [this](const TelemetryDrain& drain) { MaybeHold(drain); }};
    reactor_ = TelemetryStream::Begin(deps, v1::StreamTelemetryRequest());
    writer_.Bind(reactor_);
    ASSERT_TRUE(writer_.WaitForWritten(
        [](const Writer::Messages& written) {
          return written.size() >= 2 && written[1].has_sync();
        },
        kWait));
  }

  // The stream's next encoding of a drain with entries blocks, holding the stream's lock,
  // until Release().
  void HoldNextEncoding() { hold_.store(true); }
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }

  // Ticks every device; returns whether the tick finished within kWait.
  bool Tick() {
    absl::Notification ticked;
    devices_->TickAll([&ticked] { ticked.Notify(); });
    const bool finished = ticked.WaitForNotificationWithTimeout(kWait);
    if (!finished) {
      Release();  // let the tick finish before `ticked` goes out of scope
      ticked.WaitForNotification();
    }
    return finished;
  }

  uint64_t LatestSequence() { return devices_->view(0).latest_sample().sequence; }

  VirtualClock clock_;
  TelemetryFanout fanout_;
  RunRegistry runs_;
  StreamRegistry registry_{8};
  const std::vector<std::string> names_{"devices/pen"};
  std::unique_ptr<ThreadPoolExecutor> device_executor_;
  std::unique_ptr<ThreadPoolExecutor> stream_executor_;
  std::unique_ptr<DeviceManager> devices_;
  Writer writer_;
  grpc::ServerWriteReactor<Response>* reactor_ = nullptr;
  absl::Notification encoding_held_;

 private:
  void MaybeHold(const TelemetryDrain& drain) {
    if (drain.entries.empty() || !hold_.exchange(false)) return;
    encoding_held_.Notify();
    release_.WaitForNotification();
  }

  std::atomic<bool> hold_{false};
  absl::Notification release_;
};

TEST_F(TelemetryStreamTest, DeviceTicksWhileAStreamEncodes) {
  OpenStream();
  HoldNextEncoding();
  ASSERT_TRUE(Tick());  // its sample wakes the stream, whose encoding then holds
  ASSERT_TRUE(encoding_held_.WaitForNotificationWithTimeout(kWait));
  const uint64_t before = LatestSequence();

  EXPECT_TRUE(Tick()) << "a device tick waited for a stream's encoding";
  EXPECT_TRUE(Tick());
  EXPECT_EQ(LatestSequence(), before + 2);

  Release();
  EXPECT_TRUE(writer_.WaitForWritten(
      [&](const Writer::Messages& written) { return HasSampleAfter(written, before + 1); }, kWait))
      << "the samples published while the stream encoded never reached it";
}

TEST_F(TelemetryStreamTest, EmergencyStopFinishesWhileAStreamEncodes) {
  OpenStream();
  HoldNextEncoding();
  ASSERT_TRUE(Tick());
  ASSERT_TRUE(encoding_held_.WaitForNotificationWithTimeout(kWait));

  absl::Notification stopped;
  devices_->EmergencyStopAll([&stopped] { stopped.Notify(); });
  const bool finished = stopped.WaitForNotificationWithTimeout(kWait);
  Release();
  EXPECT_TRUE(finished) << "an EmergencyStop waited for a stream's encoding";
  stopped.WaitForNotification();  // it may hold `stopped` until released
  EXPECT_EQ(devices_->view(0).state(), v1::DEVICE_STATE_ESTOPPED);

  EXPECT_TRUE(writer_.WaitForWritten(
      [](const Writer::Messages& written) { return HasEvent(written, v1::DEVICE_STATE_ESTOPPED); },
      kWait))
      << "the EmergencyStop's event never reached the stream";
}

}  // namespace
}  // namespace derma::service
