// Model catalogue, config overrides, setup validation and the kind registry.
#include "sim/model_catalogue.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/errors/errors.h"
#include "sim/registry.h"
#include "tests/sim/sim_test_util.h"

namespace derma::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::PenConfig;
using testing::StimConfig;

const v1::ParameterCapability& Cap(const v1::Capabilities& caps, const std::string& field) {
  const v1::ParameterCapability* p = FindCapability(caps, field);
  EXPECT_NE(p, nullptr) << field;
  static const v1::ParameterCapability kMissing;
  return p == nullptr ? kMissing : *p;
}

std::vector<std::string> ViolationFields(const absl::Status& status) {
  std::vector<std::string> fields;
  for (const FieldViolation& v : ViolationsOf(status)) fields.push_back(v.field);
  return fields;
}

TEST(SimModelCatalogueTest, PenModelsHaveDifferentLimits) {
  absl::StatusOr<PenModel> dp100 = ResolvePenModel(PenConfig());
  absl::StatusOr<PenModel> dp300 = ResolvePenModel(PenConfig("DP-300"));
  ASSERT_TRUE(dp100.ok() && dp300.ok());
  EXPECT_EQ(dp100->name, "DP-100");
  EXPECT_EQ(Cap(dp100->capabilities, "needle_depth_mm").max(), 2.5);
  EXPECT_EQ(Cap(dp300->capabilities, "needle_depth_mm").max(), 3.0);
  EXPECT_EQ(Cap(dp100->capabilities, "stroke_rate_hz").min(), 50);
  EXPECT_EQ(Cap(dp300->capabilities, "stroke_rate_hz").max(), 160);
  EXPECT_EQ(dp100->temp_limit_c, 60);
  EXPECT_EQ(dp300->temp_limit_c, 65);
}

TEST(SimModelCatalogueTest, StimulatorModelsHaveDifferentLimits) {
  absl::StatusOr<StimulatorModel> mc10 = ResolveStimulatorModel(StimConfig());
  absl::StatusOr<StimulatorModel> mc5 = ResolveStimulatorModel(StimConfig("MC-5"));
  ASSERT_TRUE(mc10.ok() && mc5.ok());
  EXPECT_EQ(mc10->name, "MC-10");
  EXPECT_EQ(Cap(mc10->capabilities, "current_ua").max(), 1000);
  EXPECT_EQ(Cap(mc5->capabilities, "current_ua").max(), 500);
  EXPECT_EQ(Cap(mc5->capabilities, "frequency_hz").min(), 0.5);
  EXPECT_EQ(mc10->capabilities.supported_waveforms_size(), 4);
  EXPECT_THAT(mc5->capabilities.supported_waveforms(),
              ElementsAre(v1::WAVEFORM_MONOPHASIC_SQUARE, v1::WAVEFORM_BIPHASIC_SQUARE,
                          v1::WAVEFORM_ALTERNATING_POLARITY));
  EXPECT_EQ(mc5->capabilities.compliance_voltage_v(), 12);
}

TEST(SimModelCatalogueTest, EveryModelDeclaresItsRegulation) {
  absl::StatusOr<PenModel> dp300 = ResolvePenModel(PenConfig("DP-300"));
  ASSERT_TRUE(dp300.ok()) << dp300.status();
  EXPECT_EQ(dp300->capabilities.regulation().stroke_rate_slew_hz_per_s(), 800);
  EXPECT_EQ(dp300->accel_hz_per_s(), 800) << "the motor ramps as the capability says";
  absl::StatusOr<StimulatorModel> mc5 = ResolveStimulatorModel(StimConfig("MC-5"));
  ASSERT_TRUE(mc5.ok()) << mc5.status();
  for (const v1::OutputRegulation& r :
       {dp300->capabilities.regulation(), mc5->capabilities.regulation()}) {
    EXPECT_EQ(r.tolerance(), 0.1);
    EXPECT_EQ(r.grace_s(), 0.2);
    EXPECT_EQ(r.dose_tolerance(), 0.02);
  }
}

TEST(SimModelCatalogueTest, CapabilityFieldsAreSettingsFieldNames) {
  const auto* pen = v1::MicroneedlingSettings::descriptor();
  const auto* stim = v1::MicrocurrentSettings::descriptor();
  absl::StatusOr<PenModel> dp100 = ResolvePenModel(PenConfig());
  absl::StatusOr<StimulatorModel> mc10 = ResolveStimulatorModel(StimConfig());
  ASSERT_TRUE(dp100.ok() && mc10.ok());
  for (const v1::ParameterCapability& p : dp100->capabilities.parameters()) {
    EXPECT_NE(pen->FindFieldByName(p.field()), nullptr) << p.field();
  }
  for (const v1::ParameterCapability& p : mc10->capabilities.parameters()) {
    EXPECT_NE(stim->FindFieldByName(p.field()), nullptr) << p.field();
  }
}

TEST(SimModelCatalogueTest, UnknownModelNamesFieldAndListsKnownModels) {
  absl::Status status = ResolvePenModel(PenConfig("DP-999")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(status), v1::ERROR_REASON_INVALID_FIELD);
  EXPECT_THAT(ViolationFields(status), ElementsAre("devices[pen-1].model"));
  EXPECT_THAT(status.message(), HasSubstr("DP-100, DP-300"));
}

TEST(SimModelCatalogueTest, OverrideNarrowsCapabilityAndKeepsDefaultInside) {
  config::v1::DeviceConfig config = PenConfig();
  config::v1::ParameterOverride* o = config.add_overrides();
  o->set_field("stroke_rate_hz");
  o->set_max(80);
  absl::StatusOr<PenModel> model = ResolvePenModel(config);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(Cap(model->capabilities, "stroke_rate_hz").max(), 80);
  EXPECT_EQ(Cap(model->capabilities, "stroke_rate_hz").default_value(), 80);
}

TEST(SimModelCatalogueTest, BadOverridesAreAllListed) {
  config::v1::DeviceConfig config = PenConfig();
  config.add_overrides()->set_field("voltage_v");
  config::v1::ParameterOverride* inverted = config.add_overrides();
  inverted->set_field("needle_depth_mm");
  inverted->set_min(2);
  inverted->set_max(1);
  config::v1::ParameterOverride* zero_step = config.add_overrides();
  zero_step->set_field("stroke_rate_hz");
  zero_step->set_resolution(0);
  absl::Status status = ResolvePenModel(config).status();
  EXPECT_EQ(ReasonOf(status), v1::ERROR_REASON_INVALID_FIELD);
  EXPECT_THAT(ViolationFields(status),
              ElementsAre("devices[pen-1].overrides[0].field", "devices[pen-1].overrides[1].min",
                          "devices[pen-1].overrides[2].resolution"));
  EXPECT_THAT(status.message(), HasSubstr("devices[pen-1].overrides[0].field"));
}

TEST(SimModelCatalogueTest, BadSetupIsRejected) {
  config::v1::DeviceConfig stim = StimConfig();
  stim.mutable_stimulator()->set_electrode_impedance_ohm(10);
  absl::Status status = CreateSimDevice({stim, 1}).status();
  EXPECT_THAT(ViolationFields(status),
              ElementsAre("devices[stim-1].stimulator.electrode_impedance_ohm"));
  config::v1::DeviceConfig pen = PenConfig();
  pen.mutable_stimulator();
  EXPECT_THAT(ViolationFields(CreateSimDevice({pen, 1}).status()),
              ElementsAre("devices[pen-1].stimulator"));
}

TEST(SimRegistryTest, ListsBothKindsWithTheirModels) {
  ASSERT_EQ(SimKinds().size(), 2u);
  EXPECT_EQ(SimKinds()[0].kind, v1::DEVICE_KIND_MICRONEEDLING);
  EXPECT_EQ(SimKinds()[0].default_model, "DP-100");
  EXPECT_THAT(SimKinds()[0].models, ElementsAre("DP-100", "DP-300"));
  EXPECT_EQ(SimKinds()[1].kind, v1::DEVICE_KIND_MICROCURRENT);
  EXPECT_THAT(SimKinds()[1].models, ElementsAre("MC-10", "MC-5"));
}

TEST(SimRegistryTest, UnspecifiedKindIsRejected) {
  config::v1::DeviceConfig config = PenConfig();
  config.set_kind(v1::DEVICE_KIND_UNSPECIFIED);
  EXPECT_EQ(CreateSimDevice({config, 1}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace derma::sim
