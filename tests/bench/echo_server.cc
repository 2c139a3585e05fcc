#include "tests/bench/echo_server.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "plugin/host/transport_limits.h"
#include "tests/bench/echo.grpc.pb.h"

namespace derma::bench {
namespace {

// Writes the same raw bytes until the client cancels or goes away. Owns itself until OnDone.
class BatchWriter final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit BatchWriter(const grpc::ByteBuffer& batch) : batch_(batch) { StartWrite(&batch_); }

  void OnWriteDone(bool ok) override {
    if (ok) {
      StartWrite(&batch_);
    } else {
      Finish(grpc::Status::CANCELLED);
    }
  }
  void OnDone() override { delete this; }

 private:
  const grpc::ByteBuffer batch_;  // copies share the slice: no per-write copy or encoding
};

}  // namespace

class EchoServer::Service final
    : public Echo::WithRawCallbackMethod_StreamBatches<Echo::CallbackService> {
 public:
  explicit Service(const std::string& batch) {
    grpc::Slice slice(batch);
    batch_ = grpc::ByteBuffer(&slice, 1);
  }

  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context, const EchoMessage* request,
                                 EchoMessage* response) override {
    *response = *request;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerWriteReactor<grpc::ByteBuffer>* StreamBatches(grpc::CallbackServerContext*,
                                                            const grpc::ByteBuffer*) override {
    return new BatchWriter(batch_);
  }

 private:
  grpc::ByteBuffer batch_;
};

absl::StatusOr<std::unique_ptr<EchoServer>> EchoServer::Start(const std::string& batch,
                                                              bool metrics_interceptor) {
  std::unique_ptr<EchoServer> server(new EchoServer());
  server->service_ = std::make_unique<Service>(batch);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  // dermad's own HTTP/2 settings (SO_REUSEPORT off, keepalive and ping policy; it sets no
  // resource quota), so a ratio to the baseline compares like with like.
  host::ApplyTransportLimits(builder);
  builder.RegisterService(server->service_.get());
  if (metrics_interceptor) {
    server->metrics_ = std::make_unique<metrics::GrpcMetrics>();
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(server->metrics_->MakeInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || port == 0) {
    return absl::UnavailableError("echo: cannot serve on 127.0.0.1:0");
  }
  server->address_ = absl::StrCat("127.0.0.1:", port);
  return server;
}

EchoServer::~EchoServer() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
}

}  // namespace derma::bench
