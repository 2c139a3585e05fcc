#include "sim/modbus_emulator/modbus_pdu.h"

namespace derma::emulator {
namespace {

// Modbus limits per request.
constexpr uint16_t kMaxReadRegisters = 125;
constexpr uint16_t kMaxWriteRegisters = 123;
constexpr uint16_t kMaxReadWriteRegisters = 121;
constexpr uint16_t kMaxReadBits = 2000;
constexpr uint16_t kMaxWriteCoils = 1968;

uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

void PutU16(uint16_t v, std::vector<uint8_t>* out) {
  out->push_back(static_cast<uint8_t>(v >> 8));
  out->push_back(static_cast<uint8_t>(v));
}

std::vector<uint8_t> BitsReply(uint8_t function, const std::vector<bool>& bits) {
  std::vector<uint8_t> out = {function, static_cast<uint8_t>((bits.size() + 7) / 8)};
  out.resize(2 + out[1], 0);
  for (size_t i = 0; i < bits.size(); ++i) {
    if (bits[i]) out[2 + i / 8] |= static_cast<uint8_t>(1 << (i % 8));
  }
  return out;
}

std::vector<uint8_t> RegistersReply(uint8_t function, const std::vector<uint16_t>& registers) {
  std::vector<uint8_t> out = {function, static_cast<uint8_t>(registers.size() * 2)};
  for (uint16_t r : registers) PutU16(r, &out);
  return out;
}

std::vector<uint8_t> ReadBits(RegisterSpace& space, const uint8_t* pdu, size_t length) {
  const uint8_t function = pdu[0];
  if (length != 5) return ExceptionPdu(function, kIllegalValue);
  const uint16_t address = U16(pdu + 1), count = U16(pdu + 3);
  if (count == 0 || count > kMaxReadBits) return ExceptionPdu(function, kIllegalValue);
  std::vector<bool> bits;
  const uint8_t code = function == 0x01 ? space.ReadCoils(address, count, &bits)
                                        : space.ReadDiscreteInputs(address, count, &bits);
  return code != 0 ? ExceptionPdu(function, code) : BitsReply(function, bits);
}

std::vector<uint8_t> ReadRegisters(RegisterSpace& space, const uint8_t* pdu, size_t length) {
  const uint8_t function = pdu[0];
  if (length != 5) return ExceptionPdu(function, kIllegalValue);
  const uint16_t address = U16(pdu + 1), count = U16(pdu + 3);
  if (count == 0 || count > kMaxReadRegisters) return ExceptionPdu(function, kIllegalValue);
  std::vector<uint16_t> registers(count);
  const uint8_t code = function == 0x03 ? space.ReadHolding(address, count, registers.data())
                                        : space.ReadInput(address, count, registers.data());
  return code != 0 ? ExceptionPdu(function, code) : RegistersReply(function, registers);
}

std::vector<uint8_t> WriteSingleCoil(RegisterSpace& space, const uint8_t* pdu, size_t length) {
  if (length != 5) return ExceptionPdu(0x05, kIllegalValue);
  const uint16_t value = U16(pdu + 3);
  if (value != 0xFF00 && value != 0x0000) return ExceptionPdu(0x05, kIllegalValue);
  const uint8_t code = space.WriteCoils(U16(pdu + 1), {value == 0xFF00});
  return code != 0 ? ExceptionPdu(0x05, code) : std::vector<uint8_t>(pdu, pdu + length);
}

std::vector<uint8_t> WriteSingleRegister(RegisterSpace& space, const uint8_t* pdu,
                                         size_t length) {
  if (length != 5) return ExceptionPdu(0x06, kIllegalValue);
  const uint16_t value = U16(pdu + 3);
  const uint8_t code = space.WriteRegisters(U16(pdu + 1), &value, 1, WriteFunction::kSingle);
  return code != 0 ? ExceptionPdu(0x06, code) : std::vector<uint8_t>(pdu, pdu + length);
}

std::vector<uint8_t> WriteMultipleCoils(RegisterSpace& space, const uint8_t* pdu, size_t length) {
  if (length < 6) return ExceptionPdu(0x0F, kIllegalValue);
  const uint16_t address = U16(pdu + 1), count = U16(pdu + 3);
  const uint8_t bytes = pdu[5];
  if (count == 0 || count > kMaxWriteCoils) return ExceptionPdu(0x0F, kIllegalValue);
  if (bytes != (count + 7) / 8 || length != 6u + bytes) return ExceptionPdu(0x0F, kIllegalValue);
  std::vector<bool> values(count);
  for (uint16_t i = 0; i < count; ++i) values[i] = (pdu[6 + i / 8] >> (i % 8)) & 1;
  const uint8_t code = space.WriteCoils(address, values);
  if (code != 0) return ExceptionPdu(0x0F, code);
  return std::vector<uint8_t>(pdu, pdu + 5);
}

std::vector<uint8_t> WriteMultipleRegisters(RegisterSpace& space, const uint8_t* pdu,
                                            size_t length) {
  if (length < 6) return ExceptionPdu(0x10, kIllegalValue);
  const uint16_t address = U16(pdu + 1), count = U16(pdu + 3);
  const uint8_t bytes = pdu[5];
  if (count == 0 || count > kMaxWriteRegisters) return ExceptionPdu(0x10, kIllegalValue);
  if (bytes != count * 2 || length != 6u + bytes) return ExceptionPdu(0x10, kIllegalValue);
  std::vector<uint16_t> values(count);
  for (uint16_t i = 0; i < count; ++i) values[i] = U16(pdu + 6 + 2 * i);
  const uint8_t code = space.WriteRegisters(address, values.data(), count, WriteFunction::kMultiple);
  if (code != 0) return ExceptionPdu(0x10, code);
  return std::vector<uint8_t>(pdu, pdu + 5);
}

// Function 23: the write part is performed first, then the read part (which sees the write);
// a request whose read part could not be served is refused before anything is written.
std::vector<uint8_t> ReadWriteRegisters(RegisterSpace& space, const uint8_t* pdu,
                                        size_t length) {
  if (length < 10) return ExceptionPdu(0x17, kIllegalValue);
  const uint16_t read_address = U16(pdu + 1), read_count = U16(pdu + 3);
  const uint16_t write_address = U16(pdu + 5), write_count = U16(pdu + 7);
  const uint8_t bytes = pdu[9];
  if (read_count == 0 || read_count > kMaxReadRegisters || write_count == 0 ||
      write_count > kMaxReadWriteRegisters) {
    return ExceptionPdu(0x17, kIllegalValue);
  }
  if (bytes != write_count * 2 || length != 10u + bytes) return ExceptionPdu(0x17, kIllegalValue);
  if (uint8_t code = space.CheckHoldingRead(read_address, read_count); code != 0) {
    return ExceptionPdu(0x17, code);
  }
  std::vector<uint16_t> values(write_count);
  for (uint16_t i = 0; i < write_count; ++i) values[i] = U16(pdu + 10 + 2 * i);
  if (uint8_t code = space.WriteRegisters(write_address, values.data(), write_count,
                                          WriteFunction::kReadWrite);
      code != 0) {
    return ExceptionPdu(0x17, code);
  }
  std::vector<uint16_t> registers(read_count);
  if (uint8_t code = space.ReadHolding(read_address, read_count, registers.data()); code != 0) {
    return ExceptionPdu(0x17, code);
  }
  return RegistersReply(0x17, registers);
}

}  // namespace

std::vector<uint8_t> ExceptionPdu(uint8_t function, uint8_t code) {
  return {static_cast<uint8_t>(function | 0x80), code};
}

std::vector<uint8_t> ServePdu(RegisterSpace& space, const uint8_t* pdu, size_t length) {
  if (length == 0) return {};
  switch (pdu[0]) {
    case 0x01:
    case 0x02:
      return ReadBits(space, pdu, length);
    case 0x03:
    case 0x04:
      return ReadRegisters(space, pdu, length);
    case 0x05:
      return WriteSingleCoil(space, pdu, length);
    case 0x06:
      return WriteSingleRegister(space, pdu, length);
    case 0x0F:
      return WriteMultipleCoils(space, pdu, length);
    case 0x10:
      return WriteMultipleRegisters(space, pdu, length);
    case 0x17:
      return ReadWriteRegisters(space, pdu, length);
    default:
      return ExceptionPdu(pdu[0] & 0x7F, kIllegalFunction);
  }
}

uint16_t Crc16(const uint8_t* data, size_t length) {
  uint16_t crc = 0xFFFF;
  for (size_t i = 0; i < length; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0xA001 : crc >> 1;
  }
  return crc;
}

int RtuRequestLength(const uint8_t* frame, size_t available) {
  if (available < 2) return 0;
  switch (frame[1]) {
    case 0x01:
    case 0x02:
    case 0x03:
    case 0x04:
    case 0x05:
    case 0x06:
      return 8;
    case 0x0F:
    case 0x10:
      return available < 7 ? 0 : 9 + frame[6];
    case 0x17:
      return available < 11 ? 0 : 13 + frame[10];
    default:
      return -1;
  }
}

}  // namespace derma::emulator
