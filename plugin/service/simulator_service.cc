#include "plugin/service/simulator_service.h"

#include "plugin/service/status_mapping.h"

namespace derma::service {
namespace {

// A callback that finishes `reactor` with the status it is given.
host::StatusCallback Finisher(grpc::ServerUnaryReactor* reactor) {
  return [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); };
}

}  // namespace

grpc::ServerUnaryReactor* SimulatorService::Deny(Context* context, const char* method) const {
  absl::StatusOr<auth::Principal> caller = auth_.Authorize(*context, method);
  if (caller.ok()) return nullptr;
  Unary* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(caller.status()));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::InjectFault(Context* context,
                                                        const sim::v1::InjectFaultRequest* request,
                                                        sim::v1::InjectFaultResponse*) {
  if (Unary* denied = Deny(context, "/derma.sim.v1.Simulator/InjectFault")) return denied;
  Unary* reactor = context->DefaultReactor();
  control_.InjectFault(*request, Finisher(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::ClearFault(Context* context,
                                                       const sim::v1::ClearFaultRequest* request,
                                                       sim::v1::ClearFaultResponse*) {
  if (Unary* denied = Deny(context, "/derma.sim.v1.Simulator/ClearFault")) return denied;
  Unary* reactor = context->DefaultReactor();
  control_.ClearFault(*request, Finisher(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::SetElectrodeImpedance(
    Context* context, const sim::v1::SetElectrodeImpedanceRequest* request,
    sim::v1::SetElectrodeImpedanceResponse*) {
  if (Unary* denied = Deny(context, "/derma.sim.v1.Simulator/SetElectrodeImpedance")) return denied;
  Unary* reactor = context->DefaultReactor();
  control_.SetElectrodeImpedance(*request, Finisher(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::SetLink(Context* context,
                                                    const sim::v1::SetLinkRequest* request,
                                                    sim::v1::SetLinkResponse*) {
  if (Unary* denied = Deny(context, "/derma.sim.v1.Simulator/SetLink")) return denied;
  Unary* reactor = context->DefaultReactor();
  control_.SetLink(*request, Finisher(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::AdvanceClock(
    Context* context, const sim::v1::AdvanceClockRequest* request,
    sim::v1::AdvanceClockResponse* response) {
  if (Unary* denied = Deny(context, "/derma.sim.v1.Simulator/AdvanceClock")) return denied;
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
  if (Unary* denied = Deny(context, "/derma.sim.v1.Simulator/LoadScenario")) return denied;
  Unary* reactor = context->DefaultReactor();
  absl::StatusOr<size_t> count = control_.LoadScenario(*request);
  if (count.ok()) response->set_action_count(static_cast<uint32_t>(*count));
  reactor->Finish(ToGrpcStatus(count.status()));
  return reactor;
}

}  // namespace derma::service
