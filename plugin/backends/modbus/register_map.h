// The derma Modbus register map, version 1, as constants: every address, length and scale of
// REGISTER_MAP.md (the document a device maker implements from; this header must say exactly
// what it says). Shared by derma's Modbus driver and the device emulator in sim/. Header only,
// no dependencies. Layer: plugin/backends/modbus. Thread-safe (constants and pure functions).
#ifndef DERMA_PLUGIN_BACKENDS_MODBUS_REGISTER_MAP_H_
#define DERMA_PLUGIN_BACKENDS_MODBUS_REGISTER_MAP_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace derma::modbus_map {

inline constexpr uint16_t kMapVersion = 1;

// Input registers: identification (same addresses for every kind).
inline constexpr uint16_t kIdentAddress = 0x0000;
inline constexpr uint16_t kIdentLength = 48;
inline constexpr uint16_t kIdentMapVersion = 0x0000;
inline constexpr uint16_t kIdentKind = 0x0001;
inline constexpr uint16_t kIdentModel = 0x0002;  // 16 registers, 32 chars
inline constexpr uint16_t kIdentModelLength = 16;
inline constexpr uint16_t kIdentSerial = 0x0012;  // 16 registers, 32 chars
inline constexpr uint16_t kIdentSerialLength = 16;
inline constexpr uint16_t kIdentFirmware = 0x0022;  // 8 registers, 16 chars
inline constexpr uint16_t kIdentFirmwareLength = 8;
inline constexpr uint16_t kIdentMaxReplyLatencyMs = 0x002A;
inline constexpr uint16_t kIdentOutputOffReactionMs = 0x002B;
inline constexpr uint16_t kIdentBroadcastTurnaroundMs = 0x002C;

// Input registers: capabilities.
inline constexpr uint16_t kCapsAddress = 0x0040;
inline constexpr uint16_t kCapsLength = 48;
inline constexpr uint16_t kCapsParameterCount = 0x0040;
inline constexpr uint16_t kCapsSupportedWaveforms = 0x0041;
inline constexpr uint16_t kCapsSupportedPolarities = 0x0042;
inline constexpr uint16_t kCapsDefaultWaveform = 0x0043;
inline constexpr uint16_t kCapsDefaultPolarity = 0x0044;
inline constexpr uint16_t kCapsRegulationTolerance = 0x0045;  // scale 0.0001
inline constexpr uint16_t kCapsRegulationGraceMs = 0x0046;
inline constexpr uint16_t kCapsDoseTolerance = 0x0047;       // scale 0.0001
inline constexpr uint16_t kCapsComplianceVoltageMv = 0x0048;  // u32
inline constexpr uint16_t kCapsStrokeRateSlew = 0x004A;       // u32, 0.01 Hz/s
inline constexpr uint16_t kCapsParameters = 0x0050;           // 8 registers per parameter
inline constexpr uint16_t kCapsParameterStride = 8;
inline constexpr double kFractionScale = 0.0001;
inline constexpr double kSlewScale = 0.01;  // Hz/s

// Holding registers.
inline constexpr uint16_t kWatchdogMs = 0x0000;
inline constexpr uint16_t kWatchdogMinMs = 100;
inline constexpr uint16_t kWatchdogMaxMs = 60000;
inline constexpr uint16_t kWatchdogPowerUpMs = 1000;
inline constexpr uint16_t kPollTag = 0x0001;
inline constexpr uint16_t kSetpoints = 0x0010;
inline constexpr uint16_t kPenSetpointsLength = 6;
inline constexpr uint16_t kStimSetpointsLength = 10;
inline constexpr uint16_t kStimWaveform = 0x0018;
inline constexpr uint16_t kStimPolarity = 0x0019;

// The snapshot (input and holding registers, read-only).
inline constexpr uint16_t kSnapshotAddress = 0x0100;
inline constexpr uint16_t kSnapshotLength = 32;
inline constexpr uint16_t kSnapTagEcho = 0x0100;
inline constexpr uint16_t kSnapStatus = 0x0101;
inline constexpr uint16_t kSnapFaults = 0x0102;
inline constexpr uint16_t kSnapUptimeMs = 0x0104;  // u64
inline constexpr uint16_t kStatusOutputOn = 1 << 0;
inline constexpr uint16_t kStatusEstopLatched = 1 << 1;
inline constexpr uint16_t kStatusWatchdogExpired = 1 << 2;
// Pens.
inline constexpr uint16_t kPenNeedleDepth = 0x0108;       // u32, 0.001 mm
inline constexpr uint16_t kPenStrokeRate = 0x010A;        // u32, 0.01 Hz
inline constexpr uint16_t kPenStrokesTotal = 0x010C;      // u64
inline constexpr uint16_t kPenMotorCurrentMa = 0x0110;    // u32, mA
inline constexpr uint16_t kPenMotorTemperature = 0x0112;  // s16, 0.01 °C
inline constexpr uint16_t kPenCartridgeNeedles = 0x0113;
inline constexpr uint16_t kPenCartridgeLength = 0x0114;  // u32, 0.001 mm
inline constexpr uint16_t kPenCartridgeUsed = 0x0116;    // u64
inline constexpr uint16_t kPenCartridgeRated = 0x011A;   // u64
// Stimulators.
inline constexpr uint16_t kStimCurrentSetpoint = 0x0108;  // u32, 0.01 µA
inline constexpr uint16_t kStimCurrentMeasured = 0x010A;  // s32, 0.01 µA
inline constexpr uint16_t kStimImpedanceOhm = 0x010C;     // u32, Ω
inline constexpr uint16_t kStimOutputVoltageMv = 0x010E;  // u32, mV
inline constexpr uint16_t kStimChargeNc = 0x0110;         // u64, 0.001 µC
inline constexpr uint16_t kStimContact = 0x0114;

// Coils.
inline constexpr uint16_t kCoilOutputEnable = 0;
inline constexpr uint16_t kCoilEmergencyStop = 1;
inline constexpr uint16_t kCoilFaultClear = 2;
inline constexpr uint16_t kCoilCount = 3;

// Discrete inputs.
inline constexpr uint16_t kInputFaultFirst = 1;  // + FaultKind - 1, up to 6
inline constexpr uint16_t kInputWatchdogExpired = 16;
inline constexpr uint16_t kInputEstopLatched = 17;
inline constexpr uint16_t kInputOutputOn = 18;
inline constexpr uint16_t kInputCount = 19;

// Scales of the parameters, by kind and index (REGISTER_MAP.md §3.2).
inline constexpr double kPenScales[] = {0.001, 0.01, 0.001};        // mm, Hz, s
inline constexpr double kStimScales[] = {0.01, 0.01, 0.001, 0.001};  // µA, Hz, s, s
inline constexpr double kDepthScale = 0.001;                         // mm
inline constexpr double kRateScale = 0.01;                           // Hz
inline constexpr double kCurrentScale = 0.01;                        // µA
inline constexpr double kTemperatureScale = 0.01;                    // °C
inline constexpr double kChargeScale = 0.001;                        // µC

// Big-endian word order (most significant word first).
inline uint32_t U32At(const uint16_t* regs) { return (uint32_t{regs[0]} << 16) | regs[1]; }
inline uint64_t U64At(const uint16_t* regs) {
  return (uint64_t{U32At(regs)} << 32) | U32At(regs + 2);
}
inline void PutU32(uint32_t value, uint16_t* regs) {
  regs[0] = static_cast<uint16_t>(value >> 16);
  regs[1] = static_cast<uint16_t>(value);
}
inline void PutU64(uint64_t value, uint16_t* regs) {
  PutU32(static_cast<uint32_t>(value >> 32), regs);
  PutU32(static_cast<uint32_t>(value), regs + 2);
}

// ASCII, two characters per register, first in the high byte, NUL-padded.
inline std::string StringAt(const uint16_t* regs, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    for (int shift : {8, 0}) {
      const char c = static_cast<char>((regs[i] >> shift) & 0xFF);
      if (c == '\0') return out;
      out.push_back(c);
    }
  }
  return out;
}
inline void PutString(const std::string& value, uint16_t* regs, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const auto at = [&](size_t k) -> uint16_t {
      return k < value.size() ? static_cast<unsigned char>(value[k]) : 0;
    };
    regs[i] = static_cast<uint16_t>((at(2 * i) << 8) | at(2 * i + 1));
  }
}

}  // namespace derma::modbus_map

#endif  // DERMA_PLUGIN_BACKENDS_MODBUS_REGISTER_MAP_H_
