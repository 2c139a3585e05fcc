// FakeDriver: a scripted Driver for core unit tests. Output, faults, link, cartridge and
// impedance are set directly by the test; counters advance linearly while the output is on
// (strokes at the stroke-rate setting, charge at the current setting × the waveform's mean
// |shape|; the fake infos declare no ramp), so ledgers have exact expected values.
// set_delivery_fraction scales what the fake delivers (rate and counters), to model an output
// that cannot follow its setpoint. Like the simulator, a stimulator without contact reports
// FAULT_KIND_ELECTRODE_CONTACT_LOST. Not thread-safe (tests drive it from one thread).
#ifndef DERMA_TESTS_CORE_FAKE_DRIVER_H_
#define DERMA_TESTS_CORE_FAKE_DRIVER_H_

#include <cmath>
#include <string>
#include <vector>

#include "plugin/driver.h"

namespace derma::testing {

// Capabilities and defaults matching the contract's simulated models; regulation as the
// simulated models declare it (tolerance 10 %, grace 0.2 s, dose tolerance 2 %) without a ramp.
v1::OutputRegulation FakeRegulation();
DriverInfo FakePenInfo();
DriverInfo FakeStimulatorInfo();

class FakeDriver : public Driver {
 public:
  explicit FakeDriver(DriverInfo info);

  const DriverInfo& Info() const override { return info_; }
  const DeviceDescription* Description() const override;
  absl::Status Connect(absl::Time now) override;
  absl::Status Apply(const v1::Settings& settings, absl::Time now) override;
  absl::Status SetOutput(bool on, absl::Time now) override;
  absl::StatusOr<DriverReading> Read(absl::Time now) override;
  bool ForceOutputOff(absl::Time now) override;

  // Test controls.
  // Like a real device: no description until the first successful Connect.
  void DescribeAtConnect();
  // Connect fails with `status` (OK again: connects). Not for UNAVAILABLE: use set_link_up.
  void set_connect_error(absl::Status status) { connect_error_ = std::move(status); }
  // False: with the link down, ForceOutputOff cannot confirm and readings carry
  // output_unconfirmed until the link is back (a device without an interlock line). Default
  // true (the output goes off for certain, like the simulator).
  void set_confirm_off_without_link(bool confirm) { confirm_off_without_link_ = confirm; }
  void set_link_up(bool up) { link_up_ = up; }
  void set_faults(FaultMask faults) { faults_ = faults; }
  void set_contact(bool contact) { contact_ = contact; }
  void set_impedance_ohm(double ohms) { impedance_ohm_ = ohms; }
  void set_cartridge(v1::Cartridge cartridge) { cartridge_ = std::move(cartridge); }
  void set_fail_next_apply(bool fail) { fail_next_apply_ = fail; }
  void set_fail_reads(bool fail) { fail_reads_ = fail; }
  void set_delivery_fraction(double fraction) { delivery_fraction_ = fraction; }

  bool output_on() const { return output_on_; }
  int force_off_count() const { return force_off_count_; }
  const v1::Settings& applied() const { return applied_; }
  // Every (time, on) output switch, including forced ones, in order.
  const std::vector<std::pair<absl::Time, bool>>& output_log() const { return output_log_; }
  // Every (time, settings) accepted by Apply, in order.
  const std::vector<std::pair<absl::Time, v1::Settings>>& apply_log() const { return apply_log_; }

 private:
  void AdvanceTo(absl::Time now);

  DriverInfo info_;
  DeviceDescription description_;  // what Connect reports after DescribeAtConnect
  bool described_ = false;
  absl::Status connect_error_;
  bool confirm_off_without_link_ = true;
  bool unconfirmed_ = false;
  v1::Settings applied_;
  bool link_up_ = true;
  bool connected_ = false;
  bool output_on_ = false;
  bool contact_ = true;
  bool fail_next_apply_ = false;
  bool fail_reads_ = false;
  FaultMask faults_ = 0;
  double impedance_ohm_ = 5000;
  double delivery_fraction_ = 1;
  double stroke_phase_ = 0;
  double charge_uc_ = 0;
  v1::Cartridge cartridge_;
  absl::Time last_;
  bool started_ = false;
  int force_off_count_ = 0;
  std::vector<std::pair<absl::Time, bool>> output_log_;
  std::vector<std::pair<absl::Time, v1::Settings>> apply_log_;
};

}  // namespace derma::testing

#endif  // DERMA_TESTS_CORE_FAKE_DRIVER_H_
