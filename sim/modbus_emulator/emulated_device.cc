#include "sim/modbus_emulator/emulated_device.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "plugin/errors/errors.h"
#include "sim/registry.h"

namespace derma::emulator {
namespace {

namespace map = modbus_map;

// The parameters of a kind in the map's order, with their register scales (§3.2).
struct Parameter {
  const char* field;
  double scale;
};
const std::vector<Parameter>& ParametersOf(v1::DeviceKind kind) {
  static const std::vector<Parameter> kPen = {
      {"needle_depth_mm", 0.001}, {"stroke_rate_hz", 0.01}, {"session_limit_s", 0.001}};
  static const std::vector<Parameter> kStim = {{"current_ua", 0.01},
                                               {"frequency_hz", 0.01},
                                               {"ramp_s", 0.001},
                                               {"session_limit_s", 0.001}};
  return kind == v1::DEVICE_KIND_MICRONEEDLING ? kPen : kStim;
}

uint32_t ToU32(double value) {
  return value <= 0 ? 0 : static_cast<uint32_t>(std::min(std::llround(value), 0xFFFFFFFFll));
}

const v1::ParameterCapability* Capability(const v1::Capabilities& caps, const char* field) {
  for (const v1::ParameterCapability& p : caps.parameters()) {
    if (p.field() == field) return &p;
  }
  return nullptr;
}

}  // namespace

// What the Simulator's actions see as the device: the model, but for the link, which is the
// emulated device's own (a dropped device stops hearing requests; its watchdog does the rest).
class EmulatedDevice::ControlFacade : public sim::SimDevice {
 public:
  explicit ControlFacade(EmulatedDevice& device) : device_(device) {}
  const DriverInfo& Info() const override { return model().Info(); }
  const DeviceDescription* Description() const override { return model().Description(); }
  absl::Status Connect(absl::Time now) override { return model().Connect(now); }
  absl::Status Apply(const v1::Settings& s, absl::Time now) override {
    return model().Apply(s, now);
  }
  absl::Status SetOutput(bool on, absl::Time now) override { return model().SetOutput(on, now); }
  absl::StatusOr<DriverReading> Read(absl::Time now) override { return model().Read(now); }
  bool ForceOutputOff(absl::Time now) override { return model().ForceOutputOff(now); }
  absl::Status InjectFault(v1::FaultKind kind, absl::Time now) override {
    if (kind == v1::FAULT_KIND_LINK_DROP) {
      SetLink(false, now);
      return absl::OkStatus();
    }
    return model().InjectFault(kind, now);
  }
  absl::Status ClearFault(v1::FaultKind kind, absl::Time now) override {
    if (kind == v1::FAULT_KIND_LINK_DROP) {
      SetLink(true, now);
      return absl::OkStatus();
    }
    return model().ClearFault(kind, now);
  }
  absl::Status SetElectrodeImpedance(double ohms, absl::Time now) override {
    return model().SetElectrodeImpedance(ohms, now);
  }
  void SetLink(bool up, absl::Time now) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    device_.link_up_ = up;
  }

 private:
  sim::SimDevice& model() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return *device_.model_; }
  EmulatedDevice& device_;
};

absl::StatusOr<std::unique_ptr<EmulatedDevice>> EmulatedDevice::Create(
    const config::v1::DeviceConfig& config, uint64_t seed, bool rtu, absl::Time now,
    EmulatorLog* log) {
  // The model is the simulator's, at its catalogue limits: derma's overrides narrow on its side.
  config::v1::DeviceConfig model_config = config;
  model_config.clear_overrides();
  model_config.set_backend(config::v1::BACKEND_SIMULATOR);
  absl::StatusOr<std::unique_ptr<sim::SimDevice>> model =
      sim::CreateSimDevice({model_config, seed});
  if (!model.ok()) return model.status();
  return std::unique_ptr<EmulatedDevice>(new EmulatedDevice(
      "devices/" + config.id(), static_cast<int>(config.modbus().unit_id()), rtu,
      *std::move(model), now, log));
}

EmulatedDevice::EmulatedDevice(std::string name, int unit, bool rtu,
                               std::unique_ptr<sim::SimDevice> model, absl::Time now,
                               EmulatorLog* log)
    : name_(std::move(name)),
      unit_(unit),
      rtu_(rtu),
      kind_(model->Info().kind),
      power_up_(now),
      log_(log),
      ident_(map::kIdentLength),
      caps_(map::kCapsLength),
      model_(std::move(model)),
      now_(now),
      last_request_(now) {
  absl::MutexLock lock(&mu_);
  const DeviceDescription& d = *model_->Description();
  ident_[map::kIdentMapVersion] = map::kMapVersion;
  ident_[map::kIdentKind] = static_cast<uint16_t>(kind_);
  map::PutString(d.model, &ident_[map::kIdentModel], map::kIdentModelLength);
  map::PutString(d.serial_number, &ident_[map::kIdentSerial], map::kIdentSerialLength);
  map::PutString("emu-1.0.0", &ident_[map::kIdentFirmware], map::kIdentFirmwareLength);
  ident_[map::kIdentMaxReplyLatencyMs] = kMaxReplyLatencyMs;
  ident_[map::kIdentOutputOffReactionMs] = kOutputOffReactionMs;
  ident_[map::kIdentBroadcastTurnaroundMs] = kBroadcastTurnaroundMs;

  const v1::Capabilities& caps = d.capabilities;
  auto cap = [this](uint16_t address) -> uint16_t& { return caps_[address - map::kCapsAddress]; };
  const std::vector<Parameter>& parameters = ParametersOf(kind_);
  cap(map::kCapsParameterCount) = static_cast<uint16_t>(parameters.size());
  for (int w : caps.supported_waveforms()) supported_waveforms_ |= 1u << w;
  for (int p : caps.supported_polarities()) supported_polarities_ |= 1u << p;
  cap(map::kCapsSupportedWaveforms) = supported_waveforms_;
  cap(map::kCapsSupportedPolarities) = supported_polarities_;
  const v1::OutputRegulation& regulation = caps.regulation();
  cap(map::kCapsRegulationTolerance) = static_cast<uint16_t>(std::lround(regulation.tolerance() / map::kFractionScale));
  cap(map::kCapsRegulationGraceMs) = static_cast<uint16_t>(std::lround(regulation.grace_s() * 1000));
  cap(map::kCapsDoseTolerance) = static_cast<uint16_t>(std::lround(regulation.dose_tolerance() / map::kFractionScale));
  map::PutU32(ToU32(caps.compliance_voltage_v() * 1000), &cap(map::kCapsComplianceVoltageMv));
  map::PutU32(ToU32(regulation.stroke_rate_slew_hz_per_s() / map::kSlewScale),
              &cap(map::kCapsStrokeRateSlew));
  setpoints_.resize(kind_ == v1::DEVICE_KIND_MICRONEEDLING ? map::kPenSetpointsLength
                                                           : map::kStimSetpointsLength);
  for (size_t i = 0; i < parameters.size(); ++i) {
    const v1::ParameterCapability* p = Capability(caps, parameters[i].field);
    const double scale = parameters[i].scale;
    Limits limits{std::llround(p->min() / scale), std::llround(p->max() / scale),
                  std::llround(p->resolution() / scale)};
    limits_.push_back(limits);
    uint16_t* at = &cap(map::kCapsParameters + i * map::kCapsParameterStride);
    map::PutU32(ToU32(p->min() / scale), at);
    map::PutU32(ToU32(p->max() / scale), at + 2);
    map::PutU32(ToU32(p->resolution() / scale), at + 4);
    map::PutU32(ToU32(p->default_value() / scale), at + 6);
    map::PutU32(ToU32(p->default_value() / scale), &setpoints_[2 * i]);
  }
  if (kind_ == v1::DEVICE_KIND_MICROCURRENT) {
    const v1::MicrocurrentSettings& defaults = d.default_settings.microcurrent();
    cap(map::kCapsDefaultWaveform) = static_cast<uint16_t>(defaults.waveform());
    cap(map::kCapsDefaultPolarity) = static_cast<uint16_t>(defaults.polarity());
    setpoints_[map::kStimWaveform - map::kSetpoints] = static_cast<uint16_t>(defaults.waveform());
    setpoints_[map::kStimPolarity - map::kSetpoints] = static_cast<uint16_t>(defaults.polarity());
  }
  (void)model_->Connect(now);
  (void)model_->Apply(d.default_settings, now);
  reading_ = model_->Read(now).value_or(DriverReading{});
}

bool EmulatedDevice::output_on() const {
  absl::MutexLock lock(&mu_);
  return reading_.output_on;
}

bool EmulatedDevice::estop_latched() const {
  absl::MutexLock lock(&mu_);
  return estop_latched_;
}

void EmulatedDevice::AdvanceLocked(absl::Time now) {
  now = std::max(now, now_);
  const absl::Time expiry = last_request_ + absl::Milliseconds(watchdog_ms_);
  if (watchdog_running_ && now >= expiry) {
    // At the exact expiry (or as late as the model's time already is).
    const bool was_on = reading_.output_on;
    model_->ForceOutputOff(std::max(expiry, now_));
    reading_.output_on = false;
    watchdog_expired_ = true;
    watchdog_running_ = false;
    if (log_ != nullptr) {
      log_->Event(std::max(expiry, now_), name_,
                  was_on ? "watchdog expired (output was on), output off"
                         : "watchdog expired (output was off)");
    }
  }
  now_ = now;
  if (absl::StatusOr<DriverReading> r = model_->Read(now_); r.ok()) reading_ = *std::move(r);
  snapshot_valid_ = false;
}

void EmulatedDevice::Tick(absl::Time now) {
  absl::MutexLock lock(&mu_);
  AdvanceLocked(now);
}

std::optional<Reply> EmulatedDevice::Handle(const uint8_t* pdu, size_t length, absl::Time now) {
  absl::MutexLock lock(&mu_);
  AdvanceLocked(now);
  if (!link_up_) return std::nullopt;
  // Every intact request to this unit feeds the watchdog, whatever becomes of it.
  last_request_ = now_;
  watchdog_running_ = true;
  const sim::v1::TransportFault fault = transport_fault_.fault();
  if (fault == sim::v1::TRANSPORT_FAULT_EXCEPTION) {
    const uint32_t code = transport_fault_.exception_code();
    return ApplyTransportFault(ExceptionPdu(pdu[0] & 0x7F, code == 0 ? kServerFailure : code),
                               pdu);
  }
  if (fault == sim::v1::TRANSPORT_FAULT_DROP_CONNECTION) return ApplyTransportFault({}, pdu);
  Reply reply = ApplyTransportFault(ServePdu(*this, pdu, length), pdu);
  if (log_ != nullptr && pdu[0] == 0x17 && !reply.pdu.empty() && reply.pdu[0] == 0x17) {
    const auto& snapshot = Snapshot();
    const uint16_t counter_at = kind_ == v1::DEVICE_KIND_MICRONEEDLING ? map::kPenStrokesTotal
                                                                       : map::kStimChargeNc;
    const bool on_time = reply.delay == absl::ZeroDuration() && !reply.corrupt_crc;
    log_->PollReply(now_, name_, snapshot[0],
                    map::U64At(&snapshot[counter_at - map::kSnapshotAddress]), on_time);
  }
  return reply;
}

Reply EmulatedDevice::ApplyTransportFault(std::vector<uint8_t> pdu, const uint8_t* request) {
  Reply reply;
  reply.pdu = std::move(pdu);
  const sim::v1::TransportFault fault = transport_fault_.fault();
  switch (fault) {
    case sim::v1::TRANSPORT_FAULT_NO_REPLY:
      reply.pdu.clear();
      break;
    case sim::v1::TRANSPORT_FAULT_LATE_REPLY:
      reply.delay = transport_fault_.delay_s() > 0 ? absl::Seconds(transport_fault_.delay_s())
                                                   : absl::Seconds(1);
      break;
    case sim::v1::TRANSPORT_FAULT_BAD_CRC:
      reply.corrupt_crc = true;
      break;
    case sim::v1::TRANSPORT_FAULT_DROP_CONNECTION:
      reply.drop_connection = true;
      transport_fault_.Clear();  // once
      return reply;
    case sim::v1::TRANSPORT_FAULT_EXCEPTION:
      break;
    case sim::v1::TRANSPORT_FAULT_GARBAGE:
      reply.garbage_bytes = transport_fault_.garbage_bytes() > 0
                                ? static_cast<int>(transport_fault_.garbage_bytes())
                                : 8;
      break;
    default:
      return reply;
  }
  if (transport_fault_left_ > 0 && --transport_fault_left_ == 0) transport_fault_.Clear();
  return reply;
}

void EmulatedDevice::HandleBroadcast(const uint8_t* pdu, size_t length, absl::Time now) {
  absl::MutexLock lock(&mu_);
  AdvanceLocked(now);
  if (!link_up_) return;
  const bool stop = length == 5 && pdu[0] == 0x05 && pdu[1] == 0 &&
                    pdu[2] == map::kCoilEmergencyStop && pdu[3] == 0xFF && pdu[4] == 0x00;
  if (!stop) return;  // every other broadcast is ignored (REGISTER_MAP.md §7)
  OutputOff();
  estop_latched_ = true;
  Log("emergency stop latched (broadcast), output off");
}

void EmulatedDevice::Log(const std::string& what) {
  if (log_ != nullptr) log_->Event(now_, name_, what);
}

absl::Status EmulatedDevice::RunControl(sim::DeviceAction action, absl::Time now) {
  absl::MutexLock lock(&mu_);
  AdvanceLocked(now);
  ControlFacade facade(*this);
  absl::Status status = std::move(action)(facade, now_);
  AdvanceLocked(now_);
  return status;
}

absl::Status EmulatedDevice::SetTransportFault(const sim::v1::SetTransportFaultRequest& request) {
  const sim::v1::TransportFault fault = request.fault();
  if ((fault == sim::v1::TRANSPORT_FAULT_BAD_CRC && !rtu_) ||
      (fault == sim::v1::TRANSPORT_FAULT_DROP_CONNECTION && rtu_)) {
    return MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_FAULT_NOT_APPLICABLE,
                     absl::StrCat(sim::v1::TransportFault_Name(fault), " does not apply to ",
                                  name_, ", which is on a Modbus ", rtu_ ? "RTU" : "TCP", " link"),
                     {{"device", name_}, {"fault", sim::v1::TransportFault_Name(fault)}});
  }
  absl::MutexLock lock(&mu_);
  transport_fault_ = request;
  transport_fault_left_ = request.count();
  return absl::OkStatus();
}

void EmulatedDevice::OutputOff() {
  model_->SetOutput(false, now_).IgnoreError();
  reading_.output_on = false;
  snapshot_valid_ = false;
}

}  // namespace derma::emulator
