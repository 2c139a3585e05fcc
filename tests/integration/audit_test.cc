// The audit trail through the public API: every command recorded with its principal, request
// summary and result, durable before the client sees the answer; device events, emergency
// stops, leases and runs recorded; ListAuditEvents filters and pages; run history survives a
// restart and a run the previous process never ended is listed INTERRUPTED; an unwritable
// trail refuses commands that could switch an output on but never stops a device being made
// safe; refused calls are recorded.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "derma/v1/audit.pb.h"
#include "google/protobuf/util/time_util.h"
#include "plugin/audit/audit_store.h"
#include "plugin/audit/audit_trail.h"
#include "plugin/auth/credentials_store.h"
#include "plugin/auth/policy.h"
#include "tests/audit/sqlite_write_lock.h"
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// One unary call, its response discarded.
template <typename Stub, typename Request, typename Response>
grpc::Status Send(Stub& stub,
                  grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                  const Request& request) {
  Response response;
  return Invoke(stub, method, request, &response);
}

// A fresh directory for one test's audit database (and tokens file).
std::string TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "derma-audit-XXXXXX").string();
  return mkdtemp(pattern.data()) == nullptr ? "" : pattern;
}

class AuditTrailTest : public ServerFixture {
 protected:
  AuditTrailTest() : dir_(TempDir()) {}
  ~AuditTrailTest() override { std::filesystem::remove_all(dir_); }

  PluginOptions Options() const override {
    PluginOptions options;
    options.audit_db = db_path();
    return options;
  }
  std::string db_path() const { return dir_ + "/audit.db"; }

  // Stops the plugin and server (gracefully) and starts them again on the same database.
  void Restart() {
    TearDown();
    SetUp();
  }

  std::vector<v1::AuditEvent> List(const v1::ListAuditEventsRequest& request,
                                   std::string* next_page_token = nullptr) {
    v1::ListAuditEventsResponse response;
    EXPECT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::ListAuditEvents, request, &response),
                IsOk());
    if (next_page_token != nullptr) *next_page_token = response.next_page_token();
    return {response.events().begin(), response.events().end()};
  }
  std::vector<v1::AuditEvent> ListAll() { return List(v1::ListAuditEventsRequest()); }

  // Newest record of `method` (a full gRPC method name), or a record with id 0.
  v1::AuditEvent Newest(const std::vector<v1::AuditEvent>& events, const std::string& method) {
    for (const v1::AuditEvent& event : events) {
      if (event.method() == method) return event;
    }
    return {};
  }

  const std::string dir_;
};

TEST_F(AuditTrailTest, CommandRecordedWithPrincipalDeviceSummaryAndResultButNoLeaseId) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(Configure(kPen, lease, PenSettings(0.5, 100)), IsOk());
  const v1::AuditEvent record = Newest(ListAll(), "/derma.v1.DeviceControl/Configure");
  EXPECT_EQ(record.kind(), v1::AUDIT_EVENT_KIND_COMMAND);
  EXPECT_EQ(record.principal(), "local");  // no tokens file: every caller is "local"
  EXPECT_EQ(record.device(), kPen);
  EXPECT_EQ(record.code(), 0);
  EXPECT_EQ(record.reason(), "");
  EXPECT_THAT(record.summary(), HasSubstr("needle_depth_mm: 0.5"));
  EXPECT_THAT(record.summary(), Not(HasSubstr(lease)));
  EXPECT_GT(record.time().seconds(), 0);
}

TEST_F(AuditTrailTest, RefusedCommandRecordedWithCodeAndReason) {
  v1::StartRequest request;
  request.set_name(kPen);
  request.set_lease_id("not-a-lease");
  v1::StartResponse response;
  const grpc::Status status =
      Invoke(*control_, &v1::DeviceControl::Stub::Start, request, &response);
  ASSERT_FALSE(status.ok());
  const v1::AuditEvent record = Newest(ListAll(), "/derma.v1.DeviceControl/Start");
  EXPECT_EQ(record.code(), static_cast<int>(status.error_code()));
  EXPECT_EQ(record.reason(), ReasonOf(status));
  EXPECT_EQ(record.detail(), status.error_message());
}

TEST_F(AuditTrailTest, AcknowledgedCommandIsAlreadyInTheDatabaseFile) {
  const std::string lease = Lease(kStim);
  ASSERT_THAT(Configure(kStim, lease, StimSettings(200)), IsOk());
  // A second connection to the file, opened after the answer: the record is there.
  absl::StatusOr<std::unique_ptr<AuditStore>> reader = AuditStore::Open(db_path());
  ASSERT_TRUE(reader.ok()) << reader.status();
  absl::StatusOr<AuditEventPage> page = (*reader)->ListEvents({.device = kStim}, 10, "");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_FALSE(page->events.empty());
  EXPECT_EQ(page->events.front().method, "/derma.v1.DeviceControl/Configure");
}

TEST_F(AuditTrailTest, FaultStateChangeLeaseExpiryAndEmergencyStopRecorded) {
  const std::string lease = Lease(kPen, /*ttl_s=*/5);
  ASSERT_THAT(Configure(kPen, lease, PenSettings(0.5, 100)), IsOk());
  ASSERT_THAT(Start(kPen, lease), IsOk());
  ASSERT_THAT(Inject(kPen, v1::FAULT_KIND_OVER_TEMPERATURE), IsOk());
  Advance(6);  // the lease expires
  v1::EmergencyStopRequest estop;
  estop.set_all_devices(true);
  v1::EmergencyStopResponse stopped;
  ASSERT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::EmergencyStop, estop, &stopped), IsOk());

  v1::ListAuditEventsRequest request;
  request.set_device(kPen);
  const std::vector<v1::AuditEvent> events = List(request);
  auto has = [&](v1::AuditEventKind kind, const std::string& text) {
    for (const v1::AuditEvent& e : events) {
      if (e.kind() == kind && absl::StrContains(e.detail(), text)) return true;
    }
    return false;
  };
  EXPECT_TRUE(has(v1::AUDIT_EVENT_KIND_STATE_CHANGE, "IDLE -> RUNNING"));
  EXPECT_TRUE(has(v1::AUDIT_EVENT_KIND_FAULT, "fault raised OVER_TEMPERATURE"));
  EXPECT_TRUE(has(v1::AUDIT_EVENT_KIND_STATE_CHANGE, "RUNNING -> FAULT"));
  EXPECT_TRUE(has(v1::AUDIT_EVENT_KIND_LEASE, "lease expired"));
  EXPECT_TRUE(has(v1::AUDIT_EVENT_KIND_ESTOP, "-> ESTOPPED"));
  // EmergencyStop on every device is one command record without a device.
  const v1::AuditEvent command = Newest(ListAll(), "/derma.v1.DeviceControl/EmergencyStop");
  EXPECT_EQ(command.kind(), v1::AUDIT_EVENT_KIND_COMMAND);
  EXPECT_EQ(command.device(), "");
  EXPECT_THAT(command.summary(), HasSubstr("all_devices: true"));
}

// Every call a client sends, to every mutating DeviceControl method and to the simulator, is one
// COMMAND record naming its method (whatever it did: leases, emergency stops and runs too), while
// what the devices raise on their own keeps its kind and names no method.
TEST_F(AuditTrailTest, EveryCallAClientSendsIsACommandRecordWithItsMethod) {
  using Stub = v1::DeviceControl::Stub;
  const std::string lease = Lease(kPen);
  v1::RenewLeaseRequest renew;
  renew.set_name(kPen);
  renew.set_lease_id(lease);
  renew.set_ttl_s(60);
  ASSERT_THAT(Send(*control_, &Stub::RenewLease, renew), IsOk());
  ASSERT_THAT(Configure(kPen, lease, PenSettings(0.5, 100)), IsOk());
  ASSERT_THAT(Start(kPen, lease), IsOk());
  v1::PauseRequest pause;
  pause.set_name(kPen);
  pause.set_lease_id(lease);
  ASSERT_THAT(Send(*control_, &Stub::Pause, pause), IsOk());
  v1::ResumeRequest resume;
  resume.set_name(kPen);
  resume.set_lease_id(lease);
  ASSERT_THAT(Send(*control_, &Stub::Resume, resume), IsOk());
  v1::StopRequest stop;
  stop.set_name(kPen);
  ASSERT_THAT(Send(*control_, &Stub::Stop, stop), IsOk());
  v1::EmergencyStopRequest estop;
  estop.set_name(kPen);
  ASSERT_THAT(Send(*control_, &Stub::EmergencyStop, estop), IsOk());
  v1::ResetEmergencyStopRequest reset_estop;
  reset_estop.set_name(kPen);
  reset_estop.set_lease_id(lease);
  ASSERT_THAT(Send(*control_, &Stub::ResetEmergencyStop, reset_estop), IsOk());
  v1::ResetFaultRequest reset_fault;  // refused (no fault), and still a command record
  reset_fault.set_name(kPen);
  reset_fault.set_lease_id(lease);
  ASSERT_FALSE(Send(*control_, &Stub::ResetFault, reset_fault).ok());
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(10, PenSettings(0.5, 100))}, &run), IsOk());
  Advance(1);
  v1::CancelRunRequest cancel;
  cancel.set_name(run.name());
  cancel.set_lease_id(lease);
  ASSERT_THAT(Send(*control_, &Stub::CancelRun, cancel), IsOk());
  v1::EmergencyStopRequest estop_all;
  estop_all.set_all_devices(true);
  ASSERT_THAT(Send(*control_, &Stub::EmergencyStop, estop_all), IsOk());
  v1::ReleaseLeaseRequest release;
  release.set_name(kPen);
  release.set_lease_id(lease);
  ASSERT_THAT(Send(*control_, &Stub::ReleaseLease, release), IsOk());

  const std::set<std::string> sent = {
      "/derma.v1.DeviceControl/AcquireLease",  "/derma.v1.DeviceControl/RenewLease",
      "/derma.v1.DeviceControl/ReleaseLease",  "/derma.v1.DeviceControl/Configure",
      "/derma.v1.DeviceControl/Start",         "/derma.v1.DeviceControl/Pause",
      "/derma.v1.DeviceControl/Resume",        "/derma.v1.DeviceControl/Stop",
      "/derma.v1.DeviceControl/EmergencyStop", "/derma.v1.DeviceControl/ResetEmergencyStop",
      "/derma.v1.DeviceControl/ResetFault",    "/derma.v1.DeviceControl/StartRun",
      "/derma.v1.DeviceControl/CancelRun",     "/derma.sim.v1.Simulator/AdvanceClock"};
  // The test sends every DeviceControl method that is not a read.
  const std::set<std::string> reads = {
      "/derma.v1.DeviceControl/ListDevices",     "/derma.v1.DeviceControl/GetDevice",
      "/derma.v1.DeviceControl/GetRun",          "/derma.v1.DeviceControl/ListRuns",
      "/derma.v1.DeviceControl/WatchRun",        "/derma.v1.DeviceControl/StreamTelemetry",
      "/derma.v1.DeviceControl/ListAuditEvents", "/derma.v1.DeviceControl/VerifyAuditTrail"};
  for (const std::string& method : auth::KnownMethods()) {
    if (absl::StartsWith(method, "/derma.v1.DeviceControl/") && !reads.contains(method)) {
      EXPECT_TRUE(sent.contains(method)) << method << " is not sent by this test";
    }
  }

  v1::ListAuditEventsRequest request;
  request.set_page_size(1000);
  const std::vector<v1::AuditEvent> events = List(request);
  std::map<std::string, int> commands;  // method → records
  bool run_started = false, estopped = false;
  for (const v1::AuditEvent& e : events) {
    if (e.method().empty()) {
      EXPECT_NE(e.kind(), v1::AUDIT_EVENT_KIND_COMMAND) << e.ShortDebugString();
      run_started |= e.kind() == v1::AUDIT_EVENT_KIND_RUN && e.summary() == "RUN_STARTED";
      estopped |=
          e.kind() == v1::AUDIT_EVENT_KIND_ESTOP && absl::StrContains(e.detail(), "-> ESTOPPED");
      continue;
    }
    EXPECT_EQ(e.kind(), v1::AUDIT_EVENT_KIND_COMMAND) << e.ShortDebugString();
    EXPECT_EQ(e.principal(), "local") << e.method();
    ++commands[e.method()];
  }
  for (const std::string& method : sent) EXPECT_GE(commands[method], 1) << method;
  EXPECT_EQ(commands["/derma.v1.DeviceControl/EmergencyStop"], 2);
  EXPECT_TRUE(run_started);
  EXPECT_TRUE(estopped);
}

TEST_F(AuditTrailTest, DeviceEventsAreWrittenBeforeTheCommandThatCausedThem) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(Configure(kPen, lease, PenSettings(0.5, 100)), IsOk());
  ASSERT_THAT(Start(kPen, lease), IsOk());
  const std::vector<v1::AuditEvent> events = ListAll();  // newest first
  const v1::AuditEvent start = Newest(events, "/derma.v1.DeviceControl/Start");
  int64_t running_id = 0;
  for (const v1::AuditEvent& e : events) {
    if (absl::StrContains(e.detail(), "IDLE -> RUNNING")) running_id = e.id();
  }
  ASSERT_GT(running_id, 0);
  EXPECT_LT(running_id, start.id());
}

TEST_F(AuditTrailTest, ListAuditEventsFiltersByDevicePrincipalAndTime) {
  Lease(kPen);
  const int64_t between = absl::ToUnixMicros(absl::Now());  // (protobuf's clock has 1 s steps)
  Lease(kStim);
  v1::ListAuditEventsRequest by_device;
  by_device.set_device(kStim);
  for (const v1::AuditEvent& e : List(by_device)) EXPECT_EQ(e.device(), kStim);
  EXPECT_FALSE(List(by_device).empty());

  v1::ListAuditEventsRequest by_principal;
  by_principal.set_principal("nobody");
  EXPECT_TRUE(List(by_principal).empty());
  by_principal.set_principal("local");
  EXPECT_EQ(List(by_principal).size(), 2u);

  auto devices_of = [](const std::vector<v1::AuditEvent>& events) {
    std::set<std::string> devices;
    for (const v1::AuditEvent& e : events) devices.insert(e.device());
    return devices;
  };
  v1::ListAuditEventsRequest after;
  *after.mutable_start_time() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(between);
  EXPECT_EQ(devices_of(List(after)), std::set<std::string>{kStim});
  v1::ListAuditEventsRequest before;
  *before.mutable_end_time() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(between);
  EXPECT_EQ(devices_of(List(before)), std::set<std::string>{kPen});
}

TEST_F(AuditTrailTest, ListAuditEventsPagesNewestFirstWithoutRepeats) {
  for (const char* device : {kPen, kPen2, kStim, kStim2}) Lease(device);
  std::vector<int64_t> ids;
  v1::ListAuditEventsRequest request;
  request.set_page_size(3);
  std::string token;
  do {
    request.set_page_token(token);
    for (const v1::AuditEvent& e : List(request, &token)) ids.push_back(e.id());
  } while (!token.empty());
  ASSERT_EQ(ids.size(), ListAll().size());
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_GT(ids[i - 1], ids[i]);
}

TEST_F(AuditTrailTest, ListAuditEventsRejectsBadFiltersNamingTheField) {
  v1::ListAuditEventsResponse response;
  v1::ListAuditEventsRequest bad_device;
  bad_device.set_device("pen-1");
  EXPECT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::ListAuditEvents, bad_device, &response),
              IsError(grpc::StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  v1::ListAuditEventsRequest bad_range;
  bad_range.mutable_start_time()->set_seconds(2000);
  bad_range.mutable_end_time()->set_seconds(1000);
  const grpc::Status range =
      Invoke(*control_, &v1::DeviceControl::Stub::ListAuditEvents, bad_range, &response);
  EXPECT_THAT(range, IsError(grpc::StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(range.error_message(), HasSubstr("end_time"));
  v1::ListAuditEventsRequest bad_token;
  bad_token.set_page_token("xyz");
  EXPECT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::ListAuditEvents, bad_token, &response),
              IsError(grpc::StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  v1::ListAuditEventsRequest bad_size;
  bad_size.set_page_size(-1);
  EXPECT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::ListAuditEvents, bad_size, &response),
              IsError(grpc::StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
}

TEST_F(AuditTrailTest, RunHistoryWithLedgerSurvivesARestart) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(2, PenSettings(0.5, 100))}, &run), IsOk());
  Advance(3);
  const v1::Run finished = GetRun(run.name());
  ASSERT_EQ(finished.state(), v1::RUN_STATE_SUCCEEDED);

  Restart();
  v1::ListRunsRequest request;
  request.set_parent(kPen);
  v1::ListRunsResponse response;
  ASSERT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::ListRuns, request, &response), IsOk());
  ASSERT_EQ(response.runs_size(), 1);
  EXPECT_EQ(response.runs(0).name(), run.name());
  EXPECT_EQ(response.runs(0).state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(response.runs(0).ledger().strokes_delivered(), finished.ledger().strokes_delivered());
  EXPECT_GT(response.runs(0).ledger().strokes_delivered(), 0u);
  EXPECT_EQ(GetRun(run.name()).ledger().strokes_delivered(), finished.ledger().strokes_delivered());
}

TEST_F(AuditTrailTest, RunActiveAtAGracefulStopIsRecordedEndedByShutdown) {
  const std::string lease = Lease(kStim);
  v1::Run run;
  ASSERT_THAT(StartRun(kStim, lease, {Step(60, StimSettings(200))}, &run), IsOk());
  Advance(1);
  Restart();
  const v1::Run stored = GetRun(run.name());
  EXPECT_EQ(stored.state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(stored.end_reason(), v1::RUN_END_REASON_SHUTDOWN);
}

TEST_F(AuditTrailTest, RunNeverEndedByAPreviousProcessIsListedInterrupted) {
  // What a killed process leaves behind: a run recorded as RUNNING, never ended.
  TearDown();
  {
    absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(db_path());
    ASSERT_TRUE(store.ok()) << store.status();
    v1::Run run;
    run.set_name(std::string(kPen) + "/runs/killed");
    run.set_device(kPen);
    run.set_state(v1::RUN_STATE_RUNNING);
    run.mutable_start_time()->set_seconds(1000);
    run.mutable_ledger()->set_strokes_delivered(42);
    ASSERT_TRUE((*store)->RecordRun(run).ok());
  }
  SetUp();
  const v1::Run stored = GetRun(std::string(kPen) + "/runs/killed");
  EXPECT_EQ(stored.state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(stored.end_reason(), v1::RUN_END_REASON_INTERRUPTED);
  EXPECT_EQ(stored.ledger().strokes_delivered(), 42u);
  EXPECT_TRUE(stored.has_end_time());
  bool recorded = false;
  for (const v1::AuditEvent& e : ListAll()) {
    recorded |=
        e.kind() == v1::AUDIT_EVENT_KIND_RUN && absl::StrContains(e.detail(), "INTERRUPTED");
  }
  EXPECT_TRUE(recorded);
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_IDLE);  // outputs start off
}

// A killed process leaves the run as the trail last recorded it. On the virtual clock (device
// time 2026-01-01, far from the server's wall time) the INTERRUPTED run ends at the last device
// time recorded for it, while the record of the interruption carries the restart's server time.
TEST_F(AuditTrailTest, InterruptedRunEndsAtItsLastRecordedDeviceTimeItsRecordAtServerTime) {
  const std::string lease = Lease(kPen);
  v1::Run run;
  ASSERT_THAT(StartRun(kPen, lease, {Step(10, PenSettings(0.5, 100)), Step(60)}, &run), IsOk());
  Advance(15);  // into the second step, which the trail records as it begins
  v1::Run recorded;
  {
    absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(db_path());
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<v1::Run> stored = (*store)->GetRun(run.name());
    ASSERT_TRUE(stored.ok()) << stored.status();
    recorded = *stored;
  }
  ASSERT_EQ(recorded.current_step(), 1u);
  ASSERT_FALSE(recorded.has_end_time());
  TearDown();  // a graceful stop would end it SHUTDOWN: put back what a SIGKILL leaves
  {
    absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(db_path());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->RecordRun(recorded).ok());
  }
  const int64_t restart_us = absl::ToUnixMicros(absl::Now());
  SetUp();

  const v1::Run ended = GetRun(run.name());
  EXPECT_EQ(ended.end_reason(), v1::RUN_END_REASON_INTERRUPTED);
  EXPECT_EQ(Micros(ended.start_time()), Micros(run.start_time()));
  EXPECT_NEAR(Micros(ended.end_time()),
              Micros(run.start_time()) + recorded.ledger().output_on_s() * 1e6, 1);
  EXPECT_GE(Micros(ended.end_time()) - Micros(run.start_time()), 10'000'000);
  EXPECT_LE(Micros(ended.end_time()) - Micros(run.start_time()), 15'000'000);
  v1::AuditEvent interruption;
  for (const v1::AuditEvent& e : ListAll()) {
    if (e.kind() == v1::AUDIT_EVENT_KIND_RUN && absl::StrContains(e.detail(), "INTERRUPTED")) {
      interruption = e;
    }
  }
  ASSERT_GT(interruption.id(), 0);
  EXPECT_GE(Micros(interruption.time()), restart_us);
}

TEST_F(AuditTrailTest, UnwritableTrailRefusesCommandsButStillStopsDevices) {
  const std::string lease = Lease(kPen);
  ASSERT_THAT(Configure(kPen, lease, PenSettings(0.5, 100)), IsOk());
  SqliteWriteLock lock(db_path());  // every write now fails after SQLite's 1 s busy timeout

  // Carried out, but not acknowledged as if recorded.
  const grpc::Status started = Start(kPen, lease);
  EXPECT_THAT(started, IsError(grpc::StatusCode::UNAVAILABLE, v1::ERROR_REASON_AUDIT_UNAVAILABLE));
  EXPECT_EQ(MetadataOf(started)["command_carried_out"], "true");
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_RUNNING);

  // From now on a command that could change a device is not carried out...
  const grpc::Status configure = Configure(kPen, lease, PenSettings(1.0, 100));
  EXPECT_THAT(configure,
              IsError(grpc::StatusCode::UNAVAILABLE, v1::ERROR_REASON_AUDIT_UNAVAILABLE));
  EXPECT_DOUBLE_EQ(GetDevice(kPen).settings().microneedling().needle_depth_mm(), 0.5);

  // ...but a device is always made safe.
  v1::EmergencyStopRequest estop;
  estop.set_name(kPen);
  v1::EmergencyStopResponse response;
  Invoke(*control_, &v1::DeviceControl::Stub::EmergencyStop, estop, &response);
  EXPECT_EQ(GetDevice(kPen).state(), v1::DEVICE_STATE_ESTOPPED);
  EXPECT_FALSE(GetDevice(kPen).latest_sample().output_on());

  lock.Release();
  // The first write that succeeds makes the trail writable again.
  v1::StopRequest stop;
  stop.set_name(kPen);
  v1::StopResponse stopped;
  EXPECT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::Stop, stop, &stopped), IsOk());
  EXPECT_TRUE(plugin_->audit_trail()->writable());
  EXPECT_THAT(Configure(kPen, lease, PenSettings(1.0, 100)),
              IsError(grpc::StatusCode::FAILED_PRECONDITION,
                      v1::ERROR_REASON_ESTOP_LATCHED));  // refused by the device, not the trail
}

class NoAuditTrailTest : public ServerFixture {};

TEST_F(NoAuditTrailTest, ListAuditEventsSaysThereIsNoTrail) {
  v1::ListAuditEventsResponse response;
  EXPECT_THAT(Invoke(*control_, &v1::DeviceControl::Stub::ListAuditEvents,
                     v1::ListAuditEventsRequest(), &response),
              IsError(grpc::StatusCode::FAILED_PRECONDITION, v1::ERROR_REASON_AUDIT_UNAVAILABLE));
}

// With a tokens file: refused calls are recorded, and the trail is for admins only.
class AuditAuthTest : public AuditTrailTest {
 protected:
  PluginOptions Options() const override {
    PluginOptions options = AuditTrailTest::Options();
    const std::string tokens = dir_ + "/tokens";
    std::ofstream(tokens) << "token sha256:" << auth::Sha256Hex("admin-secret") << " root admin\n"
                          << "token sha256:" << auth::Sha256Hex("viewer-secret")
                          << " watcher viewer\n";
    options.tokens_file = tokens;
    return options;
  }

  grpc::Status CallAs(const std::string& token, const v1::ListAuditEventsRequest& request,
                      v1::ListAuditEventsResponse* response) {
    grpc::ClientContext context;
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    return control_->ListAuditEvents(&context, request, response);
  }
  grpc::Status ConfigureAs(const std::string& token) {
    grpc::ClientContext context;
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    v1::ConfigureRequest request;
    request.set_name(kPen);
    v1::ConfigureResponse response;
    return control_->Configure(&context, request, &response);
  }
};

TEST_F(AuditAuthTest, RefusedCallsAreRecordedAsAuthFailuresForAdminsToRead) {
  EXPECT_EQ(ConfigureAs("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ConfigureAs("viewer-secret").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::ListAuditEventsResponse response;
  EXPECT_EQ(CallAs("viewer-secret", {}, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  ASSERT_THAT(CallAs("admin-secret", {}, &response), IsOk());
  int unauthenticated = 0, denied_watcher = 0;
  for (const v1::AuditEvent& e : response.events()) {
    ASSERT_EQ(e.kind(), v1::AUDIT_EVENT_KIND_AUTH_FAILURE);
    if (e.reason() == "UNAUTHENTICATED") ++unauthenticated;
    if (e.reason() == "PERMISSION_DENIED" && e.principal() == "watcher") ++denied_watcher;
  }
  EXPECT_EQ(unauthenticated, 1);
  // The watcher's second refusal (same IP, same reason) is counted, not written yet: it is
  // written with its count when the coalescing interval ends or the service stops.
  EXPECT_EQ(denied_watcher, 1);
}

TEST_F(AuditAuthTest, VerifyAuditTrailIsForAdminsAndReportsTheChain) {
  EXPECT_EQ(ConfigureAs("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::VerifyAuditTrailResponse response;
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer viewer-secret");
    EXPECT_EQ(control_->VerifyAuditTrail(&context, {}, &response).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer admin-secret");
  ASSERT_THAT(control_->VerifyAuditTrail(&context, {}, &response), IsOk());
  EXPECT_TRUE(response.intact()) << response.problem();
  EXPECT_GE(response.chained_records(), 2);  // the two refusals
  EXPECT_EQ(response.head_sha256().size(), 64u);
  grpc::ClientContext bad;
  bad.AddMetadata("authorization", "Bearer admin-secret");
  v1::VerifyAuditTrailRequest request;
  request.set_expected_head("not hex");
  EXPECT_THAT(control_->VerifyAuditTrail(&bad, request, &response),
              IsError(grpc::StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
}

}  // namespace
}  // namespace derma::testing
