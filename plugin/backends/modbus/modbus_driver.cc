#include "plugin/backends/modbus/modbus_driver.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "plugin/backends/modbus/register_codec.h"
#include "plugin/errors/errors.h"

namespace derma::modbus {
namespace {

namespace map = modbus_map;

absl::Status NotConnected(const std::string& id) {
  return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_DEVICE_OFFLINE,
                   absl::StrCat(id, " is not connected"), {{"device", "devices/" + id}});
}

}  // namespace

ModbusDriver::ModbusDriver(const config::v1::DeviceConfig& config, ModbusLink& link)
    : config_(config),
      link_(link),
      unit_(static_cast<int>(config.modbus().unit_id())),
      probe_backoff_(link.settings().backoff) {
  info_.kind = config.kind();
  info_.simulated = false;
  info_.hooks_never_block = false;
  info_.acts_when_called = true;
}

absl::StatusOr<ModbusDriver::Identity> ModbusDriver::ReadIdentity() {
  Identity identity;
  identity.ident.resize(map::kIdentLength);
  identity.caps.resize(map::kCapsLength);
  absl::Status s =
      link_.ReadInputRegisters(unit_, map::kIdentAddress, map::kIdentLength, identity.ident.data());
  if (s.ok()) {
    s = link_.ReadInputRegisters(unit_, map::kCapsAddress, map::kCapsLength, identity.caps.data());
  }
  if (!s.ok()) return s;
  return identity;
}

absl::Status ModbusDriver::Describe(const Identity& identity) {
  absl::StatusOr<DeviceDescription> described =
      DecodeDescription(config_, identity.ident.data(), identity.caps.data());
  if (!described.ok()) return described.status();
  description_ = *std::move(described);
  first_identity_ = identity;
  return absl::OkStatus();
}

absl::Status ModbusDriver::Prepare() {
  const auto watchdog_ms =
      static_cast<uint16_t>(absl::ToInt64Milliseconds(link_.settings().watchdog));
  absl::Status s = link_.WriteRegister(unit_, map::kWatchdogMs, watchdog_ms);
  if (s.ok()) s = link_.WriteCoil(unit_, map::kCoilFaultClear, true);
  if (s.ok()) s = link_.WriteCoil(unit_, map::kCoilOutputEnable, false);
  return s;
}

absl::Status ModbusDriver::Connect(absl::Time now) {
  absl::StatusOr<Identity> identity = ReadIdentity();
  if (!identity.ok()) return Failed(identity.status(), now);
  if (absl::Status s = CheckIdentity(config_, identity->ident.data()); !s.ok()) return s;
  if (!description_.has_value()) {
    if (absl::Status s = Describe(*identity); !s.ok()) return s;
  } else if (identity->ident != first_identity_.ident || identity->caps != first_identity_.caps) {
    return MakeError(
        absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_DRIVER_ERROR,
        absl::StrFormat("unit %d on link %s now answers as %s serial %s firmware %s, not the "
                        "device first read (%s serial %s firmware %s): not adopted",
                        unit_, link_.settings().name, IdentModel(identity->ident.data()),
                        IdentSerial(identity->ident.data()), IdentFirmware(identity->ident.data()),
                        description_->model, description_->serial_number,
                        description_->firmware_version),
        {{"device", "devices/" + config_.id()}});
  }
  link_.NoteDeviceTiming(
      absl::Milliseconds(identity->ident[map::kIdentMaxReplyLatencyMs - map::kIdentAddress]),
      absl::Milliseconds(identity->ident[map::kIdentBroadcastTurnaroundMs - map::kIdentAddress]));
  output_off_reaction_ =
      absl::Milliseconds(identity->ident[map::kIdentOutputOffReactionMs - map::kIdentAddress]);
  if (absl::Status s = Prepare(); !s.ok()) return Failed(s, now);
  connected_ = true;
  if (absl::Status s = Poll(now); !s.ok()) return s;
  probe_backoff_ = link_.settings().backoff;
  return absl::OkStatus();
}

absl::Status ModbusDriver::Apply(const v1::Settings& settings, absl::Time now) {
  absl::StatusOr<std::vector<uint16_t>> block = EncodeSetpoints(info_.kind, settings);
  if (!block.ok()) return block.status();
  if (!connected_) return NotConnected(config_.id());
  absl::Status s =
      link_.WriteRegisters(unit_, map::kSetpoints, static_cast<int>(block->size()), block->data());
  if (!s.ok()) return Failed(s, now);
  return absl::OkStatus();
}

absl::Status ModbusDriver::SetOutput(bool on, absl::Time now) {
  if (!connected_) return NotConnected(config_.id());
  // A switch-on whose reply is lost may have been taken: count the output maybe on from here.
  if (on) output_maybe_on_ = true;
  absl::Status s = link_.WriteCoil(unit_, map::kCoilOutputEnable, on);
  if (!s.ok()) return Failed(s, now);
  reading_.output_on = on;
  if (!on) output_maybe_on_ = false;
  return absl::OkStatus();
}

absl::StatusOr<DriverReading> ModbusDriver::Read(absl::Time now) {
  if (have_reading_ && now == last_read_) return reading_;
  last_read_ = now;
  if (!connected_) {
    // A probe per back-off step: one tagged poll; when the device answers, the link reads up
    // and the core connects it (identification first).
    if (now >= next_probe_) {
      Snapshot snapshot;
      if (link_.ReadSnapshot(unit_, snapshot.data()).ok()) {
        Decode(snapshot);
        reading_.link_up = true;
        have_reading_ = true;
        return reading_;
      }
      next_probe_ = now + probe_backoff_;
      probe_backoff_ = std::min(probe_backoff_ * 2, link_.settings().backoff_max);
    }
    reading_.link_up = false;
    UpdateUnconfirmed(now);
    have_reading_ = true;
    return reading_;
  }
  if (absl::Status s = Poll(now); !s.ok() && !absl::IsUnavailable(s)) return s;
  return reading_;
}

absl::Status ModbusDriver::Poll(absl::Time now) {
  Snapshot snapshot;
  if (absl::Status s = link_.ReadSnapshot(unit_, snapshot.data()); !s.ok()) return Failed(s, now);
  const bool restarted = Decode(snapshot);
  const uint16_t status = snapshot[map::kSnapStatus - map::kSnapshotAddress];
  if (restarted || (status & map::kStatusWatchdogExpired) != 0) {
    // The device restarted, or stopped hearing derma: a link loss; connecting again re-arms its
    // watchdog and clears the latch.
    LoseLink(now, absl::ZeroDuration());
    return MakeError(absl::StatusCode::kUnavailable, v1::ERROR_REASON_DEVICE_OFFLINE,
                     restarted ? "the device restarted" : "the device's watchdog expired");
  }
  reading_.link_up = true;
  reading_.output_unconfirmed = false;
  output_maybe_on_ = reading_.output_on;
  // A Read at the same `now` (the core reads after a command) needs no second transaction.
  last_read_ = now;
  have_reading_ = true;
  return absl::OkStatus();
}

bool ModbusDriver::Decode(const Snapshot& snapshot) {
  DecodedSnapshot decoded = DecodeSnapshot(info_.kind, snapshot.data());
  const bool restarted = decoded.uptime_ms < last_uptime_ms_ ||
                         decoded.reading.pen.strokes_total < raw_strokes_ ||
                         decoded.charge_nc < raw_charge_nc_;
  if (restarted) {
    strokes_base_ += raw_strokes_;
    charge_base_nc_ += raw_charge_nc_;
  }
  last_uptime_ms_ = decoded.uptime_ms;
  raw_strokes_ = decoded.reading.pen.strokes_total;
  raw_charge_nc_ = decoded.charge_nc;
  decoded.reading.pen.strokes_total += strokes_base_;
  decoded.reading.stim.charge_delivered_uc =
      static_cast<double>(raw_charge_nc_ + charge_base_nc_) * map::kChargeScale;
  decoded.reading.link_up = reading_.link_up;
  decoded.reading.taken_at = link_.last_answered_sent_at();
  reading_ = std::move(decoded.reading);
  return restarted;
}

bool ModbusDriver::ForceOutputOff(absl::Time now) {
  // A snapshot taken at this very `now` (an emergency stop's confirmation) showed it off.
  if (connected_ && have_reading_ && last_read_ == now && !reading_.output_on &&
      !output_maybe_on_) {
    return true;
  }
  reading_.output_on = false;
  if (connected_) {
    absl::Status s = link_.WriteCoil(unit_, map::kCoilOutputEnable, false);
    if (s.ok()) {
      output_maybe_on_ = false;
      reading_.output_unconfirmed = false;
      return true;
    }
    (void)Failed(s, now);
  }
  UpdateUnconfirmed(now);
  return !reading_.output_unconfirmed;
}

bool ModbusDriver::EmergencyStop(absl::Time now) {
  reading_.output_on = false;
  if (!connected_) {
    UpdateUnconfirmed(now);
    return !reading_.output_unconfirmed;
  }
  // After a bus-wide broadcast the coil is already written: only confirm. If the confirmation
  // does not show the stop latched, write it to this unit after all.
  bool broadcast = link_.TakeBroadcastStop(unit_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!broadcast) {
      absl::Status s = link_.WriteCoil(unit_, map::kCoilEmergencyStop, true);
      if (!s.ok()) {
        (void)Failed(s, now);
        break;
      }
    }
    if (!Poll(now).ok()) break;
    if (!reading_.output_on && reading_.estop_latched) return true;
    if (!broadcast) break;
    broadcast = false;
  }
  reading_.output_on = false;
  UpdateUnconfirmed(now);
  return !reading_.output_unconfirmed && !output_maybe_on_;
}

absl::Status ModbusDriver::ClearEmergencyStop(absl::Time now) {
  if (!connected_) return NotConnected(config_.id());
  absl::Status s = link_.WriteCoil(unit_, map::kCoilEmergencyStop, false);
  if (!s.ok()) return Failed(s, now);
  reading_.estop_latched = false;
  return absl::OkStatus();
}

absl::Status ModbusDriver::Failed(const absl::Status& status, absl::Time now) {
  if (absl::IsUnavailable(status)) LoseLink(now, probe_backoff_);
  return status;
}

void ModbusDriver::LoseLink(absl::Time now, absl::Duration next_probe_in) {
  connected_ = false;
  reading_.link_up = false;
  reading_.output_on = false;
  next_probe_ = now + next_probe_in;
  UpdateUnconfirmed(now);
}

void ModbusDriver::UpdateUnconfirmed(absl::Time now) {
  // The watchdog restarted at the last request the device answered; once it has run out and
  // the device has had its reaction time, the output is off whatever derma could not say.
  const absl::Time certainly_off =
      link_.LastRequestTo(unit_) + link_.settings().watchdog + output_off_reaction_;
  if (output_maybe_on_ && absl::Now() >= certainly_off) output_maybe_on_ = false;
  reading_.output_unconfirmed = output_maybe_on_;
}

}  // namespace derma::modbus
