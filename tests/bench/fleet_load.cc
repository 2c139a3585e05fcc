#include "tests/bench/fleet_load.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/bench/fleets.h"

namespace derma::bench {
namespace {

constexpr absl::Duration kSyncTimeout = absl::Seconds(30);

}  // namespace

absl::StatusOr<std::unique_ptr<LoadedFleet>> LoadedFleet::Start(
    const config::v1::FleetConfig& config, int streams, PluginOptions options) {
  std::unique_ptr<LoadedFleet> fleet(new LoadedFleet());
  absl::StatusOr<std::unique_ptr<DermaServer>> server = DermaServer::Start(config, options);
  if (!server.ok()) return server.status();
  fleet->server_ = *std::move(server);
  fleet->sample_rate_ = FleetSampleRate(config);
  fleet->stub_ = v1::DeviceControl::NewStub(NewChannel(fleet->server_->address()));

  absl::StatusOr<v1::ListDevicesResponse> devices = fleet->ListAll();
  if (!devices.ok()) return devices.status();
  for (const v1::Device& device : devices->devices()) fleet->names_.push_back(device.name());

  absl::Status status = fleet->LeaseAndStartAll();
  if (!status.ok()) return status;
  if (status = fleet->OpenStreams(streams); !status.ok()) return status;
  return fleet;
}

LoadedFleet::~LoadedFleet() { StopStreams().IgnoreError(); }

absl::StatusOr<v1::ListDevicesResponse> LoadedFleet::ListAll() {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::ListDevicesRequest request;
  request.set_page_size(10000);
  v1::ListDevicesResponse response;
  absl::Status status = CallStatus(stub_->ListDevices(&context, request, &response), "ListDevices");
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<uint64_t> LoadedFleet::SamplesMade() {
  absl::StatusOr<v1::ListDevicesResponse> devices = ListAll();
  if (!devices.ok()) return devices.status();
  uint64_t made = 0;
  for (const v1::Device& device : devices->devices()) made += device.latest_sample().sequence();
  return made;
}

absl::Status LoadedFleet::LeaseAndStartAll() {
  leased_ = absl::Now();
  for (const std::string& name : names_) {
    absl::StatusOr<std::string> lease = AcquireBenchLease(*stub_, name);
    if (!lease.ok()) return lease.status();
    lease_ids_.push_back(*std::move(lease));
  }
  for (size_t i = 0; i < names_.size(); ++i) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::StartRequest request;
    request.set_name(names_[i]);
    request.set_lease_id(lease_ids_[i]);
    v1::StartResponse response;
    absl::Status status =
        CallStatus(stub_->Start(&context, request, &response), absl::StrCat("Start ", names_[i]));
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status LoadedFleet::OpenStreams(int streams) {
  for (int i = 0; i < streams; ++i) {
    std::shared_ptr<v1::DeviceControl::Stub> stub =
        v1::DeviceControl::NewStub(NewChannel(server_->address()));
    auto open = [stub](grpc::ClientContext* context) {
      return stub->StreamTelemetry(context, v1::StreamTelemetryRequest());
    };
    readers_.push_back(
        std::make_unique<StreamReader>(open, StreamReader::Options{.check_sequences = true}));
  }
  for (int i = 0; i < streams; ++i) {
    if (!readers_[i]->WaitForSync(kSyncTimeout)) {
      absl::Status status = readers_[i]->Stop();
      return absl::DeadlineExceededError(
          absl::StrCat("telemetry stream ", i, " sent no SyncMarker: ", status.ToString()));
    }
  }
  return absl::OkStatus();
}

absl::Status LoadedFleet::Restart(size_t i) {
  {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::ResetEmergencyStopRequest request;
    request.set_name(names_[i]);
    request.set_lease_id(lease_ids_[i]);
    v1::ResetEmergencyStopResponse response;
    absl::Status status = CallStatus(stub_->ResetEmergencyStop(&context, request, &response),
                                     absl::StrCat("ResetEmergencyStop ", names_[i]));
    if (!status.ok()) return status;
  }
  grpc::ClientContext context;
  SetDeadline(context);
  v1::StartRequest request;
  request.set_name(names_[i]);
  request.set_lease_id(lease_ids_[i]);
  v1::StartResponse response;
  return CallStatus(stub_->Start(&context, request, &response), absl::StrCat("Start ", names_[i]));
}

absl::Status LoadedFleet::RenewLeasesIfOld() {
  if (absl::Now() - leased_ < kBenchLeaseTtl / 2) return absl::OkStatus();
  leased_ = absl::Now();
  for (size_t i = 0; i < names_.size(); ++i) {
    if (absl::Status s = RenewBenchLease(*stub_, names_[i], lease_ids_[i]); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status LoadedFleet::StopStreams() {
  absl::Status first;
  for (const std::unique_ptr<StreamReader>& reader : readers_) first.Update(reader->Stop());
  return first;
}

}  // namespace derma::bench
