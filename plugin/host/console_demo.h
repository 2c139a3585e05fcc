// ConsoleDemo: keeps a fleet busy for the console host so its telemetry table shows a live
// fleet: it leases every device, runs a two-step program on it, restarts the program when it
// ends, and renews the leases. It uses only the core's public device commands, like a lab
// script would. Layer: plugin/host. Not thread-safe (the console loop's thread only).
#ifndef DERMA_PLUGIN_HOST_CONSOLE_DEMO_H_
#define DERMA_PLUGIN_HOST_CONSOLE_DEMO_H_

#include <string>
#include <vector>

#include "plugin/host/fleet.h"

namespace derma::host {

class ConsoleDemo {
 public:
  explicit ConsoleDemo(Fleet& fleet);
  // Renews leases and restarts finished programs. Call about once a second.
  void Step();

 private:
  void StartProgram(uint32_t index);

  Fleet& fleet_;
  std::vector<std::string> leases_;  // by device index; empty when not held
};

// One line per device with its state and latest measurements.
std::string FormatFleetTable(Fleet& fleet);

}  // namespace derma::host

#endif  // DERMA_PLUGIN_HOST_CONSOLE_DEMO_H_
