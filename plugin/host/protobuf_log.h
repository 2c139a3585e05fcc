// InstallRateLimitedProtobufLog: protobuf logs one ERROR line for every request whose string
// field is not UTF-8 ("String field ... contains invalid UTF-8 data"), so a hostile client
// sending such requests as fast as it can would turn dermad's stderr into its flood (and stall
// dermad once a log pipe nobody reads is full). This handler prints at most one protobuf
// message per second and, with the next one it prints, how many it suppressed meanwhile.
// Layer: plugin/host. Thread-safe.
#ifndef DERMA_PLUGIN_HOST_PROTOBUF_LOG_H_
#define DERMA_PLUGIN_HOST_PROTOBUF_LOG_H_

namespace derma::host {

// Replaces protobuf's log handler for the whole process. Call once at start-up.
void InstallRateLimitedProtobufLog();

}  // namespace derma::host

#endif  // DERMA_PLUGIN_HOST_PROTOBUF_LOG_H_
