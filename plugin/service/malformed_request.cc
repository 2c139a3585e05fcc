#include "plugin/service/malformed_request.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "plugin/errors/errors.h"
#include "plugin/service/status_mapping.h"

namespace derma::service {
namespace {

using grpc::experimental::InterceptionHookPoints;

class MalformedRequestInterceptor : public grpc::experimental::Interceptor {
 public:
  // `method` is the registered method's name, which outlives every call.
  explicit MalformedRequestInterceptor(const char* method) : method_(method) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      malformed_ = true;
    }
    if (malformed_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        methods->GetSendStatus().error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      methods->ModifySendStatus(ToGrpcStatus(MakeError(
          absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_MALFORMED_REQUEST,
          absl::StrCat("the request could not be parsed as the request message of ", method_,
                       " (malformed protobuf, or a string field that is not UTF-8)"),
          {{"method", method_}})));
    }
    methods->Proceed();
  }

 private:
  const char* const method_;  // not copied: this runs for every call
  bool malformed_ = false;
};

class MalformedRequestInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MalformedRequestInterceptor(info->method());
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeMalformedRequestInterceptorFactory() {
  return std::make_unique<MalformedRequestInterceptorFactory>();
}

}  // namespace derma::service
