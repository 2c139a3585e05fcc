#include "plugin/metrics/fleet_collector.h"

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "plugin/metrics/duration_histogram_metric.h"

namespace derma::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// "DEVICE_STATE_RUNNING" → "running" (label values without the enum prefix).
std::string EnumLabel(const std::string& name, absl::string_view prefix) {
  absl::string_view value = name;
  if (absl::StartsWith(value, prefix)) value.remove_prefix(prefix.size());
  return absl::AsciiStrToLower(value);
}

// Label values of an enum, without its prefix and in lower case, indexed by value; computed
// once (a scrape asks for them per device).
template <typename Enum>
const std::vector<std::string>& EnumLabels(const std::string& (*name)(Enum), int array_size,
                                           bool (*is_valid)(int), absl::string_view prefix) {
  static const std::vector<std::string>* const labels = [&] {
    auto* out = new std::vector<std::string>(array_size);
    for (int value = 0; value < array_size; ++value) {
      if (is_valid(value)) (*out)[value] = EnumLabel(name(static_cast<Enum>(value)), prefix);
    }
    return out;
  }();
  return *labels;
}

const std::vector<std::string>& StateLabels() {
  return EnumLabels<v1::DeviceState>(v1::DeviceState_Name, v1::DeviceState_ARRAYSIZE,
                                     v1::DeviceState_IsValid, "DEVICE_STATE_");
}

const std::vector<std::string>& KindLabels() {
  return EnumLabels<v1::DeviceKind>(v1::DeviceKind_Name, v1::DeviceKind_ARRAYSIZE,
                                    v1::DeviceKind_IsValid, "DEVICE_KIND_");
}

// "driver_error" for FAULT_KIND_UNSPECIFIED (a fault the driver reported without a kind).
const std::vector<std::string>& FaultReasonLabels() {
  static const std::vector<std::string>* const labels = [] {
    auto* out = new std::vector<std::string>(EnumLabels<v1::FaultKind>(
        v1::FaultKind_Name, v1::FaultKind_ARRAYSIZE, v1::FaultKind_IsValid, "FAULT_KIND_"));
    (*out)[v1::FAULT_KIND_UNSPECIFIED] = "driver_error";
    return out;
  }();
  return *labels;
}

// The families of one scrape, filled device by device. Every device adds its series in the
// same order, so the family after the last one found is tried first: a lookup is one name
// comparison, and nothing is allocated for a name or help text already seen.
class Families {
 public:
  explicit Families(size_t devices) : devices_(devices) {}

  MetricFamily& Get(absl::string_view name, absl::string_view help, MetricType type) {
    if (next_ < families_.size() && families_[next_].name == name) return families_[next_++];
    for (size_t i = 0; i < families_.size(); ++i) {
      if (families_[i].name == name) {
        next_ = i + 1;
        return families_[i];
      }
    }
    families_.push_back(MetricFamily{std::string(name), std::string(help), type, {}});
    families_.back().metric.reserve(devices_);
    next_ = families_.size();
    return families_.back();
  }
  void Gauge(absl::string_view name, absl::string_view help, const ClientMetric::Label& device,
             double value, std::initializer_list<ClientMetric::Label> extra = {}) {
    ClientMetric& metric = Add(Get(name, help, MetricType::Gauge), device, extra);
    metric.gauge.value = value;
  }
  void Counter(absl::string_view name, absl::string_view help, const ClientMetric::Label& device,
               double value, std::initializer_list<ClientMetric::Label> extra = {}) {
    ClientMetric& metric = Add(Get(name, help, MetricType::Counter), device, extra);
    metric.counter.value = value;
  }
  std::vector<MetricFamily> Take() {
    std::vector<MetricFamily> out;
    for (MetricFamily& family : families_) {
      if (!family.metric.empty()) out.push_back(std::move(family));
    }
    return out;
  }

 private:
  static ClientMetric& Add(MetricFamily& family, const ClientMetric::Label& device,
                           std::initializer_list<ClientMetric::Label> extra) {
    ClientMetric& metric = family.metric.emplace_back();
    metric.label.reserve(1 + extra.size());
    metric.label.push_back(device);
    metric.label.insert(metric.label.end(), extra.begin(), extra.end());
    return metric;
  }
  const size_t devices_;
  std::vector<MetricFamily> families_;
  size_t next_ = 0;  // the family expected next
};

void CollectPen(const Sample& sample, const v1::Device& device, const ClientMetric::Label& id,
                Families& out) {
  out.Gauge("derma_needle_depth_meters", "Needle depth applied.", id,
            sample.pen.needle_depth_mm / 1e3);
  out.Gauge("derma_stroke_rate_hertz", "Measured needle stroke rate.", id,
            sample.pen.stroke_rate_hz);
  out.Counter("derma_strokes_total", "Needle strokes made since the device connected.", id,
              static_cast<double>(sample.pen.strokes_total));
  out.Gauge("derma_motor_current_amperes", "Needle motor current.", id, sample.pen.motor_current_a);
  out.Gauge("derma_motor_temperature_celsius", "Needle motor temperature.", id,
            sample.pen.motor_temperature_c);
  out.Gauge("derma_cartridge_strokes_used", "Strokes the installed cartridge has made.", id,
            static_cast<double>(sample.pen.cartridge_strokes_used));
  out.Gauge("derma_cartridge_strokes_rated", "Strokes the installed cartridge is rated for.", id,
            static_cast<double>(device.cartridge().strokes_rated()));
}

void CollectStimulator(const Sample& sample, const v1::Capabilities& capabilities,
                       const ClientMetric::Label& id, Families& out) {
  out.Gauge("derma_output_current_setpoint_amperes",
            "Output current setpoint in effect (follows the ramp).", id,
            sample.stim.current_setpoint_ua / 1e6);
  out.Gauge("derma_output_current_amperes", "Measured instantaneous output current (signed).", id,
            sample.stim.current_measured_ua / 1e6);
  out.Gauge("derma_electrode_impedance_ohms", "Measured skin-electrode impedance.", id,
            sample.stim.electrode_impedance_ohm);
  out.Gauge("derma_output_voltage_volts",
            "Voltage across the electrodes: the compliance voltage in use.", id,
            sample.stim.output_voltage_v);
  out.Gauge("derma_compliance_voltage_limit_volts", "Highest voltage the output stage can drive.",
            id, capabilities.compliance_voltage_v());
  out.Counter("derma_charge_delivered_coulombs_total",
              "Charge delivered since the device connected (absolute value of the current).", id,
              sample.stim.charge_delivered_uc / 1e6);
  out.Gauge("derma_electrode_contact", "1 when both electrodes have skin contact.", id,
            sample.stim.electrode_contact ? 1 : 0);
}

void CollectCounters(const DeviceCounters& counters, const ClientMetric::Label& id, Families& out) {
  const std::vector<std::string>& reasons = FaultReasonLabels();
  for (int kind = 0; kind < v1::FaultKind_ARRAYSIZE; ++kind) {
    if (!v1::FaultKind_IsValid(kind)) continue;
    out.Counter("derma_faults_total", "Faults raised, by reason.", id,
                static_cast<double>(counters.faults(static_cast<v1::FaultKind>(kind))),
                {{"reason", reasons[kind]}});
  }
  out.Counter("derma_emergency_stops_total", "EmergencyStop commands executed.", id,
              static_cast<double>(counters.emergency_stops()));
  out.Counter("derma_lease_expirations_total", "Leases that expired without release.", id,
              static_cast<double>(counters.lease_expirations()));
  out.Counter("derma_lease_expirations_while_running_total",
              "Leases that expired while the device was RUNNING or PAUSED: the dead-man switch "
              "stopped the output and ended the run with LEASE_EXPIRED.",
              id, static_cast<double>(counters.dead_man_stops()));
}

// The first 48 bits of `hash` as an integer: exact in a double (53-bit mantissa).
int64_t ChainHeadPrefix48(const std::string& hash) {
  int64_t prefix = 0;
  for (size_t i = 0; i < 6 && i < hash.size(); ++i) {
    prefix = (prefix << 8) | static_cast<unsigned char>(hash[i]);
  }
  return prefix;
}

}  // namespace

std::vector<MetricFamily> FleetCollector::Collect() const {
  Families out(devices_.size());
  // Run durations aggregate per kind: a histogram per device would multiply series by 12.
  std::array<DeviceCounters::RunBuckets, v1::DeviceKind_ARRAYSIZE> run_buckets{};
  std::array<double, v1::DeviceKind_ARRAYSIZE> run_sums{};

  for (uint32_t i = 0; i < devices_.size(); ++i) {
    const DeviceView& view = devices_.view(i);
    const std::shared_ptr<const v1::Device> device = view.device();
    if (device == nullptr) continue;
    const std::shared_ptr<const v1::Device> identity_ptr = view.identity();
    const v1::Device& identity = *identity_ptr;
    const Sample sample = view.latest_sample();
    const ClientMetric::Label id{"device", identity.name().substr(sizeof("devices/") - 1)};
    const std::string& kind = KindLabels()[identity.kind()];

    out.Gauge("derma_device_info", "Device identity (value 1).", id, 1,
              {{"kind", kind},
               {"model", identity.model()},
               {"serial", identity.serial_number()},
               {"firmware", identity.firmware_version()}});
    out.Gauge("derma_device_up", "1 when the device's link is up (not OFFLINE).", id,
              device->state() == v1::DEVICE_STATE_OFFLINE ? 0 : 1);
    for (int state = 1; state < v1::DeviceState_ARRAYSIZE; ++state) {
      if (!v1::DeviceState_IsValid(state)) continue;
      out.Gauge("derma_device_state", "1 for the device's current state, 0 for the others.", id,
                device->state() == state ? 1 : 0, {{"state", StateLabels()[state]}});
    }
    out.Gauge("derma_device_output_on", "1 when the output (motor or current) is on.", id,
              sample.output_on ? 1 : 0);
    out.Gauge("derma_device_output_unconfirmed",
              "1 while the output was commanded off but the device could not confirm it (its "
              "link is down and its watchdog may not have expired yet).",
              id, sample.output_unconfirmed ? 1 : 0);
    out.Gauge("derma_device_sample_rate_hertz",
              "Samples per second the device achieved recently (less than the configured rate "
              "when its link cannot carry it).",
              id, sample.achieved_sample_rate_hz);
    out.Gauge("derma_device_lease_held", "1 while a client holds the device's lease.", id,
              device->has_lease() ? 1 : 0);
    if (sample.sequence > 0) {
      if (identity.kind() == v1::DEVICE_KIND_MICRONEEDLING) CollectPen(sample, *device, id, out);
      if (identity.kind() == v1::DEVICE_KIND_MICROCURRENT) {
        CollectStimulator(sample, *view.capabilities(), id, out);
      }
    }
    CollectCounters(view.counters(), id, out);

    const DeviceCounters::RunBuckets buckets = view.counters().run_buckets();
    for (size_t b = 0; b < buckets.size(); ++b) run_buckets[identity.kind()][b] += buckets[b];
    run_sums[identity.kind()] += view.counters().run_seconds_sum();
  }

  MetricFamily& runs = out.Get("derma_run_duration_seconds",
                               "Duration of ended treatment runs (start to end), by device kind.",
                               MetricType::Histogram);
  for (int kind = 1; kind < v1::DeviceKind_ARRAYSIZE; ++kind) {
    if (!v1::DeviceKind_IsValid(kind)) continue;
    ClientMetric& metric = runs.metric.emplace_back();
    metric.label.push_back({"kind", KindLabels()[kind]});
    FillHistogram(DeviceCounters::kRunDurationBounds, run_buckets[kind], run_sums[kind], metric);
  }

  MetricFamily& dropped =
      out.Get("derma_telemetry_samples_dropped_total",
              "Samples telemetry streams dropped because their client read too slowly.",
              MetricType::Counter);
  dropped.metric.emplace_back().counter.value = static_cast<double>(fanout_.dropped_total());
  if (authorizer_ != nullptr) {
    MetricFamily& auth = out.Get("derma_auth_failures_total",
                                 "Calls refused: no valid credentials (unauthenticated) or a role "
                                 "below the method's (permission_denied).",
                                 MetricType::Counter);
    ClientMetric& unauthenticated = auth.metric.emplace_back();
    unauthenticated.label.push_back({"reason", "unauthenticated"});
    unauthenticated.counter.value = static_cast<double>(authorizer_->unauthenticated_count());
    ClientMetric& denied = auth.metric.emplace_back();
    denied.label.push_back({"reason", "permission_denied"});
    denied.counter.value = static_cast<double>(authorizer_->denied_count());
  }
  if (audit_ != nullptr) {
    out.Get("derma_audit_records_total", "Records written durably to the audit trail.",
            MetricType::Counter)
        .metric.emplace_back()
        .counter.value = static_cast<double>(audit_->records_written());
    out.Get("derma_audit_commits_total",
            "Audit trail transactions (each one fsync, shared by the records queued meanwhile).",
            MetricType::Counter)
        .metric.emplace_back()
        .counter.value = static_cast<double>(audit_->commits());
    FillHistogram(audit_->commit_times(),
                  out.Get("derma_audit_commit_duration_seconds",
                          "Time each audit trail commit took, which its commands wait for: any "
                          "wait for a query or prune batch holding the store, then one SQLite "
                          "transaction of the records queued meanwhile with its fsync.",
                          MetricType::Histogram)
                      .metric.emplace_back());
    out.Get("derma_audit_write_failures_total",
            "Audit trail commits that failed (their commands were not acknowledged as recorded).",
            MetricType::Counter)
        .metric.emplace_back()
        .counter.value = static_cast<double>(audit_->write_failures());
    const AuditStore::ChainHead head = audit_->chain_head();
    out.Get("derma_audit_chain_length",
            "Records in the audit trail's hash chain, pruned ones included; with "
            "derma_audit_chain_head, lets a scraper notice the newest records removed.",
            MetricType::Gauge)
        .metric.emplace_back()
        .gauge.value = static_cast<double>(head.length);
    out.Get("derma_audit_chain_head",
            "The first 48 bits of the newest chained record's SHA-256 hash, as an integer (the "
            "full hash is in dermad's log at start-up and shutdown).",
            MetricType::Gauge)
        .metric.emplace_back()
        .gauge.value = static_cast<double>(ChainHeadPrefix48(head.hash));
    out.Get("derma_audit_refusals_total",
            "Refused calls (AUTH_FAILURE) taken by the audit trail, each counted once whether its "
            "record was written alone or coalesced into a record with a count.",
            MetricType::Counter)
        .metric.emplace_back()
        .counter.value = static_cast<double>(audit_->refusals());
    out.Get("derma_audit_writable",
            "1 while the audit trail can be written; 0 while commands that could switch an "
            "output on are refused.",
            MetricType::Gauge)
        .metric.emplace_back()
        .gauge.value = audit_->writable() ? 1 : 0;
  }
  return out.Take();
}

}  // namespace derma::metrics
