// The audit trail's hash chain and its start-up rules: records edited, deleted or reordered with
// a tool of their own are found by VerifyAuditChain, truncation of the newest records against
// an exported head, pruning keeps the chain verifiable through a checkpoint (sealed by an HMAC
// key when one is given), a schema-1 trail is migrated with its records unchained, an empty
// file is refused, and a new trail is created without leaving a temporary file behind.
#include "plugin/audit/audit_chain.h"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/audit/audit_store.h"

namespace derma::testing {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kT0 = 1767225600000000;  // 2026-01-01T00:00:00Z in µs
const std::string kKey = "0123456789abcdef0123456789abcdef";

AuditEvent MakeEvent(int64_t time_us, const std::string& detail = "") {
  AuditEvent event;
  event.time_us = time_us;
  event.principal = "alice";
  event.device = "devices/pen-1";
  event.kind = v1::AUDIT_EVENT_KIND_COMMAND;
  event.method = "/derma.v1.DeviceControl/Start";
  event.detail = detail;
  return event;
}

class AuditChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("chain_", info->name(), "_", getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "audit.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A store holding `n` records, closed again.
  void Write(int n, RetentionOptions retention = {}, const std::string& key = "") {
    absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path_, retention, key);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE((*store)->Append(MakeEvent(kT0 + i, absl::StrCat("record ", i))).ok());
    }
  }

  ChainReport Verify(const std::string& key = "",
                     std::optional<std::string> expected_head = std::nullopt) {
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path_);
    EXPECT_TRUE(db.ok()) << db.status();
    absl::StatusOr<ChainReport> report = VerifyAuditChain(**db, key, std::move(expected_head));
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : ChainReport{};
  }

  // Runs `sql` through a connection of its own, as the sqlite3 tool would.
  void RawExec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(AuditChainTest, AnUntouchedTrailIsIntact) {
  Write(20);
  ChainReport report = Verify();
  EXPECT_TRUE(report.intact) << report.problem;
  EXPECT_EQ(report.chained, 20);
  EXPECT_EQ(report.length, 20);
  EXPECT_EQ(report.head_id, 20);
}

TEST_F(AuditChainTest, AnEditedRecordIsTheFirstBrokenLink) {
  Write(20);
  RawExec("UPDATE events SET detail = 'nothing happened' WHERE id = 7");
  ChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.broken_id, 7);
}

TEST_F(AuditChainTest, ADeletedRecordBreaksTheLinkAfterIt) {
  Write(20);
  RawExec("DELETE FROM events WHERE id = 7");
  ChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.broken_id, 8);
  EXPECT_THAT(report.problem, HasSubstr("missing"));
}

TEST_F(AuditChainTest, TheOldestRecordsDeletedAreFound) {
  Write(20);
  RawExec("DELETE FROM events WHERE id <= 3");
  ChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.broken_id, 4);
}

TEST_F(AuditChainTest, ReorderedRecordsAreFound) {
  Write(20);
  // Swap the contents of records 5 and 6 (ids stay in place).
  RawExec(
      "UPDATE events SET id = -5 WHERE id = 5; UPDATE events SET id = 5 WHERE id = 6;"
      " UPDATE events SET id = 6 WHERE id = -5;");
  ChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.broken_id, 5);
}

TEST_F(AuditChainTest, TruncatedNewestRecordsAreFoundAgainstTheExportedHead) {
  Write(20);
  const std::string head = ToHex(Verify().head_hash);
  EXPECT_TRUE(Verify("", head).intact);
  RawExec("DELETE FROM events WHERE id > 15");
  EXPECT_TRUE(Verify().intact);  // a shorter chain is still a chain...
  ChainReport report = Verify("", head.substr(0, 12));
  EXPECT_FALSE(report.intact);  // ...but not the one whose head was exported
  EXPECT_THAT(report.problem, HasSubstr("removed"));
}

TEST_F(AuditChainTest, ARecordWithItsHashRemovedIsFound) {
  Write(20);
  RawExec("UPDATE events SET hash = NULL WHERE id = 9");
  ChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.broken_id, 9);
}

TEST_F(AuditChainTest, PruningLeavesAVerifiableChainWithACheckpoint) {
  Write(30, {.max_rows = 10});
  {
    absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path_, {.max_rows = 10});
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Prune(absl::FromUnixMicros(kT0)).ok());
    EXPECT_EQ((*store)->head().length, 30);
  }
  ChainReport report = Verify();
  EXPECT_TRUE(report.intact) << report.problem;
  EXPECT_TRUE(report.checkpoint);
  EXPECT_EQ(report.chained, 10);
  EXPECT_EQ(report.length, 30);
  RawExec("DELETE FROM events WHERE id = 21");
  EXPECT_EQ(Verify().broken_id, 22);
}

TEST_F(AuditChainTest, AnEditedCheckpointIsFound) {
  Write(30, {.max_rows = 10});
  {
    auto store = AuditStore::Open(path_, {.max_rows = 10});
    ASSERT_TRUE(store.ok() && (*store)->Prune(absl::FromUnixMicros(kT0)).ok());
  }
  RawExec("UPDATE chain_checkpoint SET chained_pruned = 5");
  ChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_THAT(report.problem, HasSubstr("checkpoint"));
}

TEST_F(AuditChainTest, AKeyedCheckpointCannotBeForgedWithoutTheKey) {
  Write(30, {.max_rows = 10}, kKey);
  {
    auto store = AuditStore::Open(path_, {.max_rows = 10}, kKey);
    ASSERT_TRUE(store.ok() && (*store)->Prune(absl::FromUnixMicros(kT0)).ok());
  }
  EXPECT_TRUE(Verify(kKey).intact) << Verify(kKey).problem;
  // Delete five more old records and reseal the checkpoint as one without the key could.
  ChainCheckpoint forged;
  {
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path_);
    ASSERT_TRUE(db.ok());
    absl::StatusOr<SqliteStatement> row =
        (*db)->Prepare("SELECT id, hash FROM events WHERE id = 25");
    ASSERT_TRUE(row.ok() && *row->Step());
    forged.through_id = 25;
    forged.through_hash = row->Blob(1);
    forged.chained_pruned = 25;
  }
  forged.keyed = true;
  forged.seal = SealCheckpoint(forged, "a key that is not the one");
  RawExec("DELETE FROM events WHERE id <= 25");
  RawExec(absl::StrCat("UPDATE chain_checkpoint SET through_id = 25, through_hash = x'",
                       ToHex(forged.through_hash), "', chained_pruned = 25, seal = x'",
                       ToHex(forged.seal), "'"));
  ChainReport report = Verify(kKey);
  EXPECT_FALSE(report.intact);
  EXPECT_THAT(report.problem, HasSubstr("checkpoint"));
  EXPECT_FALSE(Verify().intact);  // a keyed checkpoint is not passed without the key
}

TEST_F(AuditChainTest, ASchemaOneTrailIsMigratedWithItsRecordsUnchained) {
  RawExec(R"sql(
    CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time_us INTEGER NOT NULL,
      principal TEXT NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL, method TEXT NOT NULL,
      summary TEXT NOT NULL, code INTEGER NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL);
    CREATE INDEX events_by_time ON events (time_us);
    CREATE INDEX events_by_device ON events (device, id);
    CREATE INDEX events_by_principal ON events (principal, id);
    CREATE TABLE runs (name TEXT PRIMARY KEY, device TEXT NOT NULL, start_us INTEGER NOT NULL,
      end_us INTEGER, state TEXT NOT NULL, end_reason TEXT NOT NULL, run BLOB NOT NULL);
    CREATE INDEX runs_by_start ON runs (start_us);
    CREATE INDEX runs_by_device ON runs (device, start_us);
    CREATE INDEX runs_by_age ON runs (coalesce(end_us, start_us));
    INSERT INTO events (time_us, principal, device, kind, method, summary, code, reason, detail)
      VALUES (1, 'alice', '', 'COMMAND', 'm', '', 0, '', 'old 1'),
             (2, 'alice', '', 'COMMAND', 'm', '', 0, '', 'old 2');
    PRAGMA application_id = 1146244417; PRAGMA user_version = 1;)sql");
  Write(3);
  ChainReport report = Verify();
  EXPECT_TRUE(report.intact) << report.problem;
  EXPECT_EQ(report.unchained, 2);
  EXPECT_EQ(report.chained, 3);
  absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path_);
  ASSERT_TRUE(store.ok());
  absl::StatusOr<AuditEventPage> page = (*store)->ListEvents({}, 0, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 5u);
  EXPECT_EQ(page->events.back().detail, "old 1");
  EXPECT_EQ(page->events.back().count, 1);
}

TEST_F(AuditChainTest, CountAndPeerIpRoundTrip) {
  {
    auto store = AuditStore::Open(path_);
    ASSERT_TRUE(store.ok());
    AuditEvent refusal = MakeEvent(kT0);
    refusal.kind = v1::AUDIT_EVENT_KIND_AUTH_FAILURE;
    refusal.count = 41;
    refusal.peer_ip = "::1";
    ASSERT_TRUE((*store)->Append(refusal).ok());
    absl::StatusOr<AuditEventPage> page = (*store)->ListEvents({}, 0, "");
    ASSERT_TRUE(page.ok() && page->events.size() == 1);
    EXPECT_EQ(page->events[0].count, 41);
    EXPECT_EQ(page->events[0].peer_ip, "::1");
  }
  EXPECT_TRUE(Verify().intact);
}

TEST_F(AuditChainTest, AnEmptyExistingFileIsRefusedNamingThePath) {
  std::ofstream(path_).close();  // 0 bytes, as after a truncation
  absl::StatusOr<std::unique_ptr<AuditStore>> store = AuditStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
  EXPECT_THAT(store.status().message(), HasSubstr("holds no audit trail"));
  EXPECT_EQ(std::filesystem::file_size(path_), 0u);  // left as found
}

TEST_F(AuditChainTest, ANewTrailLeavesNoTemporaryFileBehind) {
  Write(1);
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names, ::testing::Each(::testing::StartsWith("audit.db")));
  EXPECT_THAT(names, ::testing::Not(::testing::Contains(HasSubstr("creating"))));
  EXPECT_TRUE(Verify().intact);
}

}  // namespace
}  // namespace derma::testing
