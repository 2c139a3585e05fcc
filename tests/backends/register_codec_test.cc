// The register map's blocks as derma reads and writes them (plugin/backends/modbus/
// register_codec.h): descriptions with narrowing overrides, identity checks, setpoint blocks and
// snapshots, from register arrays built by hand after REGISTER_MAP.md.
#include "plugin/backends/modbus/register_codec.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/backends/modbus/register_map.h"
#include "plugin/errors/errors.h"

namespace derma::modbus {
namespace {

namespace map = modbus_map;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<uint16_t> Ident(v1::DeviceKind kind, const std::string& model = "DP-100",
                            const std::string& serial = "SN-1") {
  std::vector<uint16_t> ident(map::kIdentLength);
  ident[map::kIdentMapVersion] = 1;
  ident[map::kIdentKind] = static_cast<uint16_t>(kind);
  map::PutString(model, &ident[map::kIdentModel], map::kIdentModelLength);
  map::PutString(serial, &ident[map::kIdentSerial], map::kIdentSerialLength);
  map::PutString("2.4.1", &ident[map::kIdentFirmware], map::kIdentFirmwareLength);
  return ident;
}

void PutParameter(std::vector<uint16_t>& caps, int i, uint32_t min, uint32_t max, uint32_t res,
                  uint32_t def) {
  uint16_t* at = &caps[map::kCapsParameters - map::kCapsAddress + i * map::kCapsParameterStride];
  map::PutU32(min, at);
  map::PutU32(max, at + 2);
  map::PutU32(res, at + 4);
  map::PutU32(def, at + 6);
}

// A pen: depth 0–2.5 mm by 0.05 (default 0.5), 50–150 Hz by 1 (100), session 1–3600 s by 1 s.
std::vector<uint16_t> PenCaps() {
  std::vector<uint16_t> caps(map::kCapsLength);
  caps[map::kCapsParameterCount - map::kCapsAddress] = 3;
  caps[map::kCapsRegulationTolerance - map::kCapsAddress] = 1000;
  caps[map::kCapsRegulationGraceMs - map::kCapsAddress] = 200;
  caps[map::kCapsDoseTolerance - map::kCapsAddress] = 200;
  map::PutU32(50000, &caps[map::kCapsStrokeRateSlew - map::kCapsAddress]);
  PutParameter(caps, 0, 0, 2500, 50, 500);
  PutParameter(caps, 1, 5000, 15000, 100, 10000);
  PutParameter(caps, 2, 1000, 3600000, 1000, 1200000);
  return caps;
}

// A stimulator: 0–1000 µA by 1, 0.5–1000 Hz by 0.1, ramp 0–10 s by 0.1 s, session as the pen's;
// monophasic and biphasic square, both polarities, 12 V.
std::vector<uint16_t> StimCaps() {
  std::vector<uint16_t> caps(map::kCapsLength);
  caps[map::kCapsParameterCount - map::kCapsAddress] = 4;
  caps[map::kCapsSupportedWaveforms - map::kCapsAddress] = (1 << 1) | (1 << 2);
  caps[map::kCapsSupportedPolarities - map::kCapsAddress] = (1 << 1) | (1 << 2);
  caps[map::kCapsDefaultWaveform - map::kCapsAddress] = 2;
  caps[map::kCapsDefaultPolarity - map::kCapsAddress] = 1;
  map::PutU32(12000, &caps[map::kCapsComplianceVoltageMv - map::kCapsAddress]);
  PutParameter(caps, 0, 0, 100000, 100, 10000);
  PutParameter(caps, 1, 50, 100000, 10, 1000);
  PutParameter(caps, 2, 0, 10000, 100, 1000);
  PutParameter(caps, 3, 1000, 3600000, 1000, 1200000);
  return caps;
}

config::v1::DeviceConfig Config(v1::DeviceKind kind) {
  config::v1::DeviceConfig config;
  config.set_id("dev-1");
  config.set_kind(kind);
  config.set_backend(config::v1::BACKEND_MODBUS);
  config.mutable_modbus()->set_unit_id(3);
  return config;
}

config::v1::DeviceConfig WithOverride(const std::string& field, std::optional<double> min,
                                      std::optional<double> max,
                                      std::optional<double> resolution = std::nullopt) {
  config::v1::DeviceConfig config = Config(v1::DEVICE_KIND_MICRONEEDLING);
  config::v1::ParameterOverride* o = config.add_overrides();
  o->set_field(field);
  if (min) o->set_min(*min);
  if (max) o->set_max(*max);
  if (resolution) o->set_resolution(*resolution);
  return config;
}

std::string FieldOf(const absl::Status& status) {
  std::vector<FieldViolation> violations = ViolationsOf(status);
  return violations.empty() ? "" : violations[0].field;
}

TEST(RegisterCodecTest, PenDescriptionComesFromTheBlocks) {
  absl::StatusOr<DeviceDescription> d = DecodeDescription(
      Config(v1::DEVICE_KIND_MICRONEEDLING), Ident(v1::DEVICE_KIND_MICRONEEDLING).data(),
      PenCaps().data());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->model, "DP-100");
  EXPECT_EQ(d->serial_number, "SN-1");
  EXPECT_EQ(d->firmware_version, "2.4.1");
  const v1::ParameterCapability& depth = d->capabilities.parameters(0);
  EXPECT_EQ(depth.field(), "needle_depth_mm");
  EXPECT_DOUBLE_EQ(depth.max(), 2.5);
  EXPECT_DOUBLE_EQ(depth.resolution(), 0.05);
  EXPECT_DOUBLE_EQ(d->capabilities.parameters(1).min(), 50);
  EXPECT_DOUBLE_EQ(d->default_settings.microneedling().stroke_rate_hz(), 100);
  EXPECT_DOUBLE_EQ(d->default_settings.microneedling().session_limit_s(), 1200);
  EXPECT_DOUBLE_EQ(d->capabilities.regulation().stroke_rate_slew_hz_per_s(), 500);
  EXPECT_DOUBLE_EQ(d->capabilities.regulation().tolerance(), 0.1);
  EXPECT_DOUBLE_EQ(d->capabilities.regulation().grace_s(), 0.2);
}

TEST(RegisterCodecTest, StimulatorEnumsAndComplianceComeFromTheBlocks) {
  absl::StatusOr<DeviceDescription> d = DecodeDescription(
      Config(v1::DEVICE_KIND_MICROCURRENT), Ident(v1::DEVICE_KIND_MICROCURRENT).data(),
      StimCaps().data());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(d->capabilities.supported_waveforms(),
              ElementsAre(v1::WAVEFORM_MONOPHASIC_SQUARE, v1::WAVEFORM_BIPHASIC_SQUARE));
  EXPECT_DOUBLE_EQ(d->capabilities.compliance_voltage_v(), 12);
  EXPECT_EQ(d->default_settings.microcurrent().waveform(), v1::WAVEFORM_BIPHASIC_SQUARE);
  EXPECT_DOUBLE_EQ(d->default_settings.microcurrent().frequency_hz(), 10);
}

TEST(RegisterCodecTest, AnOverrideMayNarrowOntoTheDevicesGrid) {
  absl::StatusOr<DeviceDescription> d =
      DecodeDescription(WithOverride("needle_depth_mm", 0.25, 1.5, 0.1),
                        Ident(v1::DEVICE_KIND_MICRONEEDLING).data(), PenCaps().data());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_DOUBLE_EQ(d->capabilities.parameters(0).min(), 0.25);
  EXPECT_DOUBLE_EQ(d->capabilities.parameters(0).max(), 1.5);
  EXPECT_DOUBLE_EQ(d->capabilities.parameters(0).resolution(), 0.1);
  EXPECT_DOUBLE_EQ(d->default_settings.microneedling().needle_depth_mm(), 0.45);
}

TEST(RegisterCodecTest, AnOverrideThatWidensIsRefusedNamingItsField) {
  const auto ident = Ident(v1::DEVICE_KIND_MICRONEEDLING);
  const auto caps = PenCaps();
  struct Case {
    config::v1::DeviceConfig config;
    std::string field;
  } cases[] = {
      {WithOverride("needle_depth_mm", -0.5, std::nullopt), "devices[dev-1].overrides[0].min"},
      {WithOverride("stroke_rate_hz", std::nullopt, 200), "devices[dev-1].overrides[0].max"},
      {WithOverride("needle_depth_mm", 0.26, std::nullopt), "devices[dev-1].overrides[0].min"},
      {WithOverride("needle_depth_mm", std::nullopt, std::nullopt, 0.07),
       "devices[dev-1].overrides[0].resolution"},
      {WithOverride("needle_depth_mm", std::nullopt, std::nullopt, 0.01),
       "devices[dev-1].overrides[0].resolution"},
      {WithOverride("current_ua", 1, std::nullopt), "devices[dev-1].overrides[0].field"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<DeviceDescription> d = DecodeDescription(c.config, ident.data(), caps.data());
    ASSERT_FALSE(d.ok()) << c.field;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(FieldOf(d.status()), c.field) << d.status();
  }
}

TEST(RegisterCodecTest, CapabilitiesThatBreakTheMapAreRefused) {
  std::vector<uint16_t> caps = PenCaps();
  PutParameter(caps, 1, 5000, 15000, 0, 10000);  // resolution 0
  EXPECT_FALSE(DecodeDescription(Config(v1::DEVICE_KIND_MICRONEEDLING),
                                 Ident(v1::DEVICE_KIND_MICRONEEDLING).data(), caps.data())
                   .ok());
  caps = PenCaps();
  PutParameter(caps, 2, 1000, 600000, 1000, 60000);  // session limit short of 3600 s
  absl::StatusOr<DeviceDescription> d = DecodeDescription(
      Config(v1::DEVICE_KIND_MICRONEEDLING), Ident(v1::DEVICE_KIND_MICRONEEDLING).data(),
      caps.data());
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("session_limit_s"));
}

TEST(RegisterCodecTest, IdentityMustMatchTheMapVersionKindAndConfiguredIdentity) {
  config::v1::DeviceConfig config = Config(v1::DEVICE_KIND_MICRONEEDLING);
  EXPECT_TRUE(CheckIdentity(config, Ident(v1::DEVICE_KIND_MICRONEEDLING).data()).ok());
  std::vector<uint16_t> v2 = Ident(v1::DEVICE_KIND_MICRONEEDLING);
  v2[map::kIdentMapVersion] = 2;
  EXPECT_THAT(CheckIdentity(config, v2.data()).message(), HasSubstr("register map 2"));
  EXPECT_EQ(FieldOf(CheckIdentity(config, Ident(v1::DEVICE_KIND_MICROCURRENT).data())),
            "devices[dev-1].kind");
  config.set_model("DP-300");
  EXPECT_EQ(FieldOf(CheckIdentity(config, Ident(v1::DEVICE_KIND_MICRONEEDLING).data())),
            "devices[dev-1].model");
  config.set_model("DP-100");
  config.set_serial_number("SN-2");
  EXPECT_EQ(FieldOf(CheckIdentity(config, Ident(v1::DEVICE_KIND_MICRONEEDLING).data())),
            "devices[dev-1].serial_number");
}

TEST(RegisterCodecTest, SetpointsAreWrittenInRegisterUnitsMostSignificantWordFirst) {
  v1::Settings settings;
  v1::MicrocurrentSettings* m = settings.mutable_microcurrent();
  m->set_current_ua(700.5);
  m->set_frequency_hz(1000);
  m->set_ramp_s(1.5);
  m->set_session_limit_s(3600);
  m->set_waveform(v1::WAVEFORM_SINE);
  m->set_polarity(v1::POLARITY_NEGATIVE);
  absl::StatusOr<std::vector<uint16_t>> block =
      EncodeSetpoints(v1::DEVICE_KIND_MICROCURRENT, settings);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_THAT(*block, ElementsAre(1, 4514, 1, 34464, 0, 1500, 54, 61056, 4, 2));
  EXPECT_EQ(EncodeSetpoints(v1::DEVICE_KIND_MICRONEEDLING, settings).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RegisterCodecTest, SnapshotDecodesSignedValuesCountersAndBits) {
  std::vector<uint16_t> snapshot(map::kSnapshotLength);
  auto at = [&](uint16_t address) { return &snapshot[address - map::kSnapshotAddress]; };
  *at(map::kSnapStatus) = map::kStatusOutputOn | map::kStatusEstopLatched;
  *at(map::kSnapFaults) = (1 << v1::FAULT_KIND_OVERCURRENT) | (1 << 7);  // bit 7: not a map bit
  map::PutU64(0x0000000100000002ULL, at(map::kSnapUptimeMs));
  map::PutU32(static_cast<uint32_t>(-25000), at(map::kStimCurrentMeasured));
  map::PutU64(5'000'000'123ULL, at(map::kStimChargeNc));
  *at(map::kStimContact) = 1;
  DecodedSnapshot d = DecodeSnapshot(v1::DEVICE_KIND_MICROCURRENT, snapshot.data());
  EXPECT_TRUE(d.reading.output_on);
  EXPECT_TRUE(d.reading.estop_latched);
  EXPECT_EQ(d.reading.faults, FaultBit(v1::FAULT_KIND_OVERCURRENT));
  EXPECT_THAT(d.reading.fault_detail, HasSubstr("OVERCURRENT"));
  EXPECT_EQ(d.uptime_ms, 4294967298ULL);
  EXPECT_DOUBLE_EQ(d.reading.stim.current_measured_ua, -250);
  EXPECT_EQ(d.charge_nc, 5'000'000'123ULL);
  EXPECT_TRUE(d.reading.stim.electrode_contact);

  std::vector<uint16_t> pen(map::kSnapshotLength);
  pen[map::kPenMotorTemperature - map::kSnapshotAddress] = static_cast<uint16_t>(-550);
  map::PutU64(123456789012ULL, &pen[map::kPenStrokesTotal - map::kSnapshotAddress]);
  DecodedSnapshot p = DecodeSnapshot(v1::DEVICE_KIND_MICRONEEDLING, pen.data());
  EXPECT_DOUBLE_EQ(p.reading.pen.motor_temperature_c, -5.5);
  EXPECT_EQ(p.reading.pen.strokes_total, 123456789012ULL);
  EXPECT_FALSE(p.reading.output_on);
}

}  // namespace
}  // namespace derma::modbus
