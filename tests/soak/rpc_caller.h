// RpcCaller: how every soak client makes a unary DeviceControl call: on its own channel, with a
// deadline, timed, classified against the table of expected errors (expected_errors.h) and
// recorded in the client's CallTally; a call that breaks the table is written to the
// FailureLog with its device and the server's message. Also the soak's view of the fleet
// (FleetDevice). Part of tests/soak. Not thread-safe: one per client thread.
#ifndef DERMA_TESTS_SOAK_RPC_CALLER_H_
#define DERMA_TESTS_SOAK_RPC_CALLER_H_

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "derma/v1/device_control.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tests/soak/call_tally.h"
#include "tests/soak/expected_errors.h"

namespace derma::soak {

// One device as the soak drives it: its name, kind and limits (from ListDevices at start).
struct FleetDevice {
  std::string name;
  v1::DeviceKind kind = v1::DEVICE_KIND_UNSPECIFIED;
  v1::Capabilities capabilities;
  double needle_length_mm = 0;         // pens: the installed cartridge
  double electrode_impedance_ohm = 0;  // stimulators: at start
};

// A channel of its own (no subchannel shared with other clients: one TCP connection each),
// connected before it is returned (waiting up to 10 s).
// `small_window` keeps HTTP/2 flow control at 64 KiB (no BDP probing), so a reader that stalls
// is not hidden by megabytes of transport buffers: the server's queue fills and drops samples.
std::shared_ptr<grpc::Channel> MakeOwnChannel(const std::string& target, bool small_window = false);

class RpcCaller {
 public:
  using Stub = v1::DeviceControl::Stub;

  RpcCaller(std::shared_ptr<grpc::Channel> channel, std::string label, absl::Duration deadline,
            CallTally& tally, FailureLog& failures, LiveCounters& live)
      : channel_(std::move(channel)),
        stub_(v1::DeviceControl::NewStub(channel_)),
        label_(std::move(label)),
        deadline_(deadline),
        tally_(tally),
        failures_(failures),
        live_(live) {}

  // Calls `method` and records the outcome. The status is returned for the caller's logic.
  template <typename Request, typename Response>
  grpc::Status Call(Rpc rpc, Expect expect, const std::string& device,
                    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
    const absl::Time start = absl::Now();
    grpc::Status status = (stub_.get()->*method)(&context, request, response);
    Record(rpc, expect, device, status, absl::Now() - start);
    return status;
  }

  // Records a call made another way (streams, scrapes).
  Verdict Record(Rpc rpc, Expect expect, const std::string& device, const grpc::Status& status,
                 absl::Duration latency);
  // A broken expectation that is not a status (a wrong state, a lost run...).
  void Fail(const std::string& what);

  Stub& stub() { return *stub_; }
  const std::string& label() const { return label_; }
  absl::Duration deadline() const { return deadline_; }
  CallTally& tally() { return tally_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
  const std::string label_;
  const absl::Duration deadline_;
  CallTally& tally_;
  FailureLog& failures_;
  LiveCounters& live_;
};

}  // namespace derma::soak

#endif  // DERMA_TESTS_SOAK_RPC_CALLER_H_
