// EmulatedDevice's registers (REGISTER_MAP.md §3–6): what each read returns and what each write
// does. Every function runs under the device's lock, inside Handle.
#include <algorithm>
#include <cmath>

#include "sim/modbus_emulator/emulated_device.h"

namespace derma::emulator {
namespace {

namespace map = modbus_map;

uint32_t U32(double value) {
  return value <= 0 ? 0 : static_cast<uint32_t>(std::min(std::llround(value), 0xFFFFFFFFll));
}
uint64_t U64(double value) { return value <= 0 ? 0 : static_cast<uint64_t>(std::llround(value)); }

bool Within(uint16_t address, uint16_t count, uint16_t start, uint16_t length) {
  return address >= start && address + count <= start + length;
}

constexpr uint16_t kHoldingControlLength = 2;  // watchdog_ms, poll_tag

}  // namespace

const std::array<uint16_t, map::kSnapshotLength>& EmulatedDevice::Snapshot() {
  if (snapshot_valid_) return snapshot_;
  snapshot_.fill(0);
  auto at = [this](uint16_t address) { return &snapshot_[address - map::kSnapshotAddress]; };
  const DriverReading& r = reading_;
  *at(map::kSnapTagEcho) = poll_tag_;
  *at(map::kSnapStatus) = static_cast<uint16_t>((r.output_on ? map::kStatusOutputOn : 0) |
                                                (estop_latched_ ? map::kStatusEstopLatched : 0) |
                                                (watchdog_expired_ ? map::kStatusWatchdogExpired : 0));
  uint16_t faults = 0;
  for (int k = v1::FAULT_KIND_ELECTRODE_CONTACT_LOST; k <= v1::FAULT_KIND_CARTRIDGE_JAM; ++k) {
    if (r.faults & FaultBit(static_cast<v1::FaultKind>(k))) faults |= 1u << k;
  }
  *at(map::kSnapFaults) = faults;
  map::PutU64(static_cast<uint64_t>(absl::ToInt64Milliseconds(now_ - power_up_)),
              at(map::kSnapUptimeMs));
  if (kind_ == v1::DEVICE_KIND_MICRONEEDLING) {
    map::PutU32(U32(r.pen.needle_depth_mm / map::kDepthScale), at(map::kPenNeedleDepth));
    map::PutU32(U32(r.pen.stroke_rate_hz / map::kRateScale), at(map::kPenStrokeRate));
    map::PutU64(r.pen.strokes_total, at(map::kPenStrokesTotal));
    map::PutU32(U32(r.pen.motor_current_a * 1000), at(map::kPenMotorCurrentMa));
    *at(map::kPenMotorTemperature) = static_cast<uint16_t>(
        static_cast<int16_t>(std::lround(r.pen.motor_temperature_c / map::kTemperatureScale)));
    *at(map::kPenCartridgeNeedles) = static_cast<uint16_t>(r.cartridge.needle_count());
    map::PutU32(U32(r.cartridge.needle_length_mm() / map::kDepthScale), at(map::kPenCartridgeLength));
    map::PutU64(r.cartridge.strokes_used(), at(map::kPenCartridgeUsed));
    map::PutU64(r.cartridge.strokes_rated(), at(map::kPenCartridgeRated));
  } else {
    map::PutU32(U32(r.stim.current_setpoint_ua / map::kCurrentScale), at(map::kStimCurrentSetpoint));
    map::PutU32(static_cast<uint32_t>(static_cast<int32_t>(
                    std::lround(r.stim.current_measured_ua / map::kCurrentScale))),
                at(map::kStimCurrentMeasured));
    map::PutU32(U32(r.stim.electrode_impedance_ohm), at(map::kStimImpedanceOhm));
    map::PutU32(U32(r.stim.output_voltage_v * 1000), at(map::kStimOutputVoltageMv));
    map::PutU64(U64(r.stim.charge_delivered_uc / map::kChargeScale), at(map::kStimChargeNc));
    *at(map::kStimContact) = r.stim.electrode_contact ? 1 : 0;
  }
  snapshot_valid_ = true;
  return snapshot_;
}

uint8_t EmulatedDevice::ReadCoils(uint16_t address, uint16_t count, std::vector<bool>* out) {
  if (!Within(address, count, 0, map::kCoilCount)) return kIllegalAddress;
  const bool coils[map::kCoilCount] = {reading_.output_on, estop_latched_, false};
  for (uint16_t i = 0; i < count; ++i) out->push_back(coils[address + i]);
  return 0;
}

uint8_t EmulatedDevice::ReadDiscreteInputs(uint16_t address, uint16_t count,
                                           std::vector<bool>* out) {
  if (!Within(address, count, 0, map::kInputCount)) return kIllegalAddress;
  const uint16_t faults = Snapshot()[map::kSnapFaults - map::kSnapshotAddress];
  for (uint16_t a = address; a < address + count; ++a) {
    bool bit = false;
    if (a >= map::kInputFaultFirst && a <= 6) bit = (faults >> a) & 1;
    if (a == map::kInputWatchdogExpired) bit = watchdog_expired_;
    if (a == map::kInputEstopLatched) bit = estop_latched_;
    if (a == map::kInputOutputOn) bit = reading_.output_on;
    out->push_back(bit);
  }
  return 0;
}

uint8_t EmulatedDevice::CheckHoldingRead(uint16_t address, uint16_t count) {
  const bool ok = Within(address, count, map::kWatchdogMs, kHoldingControlLength) ||
                  Within(address, count, map::kSetpoints, static_cast<uint16_t>(setpoints_.size())) ||
                  Within(address, count, map::kSnapshotAddress, map::kSnapshotLength);
  return ok ? 0 : kIllegalAddress;
}

uint8_t EmulatedDevice::ReadHolding(uint16_t address, uint16_t count, uint16_t* out) {
  if (uint8_t code = CheckHoldingRead(address, count); code != 0) return code;
  if (address < map::kSetpoints) {
    const uint16_t control[kHoldingControlLength] = {watchdog_ms_, poll_tag_};
    std::copy_n(control + address, count, out);
  } else if (address < map::kSnapshotAddress) {
    std::copy_n(setpoints_.begin() + (address - map::kSetpoints), count, out);
  } else {
    std::copy_n(Snapshot().begin() + (address - map::kSnapshotAddress), count, out);
  }
  return 0;
}

uint8_t EmulatedDevice::ReadInput(uint16_t address, uint16_t count, uint16_t* out) {
  if (Within(address, count, map::kIdentAddress, map::kIdentLength)) {
    std::copy_n(ident_.begin() + address, count, out);
  } else if (Within(address, count, map::kCapsAddress, map::kCapsLength)) {
    std::copy_n(caps_.begin() + (address - map::kCapsAddress), count, out);
  } else if (Within(address, count, map::kSnapshotAddress, map::kSnapshotLength)) {
    std::copy_n(Snapshot().begin() + (address - map::kSnapshotAddress), count, out);
  } else {
    return kIllegalAddress;
  }
  return 0;
}

uint8_t EmulatedDevice::CheckOutputEnable(bool estop_latched, bool watchdog_expired) {
  const bool cartridge_used_up = kind_ == v1::DEVICE_KIND_MICRONEEDLING &&
                                 reading_.cartridge.strokes_used() >= reading_.cartridge.strokes_rated();
  if (estop_latched || watchdog_expired || reading_.faults != 0 || cartridge_used_up) {
    return kIllegalValue;
  }
  return 0;
}

// Address order, all or nothing: every coil is checked against the latches as the earlier
// coils of the same request leave them, before any is applied.
uint8_t EmulatedDevice::WriteCoils(uint16_t address, const std::vector<bool>& values) {
  if (!Within(address, static_cast<uint16_t>(values.size()), 0, map::kCoilCount)) {
    return kIllegalAddress;
  }
  bool estop = estop_latched_, watchdog = watchdog_expired_;
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t coil = static_cast<uint16_t>(address + i);
    if (coil == map::kCoilOutputEnable && values[i] && !reading_.output_on) {
      if (uint8_t code = CheckOutputEnable(estop, watchdog); code != 0) return code;
    }
    if (coil == map::kCoilEmergencyStop) estop = values[i];
    if (coil == map::kCoilFaultClear && values[i]) watchdog = false;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t coil = static_cast<uint16_t>(address + i);
    if (coil == map::kCoilOutputEnable) {
      if (values[i] && !reading_.output_on) {
        if (!model_->SetOutput(true, now_).ok()) return kServerFailure;
        reading_.output_on = true;
        Log("output on");
      } else if (!values[i] && reading_.output_on) {
        OutputOff();
        Log("output off");
      }
    } else if (coil == map::kCoilEmergencyStop) {
      if (values[i] && !estop_latched_) Log("emergency stop latched, output off");
      if (!values[i] && estop_latched_) Log("emergency stop cleared");
      if (values[i]) OutputOff();
      estop_latched_ = values[i];
    } else if (coil == map::kCoilFaultClear && values[i]) {
      if (watchdog_expired_) Log("watchdog latch cleared");
      watchdog_expired_ = false;
    }
  }
  snapshot_valid_ = false;
  return 0;
}

uint8_t EmulatedDevice::WriteRegisters(uint16_t address, const uint16_t* values, uint16_t count,
                                       WriteFunction function) {
  if (function == WriteFunction::kReadWrite && (address != map::kPollTag || count != 1)) {
    return kIllegalAddress;  // code 23 writes poll_tag alone
  }
  if (Within(address, count, map::kWatchdogMs, kHoldingControlLength)) {
    for (uint16_t i = 0; i < count; ++i) {
      if (address + i == map::kWatchdogMs &&
          (values[i] < map::kWatchdogMinMs || values[i] > map::kWatchdogMaxMs)) {
        return kIllegalValue;
      }
    }
    for (uint16_t i = 0; i < count; ++i) {
      (address + i == map::kWatchdogMs ? watchdog_ms_ : poll_tag_) = values[i];
    }
    snapshot_valid_ = false;
    return 0;
  }
  if (function == WriteFunction::kMultiple && address == map::kSetpoints &&
      count == setpoints_.size()) {
    return WriteSetpoints(values);
  }
  return kIllegalAddress;
}

uint8_t EmulatedDevice::WriteSetpoints(const uint16_t* values) {
  const bool pen = kind_ == v1::DEVICE_KIND_MICRONEEDLING;
  v1::Settings settings;
  google::protobuf::Message* message =
      pen ? static_cast<google::protobuf::Message*>(settings.mutable_microneedling())
          : settings.mutable_microcurrent();
  static const char* kPenFields[] = {"needle_depth_mm", "stroke_rate_hz", "session_limit_s"};
  static const char* kStimFields[] = {"current_ua", "frequency_hz", "ramp_s", "session_limit_s"};
  static const double kPenScales[] = {0.001, 0.01, 0.001};
  static const double kStimScales[] = {0.01, 0.01, 0.001, 0.001};
  for (size_t i = 0; i < limits_.size(); ++i) {
    const int64_t v = map::U32At(values + 2 * i);
    const Limits& l = limits_[i];
    if (v < l.min || v > l.max || (v - l.min) % l.resolution != 0) return kIllegalValue;
    const auto* field = message->GetDescriptor()->FindFieldByName(pen ? kPenFields[i] : kStimFields[i]);
    message->GetReflection()->SetDouble(message, field, v * (pen ? kPenScales[i] : kStimScales[i]));
  }
  if (!pen) {
    const uint16_t waveform = values[map::kStimWaveform - map::kSetpoints];
    const uint16_t polarity = values[map::kStimPolarity - map::kSetpoints];
    if (waveform > 15 || !((supported_waveforms_ >> waveform) & 1) || polarity > 15 ||
        !((supported_polarities_ >> polarity) & 1)) {
      return kIllegalValue;
    }
    settings.mutable_microcurrent()->set_waveform(static_cast<v1::Waveform>(waveform));
    settings.mutable_microcurrent()->set_polarity(static_cast<v1::Polarity>(polarity));
  }
  if (!model_->Apply(settings, now_).ok()) return kServerFailure;
  std::copy_n(values, setpoints_.size(), setpoints_.begin());
  return 0;
}

}  // namespace derma::emulator
