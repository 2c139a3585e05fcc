// StreamRegistry: the stream limit, ending every open stream at shutdown, heartbeats.
#include "plugin/service/stream_registry.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/errors/errors.h"

namespace derma::service {
namespace {

class RecordingStream : public OpenStream {
 public:
  void End(const absl::Status& status) override { ended.push_back(status); }
  void Heartbeat(absl::Time now) override { heartbeats.push_back(now); }
  std::vector<absl::Status> ended;
  std::vector<absl::Time> heartbeats;
};

TEST(StreamRegistryTest, RefusesPastTheLimitWithStreamLimit) {
  StreamRegistry registry(2);
  auto a = std::make_shared<RecordingStream>();
  auto b = std::make_shared<RecordingStream>();
  auto c = std::make_shared<RecordingStream>();
  ASSERT_TRUE(registry.Open(a, "alice").ok());
  ASSERT_TRUE(registry.Open(b, "alice").ok());
  const absl::Status refused = registry.Open(c, "alice");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReasonOf(refused), v1::ERROR_REASON_STREAM_LIMIT);
  registry.Close(a.get());
  EXPECT_TRUE(registry.Open(c, "alice").ok()) << "a closed stream frees its slot";
  EXPECT_EQ(registry.open_count(), 2u);
}

TEST(StreamRegistryTest, OnePrincipalCannotTakeEverySlot) {
  StreamRegistry registry(/*max_streams=*/4, /*max_per_principal=*/2);
  std::vector<std::shared_ptr<RecordingStream>> streams;
  for (int i = 0; i < 4; ++i) streams.push_back(std::make_shared<RecordingStream>());
  ASSERT_TRUE(registry.Open(streams[0], "alice").ok());
  ASSERT_TRUE(registry.Open(streams[1], "alice").ok());
  const absl::Status refused = registry.Open(streams[2], "alice");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReasonOf(refused), v1::ERROR_REASON_STREAM_LIMIT);
  EXPECT_EQ(MetadataOf(refused)["principal"], "alice");
  EXPECT_EQ(MetadataOf(refused)["limit"], "2");
  EXPECT_TRUE(registry.Open(streams[2], "bob").ok()) << "another principal still gets a slot";
  registry.Close(streams[0].get());
  EXPECT_TRUE(registry.Open(streams[3], "alice").ok()) << "a closed stream frees its slot";
  EXPECT_EQ(registry.open_count(), 3u);
}

TEST(StreamRegistryTest, ShutdownEndsEveryOpenStreamAndRefusesNewOnes) {
  StreamRegistry registry(8);
  auto a = std::make_shared<RecordingStream>();
  auto b = std::make_shared<RecordingStream>();
  ASSERT_TRUE(registry.Open(a, "alice").ok());
  ASSERT_TRUE(registry.Open(b, "alice").ok());
  registry.ShutdownAll();
  for (const auto& stream : {a, b}) {
    ASSERT_EQ(stream->ended.size(), 1u);
    EXPECT_EQ(stream->ended[0].code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(ReasonOf(stream->ended[0]), v1::ERROR_REASON_SHUTTING_DOWN);
  }
  EXPECT_EQ(ReasonOf(registry.Open(std::make_shared<RecordingStream>(), "alice")),
            v1::ERROR_REASON_SHUTTING_DOWN);
}

TEST(StreamRegistryTest, StreamsThatWentAwayAreSkipped) {
  StreamRegistry registry(8);
  auto kept = std::make_shared<RecordingStream>();
  ASSERT_TRUE(registry.Open(kept, "alice").ok());
  {
    auto gone = std::make_shared<RecordingStream>();
    ASSERT_TRUE(registry.Open(gone, "alice").ok());
  }  // destroyed without Close: held weakly, never called
  registry.HeartbeatAll(absl::UnixEpoch());
  EXPECT_THAT(kept->heartbeats, ::testing::ElementsAre(absl::UnixEpoch()));
}

}  // namespace
}  // namespace derma::service
