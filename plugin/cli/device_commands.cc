// dermactl subcommands that read or command single devices.
#include <cstdio>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "plugin/cli/call_failure.h"
#include "plugin/cli/commands.h"

namespace derma::cli {
namespace {

using google::protobuf::FieldDescriptor;

int Usage(const std::string& text) {
  absl::FPrintF(stderr, "dermactl: usage: %s\n", text);
  return kUsage;
}

std::string Short(const std::string& enum_name, const std::string& prefix) {
  return absl::AsciiStrToLower(absl::StartsWith(enum_name, prefix) ? enum_name.substr(prefix.size())
                                                                   : enum_name);
}

absl::StatusOr<v1::Device> FetchDevice(Connection& c, const std::string& name, int* code) {
  v1::GetDeviceRequest request;
  request.set_name(name);
  v1::GetDeviceResponse response;
  grpc::Status status = c.devices->GetDevice(Call().get(), request, &response);
  if (!status.ok()) {
    *code = Report(c, status);
    return absl::UnknownError("reported");
  }
  return response.device();
}

// Sets `key` = `value` on the kind's settings message. Accepts enum values with or without
// their prefix, in any case ("sine", "WAVEFORM_SINE").
bool SetField(google::protobuf::Message* settings, const std::string& key, const std::string& value,
              std::string* error) {
  const FieldDescriptor* field = settings->GetDescriptor()->FindFieldByName(key);
  if (field == nullptr) {
    std::vector<std::string> names;
    for (int i = 0; i < settings->GetDescriptor()->field_count(); ++i) {
      names.push_back(settings->GetDescriptor()->field(i)->name());
    }
    *error = absl::StrCat("unknown setting \"", key, "\"; settable: ", absl::StrJoin(names, ", "));
    return false;
  }
  const google::protobuf::Reflection* reflection = settings->GetReflection();
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
    double number = 0;
    if (!absl::SimpleAtod(value, &number)) {
      *error = absl::StrCat(key, ": \"", value, "\" is not a number");
      return false;
    }
    reflection->SetDouble(settings, field, number);
    return true;
  }
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
    const google::protobuf::EnumDescriptor* type = field->enum_type();
    const std::string prefix = absl::AsciiStrToUpper(
        absl::StrCat(type->value(0)->name().substr(0, type->value(0)->name().find('_') + 1)));
    const std::string upper = absl::AsciiStrToUpper(value);
    const google::protobuf::EnumValueDescriptor* found = type->FindValueByName(upper);
    if (found == nullptr) found = type->FindValueByName(prefix + upper);
    if (found == nullptr || found->number() == 0) {
      std::vector<std::string> names;
      for (int i = 1; i < type->value_count(); ++i) {
        names.push_back(Short(type->value(i)->name(), prefix));
      }
      *error = absl::StrCat(key, ": \"", value, "\" is not one of ", absl::StrJoin(names, ", "));
      return false;
    }
    reflection->SetEnum(settings, field, found);
    return true;
  }
  *error = absl::StrCat(key, " cannot be set from the command line");
  return false;
}

}  // namespace

std::string DeviceLine(const v1::Device& device) {
  std::string settings;
  if (device.settings().has_microneedling()) {
    const auto& s = device.settings().microneedling();
    settings =
        absl::StrFormat("depth %.2f mm  rate %.0f Hz", s.needle_depth_mm(), s.stroke_rate_hz());
  } else if (device.settings().has_microcurrent()) {
    const auto& s = device.settings().microcurrent();
    settings = absl::StrFormat("%.0f uA  %.1f Hz  %s", s.current_ua(), s.frequency_hz(),
                               Short(v1::Waveform_Name(s.waveform()), "WAVEFORM_"));
  }
  // An output derma commanded off but could not confirm (a link that did not answer) is not
  // shown as off.
  const char* output = device.latest_sample().output_unconfirmed() ? "UNCONFIRMED"
                       : device.latest_sample().output_on()        ? "ON"
                                                                   : "off";
  std::string line = absl::StrFormat("%-18s %-7s %-9s %-3s %s", device.name(), device.model(),
                                     Short(v1::DeviceState_Name(device.state()), "DEVICE_STATE_"),
                                     output, settings);
  if (device.has_active_fault()) {
    absl::StrAppend(
        &line, "  fault: ", Short(v1::FaultKind_Name(device.active_fault().kind()), "FAULT_KIND_"));
  }
  if (device.has_lease()) absl::StrAppend(&line, "  lease: ", device.lease().holder());
  return line;
}

int List(Connection& c, const Options& o, const Args& args) {
  if (!args.empty()) return Usage("dermactl list");
  v1::ListDevicesRequest request;
  request.set_page_size(10000);
  v1::ListDevicesResponse response;
  grpc::Status status = c.devices->ListDevices(Call().get(), request, &response);
  if (!status.ok()) return Report(c, status);
  for (const v1::Device& device : response.devices()) {
    absl::PrintF("%s\n", o.json ? Json(device) : DeviceLine(device));
  }
  return kOk;
}

int Get(Connection& c, const Options& o, const Args& args) {
  if (args.size() != 1) return Usage("dermactl get DEVICE");
  int code = kOk;
  absl::StatusOr<v1::Device> device = FetchDevice(c, DeviceName(args[0]), &code);
  if (!device.ok()) return code;
  if (o.json) {
    absl::PrintF("%s\n", Json(*device));
    return kOk;
  }
  absl::PrintF("%s\n", DeviceLine(*device));
  absl::PrintF("  kind %s, serial %s, firmware %s%s\n",
               Short(v1::DeviceKind_Name(device->kind()), "DEVICE_KIND_"), device->serial_number(),
               device->firmware_version(), device->simulated() ? ", simulated" : "");
  for (const v1::ParameterCapability& p : device->capabilities().parameters()) {
    absl::PrintF("  %-16s %g–%g %s in steps of %g\n", p.field(), p.min(), p.max(), p.unit(),
                 p.resolution());
  }
  if (device->has_cartridge()) {
    absl::PrintF("  cartridge: %d needles, %.2f mm, %d of %d strokes used\n",
                 device->cartridge().needle_count(), device->cartridge().needle_length_mm(),
                 device->cartridge().strokes_used(), device->cartridge().strokes_rated());
  }
  if (!device->active_run().empty()) absl::PrintF("  run: %s\n", device->active_run());
  return kOk;
}

int Configure(Connection& c, const Options& o, const Args& args) {
  if (args.size() < 2) return Usage("dermactl configure DEVICE key=value...");
  const std::string name = DeviceName(args[0]);
  int code = kOk;
  absl::StatusOr<v1::Device> device = FetchDevice(c, name, &code);
  if (!device.ok()) return code;
  v1::ConfigureRequest request;
  request.set_name(name);
  google::protobuf::Message* settings =
      device->kind() == v1::DEVICE_KIND_MICRONEEDLING
          ? static_cast<google::protobuf::Message*>(
                request.mutable_settings()->mutable_microneedling())
          : request.mutable_settings()->mutable_microcurrent();
  for (size_t i = 1; i < args.size(); ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(args[i], absl::MaxSplits('=', 1));
    std::string error;
    if (kv.second.empty() || !SetField(settings, kv.first, kv.second, &error)) {
      return Usage(error.empty() ? "configure arguments are key=value" : error);
    }
  }
  LeaseKeeper lease(*c.devices, name);
  if (!lease.status().ok()) return Report(c, lease.status());
  request.set_lease_id(lease.lease_id());
  v1::ConfigureResponse response;
  grpc::Status status = c.devices->Configure(Call().get(), request, &response);
  if (!status.ok()) return Report(c, status);
  absl::PrintF("%s\n", o.json ? Json(response.applied_settings())
                              : "applied: " + DeviceLine(response.device()));
  return kOk;
}

int Command(Connection& c, const Options& o, const std::string& verb, const Args& args) {
  if (args.size() != 1) return Usage(absl::StrCat("dermactl ", verb, " DEVICE"));
  const std::string name = DeviceName(args[0]);
  grpc::Status status;
  v1::Device after;
  if (verb == "stop") {  // needs no lease
    v1::StopRequest request;
    request.set_name(name);
    v1::StopResponse response;
    status = c.devices->Stop(Call().get(), request, &response);
    after = response.device();
  } else {
    LeaseKeeper lease(*c.devices, name);
    if (!lease.status().ok()) return Report(c, lease.status());
    if (verb == "start") {
      v1::StartRequest request;
      request.set_name(name);
      request.set_lease_id(lease.lease_id());
      v1::StartResponse response;
      status = c.devices->Start(Call().get(), request, &response);
      after = response.device();
    } else if (verb == "pause") {
      v1::PauseRequest request;
      request.set_name(name);
      request.set_lease_id(lease.lease_id());
      v1::PauseResponse response;
      status = c.devices->Pause(Call().get(), request, &response);
      after = response.device();
    } else {
      v1::ResumeRequest request;
      request.set_name(name);
      request.set_lease_id(lease.lease_id());
      v1::ResumeResponse response;
      status = c.devices->Resume(Call().get(), request, &response);
      after = response.device();
    }
  }
  if (!status.ok()) return Report(c, status);
  absl::PrintF("%s\n", o.json ? Json(after) : DeviceLine(after));
  return kOk;
}

int Estop(Connection& c, const Options& o, const Args& args) {
  if (args.size() > 1 || (args.empty() != o.all)) return Usage("dermactl estop DEVICE|--all");
  v1::EmergencyStopRequest request;
  if (o.all) {
    request.set_all_devices(true);
  } else {
    request.set_name(DeviceName(args[0]));
  }
  // Name, state, output and fault per device: what shows the stop took (a fleet's FULL
  // response is several times larger).
  request.set_view(v1::STOP_RESPONSE_VIEW_SUMMARY);
  v1::EmergencyStopResponse response;
  grpc::Status status = c.devices->EmergencyStop(Call().get(), request, &response);
  if (!status.ok()) return Report(c, status);
  for (const v1::Device& device : response.devices()) {
    absl::PrintF("%s\n", o.json ? Json(device) : DeviceLine(device));
  }
  if (response.unconfirmed().empty()) return kOk;
  absl::FPrintF(stderr,
                "dermactl: output NOT confirmed off (no answer over the link) on %d device(s): "
                "%s. Each switches its output off by itself when its communication watchdog "
                "expires; until then its telemetry shows output_unconfirmed.\n",
                response.unconfirmed_size(), absl::StrJoin(response.unconfirmed(), ", "));
  return kOutputUnconfirmed;
}

int Reset(Connection& c, const Options& o, const Args& args) {
  if (args.size() != 1) return Usage("dermactl reset DEVICE");
  const std::string name = DeviceName(args[0]);
  int code = kOk;
  absl::StatusOr<v1::Device> device = FetchDevice(c, name, &code);
  if (!device.ok()) return code;
  LeaseKeeper lease(*c.devices, name);
  if (!lease.status().ok()) return Report(c, lease.status());
  grpc::Status status;
  v1::Device after;
  if (device->state() == v1::DEVICE_STATE_ESTOPPED) {
    v1::ResetEmergencyStopRequest request;
    request.set_name(name);
    request.set_lease_id(lease.lease_id());
    v1::ResetEmergencyStopResponse response;
    status = c.devices->ResetEmergencyStop(Call().get(), request, &response);
    after = response.device();
  } else {
    // FAULT (and any other state: the server says why it cannot be reset).
    v1::ResetFaultRequest request;
    request.set_name(name);
    request.set_lease_id(lease.lease_id());
    v1::ResetFaultResponse response;
    status = c.devices->ResetFault(Call().get(), request, &response);
    after = response.device();
  }
  if (!status.ok()) return Report(c, status);
  absl::PrintF("%s\n", o.json ? Json(after) : DeviceLine(after));
  return kOk;
}

int Sim(Connection& c, const Options& o, const Args& args) {
  if (args.size() != 3 || args[0] != "fault") return Usage("dermactl sim fault DEVICE KIND");
  const std::string upper = absl::AsciiStrToUpper(args[2]);
  v1::FaultKind kind = v1::FAULT_KIND_UNSPECIFIED;
  if (!v1::FaultKind_Parse(upper, &kind)) v1::FaultKind_Parse("FAULT_KIND_" + upper, &kind);
  if (kind == v1::FAULT_KIND_UNSPECIFIED) {
    std::vector<std::string> names;
    for (int i = 1; i < v1::FaultKind_ARRAYSIZE; ++i) {
      if (v1::FaultKind_IsValid(i)) {
        names.push_back(Short(v1::FaultKind_Name(static_cast<v1::FaultKind>(i)), "FAULT_KIND_"));
      }
    }
    return Usage(absl::StrCat("dermactl sim fault DEVICE KIND; KIND is one of ",
                              absl::StrJoin(names, ", ")));
  }
  sim::v1::InjectFaultRequest request;
  request.set_name(DeviceName(args[1]));
  request.set_kind(kind);
  sim::v1::InjectFaultResponse response;
  grpc::Status status = c.simulator->InjectFault(Call().get(), request, &response);
  if (!status.ok()) return Report(c, status);
  if (!o.json) {
    absl::PrintF("injected %s on %s\n", Short(v1::FaultKind_Name(kind), "FAULT_KIND_"),
                 request.name());
  } else {
    absl::PrintF("%s\n", Json(request));
  }
  return kOk;
}

}  // namespace derma::cli
