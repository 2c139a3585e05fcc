// The backends the driver conformance suite runs over: each factory builds one driver to test,
// with its simulator controls where the backend has them, and says whether it runs on the real
// clock. Simulated devices (every kind × model), Modbus TCP and Modbus RTU drivers against the
// in-process device emulator, and the Modbus driver against the independent device written from
// REGISTER_MAP.md alone (tests/conformance/independent_device).
#ifndef DERMA_TESTS_CONFORMANCE_BACKEND_FACTORIES_H_
#define DERMA_TESTS_CONFORMANCE_BACKEND_FACTORIES_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "plugin/driver.h"
#include "sim/sim_device.h"

namespace derma::conformance {

// One driver to test, and what it needs kept alive (an emulator, a link, a child process).
struct DriverUnderTest {
  std::shared_ptr<void> keepalive;  // destroyed after the driver
  std::unique_ptr<Driver> driver;
  sim::SimDevice* sim = nullptr;  // fault and link controls, or null for hardware backends
  // True for a backend that talks to a device running on the wall clock: the suite's times are
  // then real (it waits for them), compressed by kRealTimeScale.
  bool real_time = false;
};

// Real-time backends run the suite's timeline this much faster than written (a 30 s wait takes
// 6 s), which the devices' physics still follow.
inline constexpr double kRealTimeScale = 0.2;

struct BackendFactory {
  std::string name;  // test name suffix: [A-Za-z0-9_]
  std::function<DriverUnderTest()> create;
};

// Test logs show the backend's name instead of the factory's bytes.
inline void PrintTo(const BackendFactory& factory, std::ostream* os) { *os << factory.name; }

// Every simulated kind × every model of its catalogue.
std::vector<BackendFactory> SimBackends();
// The Modbus driver, each kind, over TCP and over RTU (a pseudo-terminal) to the emulator.
std::vector<BackendFactory> EmulatorBackends();
// The Modbus driver, each kind, over TCP to the independent Python device.
std::vector<BackendFactory> IndependentDeviceBackends();

}  // namespace derma::conformance

#endif  // DERMA_TESTS_CONFORMANCE_BACKEND_FACTORIES_H_
