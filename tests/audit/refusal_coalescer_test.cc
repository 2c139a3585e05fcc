// RefusalCoalescer: one record at once per (peer IP, reason) and interval, the rest counted into
// one record at the interval's end or at shutdown, a cap on pairs with one overflow record, and
// peer addresses reduced to their IP. Fake time, no threads.
#include "plugin/audit/refusal_coalescer.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace derma::testing {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1767225600);

AuditEvent Refusal(const std::string& ip, const std::string& reason = "UNAUTHENTICATED") {
  AuditEvent event;
  event.kind = v1::AUDIT_EVENT_KIND_AUTH_FAILURE;
  event.method = "/derma.v1.DeviceControl/ListDevices";
  event.code = 16;
  event.reason = reason;
  event.peer_ip = ip;
  return event;
}

int64_t SumOfCounts(const std::vector<AuditEvent>& records) {
  int64_t sum = 0;
  for (const AuditEvent& record : records) sum += record.count;
  return sum;
}

TEST(RefusalCoalescerTest, FirstRefusalOfAPairIsWrittenAtOnce) {
  RefusalCoalescer coalescer;
  std::optional<AuditEvent> first = coalescer.Admit(Refusal("10.0.0.1"), kT0);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->count, 1);
  EXPECT_EQ(first->peer_ip, "10.0.0.1");
}

TEST(RefusalCoalescerTest, FurtherRefusalsAreCountedIntoOneRecordAtTheIntervalsEnd) {
  RefusalCoalescer coalescer({.interval = absl::Seconds(10), .max_pairs = 4});
  ASSERT_TRUE(coalescer.Admit(Refusal("10.0.0.1"), kT0).has_value());
  for (int i = 0; i < 99; ++i) {
    EXPECT_FALSE(coalescer.Admit(Refusal("10.0.0.1"), kT0 + absl::Seconds(1)).has_value());
  }
  EXPECT_THAT(coalescer.TakeDue(kT0 + absl::Seconds(9)), ::testing::IsEmpty());
  EXPECT_EQ(coalescer.NextDue(), kT0 + absl::Seconds(10));
  std::vector<AuditEvent> due = coalescer.TakeDue(kT0 + absl::Seconds(10));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].count, 99);
  EXPECT_EQ(due[0].peer_ip, "10.0.0.1");
  EXPECT_EQ(due[0].time_us, absl::ToUnixMicros(kT0 + absl::Seconds(10)));
  EXPECT_EQ(coalescer.NextDue(), absl::InfiniteFuture());
}

TEST(RefusalCoalescerTest, ANewIntervalWritesItsFirstRefusalAtOnceAgain) {
  RefusalCoalescer coalescer({.interval = absl::Seconds(10), .max_pairs = 4});
  ASSERT_TRUE(coalescer.Admit(Refusal("10.0.0.1"), kT0).has_value());
  EXPECT_THAT(coalescer.TakeDue(kT0 + absl::Seconds(10)), ::testing::IsEmpty());
  EXPECT_TRUE(coalescer.Admit(Refusal("10.0.0.1"), kT0 + absl::Seconds(11)).has_value());
}

TEST(RefusalCoalescerTest, PairsDifferByIpAndByReason) {
  RefusalCoalescer coalescer;
  EXPECT_TRUE(coalescer.Admit(Refusal("10.0.0.1"), kT0).has_value());
  EXPECT_TRUE(coalescer.Admit(Refusal("10.0.0.2"), kT0).has_value());
  EXPECT_TRUE(coalescer.Admit(Refusal("10.0.0.1", "PERMISSION_DENIED"), kT0).has_value());
  EXPECT_FALSE(coalescer.Admit(Refusal("10.0.0.2"), kT0).has_value());
}

TEST(RefusalCoalescerTest, PairsBeyondTheCapGoIntoOneOverflowRecord) {
  RefusalCoalescer coalescer({.interval = absl::Seconds(10), .max_pairs = 2});
  int written_at_once = 0;
  for (int i = 0; i < 50; ++i) {
    written_at_once +=
        coalescer.Admit(Refusal(absl::StrCat("10.0.0.", i)), kT0).has_value() ? 1 : 0;
  }
  EXPECT_EQ(written_at_once, 2);
  std::vector<AuditEvent> due = coalescer.TakeDue(kT0 + absl::Seconds(10));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].peer_ip, "*");
  EXPECT_EQ(due[0].count, 48);
}

TEST(RefusalCoalescerTest, AFloodWritesAtMostTheBoundPerIntervalAndCountsEveryRefusal) {
  RefusalCoalescer coalescer({.interval = absl::Seconds(10), .max_pairs = 8});
  std::vector<AuditEvent> records;
  constexpr int kRefusals = 100000;
  for (int i = 0; i < kRefusals; ++i) {
    // 1000 addresses, one refusal per millisecond: 10 intervals of 10 s.
    const absl::Time now = kT0 + absl::Milliseconds(i);
    for (AuditEvent& due : coalescer.TakeDue(now)) records.push_back(std::move(due));
    if (auto at_once = coalescer.Admit(Refusal(absl::StrCat("10.0.", i % 1000)), now)) {
      records.push_back(*std::move(at_once));
    }
  }
  for (AuditEvent& rest : coalescer.TakeAll(kT0 + absl::Seconds(100))) {
    records.push_back(std::move(rest));
  }
  EXPECT_EQ(SumOfCounts(records), kRefusals);
  EXPECT_LE(records.size(), 10 * coalescer.MaxRecordsPerInterval());
}

TEST(RefusalCoalescerTest, ShutdownTakesEveryCountedRefusal) {
  RefusalCoalescer coalescer;
  ASSERT_TRUE(coalescer.Admit(Refusal("10.0.0.1"), kT0).has_value());
  coalescer.Admit(Refusal("10.0.0.1"), kT0);
  coalescer.Admit(Refusal("10.0.0.1"), kT0);
  std::vector<AuditEvent> rest = coalescer.TakeAll(kT0 + absl::Seconds(1));
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].count, 2);
}

TEST(RefusalCoalescerTest, PeerIpDropsThePort) {
  EXPECT_EQ(RefusalCoalescer::PeerIp("ipv4:127.0.0.1:54321"), "127.0.0.1");
  EXPECT_EQ(RefusalCoalescer::PeerIp("ipv6:[::1]:5555"), "::1");
  EXPECT_EQ(RefusalCoalescer::PeerIp("ipv6:[fe80::1%eth0]:80"), "fe80::1%eth0");
  EXPECT_EQ(RefusalCoalescer::PeerIp("unix:/tmp/derma.sock"), "unix:/tmp/derma.sock");
}

}  // namespace
}  // namespace derma::testing
