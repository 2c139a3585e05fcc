// TransportLimits: the HTTP/2 settings of derma's gRPC server, in one table: the keepalive
// policy honest clients are promised (README "Streaming telemetry": a client may ping every
// 5 s, with or without calls) and what a hostile connection may not do (ping faster than that
// more than twice in a row: GOAWAY ENHANCE_YOUR_CALM "too_many_pings", then the connection is
// closed). What gRPC 1.51 cannot bound in-process (HTTP/2 rapid reset, floods of calls) is the
// front's job (deploy/nginx/, README "Hostile clients"). Layer: plugin/host. Pure; thread-safe.
#ifndef DERMA_PLUGIN_HOST_TRANSPORT_LIMITS_H_
#define DERMA_PLUGIN_HOST_TRANSPORT_LIMITS_H_

#include "grpcpp/server_builder.h"

namespace derma::host {

// A client may ping this often (ms), with or without calls in flight.
inline constexpr int kMinClientPingIntervalMs = 5000;
// Pings sooner than that, in a row, that chttp2 forgives; the next one closes the connection.
// chttp2 forgets the strikes whenever the server sends headers or data on the connection.
inline constexpr int kMaxPingStrikes = 2;

// Adds the keepalive and abuse settings to `builder`: SO_REUSEPORT off, the ping policy above,
// server keepalive pings every 30 s on idle connections. (A grpc::ResourceQuota is not among
// them: even at 16 MiB it did not bound the memory of a rapid-reset flood, README "Hostile
// clients".)
void ApplyTransportLimits(grpc::ServerBuilder& builder);

}  // namespace derma::host

#endif  // DERMA_PLUGIN_HOST_TRANSPORT_LIMITS_H_
