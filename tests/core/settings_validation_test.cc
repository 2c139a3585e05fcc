// Settings validation: every capability bound of both kinds, quantization, interlocks, and
// Configure's applied / validate_only behaviour.
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "plugin/core/settings_validator.h"
#include "tests/core/device_fixture.h"

namespace derma::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// Sets one double field of the kind's sub-message by name.
v1::Settings With(v1::DeviceKind kind, const std::string& field, double value) {
  v1::Settings settings;
  google::protobuf::Message* sub =
      kind == v1::DEVICE_KIND_MICRONEEDLING
          ? static_cast<google::protobuf::Message*>(settings.mutable_microneedling())
          : settings.mutable_microcurrent();
  const auto* descriptor = sub->GetDescriptor()->FindFieldByName(field);
  sub->GetReflection()->SetDouble(sub, descriptor, value);
  return settings;
}

double Get(const v1::Settings& settings, const std::string& field) {
  const google::protobuf::Message& sub =
      settings.has_microneedling()
          ? static_cast<const google::protobuf::Message&>(settings.microneedling())
          : settings.microcurrent();
  return sub.GetReflection()->GetDouble(sub, sub.GetDescriptor()->FindFieldByName(field));
}

struct Bound {
  v1::DeviceKind kind;
  const char* field;
  double min, max, resolution;
};
void PrintTo(const Bound& b, std::ostream* os) { *os << b.field; }

DriverInfo InfoFor(v1::DeviceKind kind) {
  return kind == v1::DEVICE_KIND_MICRONEEDLING ? FakePenInfo() : FakeStimulatorInfo();
}

std::string PathOf(const Bound& b) {
  return std::string("settings.") +
         (b.kind == v1::DEVICE_KIND_MICRONEEDLING ? "microneedling." : "microcurrent.") + b.field;
}

class SettingBoundTest : public ::testing::TestWithParam<Bound> {
 protected:
  absl::StatusOr<v1::Settings> Validate(double value) {
    ValidationContext context;
    context.device = "devices/dev-1";
    context.kind = GetParam().kind;
    context.capabilities = &info_.description->capabilities;
    context.cartridge.set_needle_length_mm(2.5);
    return ValidateSettings(context, info_.description->default_settings,
                            With(GetParam().kind, GetParam().field, value));
  }
  void ExpectOutOfRange(double value) {
    absl::StatusOr<v1::Settings> result = Validate(value);
    ASSERT_FALSE(result.ok()) << value << " was accepted";
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status(), HasReason(v1::ERROR_REASON_SETTING_OUT_OF_RANGE));
    EXPECT_THAT(ViolationsOf(result.status()),
                ElementsAre(Field(&FieldViolation::field, PathOf(GetParam()))));
  }
  DriverInfo info_ = InfoFor(GetParam().kind);
};

TEST_P(SettingBoundTest, MinimumIsAccepted) {
  absl::StatusOr<v1::Settings> result = Validate(GetParam().min);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(Get(*result, GetParam().field), GetParam().min);
}

TEST_P(SettingBoundTest, MaximumIsAccepted) {
  absl::StatusOr<v1::Settings> result = Validate(GetParam().max);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(Get(*result, GetParam().field), GetParam().max);
}

TEST_P(SettingBoundTest, OneStepBelowMinimumIsRejected) {
  ExpectOutOfRange(GetParam().min - GetParam().resolution);
}

TEST_P(SettingBoundTest, OneStepAboveMaximumIsRejected) {
  ExpectOutOfRange(GetParam().max + GetParam().resolution);
}

TEST_P(SettingBoundTest, NanIsRejected) { ExpectOutOfRange(std::nan("")); }

TEST_P(SettingBoundTest, InfinityIsRejected) {
  ExpectOutOfRange(std::numeric_limits<double>::infinity());
  ExpectOutOfRange(-std::numeric_limits<double>::infinity());
}

TEST_P(SettingBoundTest, ViolationDescribesRangeAndUnit) {
  absl::StatusOr<v1::Settings> result = Validate(GetParam().max * 2 + 1);
  ASSERT_FALSE(result.ok());
  const std::vector<FieldViolation> violations = ViolationsOf(result.status());
  ASSERT_EQ(violations.size(), 1u);
  EXPECT_THAT(violations[0].description,
              HasSubstr(absl::StrFormat("%g–%g", GetParam().min, GetParam().max)));
}

INSTANTIATE_TEST_SUITE_P(
    EveryParameter, SettingBoundTest,
    ::testing::Values(Bound{v1::DEVICE_KIND_MICRONEEDLING, "needle_depth_mm", 0, 2.5, 0.05},
                      Bound{v1::DEVICE_KIND_MICRONEEDLING, "stroke_rate_hz", 50, 150, 1},
                      Bound{v1::DEVICE_KIND_MICRONEEDLING, "session_limit_s", 1, 3600, 1},
                      Bound{v1::DEVICE_KIND_MICROCURRENT, "current_ua", 0, 1000, 1},
                      Bound{v1::DEVICE_KIND_MICROCURRENT, "frequency_hz", 0.3, 1500, 0.1},
                      Bound{v1::DEVICE_KIND_MICROCURRENT, "ramp_s", 0, 10, 0.1},
                      Bound{v1::DEVICE_KIND_MICROCURRENT, "session_limit_s", 1, 3600, 1}),
    [](const ::testing::TestParamInfo<Bound>& info) {
      return std::string(info.param.kind == v1::DEVICE_KIND_MICRONEEDLING ? "pen_" : "stim_") +
             info.param.field;
    });

TEST(QuantizeTest, RoundsToNearestResolutionStepFromMin) {
  EXPECT_EQ(Quantize(1.23, 0, 0.05), 1.25);
  EXPECT_EQ(Quantize(1.22, 0, 0.05), 1.2);
  EXPECT_EQ(Quantize(120.4, 50, 1), 120);
  EXPECT_EQ(Quantize(10.04, 0.3, 0.1), 10.0);
}

TEST(QuantizeTest, ZeroResolutionKeepsValue) { EXPECT_EQ(Quantize(1.234, 0, 0), 1.234); }

class ConfigureTest : public DeviceFixture {};

TEST_F(ConfigureTest, ReturnsAndAppliesQuantizedValues) {
  MakeDevice();
  absl::StatusOr<v1::Settings> applied =
      device_->Configure(Lease(), PenSettings(1.23, 120.4), false);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->microneedling().needle_depth_mm(), 1.25);
  EXPECT_EQ(applied->microneedling().stroke_rate_hz(), 120);
  EXPECT_EQ(driver_->applied().microneedling().needle_depth_mm(), 1.25);
  EXPECT_EQ(driver_->applied().microneedling().stroke_rate_hz(), 120);
  EXPECT_EQ(device_->view().Read().settings().microneedling().needle_depth_mm(), 1.25);
}

TEST_F(ConfigureTest, StimulatorFrequencyIsQuantizedToTenthHertz) {
  MakeDevice(FakeStimulatorInfo());
  v1::Settings request;
  request.mutable_microcurrent()->set_frequency_hz(10.04);
  absl::StatusOr<v1::Settings> applied = device_->Configure(Lease(), request, false);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->microcurrent().frequency_hz(), 10.0);
}

TEST_F(ConfigureTest, UnsetFieldsKeepCurrentValues) {
  MakeDevice();
  ASSERT_TRUE(device_->Configure(Lease(), PenSettings(1.0, 130), false).ok());
  v1::Settings depth_only;
  depth_only.mutable_microneedling()->set_needle_depth_mm(2.0);
  absl::StatusOr<v1::Settings> applied = device_->Configure(lease_, depth_only, false);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->microneedling().needle_depth_mm(), 2.0);
  EXPECT_EQ(applied->microneedling().stroke_rate_hz(), 130);
  EXPECT_EQ(applied->microneedling().session_limit_s(), 1200);
}

TEST_F(ConfigureTest, ReportsEveryBadField) {
  MakeDevice();
  v1::Settings request = PenSettings(3.0, 10);
  request.mutable_microneedling()->set_session_limit_s(0);
  absl::StatusOr<v1::Settings> applied = device_->Configure(Lease(), request, false);
  EXPECT_THAT(applied.status(), HasReason(v1::ERROR_REASON_SETTING_OUT_OF_RANGE));
  EXPECT_THAT(ViolationsOf(applied.status()),
              UnorderedElementsAre(
                  Field(&FieldViolation::field, "settings.microneedling.needle_depth_mm"),
                  Field(&FieldViolation::field, "settings.microneedling.stroke_rate_hz"),
                  Field(&FieldViolation::field, "settings.microneedling.session_limit_s")));
  EXPECT_EQ(driver_->applied().microneedling().needle_depth_mm(), 0.5) << "nothing applied";
}

TEST_F(ConfigureTest, OtherKindSettingsAreNotSupported) {
  MakeDevice();
  absl::StatusOr<v1::Settings> applied = device_->Configure(Lease(), StimSettings(100), false);
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(applied.status(), HasReason(v1::ERROR_REASON_SETTING_NOT_SUPPORTED));
  EXPECT_THAT(ViolationsOf(applied.status()),
              ElementsAre(Field(&FieldViolation::field, "settings.microcurrent")));
}

TEST_F(ConfigureTest, UnsupportedWaveformIsNotSupported) {
  MakeDevice(FakeStimulatorInfo());
  v1::Settings request;
  request.mutable_microcurrent()->set_waveform(v1::WAVEFORM_SINE);
  absl::StatusOr<v1::Settings> applied = device_->Configure(Lease(), request, false);
  EXPECT_THAT(applied.status(), HasReason(v1::ERROR_REASON_SETTING_NOT_SUPPORTED));
  EXPECT_THAT(ViolationsOf(applied.status()),
              ElementsAre(Field(&FieldViolation::field, "settings.microcurrent.waveform")));
}

TEST_F(ConfigureTest, DepthBeyondCartridgeNeedleLengthTripsInterlock) {
  MakeDevice();
  v1::Cartridge cartridge;
  cartridge.set_needle_length_mm(1.0);
  cartridge.set_strokes_rated(1000000);
  driver_->set_cartridge(cartridge);
  absl::StatusOr<v1::Settings> applied = device_->Configure(Lease(), PenSettings(1.5, 100), false);
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(applied.status(), HasReason(v1::ERROR_REASON_INTERLOCK_DEPTH_EXCEEDS_NEEDLE));
  EXPECT_EQ(MetadataOf(applied.status())["needle_length_mm"], "1");
  EXPECT_THAT(ViolationsOf(applied.status()),
              ElementsAre(Field(&FieldViolation::field, "settings.microneedling.needle_depth_mm")));
}

TEST_F(ConfigureTest, DepthEqualToNeedleLengthIsAccepted) {
  MakeDevice();
  v1::Cartridge cartridge;
  cartridge.set_needle_length_mm(1.0);
  cartridge.set_strokes_rated(1000000);
  driver_->set_cartridge(cartridge);
  EXPECT_TRUE(device_->Configure(Lease(), PenSettings(1.0, 100), false).ok());
}

TEST_F(ConfigureTest, CurrentAboveComplianceVoltageTripsInterlock) {
  MakeDevice(FakeStimulatorInfo());
  driver_->set_impedance_ohm(20000);
  absl::StatusOr<v1::Settings> applied = device_->Configure(Lease(), StimSettings(700), false);
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(applied.status(), HasReason(v1::ERROR_REASON_INTERLOCK_COMPLIANCE));
  ErrorMetadata meta = MetadataOf(applied.status());
  EXPECT_EQ(meta["max_current_ua"], "600");
  EXPECT_EQ(meta["impedance_ohm"], "20000");
  EXPECT_EQ(meta["compliance_voltage_v"], "12");
}

TEST_F(ConfigureTest, CurrentExactlyAtComplianceVoltageIsAccepted) {
  MakeDevice(FakeStimulatorInfo());
  driver_->set_impedance_ohm(20000);
  absl::StatusOr<v1::Settings> applied = device_->Configure(Lease(), StimSettings(600), false);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(driver_->applied().microcurrent().current_ua(), 600);
}

TEST_F(ConfigureTest, ValidateOnlyReturnsAppliedValuesWithoutApplying) {
  MakeDevice();
  const size_t applies_before = driver_->apply_log().size();
  absl::StatusOr<v1::Settings> applied =
      device_->Configure(Lease(), PenSettings(1.23, 100), /*validate_only=*/true);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->microneedling().needle_depth_mm(), 1.25);
  EXPECT_EQ(driver_->applied().microneedling().needle_depth_mm(), 0.5);
  EXPECT_EQ(driver_->apply_log().size(), applies_before);
  EXPECT_EQ(device_->settings().microneedling().needle_depth_mm(), 0.5);
}

}  // namespace
}  // namespace derma::testing
