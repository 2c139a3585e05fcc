// Modbus request handling for the device emulator, written from the Modbus application
// protocol (function codes 01, 02, 03, 04, 05, 06, 15, 16, 23), independent of libmodbus so the
// emulator checks derma's use of libmodbus rather than mirroring it. ServePdu turns one request
// PDU into its reply PDU over a RegisterSpace, which says what the registers hold and what a
// write does. Also the RTU framing helpers: CRC-16 and a request frame's length.
// Layer: sim/modbus_emulator. Thread-safe (pure functions; RegisterSpace implementations say).
#ifndef DERMA_SIM_MODBUS_EMULATOR_MODBUS_PDU_H_
#define DERMA_SIM_MODBUS_EMULATOR_MODBUS_PDU_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace derma::emulator {

inline constexpr uint8_t kIllegalFunction = 0x01;
inline constexpr uint8_t kIllegalAddress = 0x02;
inline constexpr uint8_t kIllegalValue = 0x03;
inline constexpr uint8_t kServerFailure = 0x04;

// Which function writes holding registers.
enum class WriteFunction { kSingle /* 06 */, kMultiple /* 16 */, kReadWrite /* 23 */ };

// What one device's registers hold. Each returns 0 or the exception code to answer; a write
// that fails changes nothing.
class RegisterSpace {
 public:
  virtual ~RegisterSpace() = default;
  virtual uint8_t ReadCoils(uint16_t address, uint16_t count, std::vector<bool>* out) = 0;
  virtual uint8_t ReadDiscreteInputs(uint16_t address, uint16_t count,
                                     std::vector<bool>* out) = 0;
  virtual uint8_t ReadHolding(uint16_t address, uint16_t count, uint16_t* out) = 0;
  virtual uint8_t ReadInput(uint16_t address, uint16_t count, uint16_t* out) = 0;
  // Writes coils starting at `address`, in address order, all or nothing.
  virtual uint8_t WriteCoils(uint16_t address, const std::vector<bool>& values) = 0;
  // Writes holding registers by `function`.
  virtual uint8_t WriteRegisters(uint16_t address, const uint16_t* values, uint16_t count,
                                 WriteFunction function) = 0;
  // Function 23's read part would succeed (checked before its write part is performed).
  virtual uint8_t CheckHoldingRead(uint16_t address, uint16_t count) = 0;
};

// The reply PDU (function code first) to request `pdu`, an exception reply included.
std::vector<uint8_t> ServePdu(RegisterSpace& space, const uint8_t* pdu, size_t length);

std::vector<uint8_t> ExceptionPdu(uint8_t function, uint8_t code);

// Modbus RTU CRC-16 (polynomial 0xA001, initial 0xFFFF); sent low byte first.
uint16_t Crc16(const uint8_t* data, size_t length);

// The length in bytes (unit id to CRC) of the RTU request frame starting at `frame`, given the
// `available` bytes: > 0 the length, 0 when more bytes are needed to tell, -1 when the function
// code gives no length (an unknown function: the frame ends at the next silence).
int RtuRequestLength(const uint8_t* frame, size_t available);

}  // namespace derma::emulator

#endif  // DERMA_SIM_MODBUS_EMULATOR_MODBUS_PDU_H_
