// AuditStore: opening (a new file is created atomically, an existing one must be an audit
// store), the chain's head, and verification.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "plugin/audit/audit_store.h"

namespace derma {
namespace {

absl::Status CannotCreate(const std::string& path, absl::string_view what) {
  return absl::FailedPreconditionError(absl::StrCat("audit store ", path,
                                                    ": cannot create a new trail (", what,
                                                    "); is the directory writable?"));
}

// Builds the schema in a temporary file beside `path` and links it into place. link() fails
// when `path` appeared meanwhile (another process won the race): then that file is used.
absl::Status CreateAtomically(const std::string& path) {
  const std::string temporary = absl::StrCat(path, ".creating.", getpid());
  std::remove(temporary.c_str());
  {
    absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(temporary, /*create=*/true);
    if (!db.ok()) return CannotCreate(path, db.status().message());
    if (absl::Status s = PrepareAuditSchema(**db, /*new_file=*/true); !s.ok()) {
      db->reset();
      std::remove(temporary.c_str());
      return s;
    }
  }  // closing the last connection checkpoints the WAL into the file and removes it
  const int linked = link(temporary.c_str(), path.c_str());
  const int error = errno;
  std::remove(temporary.c_str());
  if (linked != 0 && error != EEXIST) return CannotCreate(path, std::strerror(error));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<AuditStore>> AuditStore::Open(const std::string& path,
                                                             RetentionOptions retention,
                                                             std::string checkpoint_key) {
  std::error_code error;
  if (!std::filesystem::exists(path, error) && !error) {
    if (absl::Status s = CreateAtomically(path); !s.ok()) return s;
  }
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path);
  if (!db.ok()) return db.status();
  if (absl::Status s = PrepareAuditSchema(**db, /*new_file=*/false); !s.ok()) return s;
  std::unique_ptr<AuditStore> store(
      new AuditStore(*std::move(db), retention, std::move(checkpoint_key)));
  absl::MutexLock lock(&store->mu_);
  if (absl::Status s = store->ReadHead(); !s.ok()) return s;
  absl::StatusOr<std::string> chained =
      store->db_->QueryText("SELECT count(*) FROM events WHERE hash IS NOT NULL");
  absl::StatusOr<std::string> pruned =
      store->db_->QueryText("SELECT coalesce((SELECT chained_pruned FROM chain_checkpoint), 0)");
  if (!chained.ok()) return chained.status();
  if (!pruned.ok()) return pruned.status();
  store->head_.length = std::stoll(*chained) + std::stoll(*pruned);
  return store;
}

absl::Status AuditStore::ReadHead() {
  absl::StatusOr<SqliteStatement> last =
      db_->Prepare("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1");
  if (!last.ok()) return last.status();
  absl::StatusOr<bool> row = last->Step();
  if (!row.ok()) return row.status();
  if (*row) {
    head_.id = last->Int(0);
    head_.hash = last->IsNull(1) ? ChainGenesis() : last->Blob(1);  // unchained: chain starts
    return absl::OkStatus();
  }
  absl::StatusOr<SqliteStatement> checkpoint =
      db_->Prepare("SELECT through_id, through_hash FROM chain_checkpoint");
  if (!checkpoint.ok()) return checkpoint.status();
  row = checkpoint->Step();
  if (!row.ok()) return row.status();
  head_.id = *row ? checkpoint->Int(0) : 0;
  head_.hash = *row ? checkpoint->Blob(1) : ChainGenesis();
  return absl::OkStatus();
}

AuditStore::ChainHead AuditStore::head() const {
  absl::MutexLock lock(&mu_);
  return head_;
}

absl::StatusOr<ChainReport> AuditStore::Verify(std::optional<std::string> expected_head) {
  // A connection of its own: in WAL mode its read sees one snapshot and never holds up the
  // writer, so commands keep their latency while the whole trail is read.
  absl::StatusOr<std::unique_ptr<SqliteDb>> reader = SqliteDb::Open(path_);
  if (!reader.ok()) return reader.status();
  sqlite3_busy_timeout((*reader)->handle(), 1000);
  if (absl::Status s = (*reader)->Exec("BEGIN"); !s.ok()) return s;
  absl::StatusOr<ChainReport> report =
      VerifyAuditChain(**reader, checkpoint_key_, std::move(expected_head));
  (*reader)->Exec("COMMIT").IgnoreError();
  return report;
}

}  // namespace derma
