// MalformedRequestInterceptor: what a client sees when its request's bytes do not parse as the
// method's request message (malformed protobuf, or a proto3 string field that is not UTF-8).
// gRPC 1.51's callback handlers answer such a call themselves with UNIMPLEMENTED and an empty
// message (server_callback_handlers.h), which reads as "this server lacks the method". This
// server interceptor sees that the request did not parse (gRPC hands interceptors a null
// message at POST_RECV_MESSAGE) and rewrites that one status to INVALID_ARGUMENT with reason
// MALFORMED_REQUEST and a message naming the method; every other status passes untouched.
// Layer: plugin/service. Thread-safe (one interceptor per call; the factory is stateless).
#ifndef DERMA_PLUGIN_SERVICE_MALFORMED_REQUEST_H_
#define DERMA_PLUGIN_SERVICE_MALFORMED_REQUEST_H_

#include <memory>

#include "grpcpp/support/server_interceptor.h"

namespace derma::service {

// Register before any interceptor that reads the final status (the gRPC metrics), so that
// one counts the call as INVALID_ARGUMENT.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeMalformedRequestInterceptorFactory();

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_MALFORMED_REQUEST_H_
