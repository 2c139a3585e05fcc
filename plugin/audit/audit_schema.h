// The audit store's schema: creating it in a new file, and refusing files the store must not
// touch (not a database, corrupt, another application's, or a newer schema). Layer:
// plugin/audit. Not thread-safe: called once while the store is being opened.
#ifndef DERMA_PLUGIN_AUDIT_AUDIT_SCHEMA_H_
#define DERMA_PLUGIN_AUDIT_AUDIT_SCHEMA_H_

#include "absl/status/status.h"
#include "plugin/audit/audit_event.h"
#include "plugin/audit/sqlite_db.h"

namespace derma {

// PRAGMA application_id of an audit store: "DRMA".
inline constexpr int kAuditApplicationId = 0x44524d41;

// The schema version this build writes (kept in PRAGMA user_version). Version 2 added the hash
// chain (events.hash, chain_checkpoint) and coalesced refusals (events.count, events.peer_ip).
inline constexpr int kAuditSchemaVersion = 2;

// Checks the file (PRAGMA quick_check), sets journal_mode=WAL, synchronous=FULL and a busy
// timeout. A `new_file` (just created, empty) gets the schema; an existing file must hold an
// audit store: one at an older version is migrated (version 1's records keep a NULL hash,
// "unchained"), an empty one or anything else is refused. Every failure is
// FAILED_PRECONDITION with a message naming the file.
absl::Status PrepareAuditSchema(SqliteDb& db, bool new_file);

// The columns of an event, in the order AuditEventFromRow reads them:
// "SELECT " DERMA_AUDIT_EVENT_COLUMNS " FROM events ...", any further columns after them.
#define DERMA_AUDIT_EVENT_COLUMNS \
  "id, time_us, principal, device, kind, method, summary, code, reason, detail, count, peer_ip"

// The event in columns 0–11 of `row`, selected as DERMA_AUDIT_EVENT_COLUMNS.
AuditEvent AuditEventFromRow(const SqliteStatement& row);

}  // namespace derma

#endif  // DERMA_PLUGIN_AUDIT_AUDIT_SCHEMA_H_
