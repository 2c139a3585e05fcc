// dermactl's subcommands. Each takes the parsed options and its positional arguments and
// returns an exit code (cli_support.h). Layer: plugin/cli. Not thread-safe.
#ifndef DERMA_PLUGIN_CLI_COMMANDS_H_
#define DERMA_PLUGIN_CLI_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "plugin/cli/cli_support.h"

namespace derma::cli {

struct Options {
  bool json = false;
  double duration_s = 0;                        // watch: stop after this long (0 = until Ctrl-C)
  bool all = false;                             // estop --all
  std::string principal;                        // audit: only this principal's records
  absl::Duration since = absl::ZeroDuration();  // audit: only records this recent (0 = all)
  int limit = 100;                              // audit: most records printed
  std::string db;                               // audit verify: the file, offline
  std::string hmac_key_file;                    // audit verify --db: checkpoint key
  std::string expect_head;                      // audit verify: an exported head (hex)
};

using Args = std::vector<std::string>;

int List(Connection& c, const Options& o, const Args& args);
int Get(Connection& c, const Options& o, const Args& args);
int Watch(Connection& c, const Options& o, const Args& args);
int Configure(Connection& c, const Options& o, const Args& args);
// start, pause, resume, stop.
int Command(Connection& c, const Options& o, const std::string& verb, const Args& args);
int Estop(Connection& c, const Options& o, const Args& args);
int Reset(Connection& c, const Options& o, const Args& args);
int RunProgram(Connection& c, const Options& o, const Args& args);
int Runs(Connection& c, const Options& o, const Args& args);
int Sim(Connection& c, const Options& o, const Args& args);
// The audit trail, newest first (audit_command.cc).
int Audit(Connection& c, const Options& o, const Args& args);
// Checks the audit trail's hash chain (audit_verify_command.cc): offline with o.db, else
// through VerifyAuditTrail. kOk when intact, kAuditTrailBroken when not.
int AuditVerify(Connection& c, const Options& o, const Args& args);

// One line describing a device: name, model, state, output, settings, fault.
std::string DeviceLine(const v1::Device& device);

}  // namespace derma::cli

#endif  // DERMA_PLUGIN_CLI_COMMANDS_H_
