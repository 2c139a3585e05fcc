#include "plugin/host/transport_limits.h"

namespace derma::host {
namespace {

struct IntArgument {
  const char* name;
  int value;
};

constexpr IntArgument kTransportArguments[] = {
    // Ports are never shared with another process: a second dermad fails to start.
    {GRPC_ARG_ALLOW_REUSEPORT, 0},
    {GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, kMinClientPingIntervalMs},
    {GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1},
    // 0 would allow unlimited strikes: one connection pinging as fast as it can delayed
    // another client's GetDevice by up to 2 s.
    {GRPC_ARG_HTTP2_MAX_PING_STRIKES, kMaxPingStrikes},
    // The server pings idle connections to find dead clients.
    {GRPC_ARG_KEEPALIVE_TIME_MS, 30000},
    {GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000},
};

}  // namespace

void ApplyTransportLimits(grpc::ServerBuilder& builder) {
  for (const IntArgument& argument : kTransportArguments) {
    builder.AddChannelArgument(argument.name, argument.value);
  }
}

}  // namespace derma::host
