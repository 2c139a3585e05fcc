// dermactl: the derma command line. `dermactl --help` lists the subcommands. Exit codes: 0 ok,
// 2 usage, 3 device/state error (the server's reason and bad fields are printed), 4 connection
// error, 5 audit verify found the audit trail broken.
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "plugin/cli/commands.h"
#include "plugin/cli/config_file.h"
#include "plugin/cli/credentials.h"

namespace derma::cli {
namespace {

constexpr char kHelp[] = R"(dermactl: drive a derma service from the terminal

usage: dermactl [--target=HOST:PORT] [--json] COMMAND [ARGS]

commands:
  list                          every device, one line each
  get DEVICE                    one device: state, settings, capabilities, cartridge
  watch [DEVICE...]             live telemetry table (lines when piped; --duration_s=N stops)
  configure DEVICE key=value... e.g. configure pen-1 needle_depth_mm=1.0 stroke_rate_hz=120
  start|pause|resume DEVICE     takes the device's lease for the command
  stop DEVICE                   output off (no lease needed)
  estop DEVICE | estop --all    emergency stop, ahead of every queued command
  reset DEVICE                  clear an emergency stop or a fault
  run DEVICE PROGRAM_FILE       run a program (RunProgram, text format or JSON) with progress;
                                Ctrl-C cancels the run
  runs [DEVICE]                 runs, newest first, with their dose ledgers
  audit [DEVICE]                the audit trail, newest first: commands with their principal
                                and outcome, device events (admin role when auth is on)
  audit verify                  check the audit trail's hash chain and print its head; with
                                --db=FILE offline on the database file, else through the
                                service (VerifyAuditTrail, admin); exit 5 when a link is broken
  sim fault DEVICE KIND         inject a simulator fault (e.g. over_temperature)

options:
  --target=HOST:PORT   derma service (default 127.0.0.1:50051, or $DERMA_TARGET)
  --json               machine-readable output, one JSON object per line
  --duration_s=N       watch: stop after N seconds
  --principal=NAME     audit: only this principal's records
  --since=DURATION     audit: only records this recent, e.g. 90s, 15m, 2h
  --limit=N            audit: at most N records (default 100)
  --db=FILE            audit verify: the audit database file (offline; dermad may be running)
  --hmac_key_file=FILE audit verify --db: dermad's --audit_hmac_key_file, to check checkpoints
  --expect_head=HEX    audit verify: a head exported earlier (log line or metric, ≥ 12 hex
                       digits) that must still be in the chain
  --help               this text

DEVICE is "pen-1" or "devices/pen-1". Exit codes: 0 ok, 2 usage, 3 device or state error,
4 connection error, 5 audit trail broken (audit verify).
)";

void OnSignal(int) { g_interrupted.store(true); }

// The connection flags: each sets one field of the command line's ClientSettings.
constexpr std::pair<const char*, std::optional<Setting> ClientSettings::*> kConnectionFlags[] = {
    {"--target=", &ClientSettings::target},
    {"--tls_ca=", &ClientSettings::tls_ca},
    {"--tls_cert=", &ClientSettings::tls_cert},
    {"--tls_key=", &ClientSettings::tls_key},
    {"--tls_server_name=", &ClientSettings::tls_server_name},
    {"--token_file=", &ClientSettings::token_file},
};

// Handles `arg` when it is a connection flag; returns false when it is not one. Sets *exit_code
// on a usage error.
bool ParseConnectionFlag(const std::string& arg, ClientSettings& flags, int* exit_code) {
  if (arg == "--token" || absl::StartsWith(arg, "--token=")) {
    absl::FPrintF(stderr,
                  "dermactl: --token is not an option: a token on the command line is visible to "
                  "every user of this machine (ps, /proc) and stays in shell history. Put it in a "
                  "file only you can read and pass --token_file=FILE, or set $DERMA_TOKEN\n");
    *exit_code = kUsage;
    return true;
  }
  for (const auto& [prefix, field] : kConnectionFlags) {
    if (!absl::StartsWith(arg, prefix)) continue;
    const std::string name(prefix, std::strlen(prefix) - 1);
    const std::string value = arg.substr(std::strlen(prefix));
    if (value.empty()) {
      absl::FPrintF(stderr, "dermactl: %s needs a value\n", name);
      *exit_code = kUsage;
    }
    flags.*field = Setting{value, name};
    return true;
  }
  return false;
}

// Parses the command line into `options`, `flags` and the positional `args`; returns an exit
// code when dermactl should stop here (--help, a usage error).
std::optional<int> ParseArguments(int argc, char** argv, Options& options, ClientSettings& flags,
                                  Args& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    int exit_code = kOk;
    if (arg == "--help" || arg == "-h" || arg == "help") {
      absl::PrintF("%s", kHelp);
      return kOk;
    } else if (ParseConnectionFlag(arg, flags, &exit_code)) {
      if (exit_code != kOk) return exit_code;
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--all") {
      options.all = true;
    } else if (absl::StartsWith(arg, "--duration_s=")) {
      if (!absl::SimpleAtod(arg.substr(13), &options.duration_s) ||
          !(options.duration_s >= 0 && std::isfinite(options.duration_s))) {
        absl::FPrintF(stderr, "dermactl: --duration_s needs a finite number of seconds ≥ 0\n");
        return kUsage;
      }
    } else if (absl::StartsWith(arg, "--principal=")) {
      options.principal = arg.substr(12);
    } else if (absl::StartsWith(arg, "--since=")) {
      if (!absl::ParseDuration(arg.substr(8), &options.since) ||
          options.since < absl::ZeroDuration()) {
        absl::FPrintF(stderr, "dermactl: --since needs a duration such as 90s, 15m or 2h\n");
        return kUsage;
      }
    } else if (absl::StartsWith(arg, "--limit=")) {
      if (!absl::SimpleAtoi(arg.substr(8), &options.limit) || options.limit < 1) {
        absl::FPrintF(stderr, "dermactl: --limit needs a whole number ≥ 1\n");
        return kUsage;
      }
    } else if (absl::StartsWith(arg, "--db=")) {
      options.db = arg.substr(5);
    } else if (absl::StartsWith(arg, "--hmac_key_file=")) {
      options.hmac_key_file = arg.substr(16);
    } else if (absl::StartsWith(arg, "--expect_head=")) {
      options.expect_head = arg.substr(14);
    } else if (absl::StartsWith(arg, "--")) {
      absl::FPrintF(stderr, "dermactl: unknown option %s (see dermactl --help)\n", arg);
      return kUsage;
    } else {
      args.push_back(arg);
    }
  }
  if (args.empty()) {
    absl::FPrintF(stderr, "%s", kHelp);
    return kUsage;
  }
  return std::nullopt;
}

int RunCommand(Connection& connection, const Options& options, Args args) {
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "list") return List(connection, options, args);
  if (command == "get") return Get(connection, options, args);
  if (command == "watch") return Watch(connection, options, args);
  if (command == "configure") return Configure(connection, options, args);
  if (command == "start" || command == "pause" || command == "resume" || command == "stop") {
    return Command(connection, options, command, args);
  }
  if (command == "estop") return Estop(connection, options, args);
  if (command == "reset") return Reset(connection, options, args);
  if (command == "run") return RunProgram(connection, options, args);
  if (command == "runs") return Runs(connection, options, args);
  if (command == "sim") return Sim(connection, options, args);
  if (command == "audit" && !args.empty() && args.front() == "verify") {
    args.erase(args.begin());
    return AuditVerify(connection, options, args);
  }
  if (command == "audit") return Audit(connection, options, args);
  absl::FPrintF(stderr, "dermactl: unknown command \"%s\" (see dermactl --help)\n", command);
  return kUsage;
}

int Main(int argc, char** argv) {
  Options options;
  ClientSettings flags;
  Args args;
  if (std::optional<int> done = ParseArguments(argc, argv, options, flags, args)) return *done;
  absl::StatusOr<ChannelPlan> plan = [&]() -> absl::StatusOr<ChannelPlan> {
    absl::StatusOr<ClientSettings> settings = GatherClientSettings(flags);
    if (!settings.ok()) return settings.status();
    return PlanChannel(*settings);
  }();
  if (!plan.ok()) {
    absl::FPrintF(stderr, "dermactl: %s\n", plan.status().message());
    return kUsage;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  Connection connection = Connect(*plan);
  return RunCommand(connection, options, std::move(args));
}

}  // namespace
}  // namespace derma::cli

int main(int argc, char** argv) { return derma::cli::Main(argc, argv); }
