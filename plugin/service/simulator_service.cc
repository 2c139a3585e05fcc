#include "plugin/service/simulator_service.h"

#include "plugin/service/status_mapping.h"

namespace derma::service {
namespace {

// A callback that finishes `reactor` with the status it is given.
host::StatusCallback Finisher(grpc::ServerUnaryReactor* reactor) {
  return [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); };
}

}  // namespace

grpc::ServerUnaryReactor* SimulatorService::InjectFault(Context* context,
                                                        const sim::v1::InjectFaultRequest* request,
                                                        sim::v1::InjectFaultResponse*) {
  Unary* reactor = context->DefaultReactor();
  control_.InjectFault(*request, Finisher(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::ClearFault(Context* context,
                                                       const sim::v1::ClearFaultRequest* request,
                                                       sim::v1::ClearFaultResponse*) {
  Unary* reactor = context->DefaultReactor();
  control_.ClearFault(*request, Finisher(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::SetElectrodeImpedance(
    Context* context, const sim::v1::SetElectrodeImpedanceRequest* request,
    sim::v1::SetElectrodeImpedanceResponse*) {
  Unary* reactor = context->DefaultReactor();
  control_.SetElectrodeImpedance(*request, Finisher(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::SetLink(Context* context,
                                                    const sim::v1::SetLinkRequest* request,
                                                    sim::v1::SetLinkResponse*) {
  Unary* reactor = context->DefaultReactor();
  control_.SetLink(*request, Finisher(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::AdvanceClock(
    Context* context, const sim::v1::AdvanceClockRequest* request,
    sim::v1::AdvanceClockResponse* response) {
  Unary* reactor = context->DefaultReactor();
  control_.AdvanceClock(request->duration_s(), [reactor, response](absl::StatusOr<absl::Time> now) {
    if (now.ok()) response->set_now_us(absl::ToUnixMicros(*now));
    reactor->Finish(ToGrpcStatus(now.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::LoadScenario(
    Context* context, const sim::v1::LoadScenarioRequest* request,
    sim::v1::LoadScenarioResponse* response) {
  Unary* reactor = context->DefaultReactor();
  absl::StatusOr<size_t> count = control_.LoadScenario(*request);
  if (count.ok()) response->set_action_count(static_cast<uint32_t>(*count));
  reactor->Finish(ToGrpcStatus(count.status()));
  return reactor;
}

}  // namespace derma::service
