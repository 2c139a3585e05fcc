// Driver conformance: the contract every backend must meet at the Driver level, run as one
// parameterised suite over every backend factory (libcamera lc-compliance style): the simulator,
// the Modbus driver over TCP and RTU to the device emulator, and the Modbus driver to the
// independent device written from the register map alone. A new backend plugs in by adding its
// factories to AllBackends() (backend_factories.h); fault tests need simulator controls and are
// skipped for a backend without them. Times are virtual for the simulator; for a device on the
// wall clock the suite waits for them (compressed by kRealTimeScale).
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "plugin/driver.h"
#include "plugin/errors/errors.h"
#include "tests/conformance/backend_factories.h"

namespace derma::conformance {
namespace {

std::vector<BackendFactory> AllBackends() {
  std::vector<BackendFactory> all = SimBackends();
  for (BackendFactory& f : EmulatorBackends()) all.push_back(std::move(f));
  for (BackendFactory& f : IndependentDeviceBackends()) all.push_back(std::move(f));
  return all;
}

class DriverConformanceTest : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    dut_ = GetParam().create();
    ASSERT_NE(dut_.driver, nullptr);
    start_ = absl::Now();
  }

  // The suite's time `seconds` after the test began: virtual for the simulator; for a device on
  // the wall clock, waits until then (scaled) and returns the wall time, never the same twice.
  absl::Time At(double seconds) {
    if (!dut_.real_time) return absl::FromUnixSeconds(1767225600) + absl::Seconds(seconds);
    const absl::Time due = start_ + absl::Seconds(seconds * kRealTimeScale);
    if (const absl::Duration left = due - absl::Now(); left > absl::ZeroDuration()) {
      absl::SleepFor(left);
    }
    last_ = std::max(absl::Now(), last_ + absl::Nanoseconds(1));
    return last_;
  }

  Driver& driver() { return *dut_.driver; }
  const DriverInfo& info() { return dut_.driver->Info(); }
  // The description, connecting first for a device that reports its own.
  const DeviceDescription& description() {
    if (driver().Description() == nullptr) EXPECT_TRUE(driver().Connect(At(0)).ok());
    return *driver().Description();
  }
  bool is_pen() { return info().kind == v1::DEVICE_KIND_MICRONEEDLING; }

  DriverReading MustRead(absl::Time now) {
    absl::StatusOr<DriverReading> r = driver().Read(now);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : DriverReading{};
  }

  // The kind's monotonic dose counter: strokes or charge.
  double Counter(const DriverReading& r) {
    return is_pen() ? static_cast<double>(r.pen.strokes_total) : r.stim.charge_delivered_uc;
  }

  // Connects, applies the default settings and turns the output on at `t`.
  void StartOutput(double t) {
    ASSERT_TRUE(driver().Connect(At(t)).ok());
    ASSERT_TRUE(driver().Apply(description().default_settings, At(t)).ok());
    ASSERT_TRUE(driver().SetOutput(true, At(t)).ok());
  }

  DriverUnderTest dut_;
  absl::Time start_;
  absl::Time last_ = absl::InfinitePast();
};

TEST_P(DriverConformanceTest, InfoAndDescriptionAreComplete) {
  EXPECT_NE(info().kind, v1::DEVICE_KIND_UNSPECIFIED);
  ASSERT_TRUE(driver().Connect(At(0)).ok());
  ASSERT_NE(driver().Description(), nullptr);
  EXPECT_FALSE(description().model.empty());
  EXPECT_FALSE(description().serial_number.empty());
  EXPECT_FALSE(description().firmware_version.empty());
  ASSERT_GT(description().capabilities.parameters_size(), 0);
  for (const v1::ParameterCapability& p : description().capabilities.parameters()) {
    EXPECT_FALSE(p.field().empty());
    EXPECT_FALSE(p.unit().empty()) << p.field();
    EXPECT_LE(p.min(), p.default_value()) << p.field();
    EXPECT_LE(p.default_value(), p.max()) << p.field();
    EXPECT_GT(p.resolution(), 0) << p.field();
  }
  if (!is_pen()) {
    EXPECT_GT(description().capabilities.supported_waveforms_size(), 0);
    EXPECT_GT(description().capabilities.supported_polarities_size(), 0);
    EXPECT_GT(description().capabilities.compliance_voltage_v(), 0);
  }
}

TEST_P(DriverConformanceTest, DefaultSettingsMatchKindAndCapabilities) {
  const v1::Settings& settings = description().default_settings;
  const google::protobuf::Message& kind_settings =
      is_pen() ? static_cast<const google::protobuf::Message&>(settings.microneedling())
               : settings.microcurrent();
  EXPECT_EQ(settings.kind_case(),
            is_pen() ? v1::Settings::kMicroneedling : v1::Settings::kMicrocurrent);
  const auto* descriptor = kind_settings.GetDescriptor();
  const auto* reflection = kind_settings.GetReflection();
  for (const v1::ParameterCapability& p : description().capabilities.parameters()) {
    const auto* field = descriptor->FindFieldByName(p.field());
    ASSERT_NE(field, nullptr) << "capability names no settings field: " << p.field();
    ASSERT_TRUE(reflection->HasField(kind_settings, field)) << p.field();
    double value = reflection->GetDouble(kind_settings, field);
    EXPECT_GE(value, p.min()) << p.field();
    EXPECT_LE(value, p.max()) << p.field();
  }
}

TEST_P(DriverConformanceTest, ConnectThenReadShowsLinkUpAndOutputOff) {
  ASSERT_TRUE(driver().Connect(At(0)).ok());
  DriverReading r = MustRead(At(0));
  EXPECT_TRUE(r.link_up);
  EXPECT_FALSE(r.output_on);
  EXPECT_EQ(r.faults, 0u);
}

TEST_P(DriverConformanceTest, ApplyAcceptsDefaultSettings) {
  ASSERT_TRUE(driver().Connect(At(0)).ok());
  EXPECT_TRUE(driver().Apply(description().default_settings, At(0)).ok());
}

TEST_P(DriverConformanceTest, ApplyRejectsSettingsOfAnotherKind) {
  ASSERT_TRUE(driver().Connect(At(0)).ok());
  v1::Settings wrong;
  if (is_pen()) {
    wrong.mutable_microcurrent()->set_current_ua(100);
  } else {
    wrong.mutable_microneedling()->set_stroke_rate_hz(100);
  }
  EXPECT_EQ(driver().Apply(wrong, At(0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver().Apply(v1::Settings(), At(0)).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(DriverConformanceTest, OutputOnShowsInSameReadAndCountersGrow) {
  StartOutput(0);
  DriverReading first = MustRead(At(0));
  EXPECT_TRUE(first.output_on);
  double previous = Counter(first);
  for (int i = 1; i <= 50; ++i) {
    double counter = Counter(MustRead(At(i * 0.1)));
    EXPECT_GE(counter, previous) << "at " << i * 0.1 << " s";
    previous = counter;
  }
  EXPECT_GT(previous, Counter(first));
}

TEST_P(DriverConformanceTest, ForceOutputOffActsImmediately) {
  StartOutput(0);
  MustRead(At(2));
  EXPECT_TRUE(driver().ForceOutputOff(At(2)));
  EXPECT_FALSE(MustRead(At(2)).output_on);
}

TEST_P(DriverConformanceTest, CountersStayMonotonicThroughOnOffCycles) {
  StartOutput(0);
  double previous = 0;
  for (int cycle = 0; cycle < 4; ++cycle) {
    double t = cycle * 2.0;
    ASSERT_TRUE(driver().SetOutput(cycle % 2 == 0, At(t)).ok());
    for (double dt = 0; dt < 2; dt += 0.25) {
      double counter = Counter(MustRead(At(t + dt)));
      EXPECT_GE(counter, previous);
      previous = counter;
    }
  }
}

TEST_P(DriverConformanceTest, EveryFaultKindIsApplicableOrRejected) {
  if (dut_.sim == nullptr) GTEST_SKIP() << "backend has no fault injection";
  ASSERT_TRUE(driver().Connect(At(0)).ok());
  int applicable = 0;
  for (int k = v1::FaultKind_MIN + 1; k <= v1::FaultKind_MAX; ++k) {
    auto kind = static_cast<v1::FaultKind>(k);
    SCOPED_TRACE(v1::FaultKind_Name(kind));
    absl::Status injected = dut_.sim->InjectFault(kind, At(k));
    if (!injected.ok()) {
      EXPECT_EQ(injected.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(ReasonOf(injected), v1::ERROR_REASON_FAULT_NOT_APPLICABLE);
      continue;
    }
    ++applicable;
    DriverReading r = MustRead(At(k));
    if (kind == v1::FAULT_KIND_LINK_DROP) {
      EXPECT_FALSE(r.link_up);
    } else if (kind == v1::FAULT_KIND_MOTOR_UNDERSPEED) {
      // The one condition the device does not report: derma's regulation check finds it from
      // the stroke rate (simulator.proto).
      EXPECT_EQ(r.faults & FaultBit(kind), 0u) << r.fault_detail;
    } else {
      EXPECT_NE(r.faults & FaultBit(kind), 0u);
      EXPECT_FALSE(r.fault_detail.empty());
    }
    EXPECT_TRUE(dut_.sim->ClearFault(kind, At(k)).ok());
  }
  EXPECT_GT(applicable, 1);  // at least LINK_DROP and one kind-specific fault
}

TEST_P(DriverConformanceTest, ClearedFaultLeavesNoBitOnceRecovered) {
  if (dut_.sim == nullptr) GTEST_SKIP() << "backend has no fault injection";
  ASSERT_TRUE(driver().Connect(At(0)).ok());
  for (int k = v1::FaultKind_MIN + 1; k <= v1::FaultKind_MAX; ++k) {
    auto kind = static_cast<v1::FaultKind>(k);
    if (!dut_.sim->InjectFault(kind, At(0)).ok()) continue;
    ASSERT_TRUE(dut_.sim->ClearFault(kind, At(0)).ok());
  }
  // Conditions that need the model to recover (temperature) do so within 30 s at rest.
  DriverReading r = MustRead(At(30));
  EXPECT_EQ(r.faults, 0u) << r.fault_detail;
  EXPECT_TRUE(r.link_up);
}

TEST_P(DriverConformanceTest, LinkDropForcesOutputOffAndRefusesConnect) {
  if (dut_.sim == nullptr) GTEST_SKIP() << "backend has no link control";
  StartOutput(0);
  dut_.sim->SetLink(false, At(1));
  DriverReading r = MustRead(At(1));
  EXPECT_FALSE(r.link_up);
  EXPECT_FALSE(r.output_on);
  absl::Status connect = driver().Connect(At(1));
  EXPECT_EQ(connect.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(connect), v1::ERROR_REASON_DEVICE_OFFLINE);
  EXPECT_EQ(driver().SetOutput(true, At(1)).code(), absl::StatusCode::kUnavailable);
  dut_.sim->SetLink(true, At(2));
  EXPECT_TRUE(driver().Connect(At(2)).ok());
  EXPECT_TRUE(MustRead(At(2)).link_up);
}

TEST_P(DriverConformanceTest, ForceOutputOffWorksWithLinkDown) {
  if (dut_.sim == nullptr) GTEST_SKIP() << "backend has no link control";
  StartOutput(0);
  dut_.sim->SetLink(false, At(1));
  driver().ForceOutputOff(At(1));
  EXPECT_FALSE(MustRead(At(1)).output_on);
}

TEST_P(DriverConformanceTest, ReadWhileLinkDownStillAdvancesAndIsMonotonic) {
  if (dut_.sim == nullptr) GTEST_SKIP() << "backend has no link control";
  StartOutput(0);
  double before = Counter(MustRead(At(1)));
  dut_.sim->SetLink(false, At(1));
  absl::StatusOr<DriverReading> down = driver().Read(At(5));
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_FALSE(down->link_up);
  EXPECT_GE(Counter(*down), before);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, DriverConformanceTest, ::testing::ValuesIn(AllBackends()),
                         [](const ::testing::TestParamInfo<BackendFactory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace derma::conformance
