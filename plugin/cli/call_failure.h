// Puts a failed call into plain words on stderr and picks dermactl's exit code for it: the
// server's reason and every bad field (kDeviceError), refused credentials or a role too low with
// the role the call needs (kAccessDenied), a failed TLS handshake with what can cause it
// (kTlsFailure), a service out of reach (kConnectionError). Layer: plugin/cli. Not thread-safe
// (writes stderr).
#ifndef DERMA_PLUGIN_CLI_CALL_FAILURE_H_
#define DERMA_PLUGIN_CLI_CALL_FAILURE_H_

#include "grpcpp/grpcpp.h"
#include "plugin/cli/cli_support.h"

namespace derma::cli {

// Prints why `status` (a failed call on `c`) failed and returns the exit code for it.
int Report(const Connection& c, const grpc::Status& status);

}  // namespace derma::cli

#endif  // DERMA_PLUGIN_CLI_CALL_FAILURE_H_
