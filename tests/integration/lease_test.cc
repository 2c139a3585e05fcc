// Leases through the API: two clients contending for one device, expiry, renewal, and the
// dead-man switch (a lease expiring while the device runs stops the output at the exact expiry
// time and ends the run with LEASE_EXPIRED).
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::Contains;
using ::testing::Pair;
using Stub = v1::DeviceControl::Stub;
using grpc::StatusCode;

using LeaseTest = ServerFixture;

grpc::Status Acquire(Stub& stub, const std::string& name, const std::string& holder, double ttl_s,
                     v1::Lease* lease) {
  v1::AcquireLeaseRequest request;
  request.set_name(name);
  request.set_holder(holder);
  request.set_ttl_s(ttl_s);
  v1::AcquireLeaseResponse response;
  grpc::Status status = Invoke(stub, &Stub::AcquireLease, request, &response);
  if (lease != nullptr) *lease = response.lease();
  return status;
}

grpc::Status Renew(Stub& stub, const std::string& name, const std::string& lease_id, double ttl_s) {
  v1::RenewLeaseRequest request;
  request.set_name(name);
  request.set_lease_id(lease_id);
  request.set_ttl_s(ttl_s);
  v1::RenewLeaseResponse response;
  return Invoke(stub, &Stub::RenewLease, request, &response);
}

grpc::Status Release(Stub& stub, const std::string& name, const std::string& lease_id) {
  v1::ReleaseLeaseRequest request;
  request.set_name(name);
  request.set_lease_id(lease_id);
  v1::ReleaseLeaseResponse response;
  return Invoke(stub, &Stub::ReleaseLease, request, &response);
}

grpc::Status ConfigureWith(Stub& stub, const std::string& name, const std::string& lease_id) {
  v1::ConfigureRequest request;
  request.set_name(name);
  request.set_lease_id(lease_id);
  *request.mutable_settings() = PenSettings(1.0, 100);
  v1::ConfigureResponse response;
  return Invoke(stub, &Stub::Configure, request, &response);
}

TEST_F(LeaseTest, SecondClientGetsLeaseHeldUntilTheFirstReleases) {
  Client bob = NewClient();
  v1::Lease alice_lease;
  ASSERT_THAT(Acquire(*control_, kPen, "alice", 30, &alice_lease), IsOk());

  const grpc::Status held = Acquire(*bob.control, kPen, "bob", 30, nullptr);
  EXPECT_THAT(held, IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_HELD));
  EXPECT_THAT(MetadataOf(held), Contains(Pair("holder", "alice")));

  ASSERT_THAT(Release(*control_, kPen, alice_lease.lease_id()), IsOk());
  v1::Lease bob_lease;
  ASSERT_THAT(Acquire(*bob.control, kPen, "bob", 30, &bob_lease), IsOk());
  EXPECT_NE(bob_lease.lease_id(), alice_lease.lease_id());
  EXPECT_EQ(GetDevice(kPen).lease().holder(), "bob");
  EXPECT_THAT(ConfigureWith(*bob.control, kPen, bob_lease.lease_id()), IsOk());
}

TEST_F(LeaseTest, ReleasedLeaseIdIsAMismatchOnceAnotherClientHoldsTheDevice) {
  Client bob = NewClient();
  v1::Lease alice_lease, bob_lease;
  ASSERT_THAT(Acquire(*control_, kPen, "alice", 30, &alice_lease), IsOk());
  ASSERT_THAT(Release(*control_, kPen, alice_lease.lease_id()), IsOk());
  ASSERT_THAT(Acquire(*bob.control, kPen, "bob", 30, &bob_lease), IsOk());

  const std::string stale = alice_lease.lease_id();
  EXPECT_THAT(ConfigureWith(*control_, kPen, stale),
              IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_MISMATCH));
  EXPECT_THAT(Renew(*control_, kPen, stale, 30),
              IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_MISMATCH));
  EXPECT_THAT(Release(*control_, kPen, stale),
              IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_MISMATCH));
  EXPECT_EQ(GetDevice(kPen).lease().holder(), "bob");  // nothing the stale id did stuck
}

TEST_F(LeaseTest, ExpiredLeaseFreesTheDeviceAndItsIdReportsExpired) {
  Client bob = NewClient();
  v1::Lease alice_lease;
  ASSERT_THAT(Acquire(*control_, kPen, "alice", 2, &alice_lease), IsOk());
  Advance(1.9);
  EXPECT_THAT(Acquire(*bob.control, kPen, "bob", 30, nullptr),
              IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_HELD));
  Advance(0.2);
  EXPECT_FALSE(GetDevice(kPen).has_lease());
  ASSERT_THAT(Acquire(*bob.control, kPen, "bob", 30, nullptr), IsOk());
  EXPECT_THAT(ConfigureWith(*control_, kPen, alice_lease.lease_id()),
              IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_EXPIRED));
  EXPECT_THAT(Renew(*control_, kPen, alice_lease.lease_id(), 30),
              IsError(StatusCode::ABORTED, v1::ERROR_REASON_LEASE_EXPIRED));
}

TEST_F(LeaseTest, TtlMustBeOneToSixtySeconds) {
  for (double ttl : {0.5, 60.5, -1.0}) {
    const grpc::Status status = Acquire(*control_, kPen, "script", ttl, nullptr);
    EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD))
        << ttl;
    EXPECT_THAT(status, HasViolation("ttl_s")) << ttl;
  }
  v1::Lease lease;
  ASSERT_THAT(Acquire(*control_, kPen, "script", 60, &lease), IsOk());
  EXPECT_THAT(Renew(*control_, kPen, lease.lease_id(), 61),
              IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(Renew(*control_, kPen, lease.lease_id(), 1), IsOk());
  EXPECT_THAT(Acquire(*control_, kStim, "script", 1, nullptr), IsOk());
}

TEST_F(LeaseTest, DeadManSwitchStopsTheRunAtTheExactExpiryTime) {
  std::unique_ptr<TelemetryReader> telemetry = StreamTelemetry({kPen});
  TelemetryLog log;
  ASSERT_TRUE(ReadOpening(*telemetry, 1, log));
  Advance(1);
  v1::Lease lease;
  ASSERT_THAT(Acquire(*control_, kPen, "script", 2, &lease), IsOk());
  const int64_t expire_us = Micros(lease.expire_time());
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease.lease_id(), {Step(60, PenSettings(1.0, 100))}, &run), IsOk());
  Advance(1.5);
  ASSERT_TRUE(GetDevice(kPen).latest_sample().output_on());
  Advance(3.5);  // the lease expires 0.5 s into this

  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_LEASE_EXPIRED);
  EXPECT_EQ(Micros(ended.end_time()), expire_us);
  EXPECT_DOUBLE_EQ(ended.ledger().output_on_s(), 2.0);
  const v1::Device device = GetDevice(kPen);
  EXPECT_EQ(device.state(), v1::DEVICE_STATE_IDLE);
  EXPECT_FALSE(device.has_lease());
  EXPECT_TRUE(device.active_run().empty());
  EXPECT_FALSE(device.latest_sample().output_on());

  // Telemetry: the lease expiry, the run's end and the stop all at the expiry time, and no
  // sample after it with the output on.
  const uint64_t last_seq = device.latest_sample().sequence();
  DeviceTelemetry& pen = log.device(kPen);
  ASSERT_TRUE(ReadUntil(*telemetry, log, [&] { return pen.next_sample > last_seq; }));
  bool lease_event = false, run_ended = false, stopped = false;
  for (const v1::DeviceEvent& e : pen.events) {
    if (e.type() == v1::DEVICE_EVENT_TYPE_LEASE_EXPIRED) {
      lease_event = true;
      EXPECT_EQ(e.device_time_us(), expire_us);
    }
    if (e.type() == v1::DEVICE_EVENT_TYPE_RUN_ENDED) {
      run_ended = true;
      EXPECT_EQ(e.run(), run.name());
      EXPECT_EQ(e.device_time_us(), expire_us);
    }
    if (e.type() == v1::DEVICE_EVENT_TYPE_STATE_CHANGED &&
        e.from_state() == v1::DEVICE_STATE_RUNNING) {
      stopped = true;
      EXPECT_EQ(e.to_state(), v1::DEVICE_STATE_IDLE);
      EXPECT_EQ(e.device_time_us(), expire_us);
    }
  }
  EXPECT_TRUE(lease_event);
  EXPECT_TRUE(run_ended);
  EXPECT_TRUE(stopped);
  for (const v1::TelemetrySample& s : pen.sample_log) {
    if (s.device_time_us() >= expire_us) {
      EXPECT_FALSE(s.output_on()) << "sample " << s.sequence() << " at " << s.device_time_us();
    }
  }
  EXPECT_THAT(pen.errors, ::testing::IsEmpty());
}

TEST_F(LeaseTest, DeadManSwitchAlsoEndsAPausedRun) {
  v1::Lease lease;
  ASSERT_THAT(Acquire(*control_, kStim, "script", 3, &lease), IsOk());
  v1::Run run;
  ASSERT_THAT(StartRun(kStim, lease.lease_id(), {Step(60, StimSettings(200))}, &run), IsOk());
  Advance(1);
  v1::PauseRequest pause;
  pause.set_name(kStim);
  pause.set_lease_id(lease.lease_id());
  v1::PauseResponse paused;
  ASSERT_THAT(Invoke(*control_, &Stub::Pause, pause, &paused), IsOk());
  Advance(5);
  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_LEASE_EXPIRED);
  EXPECT_EQ(Micros(ended.end_time()), Micros(lease.expire_time()));
  EXPECT_DOUBLE_EQ(ended.ledger().output_on_s(), 1.0);
  EXPECT_EQ(GetDevice(kStim).state(), v1::DEVICE_STATE_IDLE);
}

TEST_F(LeaseTest, RenewingBeforeExpiryKeepsARunGoingToCompletion) {
  v1::Lease lease;
  ASSERT_THAT(Acquire(*control_, kPen, "script", 2, &lease), IsOk());
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease.lease_id(), {Step(5)}, &run), IsOk());
  for (int i = 0; i < 4; ++i) {
    Advance(1.5);
    ASSERT_THAT(Renew(*control_, kPen, lease.lease_id(), 2), IsOk()) << "renewal " << i;
  }
  const v1::Run done = GetRun(run.name());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.end_reason(), v1::RUN_END_REASON_COMPLETED);
}

}  // namespace
}  // namespace derma::testing
