// The emulator's two Modbus transports over a set of EmulatedDevices: TcpServer (Modbus TCP,
// MBAP framing, any number of connections, requests routed by unit id) and RtuBus (Modbus RTU on
// a pseudo-terminal published under a stable symlink, one multidrop bus: frames split by unit id,
// replies paced to the configured baud rate at 11 bits per character with 3.5-character gaps,
// broadcasts to every device). Each runs its own threads and acts out the devices' transport
// faults (late, missing, corrupt or garbage-prefixed replies, dropped connections).
// Layer: sim/modbus_emulator. Thread-safe; the destructors stop and join.
#ifndef DERMA_SIM_MODBUS_EMULATOR_TRANSPORT_H_
#define DERMA_SIM_MODBUS_EMULATOR_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "sim/modbus_emulator/emulated_device.h"

namespace derma::emulator {

class TcpServer {
 public:
  // Listens on host:port (port 0: a free one). The devices must outlive the server.
  static absl::StatusOr<std::unique_ptr<TcpServer>> Start(const std::string& host, uint16_t port,
                                                          std::vector<EmulatedDevice*> devices);
  ~TcpServer();
  uint16_t port() const { return port_; }

 private:
  TcpServer(int listen_fd, uint16_t port, std::vector<EmulatedDevice*> devices);
  void AcceptLoop();
  void Serve(int fd);
  EmulatedDevice* Find(int unit) const;

  const int listen_fd_;
  const uint16_t port_;
  const std::vector<EmulatedDevice*> devices_;
  int wake_[2] = {-1, -1};  // a pipe: stop wakes the accept loop
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::vector<int> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::thread accept_thread_;
};

class RtuBus {
 public:
  // Opens a pseudo-terminal and points `path` at its slave side (replacing what was there, so the
  // path survives emulator restarts). The devices must outlive the bus.
  static absl::StatusOr<std::unique_ptr<RtuBus>> Start(const std::string& path, uint32_t baud,
                                                       std::vector<EmulatedDevice*> devices);
  ~RtuBus();
  const std::string& slave_name() const { return slave_name_; }

 private:
  RtuBus(int master, int slave, std::string path, std::string slave_name, uint32_t baud,
         std::vector<EmulatedDevice*> devices);
  void Loop();
  // One complete frame (unit id to CRC) that arrived at `received`.
  void Serve(const std::vector<uint8_t>& frame, absl::Time received);
  // Writes `bytes` as a paced transmission starting no earlier than `start`: they reach the
  // master when their last character would have on a real line.
  void Transmit(const std::vector<uint8_t>& bytes, absl::Time start);

  const int master_;
  const int slave_;  // kept open so the master side never sees a hang-up between clients
  const std::string path_;
  const std::string slave_name_;
  const absl::Duration char_time_;
  const std::vector<EmulatedDevice*> devices_;
  absl::Time line_free_ = absl::InfinitePast();  // end of the last frame on the line (bus thread)
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace derma::emulator

#endif  // DERMA_SIM_MODBUS_EMULATOR_TRANSPORT_H_
