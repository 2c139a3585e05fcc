// AuditStore: every field round trips, filters and pages, run history across reopen, durable
// appends in WAL mode, retention by age and by rows, clear errors for files the store must not
// use (garbage, corruption, unwritable directory, newer or foreign schema), concurrent appends.
#include "plugin/audit/audit_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "plugin/errors/errors.h"

namespace derma::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kT0 = 1767225600000000;  // 2026-01-01T00:00:00Z in µs

AuditEvent MakeEvent(int64_t time_us, const std::string& device = "devices/pen-1",
                     const std::string& principal = "alice") {
  AuditEvent event;
  event.time_us = time_us;
  event.principal = principal;
  event.device = device;
  event.kind = v1::AUDIT_EVENT_KIND_COMMAND;
  event.method = "/derma.v1.DeviceControl/Start";
  return event;
}

v1::Run MakeRun(const std::string& device, const std::string& id, int64_t start_s, int64_t end_s) {
  v1::Run run;
  run.set_name(absl::StrCat(device, "/runs/", id));
  run.set_device(device);
  run.mutable_start_time()->set_seconds(start_s);
  if (end_s > 0) run.mutable_end_time()->set_seconds(end_s);
  run.set_state(end_s > 0 ? v1::RUN_STATE_SUCCEEDED : v1::RUN_STATE_RUNNING);
  return run;
}

std::vector<int64_t> TimesOf(const AuditEventPage& page) {
  std::vector<int64_t> out;
  for (const AuditEvent& event : page.events) out.push_back(event.time_us);
  return out;
}

std::vector<std::string> NamesOf(const std::vector<v1::Run>& runs) {
  std::vector<std::string> out;
  for (const v1::Run& run : runs) out.push_back(run.name());
  return out;
}

class AuditStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("audit_", info->name(), "_", getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "audit.db").string();
  }
  void TearDown() override {
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<AuditStore> OpenStore(RetentionOptions retention = {}) {
    absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path_, retention);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Runs `sql` on the file through a connection of its own (as another tool would).
  void RawExec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  std::string RawQuery(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(AuditStoreTest, AppendRoundTripsEveryField) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  AuditEvent event;
  event.time_us = kT0 + 123456;
  event.principal = "CN=lab-robot-1";
  event.device = "devices/stim-2";
  event.kind = v1::AUDIT_EVENT_KIND_AUTH_FAILURE;
  event.method = "/derma.v1.DeviceControl/Configure";
  event.summary = "current_ua=500 frequency_hz=10 ünïcode";
  event.code = 7;
  event.reason = "PERMISSION_DENIED";
  event.detail = std::string("role viewer < operator\0tail", 27);
  absl::StatusOr<int64_t> id = store->Append(event);
  ASSERT_TRUE(id.ok()) << id.status();
  event.id = *id;

  absl::StatusOr<AuditEventPage> page = store->ListEvents({}, 0, "");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->events, ElementsAre(event));
  EXPECT_THAT(page->next_page_token, IsEmpty());

  const v1::AuditEvent proto = AuditEventToProto(page->events[0]);
  EXPECT_EQ(proto.id(), *id);
  EXPECT_EQ(proto.time().seconds(), kT0 / 1000000);
  EXPECT_EQ(proto.time().nanos(), 123456000);
  EXPECT_EQ(proto.kind(), v1::AUDIT_EVENT_KIND_AUTH_FAILURE);
  EXPECT_EQ(proto.code(), 7);
  EXPECT_EQ(proto.reason(), "PERMISSION_DENIED");
  EXPECT_EQ(proto.detail(), event.detail);
}

TEST_F(AuditStoreTest, KindNamesRoundTrip) {
  for (int k = v1::AuditEventKind_MIN; k <= v1::AuditEventKind_MAX; ++k) {
    const auto kind = static_cast<v1::AuditEventKind>(k);
    EXPECT_EQ(AuditKindFromName(AuditKindName(kind)), kind);
  }
  EXPECT_EQ(AuditKindName(v1::AUDIT_EVENT_KIND_STATE_CHANGE), "STATE_CHANGE");
  EXPECT_EQ(AuditKindFromName("NO_SUCH_KIND"), v1::AUDIT_EVENT_KIND_UNSPECIFIED);
}

TEST_F(AuditStoreTest, AppendRejectsUnspecifiedKind) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  AuditEvent event = MakeEvent(kT0);
  event.kind = v1::AUDIT_EVENT_KIND_UNSPECIFIED;
  absl::StatusOr<int64_t> id = store->Append(event);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(id.status()), v1::ERROR_REASON_INVALID_FIELD);
}

TEST_F(AuditStoreTest, AppendBatchWritesAllOrNothing) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->AppendBatch({MakeEvent(kT0), MakeEvent(kT0 + 1), MakeEvent(kT0 + 2)}).ok());
  AuditEvent bad = MakeEvent(kT0 + 3);
  bad.kind = v1::AUDIT_EVENT_KIND_UNSPECIFIED;
  EXPECT_FALSE(store->AppendBatch({MakeEvent(kT0 + 4), bad}).ok());
  absl::StatusOr<AuditEventPage> page = store->ListEvents({}, 0, "");
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(TimesOf(*page), ElementsAre(kT0 + 2, kT0 + 1, kT0));
}

TEST_F(AuditStoreTest, ListEventsFiltersByDevicePrincipalAndTime) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(
      store
          ->AppendBatch({MakeEvent(kT0, "devices/a", "alice"),
                         MakeEvent(kT0 + 10, "devices/b", "alice"),
                         MakeEvent(kT0 + 20, "devices/a", "bob"), MakeEvent(kT0 + 30, "", "bob")})
          .ok());
  auto times = [&](AuditEventFilter filter) {
    absl::StatusOr<AuditEventPage> page = store->ListEvents(filter, 0, "");
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? TimesOf(*page) : std::vector<int64_t>{};
  };
  EXPECT_THAT(times({}), ElementsAre(kT0 + 30, kT0 + 20, kT0 + 10, kT0));
  EXPECT_THAT(times({.device = "devices/a"}), ElementsAre(kT0 + 20, kT0));
  EXPECT_THAT(times({.principal = "bob"}), ElementsAre(kT0 + 30, kT0 + 20));
  EXPECT_THAT(times({.device = "devices/a", .principal = "alice"}), ElementsAre(kT0));
  // since is inclusive, until exclusive.
  EXPECT_THAT(times({.since_us = kT0 + 10, .until_us = kT0 + 30}), ElementsAre(kT0 + 20, kT0 + 10));
  EXPECT_THAT(times({.device = "devices/none"}), IsEmpty());
}

TEST_F(AuditStoreTest, ListEventsPagesWithTokensUntilTheLastPage) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<AuditEvent> events;
  for (int i = 0; i < 250; ++i)
    events.push_back(MakeEvent(kT0 + i, i % 2 ? "devices/a" : "devices/b"));
  ASSERT_TRUE(store->AppendBatch(events).ok());

  std::vector<int64_t> seen;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<AuditEventPage> page = store->ListEvents({.device = "devices/a"}, 40, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (int64_t t : TimesOf(*page)) seen.push_back(t);
    token = page->next_page_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 4);  // 125 events: 40 + 40 + 40 + 5
  ASSERT_EQ(seen.size(), 125u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], kT0 + 249 - 2 * int64_t(i));
}

TEST_F(AuditStoreTest, PageSizeZeroIsTheDefaultAndLargeSizesAreCapped) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->AppendBatch(std::vector<AuditEvent>(1100, MakeEvent(kT0))).ok());
  absl::StatusOr<AuditEventPage> page = store->ListEvents({}, 0, "");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->events.size(), 100u);
  page = store->ListEvents({}, 5000, "");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->events.size(), 1000u);
  EXPECT_FALSE(page->next_page_token.empty());
}

TEST_F(AuditStoreTest, ListEventsRejectsBadTokenAndNegativePageSize) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (const char* token : {"x", "-3", "0", "12abc"}) {
    absl::StatusOr<AuditEventPage> page = store->ListEvents({}, 10, token);
    EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_EQ(ReasonOf(page.status()), v1::ERROR_REASON_INVALID_FIELD);
  }
  EXPECT_EQ(store->ListEvents({}, -1, "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AuditStoreTest, RecordRunKeepsTheWholeRun) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::Run run = MakeRun("devices/pen-1", "r1", 100, 160);
  run.set_end_reason(v1::RUN_END_REASON_COMPLETED);
  run.add_steps()->set_duration_s(30);
  run.mutable_steps(0)->mutable_settings()->mutable_microneedling()->set_needle_depth_mm(0.5);
  run.add_steps()->set_duration_s(30);
  run.mutable_ledger()->set_strokes_delivered(7200);
  run.mutable_ledger()->set_output_on_s(60);
  run.set_holder("alice");
  ASSERT_TRUE(store->RecordRun(run).ok());
  absl::StatusOr<v1::Run> got = store->GetRun(run.name());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*got, run)) << got->DebugString();
}

TEST_F(AuditStoreTest, RecordRunReplacesTheRunWithTheSameName) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->RecordRun(MakeRun("devices/a", "1", 100, 0)).ok());
  ASSERT_TRUE(store->RecordRun(MakeRun("devices/a", "1", 100, 200)).ok());
  absl::StatusOr<std::vector<v1::Run>> runs = store->ListRuns("", 0, 10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ((*runs)[0].end_time().seconds(), 200);
}

TEST_F(AuditStoreTest, RecordRunNeedsNameAndDevice) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::Run run = MakeRun("devices/a", "1", 100, 200);
  run.clear_device();
  EXPECT_EQ(store->RecordRun(run).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->RecordRun(v1::Run()).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AuditStoreTest, ListRunsIsNewestFirstFilteredAndPaged) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->RecordRun(MakeRun("devices/a", "1", 100, 110)).ok());
  ASSERT_TRUE(store->RecordRun(MakeRun("devices/b", "2", 200, 210)).ok());
  ASSERT_TRUE(store->RecordRun(MakeRun("devices/a", "3", 300, 310)).ok());
  ASSERT_TRUE(store->RecordRun(MakeRun("devices/a", "4", 400, 410)).ok());
  EXPECT_THAT(
      NamesOf(*store->ListRuns("", 0, 10)),
      ElementsAre("devices/a/runs/4", "devices/a/runs/3", "devices/b/runs/2", "devices/a/runs/1"));
  EXPECT_THAT(NamesOf(*store->ListRuns("devices/a", 1, 1)), ElementsAre("devices/a/runs/3"));
  EXPECT_THAT(NamesOf(*store->ListRuns("devices/c", 0, 10)), IsEmpty());
  EXPECT_EQ(store->ListRuns("", -1, 10).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AuditStoreTest, GetRunOfAnUnknownRunIsNotFound) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<v1::Run> run = store->GetRun("devices/a/runs/9");
  EXPECT_EQ(run.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(run.status()), v1::ERROR_REASON_RUN_NOT_FOUND);
}

TEST_F(AuditStoreTest, RunHistorySurvivesReopen) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->RecordRun(MakeRun("devices/a", "1", 100, 110)).ok());
    ASSERT_TRUE(store->RecordRun(MakeRun("devices/a", "2", 200, 210)).ok());
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(NamesOf(*store->ListRuns("devices/a", 0, 10)),
              ElementsAre("devices/a/runs/2", "devices/a/runs/1"));
  EXPECT_TRUE(store->GetRun("devices/a/runs/1").ok());
}

// A run the service never ended, recorded on a virtual clock months before the restart: its
// end is the last device time its record shows (start plus the output-on time of its ledger),
// in the clock of its start, not the restart's wall time.
TEST_F(AuditStoreTest, InterruptedRunEndsAtTheLastDeviceTimeRecordedForIt) {
  constexpr int64_t kVirtualStartS = kT0 / 1000000 + 30;  // a virtual clock's early minutes
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    v1::Run stepped = MakeRun("devices/pen-1", "1", kVirtualStartS, 0);
    stepped.set_current_step(1);
    stepped.mutable_ledger()->set_output_on_s(90.25);  // recorded as its second step began
    ASSERT_TRUE(store->RecordRun(stepped).ok());
    ASSERT_TRUE(store->RecordRun(MakeRun("devices/stim-1", "2", kVirtualStartS + 5, 0)).ok());
    ASSERT_TRUE(
        store->RecordRun(MakeRun("devices/pen-1", "3", kVirtualStartS - 20, kVirtualStartS - 10))
            .ok());
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<v1::Run>> ended = store->EndInterruptedRuns();
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_THAT(NamesOf(*ended), ElementsAre("devices/pen-1/runs/1", "devices/stim-1/runs/2"));

  absl::StatusOr<v1::Run> stepped = store->GetRun("devices/pen-1/runs/1");
  ASSERT_TRUE(stepped.ok()) << stepped.status();
  EXPECT_EQ(stepped->state(), v1::RUN_STATE_ENDED_EARLY);
  EXPECT_EQ(stepped->end_reason(), v1::RUN_END_REASON_INTERRUPTED);
  EXPECT_EQ(stepped->end_time().seconds(), kVirtualStartS + 90);
  EXPECT_EQ(stepped->end_time().nanos(), 250000000);
  EXPECT_EQ(stepped->ledger().output_on_s(), 90.25);
  // Nothing recorded after its start: it ends where it started.
  absl::StatusOr<v1::Run> started = store->GetRun("devices/stim-1/runs/2");
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->end_reason(), v1::RUN_END_REASON_INTERRUPTED);
  EXPECT_EQ(started->end_time().seconds(), kVirtualStartS + 5);
  EXPECT_EQ(started->end_time().nanos(), 0);
  // A run that ended keeps its end.
  EXPECT_EQ(store->GetRun("devices/pen-1/runs/3")->end_time().seconds(), kVirtualStartS - 10);
  // Ended once: a second start-up finds nothing to end.
  EXPECT_THAT(*store->EndInterruptedRuns(), IsEmpty());
}

TEST_F(AuditStoreTest, AppendedEventIsInTheWalAndSurvivesReopen) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<int64_t> id = store->Append(MakeEvent(kT0));
  ASSERT_TRUE(id.ok());
  // Committed: another connection sees it while the store is still open, and it is in the log.
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
  EXPECT_GT(std::filesystem::file_size(path_ + "-wal"), 0u);
  EXPECT_EQ(RawQuery("SELECT count(*) FROM events"), "1");
  EXPECT_EQ(RawQuery("PRAGMA journal_mode"), "wal");
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<AuditEventPage> page = store->ListEvents({}, 0, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->events[0].id, *id);
}

TEST_F(AuditStoreTest, NewFileGetsSchemaVersionAndApplicationId) {
  ASSERT_NE(OpenStore(), nullptr);
  EXPECT_EQ(RawQuery("PRAGMA user_version"), absl::StrCat(AuditStore::kSchemaVersion));
  EXPECT_EQ(RawQuery("PRAGMA application_id"), "1146244417");  // "DRMA"
}

TEST_F(AuditStoreTest, PruneDeletesRecordsOlderThanMaxAge) {
  auto store = OpenStore({.max_age = absl::Hours(1)});
  ASSERT_NE(store, nullptr);
  std::vector<AuditEvent> events;
  for (int i = 0; i < 2500; ++i)
    events.push_back(MakeEvent(kT0 + int64_t{i} * 1000000));  // 1 per s
  ASSERT_TRUE(store->AppendBatch(events).ok());
  const int64_t t0_s = kT0 / 1000000;
  ASSERT_TRUE(store->RecordRun(MakeRun("devices/a", "old", t0_s, t0_s + 10)).ok());
  ASSERT_TRUE(store->RecordRun(MakeRun("devices/a", "new", t0_s, t0_s + 7200)).ok());

  // The cut (now − 1 h) falls after the 1500th event.
  const absl::Time now = absl::FromUnixMicros(kT0) + absl::Hours(1) + absl::Seconds(1500);
  absl::StatusOr<PruneResult> pruned = store->Prune(now);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(pruned->events_deleted, 1500);
  EXPECT_EQ(pruned->runs_deleted, 1);
  absl::StatusOr<AuditEventPage> page = store->ListEvents({}, 1000, "");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->events.size(), 1000u);
  EXPECT_EQ(page->events.back().time_us, kT0 + 1500 * int64_t{1000000});
  EXPECT_TRUE(page->next_page_token.empty());
  EXPECT_THAT(NamesOf(*store->ListRuns("", 0, 10)), ElementsAre("devices/a/runs/new"));
}

TEST_F(AuditStoreTest, PruneKeepsTheNewestMaxRows) {
  auto store = OpenStore({.max_rows = 100});
  ASSERT_NE(store, nullptr);
  std::vector<AuditEvent> events;
  for (int i = 0; i < 2500; ++i) events.push_back(MakeEvent(kT0 + i));
  ASSERT_TRUE(store->AppendBatch(events).ok());
  for (int i = 0; i < 103; ++i) {
    ASSERT_TRUE(store->RecordRun(MakeRun("devices/a", absl::StrCat(i), 1000 + i, 2000)).ok());
  }
  absl::StatusOr<PruneResult> pruned = store->Prune(absl::FromUnixMicros(kT0));
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(pruned->events_deleted, 2400);
  EXPECT_EQ(pruned->runs_deleted, 3);
  absl::StatusOr<AuditEventPage> page = store->ListEvents({}, 1000, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 100u);
  EXPECT_EQ(page->events.front().time_us, kT0 + 2499);
  EXPECT_EQ(page->events.back().time_us, kT0 + 2400);
  absl::StatusOr<std::vector<v1::Run>> runs = store->ListRuns("", 0, 1000);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 100u);
  EXPECT_EQ(runs->back().name(), "devices/a/runs/3");
  // Within the limits now: a second pass deletes nothing.
  pruned = store->Prune(absl::FromUnixMicros(kT0));
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(pruned->events_deleted + pruned->runs_deleted, 0);
}

TEST_F(AuditStoreTest, PruneWithoutLimitsKeepsEverything) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(MakeEvent(1)).ok());
  absl::StatusOr<PruneResult> pruned = store->Prune(absl::FromUnixMicros(kT0));
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(pruned->events_deleted, 0);
}

TEST_F(AuditStoreTest, GarbageFileIsRefusedNamingThePath) {
  std::ofstream(path_) << std::string(8192, 'x') << "not a database";
  absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
  EXPECT_THAT(store.status().message(), HasSubstr("not a database"));
}

TEST_F(AuditStoreTest, CorruptDatabaseIsRefusedNamingThePath) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->AppendBatch(std::vector<AuditEvent>(2000, MakeEvent(kT0))).ok());
  }  // closing checkpoints the WAL into the file
  {
    // Overwrite every page after the first (which holds the header and the schema).
    const auto size = std::filesystem::file_size(path_);
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096);
    file << std::string(size - 4096, '\x5a');
  }
  absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
}

TEST_F(AuditStoreTest, DamagedPageIsFoundByTheCheckAtOpen) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->AppendBatch(std::vector<AuditEvent>(2000, MakeEvent(kT0))).ok());
  }
  {
    // Damage the cell area of one page in the middle: the header and schema still read fine.
    const auto pages = std::filesystem::file_size(path_) / 4096;
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp((pages / 2) * 4096 + 100);
    file << std::string(64, '\x5a');
  }
  absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
  EXPECT_THAT(store.status().message(), HasSubstr("corrupt (PRAGMA quick_check"));
}

TEST_F(AuditStoreTest, UnwritableDirectoryIsRefusedNamingThePath) {
  std::filesystem::permissions(
      dir_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  std::string path = path_;
  // root writes anywhere regardless of permissions; /proc refuses new files even to root.
  if (const int fd = open((dir_ / "probe").c_str(), O_CREAT | O_WRONLY, 0600); fd >= 0) {
    close(fd);
    path = "/proc/derma_audit_test.db";
  }
  absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_THAT(store.status().message(), HasSubstr("writable"));
}

TEST_F(AuditStoreTest, NewerSchemaVersionIsRefused) {
  ASSERT_NE(OpenStore(), nullptr);
  RawExec(absl::StrCat("PRAGMA user_version = ", AuditStore::kSchemaVersion + 1));
  absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
  EXPECT_THAT(store.status().message(), HasSubstr("newer"));
}

TEST_F(AuditStoreTest, AnotherApplicationsDatabaseIsRefused) {
  RawExec("CREATE TABLE patients (name TEXT)");
  absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("another application"));
}

TEST_F(AuditStoreTest, ConcurrentAppendsAllLandWithDistinctIds) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::vector<int64_t>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<int64_t> id = store->Append(MakeEvent(kT0 + i, absl::StrCat("devices/", t)));
        if (id.ok()) ids[t].push_back(*id);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<int64_t> unique;
  for (const auto& per_thread : ids) unique.insert(per_thread.begin(), per_thread.end());
  EXPECT_EQ(unique.size(), size_t{kThreads * kPerThread});
  for (int t = 0; t < kThreads; ++t) {
    absl::StatusOr<AuditEventPage> page =
        store->ListEvents({.device = absl::StrCat("devices/", t)}, 0, "");
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(page->events.size(), size_t{kPerThread});
  }
}

}  // namespace
}  // namespace derma::testing
