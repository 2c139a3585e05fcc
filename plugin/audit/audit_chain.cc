#include "plugin/audit/audit_chain.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "plugin/audit/audit_schema.h"

namespace derma {
namespace {

// Canonical bytes: every field as an 8-byte big-endian length (or value) and its bytes, in a
// fixed order, so no two different records share them.
void AppendInt(std::string& out, int64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((static_cast<uint64_t>(value) >> shift) & 0xff));
  }
}

void AppendText(std::string& out, absl::string_view text) {
  AppendInt(out, static_cast<int64_t>(text.size()));
  out.append(text.data(), text.size());
}

std::string Sha256(absl::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

std::string HmacSha256(absl::string_view key, absl::string_view bytes) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), mac, &size);
  return std::string(reinterpret_cast<const char*>(mac), size);
}

constexpr absl::string_view kSelectChain =
    "SELECT " DERMA_AUDIT_EVENT_COLUMNS ", hash FROM events ORDER BY id";

}  // namespace

std::string ToHex(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 0xf]);
  }
  return hex;
}

std::string ChainGenesis() { return std::string(kChainHashBytes, '\0'); }

std::string ChainLink(absl::string_view previous, const AuditEvent& event) {
  std::string bytes(previous.data(), previous.size());
  AppendInt(bytes, event.id);
  AppendInt(bytes, event.time_us);
  AppendText(bytes, event.principal);
  AppendText(bytes, event.device);
  AppendText(bytes, AuditKindName(event.kind));
  AppendText(bytes, event.method);
  AppendText(bytes, event.summary);
  AppendInt(bytes, event.code);
  AppendText(bytes, event.reason);
  AppendText(bytes, event.detail);
  AppendInt(bytes, event.count);
  AppendText(bytes, event.peer_ip);
  return Sha256(bytes);
}

std::string SealCheckpoint(const ChainCheckpoint& checkpoint, absl::string_view hmac_key) {
  std::string bytes = "derma audit checkpoint";
  AppendInt(bytes, checkpoint.through_id);
  AppendText(bytes, checkpoint.through_hash);
  AppendInt(bytes, checkpoint.chained_pruned);
  return hmac_key.empty() ? Sha256(bytes) : HmacSha256(hmac_key, bytes);
}

absl::StatusOr<std::string> ReadHmacKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("audit HMAC key file ", path, ": cannot be read"));
  }
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (key.size() < 16) {
    return absl::FailedPreconditionError(absl::StrCat(
        "audit HMAC key file ", path, ": holds ", key.size(), " bytes; at least 16 are needed"));
  }
  return key;
}

namespace {

absl::Status ReadCheckpoint(SqliteDb& db, std::optional<ChainCheckpoint>& checkpoint) {
  absl::StatusOr<SqliteStatement> select = db.Prepare(
      "SELECT through_id, through_hash, chained_pruned, keyed, seal FROM chain_checkpoint");
  if (!select.ok()) return select.status();
  absl::StatusOr<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::OkStatus();
  checkpoint.emplace();
  checkpoint->through_id = select->Int(0);
  checkpoint->through_hash = select->Blob(1);
  checkpoint->chained_pruned = select->Int(2);
  checkpoint->keyed = select->Int(3) != 0;
  checkpoint->seal = select->Blob(4);
  return absl::OkStatus();
}

// Checks the checkpoint's seal; fills report.problem when it does not hold.
void CheckCheckpoint(const ChainCheckpoint& checkpoint, absl::string_view hmac_key,
                     ChainReport& report) {
  report.checkpoint = true;
  if (checkpoint.keyed && hmac_key.empty()) {
    report.problem = "the checkpoint is sealed with an HMAC key; pass the key file to check it";
  } else if (!checkpoint.keyed && !hmac_key.empty()) {
    report.problem = "the checkpoint is not sealed with the HMAC key (rewritten without it?)";
  } else if (checkpoint.through_hash.size() != kChainHashBytes ||
             SealCheckpoint(checkpoint, checkpoint.keyed ? hmac_key : "") != checkpoint.seal) {
    report.problem = "the checkpoint of the pruned records does not match its seal (edited)";
  }
  if (!report.problem.empty()) report.intact = false;
}

}  // namespace

absl::StatusOr<ChainReport> VerifyAuditChain(SqliteDb& db, absl::string_view hmac_key,
                                             std::optional<std::string> expected_head) {
  ChainReport report;
  std::optional<ChainCheckpoint> checkpoint;
  if (absl::Status s = ReadCheckpoint(db, checkpoint); !s.ok()) return s;
  std::string previous = ChainGenesis();
  int64_t previous_id = 0;  // 0: no chained record or checkpoint yet
  if (checkpoint.has_value()) {
    CheckCheckpoint(*checkpoint, hmac_key, report);
    if (!report.intact) return report;
    previous = checkpoint->through_hash;
    previous_id = checkpoint->through_id;
    report.length = checkpoint->chained_pruned;
  }
  std::string wanted = absl::AsciiStrToLower(expected_head.value_or(""));
  bool head_found = false;
  absl::StatusOr<SqliteStatement> select = db.Prepare(kSelectChain);
  if (!select.ok()) return select.status();
  while (true) {
    absl::StatusOr<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const int64_t id = select->Int(0);
    if (select->IsNull(12)) {
      if (report.chained == 0) {  // from before the chain: no link to check
        ++report.unchained;
        previous_id = id;
        continue;
      }
      report.intact = false;
      report.broken_id = id;
      report.problem = "the record has no hash although records before it are chained";
      return report;
    }
    if (previous_id != 0 && id != previous_id + 1) {
      report.intact = false;
      report.broken_id = id;
      report.problem = id <= previous_id
                           ? "the record's id is not after the checkpoint of pruned records"
                           : absl::StrCat("records ", previous_id + 1, "..", id - 1,
                                          " before it are missing (deleted)");
      return report;
    }
    const std::string hash = select->Blob(12);
    if (ChainLink(previous, AuditEventFromRow(*select)) != hash) {
      report.intact = false;
      report.broken_id = id;
      report.problem =
          "the record's hash does not match its contents and the previous record's hash "
          "(the record was edited, reordered, or a record before it deleted or edited)";
      return report;
    }
    previous = hash;
    previous_id = id;
    ++report.chained;
    ++report.length;
    report.head_id = id;
    if (!wanted.empty() && absl::StartsWith(ToHex(hash), wanted)) head_found = true;
  }
  report.head_hash = previous;
  if (!wanted.empty() && (wanted.size() < 12 || !head_found)) {
    report.intact = false;
    report.problem = wanted.size() < 12
                         ? "the expected head must have at least 12 hex digits"
                         : absl::StrCat("the expected head ", wanted,
                                        " is not the hash of any record present: records after "
                                        "it were removed, or the chain was rewritten");
  }
  return report;
}

}  // namespace derma
