// SimulatorService: derma.sim.v1.Simulator on the gRPC callback API, adapting
// sim::SimulatorControl (fault injection, impedance, link, virtual clock, scenarios). Each
// call finishes when the device strand (or, for AdvanceClock, every device) has answered; no
// handler blocks a gRPC thread; like every command, each is acknowledged only once its audit
// record is durable. dermad registers it only for fleets with simulated devices; the Modbus
// emulator serves it for its devices. Layer: plugin/service. Thread-safe.
#ifndef DERMA_PLUGIN_SERVICE_SIMULATOR_SERVICE_H_
#define DERMA_PLUGIN_SERVICE_SIMULATOR_SERVICE_H_

#include "derma/sim/v1/simulator.grpc.pb.h"
#include "plugin/auth/authorizer.h"
#include "plugin/service/call_audit.h"
#include "sim/simulator_control.h"

namespace derma::service {

class SimulatorService final : public sim::v1::Simulator::CallbackService {
 public:
  SimulatorService(sim::SimulatorControl& control, const auth::Authorizer& auth,
                   const CallAudit& audit)
      : control_(control), auth_(auth), audit_(audit) {}

  using Unary = grpc::ServerUnaryReactor;
  using Context = grpc::CallbackServerContext;

  Unary* InjectFault(Context* context, const sim::v1::InjectFaultRequest* request,
                     sim::v1::InjectFaultResponse* response) override;
  Unary* ClearFault(Context* context, const sim::v1::ClearFaultRequest* request,
                    sim::v1::ClearFaultResponse* response) override;
  Unary* SetElectrodeImpedance(Context* context,
                               const sim::v1::SetElectrodeImpedanceRequest* request,
                               sim::v1::SetElectrodeImpedanceResponse* response) override;
  Unary* SetLink(Context* context, const sim::v1::SetLinkRequest* request,
                 sim::v1::SetLinkResponse* response) override;
  Unary* SetTransportFault(Context* context, const sim::v1::SetTransportFaultRequest* request,
                           sim::v1::SetTransportFaultResponse* response) override;
  Unary* AdvanceClock(Context* context, const sim::v1::AdvanceClockRequest* request,
                      sim::v1::AdvanceClockResponse* response) override;
  Unary* LoadScenario(Context* context, const sim::v1::LoadScenarioRequest* request,
                      sim::v1::LoadScenarioResponse* response) override;

 private:
  // AdmitCall (call_audit.h): nullptr when the caller may call `method` (admin), else the
  // finished (refused) call.
  Unary* Admit(Context* context, const char* method, const google::protobuf::Message& request,
               AuditedCall* call) const;
  // A callback that finishes the call once its record (about `device`) is durable.
  sim::StatusCallback Finisher(Unary* reactor, AuditedCall call, std::string device) const;

  sim::SimulatorControl& control_;
  const auth::Authorizer& auth_;
  const CallAudit& audit_;
};

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_SIMULATOR_SERVICE_H_
