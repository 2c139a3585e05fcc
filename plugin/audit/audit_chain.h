// The audit trail's hash chain: each event row carries hash = SHA-256(previous hash ‖ the
// record's canonical bytes), so editing, deleting or reordering rows breaks a link that
// VerifyAuditChain finds. Pruning replaces the deleted prefix by one checkpoint row (the last
// pruned record's id and hash), sealed with HMAC-SHA-256 under an optional key so that it
// cannot be forged without the key (without one, its seal is a plain SHA-256 and a full
// rewrite of the chain is caught only against an exported head). Records written before the
// chain existed (schema 1) keep a NULL hash: "unchained", accepted only before the first
// chained record. Layer: plugin/audit. Thread-safe (pure functions; VerifyAuditChain reads
// through the connection it is given, which the caller serialises).
#ifndef DERMA_PLUGIN_AUDIT_AUDIT_CHAIN_H_
#define DERMA_PLUGIN_AUDIT_AUDIT_CHAIN_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "plugin/audit/audit_event.h"
#include "plugin/audit/sqlite_db.h"

namespace derma {

inline constexpr size_t kChainHashBytes = 32;

// The hash before the first chained record: 32 zero bytes.
std::string ChainGenesis();
// SHA-256(previous ‖ canonical bytes of `event`, its id included). `previous` is 32 bytes.
std::string ChainLink(absl::string_view previous, const AuditEvent& event);

// The checkpoint standing for the pruned prefix of the chain.
struct ChainCheckpoint {
  int64_t through_id = 0;      // the last pruned record's id
  std::string through_hash;    // its hash (ChainGenesis() when it was unchained)
  int64_t chained_pruned = 0;  // chained records pruned so far
  bool keyed = false;          // seal is an HMAC under the key file
  std::string seal;
};
// The seal of `checkpoint`: HMAC-SHA-256 under `hmac_key` when non-empty, else SHA-256.
std::string SealCheckpoint(const ChainCheckpoint& checkpoint, absl::string_view hmac_key);

// Reads an HMAC key file: its bytes, at least 16. FAILED_PRECONDITION naming the path.
absl::StatusOr<std::string> ReadHmacKeyFile(const std::string& path);

struct ChainReport {
  bool intact = true;
  int64_t unchained = 0;    // records from before the chain (schema 1)
  int64_t chained = 0;      // chained records present
  int64_t length = 0;       // chained records ever written: pruned + present
  int64_t head_id = 0;      // the newest chained record (0: none)
  std::string head_hash;    // its hash (ChainGenesis() when none)
  bool checkpoint = false;  // a pruned prefix is sealed by a checkpoint
  int64_t broken_id = 0;    // the first record whose link is broken (0: the checkpoint)
  std::string problem;      // what is wrong there, for a person
};

// Walks the chain of the audit store behind `db` in id order and reports its first broken
// link. `hmac_key` checks a keyed checkpoint (a keyed checkpoint without the key is reported
// as not checkable, and not intact). `expected_head`, when set (hex, at least 12 digits), must
// be the hash of a chained record still present: a head exported earlier that is missing means
// the newest records were removed or the chain rewritten. Errors only when the file cannot be
// read.
absl::StatusOr<ChainReport> VerifyAuditChain(SqliteDb& db, absl::string_view hmac_key,
                                             std::optional<std::string> expected_head);

// Lower-case hex of `bytes`.
std::string ToHex(absl::string_view bytes);

}  // namespace derma

#endif  // DERMA_PLUGIN_AUDIT_AUDIT_CHAIN_H_
