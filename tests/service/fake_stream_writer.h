// FakeStreamWriter: gRPC's side of one server-streaming call, so a ServerWriteReactor (such as
// TelemetryStream) runs in a test without a server or gRPC's threads. Write records the
// message as a client would read it (serialized and parsed again, so fields a reactor writes as
// wire bytes among the unknown fields read as the fields they are) and completes it at once
// (OnWriteDone(true), on the writing thread); Finish records the status. OnDone is the test's to
// call, once it has seen Finish. Test code, in tests/service. Thread-safe.
#ifndef DERMA_TESTS_SERVICE_FAKE_STREAM_WRITER_H_
#define DERMA_TESTS_SERVICE_FAKE_STREAM_WRITER_H_

#include <functional>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/server_callback.h"

namespace derma::service::testing {

template <typename Response>
class FakeStreamWriter : public grpc::ServerCallbackWriter<Response> {
 public:
  using Messages = std::vector<Response>;

  // Binds `reactor` to this call; what it started before is replayed now, as gRPC does.
  void Bind(grpc::ServerWriteReactor<Response>* reactor) {
    reactor_ = reactor;
    this->BindReactor(reactor);
  }

  void Write(const Response* message, grpc::WriteOptions options) override {
    {
      absl::MutexLock lock(&mu_);
      written_.push_back(AsReceived(*message));
    }
    reactor_->OnWriteDone(true);
  }
  void WriteAndFinish(const Response* message, grpc::WriteOptions options,
                      grpc::Status status) override {
    {
      absl::MutexLock lock(&mu_);
      written_.push_back(AsReceived(*message));
    }
    Finish(std::move(status));
  }
  static Response AsReceived(const Response& sent) {
    Response received;
    received.ParseFromString(sent.SerializeAsString());
    return received;
  }
  void Finish(grpc::Status status) override {
    absl::MutexLock lock(&mu_);
    finished_ = std::move(status);
  }
  void SendInitialMetadata() override {}

  // Waits until `condition` holds over the messages written so far; false after `timeout`.
  bool WaitForWritten(std::function<bool(const Messages&)> condition, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const auto holds = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return condition(written_); };
    return mu_.AwaitWithTimeout(absl::Condition(&holds), timeout);
  }
  // Waits for Finish and returns its status; nullopt after `timeout`.
  std::optional<grpc::Status> WaitForFinish(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const auto finished = [&]()
                              ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_.has_value(); };
    mu_.AwaitWithTimeout(absl::Condition(&finished), timeout);
    return finished_;
  }

 private:
  grpc::internal::ServerReactor* reactor() override { return reactor_; }
  void CallOnDone() override {}

  grpc::ServerWriteReactor<Response>* reactor_ = nullptr;  // set before the first write
  absl::Mutex mu_;
  Messages written_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> finished_ ABSL_GUARDED_BY(mu_);
};

}  // namespace derma::service::testing

#endif  // DERMA_TESTS_SERVICE_FAKE_STREAM_WRITER_H_
