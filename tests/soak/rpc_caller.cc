#include "tests/soak/rpc_caller.h"

#include <iostream>

#include "grpc/grpc.h"

namespace derma::soak {

std::shared_ptr<grpc::Channel> MakeOwnChannel(const std::string& target, bool small_window) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (small_window) {
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  // Connected before the client's first call: a first connection attempt that fails (seen once,
  // "No such file or directory" from connect on a busy machine) is retried by the channel's
  // backoff here, instead of failing every call fast until the backoff ends. If it never
  // connects, the client's calls fail and are counted.
  channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  return channel;
}

Verdict RpcCaller::Record(Rpc rpc, Expect expect, const std::string& device,
                          const grpc::Status& status, absl::Duration latency) {
  const Verdict verdict = Classify(rpc, expect, status);
  tally_.Record(rpc, verdict, status, latency);
  live_.calls.fetch_add(1, std::memory_order_relaxed);
  if (verdict == Verdict::kUnexpected) {
    Fail(absl::StrCat(RpcName(rpc), " ", device, ": ",
                      status.ok()
                          ? "OK where an error was required"
                          : absl::StrCat(CodeName(status.error_code()), " ", ReasonOf(status),
                                         " \"", status.error_message(), "\"")));
  } else if (verdict == Verdict::kDeadline) {
    std::cerr << "derma_soak: " << label_ << " " << RpcName(rpc) << " " << device
              << ": DEADLINE_EXCEEDED after " << absl::FormatDuration(latency) << "\n";
  }
  return verdict;
}

void RpcCaller::Fail(const std::string& what) { failures_.Add(absl::StrCat(label_, ": ", what)); }

}  // namespace derma::soak
