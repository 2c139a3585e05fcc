// dermactl audit verify: checks the audit trail's hash chain, offline on the database file
// (--db; this links the audit store, the one place dermactl reads more than the contract) or
// through the service's VerifyAuditTrail. Prints one line; exit 0 intact, 5 broken.
#include <chrono>
#include <optional>
#include <string>

#include "absl/strings/str_format.h"
#include "plugin/audit/audit_chain.h"
#include "plugin/audit/sqlite_db.h"
#include "plugin/cli/call_failure.h"
#include "plugin/cli/commands.h"

namespace derma::cli {
namespace {

void PrintReport(const v1::VerifyAuditTrailResponse& r) {
  if (r.intact()) {
    absl::PrintF(
        "audit trail intact: %d chained records (chain length %d%s), %d unchained from before "
        "the chain; head record %d sha256 %s\n",
        r.chained_records(), r.chain_length(),
        r.has_checkpoint() ? ", the pruned ones sealed by a checkpoint" : "", r.unchained_records(),
        r.head_id(), r.head_sha256());
  } else if (r.broken_id() != 0) {
    absl::PrintF("audit trail BROKEN at record %d: %s\n", r.broken_id(), r.problem());
  } else {
    absl::PrintF("audit trail BROKEN: %s\n", r.problem());
  }
}

v1::VerifyAuditTrailResponse FromReport(const ChainReport& report) {
  v1::VerifyAuditTrailResponse r;
  r.set_intact(report.intact);
  r.set_unchained_records(report.unchained);
  r.set_chained_records(report.chained);
  r.set_chain_length(report.length);
  r.set_head_id(report.head_id);
  r.set_head_sha256(ToHex(report.head_hash));
  r.set_has_checkpoint(report.checkpoint);
  r.set_broken_id(report.broken_id);
  r.set_problem(report.problem);
  return r;
}

// The report of the file at o.db, or the exit code when it cannot be read.
std::optional<v1::VerifyAuditTrailResponse> VerifyOffline(const Options& o, int* exit_code) {
  std::string key;
  if (!o.hmac_key_file.empty()) {
    absl::StatusOr<std::string> read = ReadHmacKeyFile(o.hmac_key_file);
    if (!read.ok()) {
      absl::FPrintF(stderr, "dermactl: %s\n", read.status().message());
      *exit_code = kUsage;
      return std::nullopt;
    }
    key = *std::move(read);
  }
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(o.db);
  absl::StatusOr<ChainReport> report =
      db.ok() ? VerifyAuditChain(**db, key,
                                 o.expect_head.empty() ? std::nullopt
                                                       : std::optional<std::string>(o.expect_head))
              : db.status();
  if (!report.ok()) {
    absl::FPrintF(stderr, "dermactl: cannot read %s as an audit trail: %s\n", o.db,
                  report.status().message());
    *exit_code = kUsage;
    return std::nullopt;
  }
  return FromReport(*report);
}

}  // namespace

int AuditVerify(Connection& c, const Options& o, const Args& args) {
  if (!args.empty()) {
    absl::FPrintF(stderr, "dermactl: audit verify takes no arguments (see dermactl --help)\n");
    return kUsage;
  }
  v1::VerifyAuditTrailResponse response;
  if (!o.db.empty()) {
    int exit_code = kOk;
    std::optional<v1::VerifyAuditTrailResponse> offline = VerifyOffline(o, &exit_code);
    if (!offline.has_value()) return exit_code;
    response = *std::move(offline);
  } else {
    if (!o.hmac_key_file.empty()) {
      absl::FPrintF(stderr, "dermactl: --hmac_key_file is for --db; the service uses its own\n");
      return kUsage;
    }
    v1::VerifyAuditTrailRequest request;
    request.set_expected_head(o.expect_head);
    grpc::ClientContext context;  // the whole trail is read: more than the default deadline
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    grpc::Status status = c.devices->VerifyAuditTrail(&context, request, &response);
    if (!status.ok()) return Report(c, status);
  }
  if (o.json) {
    absl::PrintF("%s\n", Json(response));
  } else {
    PrintReport(response);
  }
  return response.intact() ? kOk : kAuditTrailBroken;
}

}  // namespace derma::cli
