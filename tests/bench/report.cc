#include "tests/bench/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace derma::bench {
namespace {

double Ratio(absl::Duration d, absl::Duration base) { return absl::FDivDuration(d, base); }

std::string Min(const std::vector<double>& v) {
  return FormatCount(v.empty() ? 0 : *std::min_element(v.begin(), v.end()));
}

}  // namespace

std::string Report::VersusEcho(absl::Duration d) const {
  return absl::StrCat(FormatLatency(d), " = ", FormatRatio(Ratio(d, echo_p50_)), " echo p50");
}

void Report::AddUnary(const std::string& method, const Percentiles& p, double goal) {
  table_.AddGoal(absl::StrCat(method, " p50"), VersusEcho(p.p50),
                 absl::StrCat("≤ ", FormatRatio(goal), " echo p50"),
                 Ratio(p.p50, echo_p50_) <= goal);
  table_.AddInfo(absl::StrCat(method, " p99"), VersusEcho(p.p99));
}

void Report::AddLatency(const LatencyResult& latency) {
  echo_p50_ = latency.echo.p50;
  configure_p50_ = latency.configure.p50;
  table_.AddInfo("bare gRPC echo p50", FormatLatency(latency.echo.p50),
                 absl::StrCat("baseline (", latency.echo.count, " calls each)"));
  table_.AddInfo("bare gRPC echo p99", VersusEcho(latency.echo.p99));
  AddUnary("GetDevice", latency.get_device, kGetDeviceGoal);
  AddUnary("Configure (held lease)", latency.configure, kConfigureGoal);
}

void Report::AddAuditedConfigure(const Percentiles& configure, const AuditFloor& audit,
                                 const ConcurrentConfigureResult& concurrent) {
  const Percentiles& fdatasync = audit.fdatasync;
  table_.AddInfo(
      "fdatasync of a 256 B append, audit directory p50", FormatLatency(fdatasync.p50),
      absl::StrCat("the floor (", fdatasync.count, " calls); p99 ", FormatLatency(fdatasync.p99)));
  table_.AddInfo("the same, each after an echo round trip, p50",
                 FormatLatency(audit.paced_fdatasync.p50),
                 absl::StrCat("as a command's commit (", audit.paced_fdatasync.count,
                              " calls); p99 ", FormatLatency(audit.paced_fdatasync.p99)));
  const absl::Duration floor = echo_p50_ + fdatasync.p50;
  table_.AddGoal("Configure with the audit trail p50",
                 absl::StrCat(FormatLatency(configure.p50), " = ",
                              FormatRatio(Ratio(configure.p50, floor)), " (echo + fdatasync) p50"),
                 absl::StrCat("≤ ", FormatRatio(kAuditedConfigureGoal), " (echo + fdatasync) p50"),
                 Ratio(configure.p50, floor) <= kAuditedConfigureGoal);
  table_.AddInfo(
      "  against the paced fdatasync",
      absl::StrCat(FormatRatio(Ratio(configure.p50, echo_p50_ + audit.paced_fdatasync.p50)),
                   " (echo + paced fdatasync) p50"),
      absl::StrCat("plain Configure p50 ", FormatLatency(configure_p50_), "; trail commit mean ",
                   FormatLatency(audit.commit_mean),
                   " (SQLite transaction + fsync; no query ran)"));
  table_.AddInfo("Configure with the audit trail p99", VersusEcho(configure.p99));
  const std::string what =
      absl::StrCat("Configure with the audit trail, ", concurrent.clients, " clients");
  table_.AddGoal(
      absl::StrCat(what, " p50"),
      absl::StrCat(FormatLatency(concurrent.configure.p50), " = ",
                   FormatRatio(Ratio(concurrent.configure.p50, floor)), " (echo + fdatasync) p50"),
      absl::StrCat("≤ ", FormatRatio(kAuditedConfigureGoal), " (echo + fdatasync) p50"),
      Ratio(concurrent.configure.p50, floor) <= kAuditedConfigureGoal);
  table_.AddInfo(
      absl::StrCat(what, " p99"), FormatLatency(concurrent.configure.p99),
      absl::StrFormat("%.0f calls/s, %.0f fsyncs/s, %.1f calls per fsync", concurrent.calls_per_s,
                      concurrent.commits_per_s, concurrent.records_per_commit));
}

void Report::AddBigFleet(const BigFleetResult& fleet) {
  const std::string what = absl::StrCat(FormatInteger(fleet.devices), " devices in one process");
  table_.AddGoal(absl::StrCat(what, ": start-up"), FormatLatency(fleet.startup),
                 absl::StrCat("≤ ", FormatLatency(kBigFleetStartupGoal)),
                 fleet.startup <= kBigFleetStartupGoal);
  table_.AddGoal(absl::StrCat(what, ": resident memory added"),
                 absl::StrCat(FormatInteger(fleet.rss_added_bytes >> 20), " MiB"), "≤ 500 MiB",
                 fleet.rss_added_bytes <= kBigFleetRssGoalBytes);
  const double cores_goal = kBigFleetCoresGoalPer10k * fleet.devices / 10000.0;
  const double ticks_per_s = fleet.devices * fleet.sample_rate_hz;
  const double ns_per_tick = ticks_per_s > 0 ? fleet.cores_used * 1e9 / ticks_per_s : 0;
  table_.AddGoal(absl::StrCat(what, ": CPU while ticking (idle devices)"),
                 absl::StrFormat("%.2f cores at %.0f Hz per device = %.0f ns per device tick",
                                 fleet.cores_used, fleet.sample_rate_hz, ns_per_tick),
                 absl::StrFormat("≤ %.2f cores", cores_goal), fleet.cores_used <= cores_goal);
}

std::string Report::VersusEchoP99(const Percentiles& p, const EstopResult& estop) {
  std::string out = absl::StrCat(FormatLatency(p.p50), " / ", FormatLatency(p.p99));
  if (estop.echo_under_load.count > 0) {
    absl::StrAppend(&out, " = ", FormatRatio(Ratio(p.p99, estop.echo_under_load.p99)), " echo p99");
  }
  return out;
}

void Report::CheckEstop(const EstopResult& estop, const std::string& what) {
  const bool safe = estop.outputs_on == 0 && estop.not_estopped == 0 && estop.missing == 0;
  table_.AddGoal(
      absl::StrCat(what, ": every output off on return"),
      absl::StrFormat("%d devices checked: %d output_on, %d not ESTOPPED, %d missing",
                      estop.devices_checked, estop.outputs_on, estop.not_estopped, estop.missing),
      "0 / 0 / 0", safe);
  if (!safe) errors_.push_back(absl::StrCat(what, ": a response showed an output not off"));
  if (estop.bad_counts > 0) {
    errors_.push_back(absl::StrCat(what, ": ", estop.bad_counts,
                                   " responses with a wrong stopped_count or devices in COUNT"));
  }
  if (estop.unrecorded > 0) {
    errors_.push_back(absl::StrCat(what, ": ", estop.unrecorded,
                                   " calls not recorded once in EmergencyStopTimes"));
  }
}

void Report::AddEstop(const EstopResult& estop, size_t devices, int streams) {
  const std::string what = absl::StrCat("EmergencyStop(all) ", devices, " dev, ", streams,
                                        streams == 1 ? " stream" : " streams");
  const std::string later = absl::StrCat(estop.in_server.count, " calls; ",
                                         estop.restarted_per_call, " dev RUNNING before each");
  table_.AddInfo(absl::StrCat(what, ": in server p50"), FormatLatency(estop.in_server.p50),
                 absl::StrCat("request to last output off; ", later));
  table_.AddGoal(absl::StrCat(what, ": in server p99"), FormatLatency(estop.in_server.p99),
                 absl::StrCat("≤ ", FormatLatency(kEstopInServerP99Goal)),
                 estop.in_server.p99 <= kEstopInServerP99Goal);
  if (estop.echo_under_load.count > 0) {
    table_.AddInfo(
        "bare gRPC echo p50 / p99, same load",
        absl::StrCat(FormatLatency(estop.echo_under_load.p50), " / ",
                     FormatLatency(estop.echo_under_load.p99)),
        absl::StrCat("baseline: ", estop.echo_under_load.count, " calls between the stops"));
  }
  for (size_t v = 0; v < kStopViews.size(); ++v) {
    const Percentiles& p = estop.response[v];
    if (p.count == 0) continue;
    const std::string row =
        absl::StrCat(what, ": response ", StopViewName(kStopViews[v]), " p50 / p99");
    const std::string note = absl::StrCat(p.count, " calls; ", estop.response_bytes[v], " bytes");
    if (kStopViews[v] == v1::STOP_RESPONSE_VIEW_COUNT && estop.echo_under_load.count > 0) {
      table_.AddGoal(row, VersusEchoP99(p, estop),
                     absl::StrCat("p99 ≤ ", FormatRatio(kEstopCountVsEchoP99Goal), " echo p99"),
                     Ratio(p.p99, estop.echo_under_load.p99) <= kEstopCountVsEchoP99Goal);
    } else {
      table_.AddInfo(row, VersusEchoP99(p, estop), note);
    }
  }
  table_.AddInfo(absl::StrCat(what, ": 1st call (FULL)"),
                 absl::StrCat(FormatLatency(estop.first), ", in server ",
                              FormatLatency(estop.first_in_server)),
                 absl::StrCat("all ", devices, " dev RUNNING"));
  table_.AddInfo(absl::StrFormat("ListDevices(%d) p50 / p99, same load", devices),
                 absl::StrCat(FormatLatency(estop.list_devices.p50), " / ",
                              FormatLatency(estop.list_devices.p99)),
                 "same Devices as a FULL response");
  CheckEstop(estop, "EmergencyStop");
}

void Report::AddAuditedEstop(const EstopResult& estop, size_t devices, int streams) {
  const std::string what =
      absl::StrCat("EmergencyStop(all) ", devices, " dev, ", streams, " streams, audit trail");
  table_.AddInfo(
      absl::StrCat(what, ": in server p50 / p99"),
      absl::StrCat(FormatLatency(estop.in_server.p50), " / ", FormatLatency(estop.in_server.p99)),
      absl::StrCat("request to last output off; ", estop.in_server.count, " calls"));
  static_assert(kStopViews.back() == v1::STOP_RESPONSE_VIEW_COUNT);
  const size_t count_view = kStopViews.size() - 1;
  if (estop.response[count_view].count > 0) {
    table_.AddInfo(absl::StrCat(what, ": response COUNT p50 / p99"),
                   VersusEchoP99(estop.response[count_view], estop),
                   "acknowledged after its record's fsync");
  }
  CheckEstop(estop, "EmergencyStop with the audit trail");
}

void Report::AddThroughput(const ThroughputResults& t) {
  const std::string bare = absl::StrFormat("samples/s (%.0f/msg)", t.bare_one.samples_per_batch);
  table_.AddInfo("bare gRPC stream, 1 client",
                 absl::StrCat(FormatCount(t.bare_one.total), " ", bare),
                 "baseline (same SampleBatch bytes)");
  table_.AddGoal(
      "StreamTelemetry, 1 subscriber (synthetic)",
      absl::StrFormat("%s samples/s (%.0f/msg, %d dropped)", FormatCount(t.derma_one.total),
                      t.derma_one.samples_per_batch, t.derma_one.dropped),
      absl::StrCat("≥ ", FormatCount(kOneSubscriberRateGoal), " samples/s"),
      t.derma_one.total >= kOneSubscriberRateGoal);
  const double versus = t.bare_one.total > 0 ? t.derma_one.total / t.bare_one.total : 0;
  table_.AddGoal("StreamTelemetry, 1 subscriber / bare stream", FormatRatio(versus),
                 absl::StrCat("≥ ", FormatRatio(kOneSubscriberVsBareGoal)),
                 versus >= kOneSubscriberVsBareGoal);
  table_.AddInfo(absl::StrFormat("bare gRPC stream, %d clients", t.bare_many.per_stream.size()),
                 absl::StrCat(Min(t.bare_many.per_stream), " min/client, ",
                              FormatCount(t.bare_many.total), " total samples/s"));
  const double many = t.bare_many.total > 0 ? t.derma_many.total / t.bare_many.total : 0;
  table_.AddGoal(absl::StrFormat("StreamTelemetry, %d subscribers (synthetic)",
                                 t.derma_many.per_stream.size()),
                 absl::StrFormat("%s min/sub, %s total samples/s = %s bare (%d dropped)",
                                 Min(t.derma_many.per_stream), FormatCount(t.derma_many.total),
                                 FormatRatio(many), t.derma_many.dropped),
                 absl::StrCat("≥ ", FormatRatio(kManySubscribersVsBareGoal), " bare, 0 dropped"),
                 many >= kManySubscribersVsBareGoal && t.derma_many.dropped == 0);
}

void Report::AddDeviceTelemetry(const DeviceTelemetryResult& telemetry, size_t devices,
                                double sample_rate_hz) {
  const std::string what =
      absl::StrFormat("devices %d × %.0f Hz → %d subscribers, %.1f s", devices, sample_rate_hz,
                      telemetry.received.size(), absl::ToDoubleSeconds(telemetry.window));
  const auto [lo, hi] = std::minmax_element(telemetry.received.begin(), telemetry.received.end());
  table_.AddInfo(absl::StrCat(what, ": received/sub"),
                 absl::StrFormat("%s–%s of %s made (nominal %s)", FormatInteger(*lo),
                                 FormatInteger(*hi), FormatInteger(telemetry.made),
                                 FormatInteger(static_cast<uint64_t>(telemetry.nominal))));
  table_.AddGoal(absl::StrCat(what, ": dropped_samples"), absl::StrCat(telemetry.dropped), "0",
                 telemetry.dropped == 0);
  table_.AddGoal(absl::StrCat(what, ": gaps not explained by drops"),
                 absl::StrCat(telemetry.unexplained_gaps), "0", telemetry.unexplained_gaps == 0);
  table_.AddGoal(
      absl::StrCat(what, ": CPU"),
      absl::StrFormat("%.2f cores (whole process, its 4 readers included)", telemetry.cores_used),
      "≤ 1 core", telemetry.cores_used <= 1.0);
}

void Report::AddScrapes(const std::vector<ScrapeResult>& scrapes) {
  for (const ScrapeResult& scrape : scrapes) {
    const std::string metric =
        absl::StrCat("metrics scrape (collect + text encode), ", scrape.devices, " devices p50");
    const std::string value = absl::StrCat(
        FormatLatency(scrape.time.p50), " (p99 ", FormatLatency(scrape.time.p99), "; collect p50 ",
        FormatLatency(scrape.collect.p50), "; prometheus-cpp's encoder alone p50 ",
        FormatLatency(scrape.exposer_encode.p50), "), ", FormatInteger(scrape.body_bytes),
        " bytes, ", FormatInteger(scrape.series), " series");
    const absl::Duration goal = scrape.devices == 1000    ? absl::Milliseconds(10)
                                : scrape.devices == 10000 ? absl::Milliseconds(100)
                                                          : absl::ZeroDuration();
    if (goal > absl::ZeroDuration()) {
      table_.AddGoal(metric, value, absl::StrCat("≤ ", FormatLatency(goal)),
                     scrape.time.p50 <= goal);
    } else {
      table_.AddInfo(metric, value);
    }
  }
}

}  // namespace derma::bench
