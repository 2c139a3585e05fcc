// StreamReader: a pull-based client for one server-streaming call on the gRPC callback API.
// A message is requested from the server only when the test calls Next, so "the client stops
// reading" is simply not calling Next, and every wait has a deadline (a hung stream fails the
// test instead of hanging it). Layer: tests/integration. Thread-safe.
#ifndef DERMA_TESTS_INTEGRATION_STREAM_READER_H_
#define DERMA_TESTS_INTEGRATION_STREAM_READER_H_

#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"
#include "grpcpp/support/status.h"

namespace derma::testing {

inline constexpr absl::Duration kStreamWait = absl::Seconds(10);

template <typename Request, typename Response>
class StreamReader : public grpc::ClientReadReactor<Response> {
 public:
  // `start(context, request, reactor)` begins the call, e.g.
  //   [&](auto* c, auto* q, auto* r) { stub->async()->StreamTelemetry(c, q, r); }
  // The reader keeps `request` alive for the call.
  template <typename StartFn>
  StreamReader(Request request, StartFn start) : request_(std::move(request)) {
    start(&context_, &request_, this);
    // Reads start from the test thread, outside any reaction: the hold keeps the call open
    // until the final read has come back.
    this->AddHold();
    this->StartCall();
  }

  // Cancels a call still open and waits until gRPC is done with this reactor.
  ~StreamReader() override {
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      if (holding_ && !read_pending_) {
        holding_ = false;
        release = true;
      }
    }
    context_.TryCancel();
    if (release) this->RemoveHold();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }

  // The next message; nullopt when the stream ended or nothing came within `timeout`.
  std::optional<Response> Next(absl::Duration timeout = kStreamWait) {
    bool start_read = false;
    {
      absl::MutexLock lock(&mu_);
      if (!ready_.has_value() && !read_pending_ && !read_ended_) {
        read_pending_ = true;
        start_read = true;
      }
    }
    if (start_read) this->StartRead(&incoming_);
    absl::MutexLock lock(&mu_);
    auto has_result = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return ready_.has_value() || read_ended_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&has_result), timeout);
    if (!ready_.has_value()) return std::nullopt;
    std::optional<Response> out = std::move(ready_);
    ready_.reset();
    return out;
  }

  // Reads every remaining message (appended to `rest` when given) until the server ends the
  // stream, and returns its status; nullopt if it did not end within `timeout`.
  std::optional<grpc::Status> Finish(absl::Duration timeout = kStreamWait,
                                     std::vector<Response>* rest = nullptr) {
    const absl::Time deadline = absl::Now() + timeout;
    while (std::optional<Response> message = Next(deadline - absl::Now())) {
      if (rest != nullptr) rest->push_back(*std::move(message));
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(&done_), deadline);
    if (!done_) return std::nullopt;
    return status_;
  }

  grpc::ClientContext& context() { return context_; }

 private:
  void OnReadDone(bool ok) override {
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      read_pending_ = false;
      if (ok) {
        ready_ = std::move(incoming_);
      } else {
        read_ended_ = true;
      }
      // After the last read, or once the destructor cancelled, nothing reads any more.
      if (!ok || cancelled_) release = std::exchange(holding_, false);
    }
    if (release) this->RemoveHold();
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    read_ended_ = true;
    done_ = true;
  }

  const Request request_;
  grpc::ClientContext context_;
  Response incoming_;  // written by gRPC while a read is pending
  absl::Mutex mu_;
  std::optional<Response> ready_ ABSL_GUARDED_BY(mu_);
  bool holding_ ABSL_GUARDED_BY(mu_) = true;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool read_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool read_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace derma::testing

#endif  // DERMA_TESTS_INTEGRATION_STREAM_READER_H_
