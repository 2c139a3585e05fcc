// derma_modbus_emulator: serves the Modbus devices of a fleet config (TCP links on their
// host:port, RTU links on pseudo-terminals at their device paths) and derma.sim.v1.Simulator for
// them. Prints, before it serves: one "link NAME tcp HOST:PORT" or "link NAME rtu PATH -> PTY"
// line per link, "grpc port N", then "ready"; then one "event ..." line per device event.
// SIGINT/SIGTERM stop it (exit 0); a bad config or an address it cannot take exits 2.
#include <csignal>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "plugin/host/config_loader.h"
#include "sim/modbus_emulator/emulator.h"

ABSL_FLAG(std::string, config, "", "Fleet config whose BACKEND_MODBUS devices to emulate");
ABSL_FLAG(std::string, grpc_listen, "127.0.0.1:0",
          "Address of derma.sim.v1.Simulator (port 0: a free one; empty: none)");
ABSL_FLAG(bool, any_tcp_port, false,
          "Serve each TCP link on a free port instead of its configured one (printed)");
ABSL_FLAG(bool, print_events, true,
          "Print each device event: \"event UNIX_US devices/ID WHAT\" (output on/off, watchdog "
          "expiry, emergency stop)");
ABSL_FLAG(std::string, reply_log, "",
          "Append every tagged poll reply to this file: \"UNIX_US devices/ID TAG COUNTER ON_TIME\"");

namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "derma_modbus_emulator --config=FILE [--grpc_listen=HOST:PORT]: emulate Modbus devices");
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Every thread started from here on inherits the blocked signals; main waits for them.
  const sigset_t stop = StopSignals();
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<derma::config::v1::FleetConfig> config = derma::host::LoadFleetConfig(path);
  if (config.ok()) {
    if (absl::Status s = derma::host::ValidateFleetConfig(*config); !s.ok()) config = s;
  }
  if (!config.ok()) {
    absl::FPrintF(stderr, "derma_modbus_emulator: bad config %s: %s\n", path,
                  config.status().message());
    return 2;
  }
  derma::emulator::EmulatorOptions options;
  options.grpc_listen = absl::GetFlag(FLAGS_grpc_listen);
  options.print_events = absl::GetFlag(FLAGS_print_events);
  options.any_tcp_port = absl::GetFlag(FLAGS_any_tcp_port);
  options.reply_log = absl::GetFlag(FLAGS_reply_log);
  absl::StatusOr<std::unique_ptr<derma::emulator::Emulator>> emulator =
      derma::emulator::Emulator::Create(*config, options);
  if (!emulator.ok()) {
    absl::FPrintF(stderr, "derma_modbus_emulator: %s\n", emulator.status().message());
    return 2;
  }
  for (const derma::emulator::LinkEndpoint& e : (*emulator)->endpoints()) {
    if (e.rtu) {
      absl::PrintF("link %s rtu %s -> %s\n", e.link, e.address, e.pty);
    } else {
      absl::PrintF("link %s tcp %s\n", e.link, e.address);
    }
  }
  if ((*emulator)->grpc_port() != 0) absl::PrintF("grpc port %d\n", (*emulator)->grpc_port());
  absl::PrintF("ready\n");
  std::fflush(stdout);
  int signal = 0;
  sigwait(&stop, &signal);
  emulator->reset();
  return 0;
}
