// dermactl: the derma command line. `dermactl --help` lists the subcommands and the connection
// settings (TLS, mTLS, bearer token, config file: credentials.h, config_file.h). Exit codes: 0 ok,
// 2 usage (also a bad config file or an unreadable CA, certificate, key or token file, before
// any connection), 3 device/state error (the server's reason and bad fields are printed),
// 4 connection error, 5 audit verify found the audit trail broken, 6 TLS handshake failed,
// 7 credentials refused (UNAUTHENTICATED) or role too low (PERMISSION_DENIED), 8 estop carried
// out but some output not confirmed off.
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

usage: dermactl [--target=HOST:PORT] [TLS and token options] [--json] COMMAND [ARGS]

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

connection (a flag overrides the environment, which overrides the config file):
  --target=HOST:PORT      derma service (else $DERMA_TARGET, else the config file's target,
                          else 127.0.0.1:50051)
  --tls_ca=FILE           TLS on: trust server certificates signed by this CA (PEM). Without
                          it dermactl speaks plaintext
  --tls_cert=FILE         mTLS: the client certificate (PEM); needs --tls_key and --tls_ca
  --tls_key=FILE          mTLS: its private key (PEM, unencrypted); needs --tls_cert
  --tls_server_name=NAME  check the server's certificate for NAME instead of the target's
                          host (a target given as an IP address or through a tunnel);
                          needs --tls_ca
  --token_file=FILE       send "authorization: Bearer TOKEN" on every call, TOKEN being the
                          first line of FILE without surrounding blanks. Refused: a FILE that
                          group or others may access (chmod 600 FILE), an empty token, a
                          token with blanks or characters outside printable ASCII
  $DERMA_TOKEN            the token itself, when set and not empty and no --token_file is given
                          (it overrides the config file's token_file; blanks or characters
                          outside printable ASCII are refused)
  A token, from wherever it comes, identifies the caller even with a client certificate: the
  service does not try the certificate when a token is sent, so an unknown or revoked token is
  refused (exit 7) although the certificate is known. DERMACTL_CONFIG=/dev/null ignores the
  config file, its token_file with it.
  There is no --token: a token on the command line is visible to every user (ps). A token is
  never sent in plaintext to a target that is not loopback (localhost, 127.0.0.0/8, ::1, a
  unix: socket): dermactl refuses (exit 2) unless TLS is on.
  CA, certificate, key and token files are read and checked (a certificate, a key, the key
  matching the certificate) before any connection; a problem is a usage error naming the file.

config file: $DERMACTL_CONFIG when set and not empty (it must exist; /dev/null for none), else
  $XDG_CONFIG_HOME/derma/dermactl.conf when XDG_CONFIG_HOME is set and not empty, else
  $HOME/.config/derma/dermactl.conf (these two may be absent). One `key = value` a line, blanks
  around both ignored; keys: target, tls_ca, tls_cert, tls_key, tls_server_name, token_file,
  each at most once. Blank lines and lines whose first non-blank character is # are skipped
  (a # after a value is part of the value). Relative paths are relative to the file's folder; ~ is not expanded.
  An unknown key, a line without =, an empty value or a repeated key is a usage error naming
  FILE:LINE. Every command reads it, even audit verify --db. Example:
    target = station-7.lab:50051
    tls_ca = ca.pem
    tls_cert = robot-7.pem
    tls_key = robot-7.key
    token_file = token

gRPC's own log lines are kept off the terminal (set $GRPC_VERBOSITY to see them); dermactl
says what failed instead.

DEVICE is "pen-1" or "devices/pen-1". Exit codes:
  0 ok
  2 usage: bad arguments, a bad config file, an unreadable or unfit CA, certificate, key or
    token file, a token that would go in plaintext beyond loopback
  3 device or state error (the server's reason and every bad field are printed)
  4 connection error: no server, or it went away
  5 audit trail broken (audit verify)
  6 TLS failure: the server's certificate is not trusted or not for the name checked, the
    server requires a client certificate or does not trust ours, TLS to a plaintext server or
    plaintext to a TLS-only one (the message names the likely cause and quotes gRPC's words)
  7 access refused: UNAUTHENTICATED (no token, or one the service does not know) or
    PERMISSION_DENIED (the message names the role the call needs)
  8 estop: the stop was carried out, but derma could not confirm some outputs off (devices
    behind a link that did not answer; listed on stderr, their lines show UNCONFIRMED)
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
