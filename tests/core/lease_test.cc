// Leases: acquire / renew / release, TTL and holder validation, lease errors on mutating
// commands, and the dead-man switch when a lease expires while the output is on.
#include <algorithm>

#include "gmock/gmock.h"
#include "plugin/core/lease_table.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;

class LeaseTest : public DeviceFixture {
 protected:
  void SetUp() override { MakeDevice(); }

  v1::RunStep Step(double depth, double rate, double seconds) {
    v1::RunStep step;
    *step.mutable_settings() = PenSettings(depth, rate);
    step.set_duration_s(seconds);
    return step;
  }
  size_t CountEvents(v1::DeviceEventType type) {
    std::vector<v1::DeviceEvent> events = Events();
    return std::count_if(events.begin(), events.end(),
                         [&](const v1::DeviceEvent& e) { return e.type() == type; });
  }
};

TEST_F(LeaseTest, AcquireGrantsLeaseUntilNowPlusTtl) {
  const absl::Time now = clock_.Now();
  absl::StatusOr<LeaseGrant> grant = device_->AcquireLease("alice", absl::Seconds(10));
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_FALSE(grant->lease_id.empty());
  EXPECT_EQ(grant->holder, "alice");
  EXPECT_EQ(grant->expire_time, now + absl::Seconds(10));
  EXPECT_EQ(device_->view().Read().lease().holder(), "alice");
}

TEST_F(LeaseTest, RenewExtendsExpiryFromNow) {
  const std::string id = Lease(absl::Seconds(10));
  clock_.Advance(absl::Seconds(5));
  absl::StatusOr<LeaseGrant> grant = device_->RenewLease(id, absl::Seconds(10));
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_EQ(grant->lease_id, id);
  EXPECT_EQ(grant->expire_time, clock_.Now() + absl::Seconds(10));
}

TEST_F(LeaseTest, ReleaseFreesDeviceForAnotherHolder) {
  const std::string id = Lease();
  ASSERT_TRUE(device_->ReleaseLease(id).ok());
  EXPECT_FALSE(device_->view().Read().has_lease());
  EXPECT_TRUE(device_->AcquireLease("bob", absl::Seconds(5)).ok());
  EXPECT_THAT(device_->Configure(id, PenSettings(1, 100), false).status(),
              HasReason(v1::ERROR_REASON_LEASE_MISMATCH));
}

TEST_F(LeaseTest, TtlBoundsOfOneAndSixtySecondsAreAccepted) {
  absl::StatusOr<LeaseGrant> one = device_->AcquireLease("alice", absl::Seconds(1));
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_TRUE(device_->ReleaseLease(one->lease_id).ok());
  EXPECT_TRUE(device_->AcquireLease("alice", absl::Seconds(60)).ok());
}

TEST_F(LeaseTest, TtlBelowOneSecondIsRejected) {
  absl::StatusOr<LeaseGrant> grant = device_->AcquireLease("alice", absl::Milliseconds(500));
  EXPECT_EQ(grant.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(grant.status(), HasReason(v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolationsOf(grant.status()), ElementsAre(Field(&FieldViolation::field, "ttl_s")));
}

TEST_F(LeaseTest, TtlAboveSixtySecondsIsRejected) {
  absl::StatusOr<LeaseGrant> grant = device_->AcquireLease("alice", absl::Seconds(61));
  EXPECT_THAT(grant.status(), HasReason(v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolationsOf(grant.status()), ElementsAre(Field(&FieldViolation::field, "ttl_s")));
}

TEST_F(LeaseTest, RenewWithTtlOutOfBoundsIsRejected) {
  const std::string id = Lease();
  absl::StatusOr<LeaseGrant> grant = device_->RenewLease(id, absl::Seconds(61));
  EXPECT_THAT(grant.status(), HasReason(v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolationsOf(grant.status()), ElementsAre(Field(&FieldViolation::field, "ttl_s")));
}

TEST_F(LeaseTest, EmptyHolderIsRejected) {
  absl::StatusOr<LeaseGrant> grant = device_->AcquireLease("", absl::Seconds(10));
  EXPECT_THAT(grant.status(), HasReason(v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolationsOf(grant.status()), ElementsAre(Field(&FieldViolation::field, "holder")));
}

TEST_F(LeaseTest, SecondHolderGetsLeaseHeldNamingTheHolder) {
  Lease();
  absl::StatusOr<LeaseGrant> grant = device_->AcquireLease("bob", absl::Seconds(10));
  EXPECT_EQ(grant.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(grant.status(), HasReason(v1::ERROR_REASON_LEASE_HELD));
  EXPECT_EQ(MetadataOf(grant.status())["holder"], "tester");
  EXPECT_FALSE(MetadataOf(grant.status())["expire_time"].empty());
}

TEST_F(LeaseTest, MutatingCommandWithoutLeaseIsLeaseRequired) {
  Lease();
  absl::Status status = device_->Start("", "");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_LEASE_REQUIRED));
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(LeaseTest, MutatingCommandWithWrongLeaseIsLeaseMismatch) {
  Lease();
  absl::Status status = device_->Configure("not-the-lease", PenSettings(1, 100), false).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_LEASE_MISMATCH));
}

TEST_F(LeaseTest, MutatingCommandWithExpiredLeaseIsLeaseExpired) {
  const std::string id = Lease(absl::Seconds(2));
  clock_.Advance(absl::Seconds(3));
  absl::Status status = device_->Start(id, "");
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(status, HasReason(v1::ERROR_REASON_LEASE_EXPIRED));
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(LeaseTest, AnotherHolderCanAcquireAfterExpiry) {
  Lease(absl::Seconds(2));
  clock_.Advance(absl::Seconds(2));
  absl::StatusOr<LeaseGrant> grant = device_->AcquireLease("bob", absl::Seconds(5));
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_EQ(device_->view().Read().lease().holder(), "bob");
}

TEST_F(LeaseTest, StopNeedsNoLease) {
  DriveTo(v1::DEVICE_STATE_RUNNING);
  device_->Stop();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(LeaseTest, EmergencyStopNeedsNoLease) {
  DriveTo(v1::DEVICE_STATE_RUNNING);
  device_->EmergencyStop();
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_FALSE(driver_->output_on());
}

TEST_F(LeaseTest, ExpiryWhileRunningSwitchesOutputOffAtExpiryTime) {
  const absl::Time expiry = clock_.Now() + absl::Seconds(2);
  ASSERT_TRUE(device_->Start(Lease(absl::Seconds(2)), "").ok());
  Run(absl::Milliseconds(2100));
  EXPECT_FALSE(driver_->output_on());
  ASSERT_FALSE(driver_->output_log().empty());
  EXPECT_EQ(driver_->output_log().back(), std::make_pair(expiry, false));
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(LeaseTest, ExpiryBetweenTicksSwitchesOutputOffAtTheNextTick) {
  const absl::Time expiry = clock_.Now() + absl::Seconds(2);
  ASSERT_TRUE(device_->Start(Lease(absl::Seconds(2)), "").ok());
  Run(absl::Milliseconds(5), absl::Milliseconds(5));  // later ticks straddle the expiry
  Run(absl::Milliseconds(2100));
  ASSERT_FALSE(driver_->output_log().empty());
  const auto [off_at, on] = driver_->output_log().back();
  EXPECT_FALSE(on);
  EXPECT_GE(off_at, expiry);
  EXPECT_LT(off_at, expiry + absl::Milliseconds(10));
}

TEST_F(LeaseTest, ExpiryEmitsLeaseExpiredEvent) {
  Events();
  Lease(absl::Seconds(2));
  Run(absl::Milliseconds(2010));
  EXPECT_EQ(CountEvents(v1::DEVICE_EVENT_TYPE_LEASE_EXPIRED), 1u);
  EXPECT_FALSE(device_->view().Read().has_lease());
}

TEST_F(LeaseTest, ExpiryDuringRunEndsRunWithLeaseExpiredAndExactLedger) {
  absl::StatusOr<RunPtr> run = device_->StartRun(Lease(absl::Seconds(2)), {Step(1.0, 100, 10)}, "");
  ASSERT_TRUE(run.ok()) << run.status();
  Run(absl::Seconds(3));
  RunPtr ended = runs_.Get((*run)->name());
  ASSERT_NE(ended, nullptr);
  EXPECT_EQ(ended->state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(ended->end_reason(), v1::RUN_END_REASON_LEASE_EXPIRED);
  EXPECT_EQ(ended->ledger().output_on_s(), 2.0);
  EXPECT_EQ(ended->ledger().strokes_delivered(), 200u);
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(LeaseTest, ExpiryWhilePausedEndsRunAndIdles) {
  absl::StatusOr<RunPtr> run = device_->StartRun(Lease(absl::Seconds(2)), {Step(1.0, 100, 10)}, "");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_TRUE(device_->Pause(lease_).ok());
  Run(absl::Seconds(3));
  EXPECT_EQ(runs_.Get((*run)->name())->end_reason(), v1::RUN_END_REASON_LEASE_EXPIRED);
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(LeaseTest, RenewingBeforeExpiryKeepsDeviceRunning) {
  ASSERT_TRUE(device_->Start(Lease(absl::Seconds(2)), "").ok());
  for (int i = 0; i < 5; ++i) {
    Run(absl::Milliseconds(1500));
    ASSERT_TRUE(device_->RenewLease(lease_, absl::Seconds(2)).ok());
  }
  EXPECT_EQ(device_->state(), v1::DEVICE_STATE_RUNNING);
  EXPECT_TRUE(driver_->output_on());
  EXPECT_EQ(driver_->output_log().size(), 1u) << "output never switched off";
}

}  // namespace
}  // namespace derma::testing
