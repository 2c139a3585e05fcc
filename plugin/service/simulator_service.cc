#include "plugin/service/simulator_service.h"

#include <utility>

#include "plugin/service/status_mapping.h"

namespace derma::service {

grpc::ServerUnaryReactor* SimulatorService::Admit(Context* context, const char* method,
                                                  const google::protobuf::Message& request,
                                                  AuditedCall* call) const {
  return AdmitCall(auth_, audit_, context, method, request, CallClass::kCommand, call);
}

sim::StatusCallback SimulatorService::Finisher(Unary* reactor, AuditedCall call,
                                               std::string device) const {
  return [this, reactor, call = std::move(call), device = std::move(device)](absl::Status status) {
    audit_.Finish(reactor, call, device, std::move(status));
  };
}

grpc::ServerUnaryReactor* SimulatorService::InjectFault(Context* context,
                                                        const sim::v1::InjectFaultRequest* request,
                                                        sim::v1::InjectFaultResponse*) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.sim.v1.Simulator/InjectFault", *request, &call)) {
    return refused;
  }
  Unary* reactor = context->DefaultReactor();
  control_.InjectFault(*request, Finisher(reactor, std::move(call), request->name()));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::ClearFault(Context* context,
                                                       const sim::v1::ClearFaultRequest* request,
                                                       sim::v1::ClearFaultResponse*) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.sim.v1.Simulator/ClearFault", *request, &call)) {
    return refused;
  }
  Unary* reactor = context->DefaultReactor();
  control_.ClearFault(*request, Finisher(reactor, std::move(call), request->name()));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::SetElectrodeImpedance(
    Context* context, const sim::v1::SetElectrodeImpedanceRequest* request,
    sim::v1::SetElectrodeImpedanceResponse*) {
  AuditedCall call;
  if (Unary* refused =
          Admit(context, "/derma.sim.v1.Simulator/SetElectrodeImpedance", *request, &call)) {
    return refused;
  }
  Unary* reactor = context->DefaultReactor();
  control_.SetElectrodeImpedance(*request, Finisher(reactor, std::move(call), request->name()));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::SetLink(Context* context,
                                                    const sim::v1::SetLinkRequest* request,
                                                    sim::v1::SetLinkResponse*) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.sim.v1.Simulator/SetLink", *request, &call)) {
    return refused;
  }
  Unary* reactor = context->DefaultReactor();
  control_.SetLink(*request, Finisher(reactor, std::move(call), request->name()));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::SetTransportFault(
    Context* context, const sim::v1::SetTransportFaultRequest* request,
    sim::v1::SetTransportFaultResponse*) {
  AuditedCall call;
  if (Unary* refused =
          Admit(context, "/derma.sim.v1.Simulator/SetTransportFault", *request, &call)) {
    return refused;
  }
  Unary* reactor = context->DefaultReactor();
  control_.SetTransportFault(*request, Finisher(reactor, std::move(call), request->name()));
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::AdvanceClock(
    Context* context, const sim::v1::AdvanceClockRequest* request,
    sim::v1::AdvanceClockResponse* response) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.sim.v1.Simulator/AdvanceClock", *request, &call)) {
    return refused;
  }
  Unary* reactor = context->DefaultReactor();
  control_.AdvanceClock(request->duration_s(), [this, reactor, response, call = std::move(call)](
                                                   absl::StatusOr<absl::Time> now) {
    if (now.ok()) response->set_now_us(absl::ToUnixMicros(*now));
    audit_.Finish(reactor, call, "", now.status());
  });
  return reactor;
}

grpc::ServerUnaryReactor* SimulatorService::LoadScenario(
    Context* context, const sim::v1::LoadScenarioRequest* request,
    sim::v1::LoadScenarioResponse* response) {
  AuditedCall call;
  if (Unary* refused = Admit(context, "/derma.sim.v1.Simulator/LoadScenario", *request, &call)) {
    return refused;
  }
  Unary* reactor = context->DefaultReactor();
  absl::StatusOr<size_t> count = control_.LoadScenario(*request);
  if (count.ok()) response->set_action_count(static_cast<uint32_t>(*count));
  audit_.Finish(reactor, call, "", count.status());
  return reactor;
}

}  // namespace derma::service
