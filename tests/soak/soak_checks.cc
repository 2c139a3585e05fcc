// SoakRunner's verdict: the final scrape compared with what the clients counted, and every
// check of the report. See soak_runner.h.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tests/soak/soak_runner.h"

namespace derma::soak {
namespace {

constexpr grpc::StatusCode kLastCode = grpc::StatusCode::UNAUTHENTICATED;

}  // namespace

// derma's interceptor counts each call at PRE_SEND_STATUS, so once the clients have stopped the
// server's derma_grpc_server_handled_total{method,code} must equal the clients' counts of every
// call that completed (StreamTelemetry is left out: the client cancels those streams).
void SoakRunner::CompareFinalScrape() {
  if (!dermad_death_.empty()) return;
  absl::StatusOr<std::string> body = HttpGetMetrics(dermad_->metrics_port(), absl::Seconds(10));
  absl::StatusOr<std::vector<Series>> series =
      body.ok() ? ParseMetricsText(*body) : absl::StatusOr<std::vector<Series>>(body.status());
  if (!series.ok()) {
    metric_mismatches_.push_back(absl::StrCat("final scrape: ", series.status().message()));
    return;
  }
  final_scrape_ok_ = true;
  for (int i = 0; i < kRpcCount; ++i) {
    const Rpc rpc = static_cast<Rpc>(i);
    if (rpc == Rpc::kStreamTelemetry || rpc == Rpc::kScrape) continue;
    uint64_t differ = 0;
    std::vector<std::string> detail;
    for (int c = 0; c <= static_cast<int>(kLastCode); ++c) {
      const auto code = static_cast<grpc::StatusCode>(c);
      const double server = SumOf(*series, "derma_grpc_server_handled_total",
                                  {{"method", RpcMethod(rpc)}, {"code", CodeName(code)}});
      const uint64_t client = result_.calls.CallsWithCode(rpc, code);
      if (server == static_cast<double>(client)) continue;
      differ += static_cast<uint64_t>(std::abs(server - static_cast<double>(client)));
      detail.push_back(absl::StrFormat("%s server %.0f client %d", CodeName(code), server, client));
    }
    // A call past its deadline may be counted under another code by the server.
    if (differ > 2 * result_.calls.counts(rpc).deadline) {
      metric_mismatches_.push_back(absl::StrCat(RpcName(rpc), ": ", absl::StrJoin(detail, ", ")));
    }
  }
  auto compare = [&](const char* metric, double client, bool at_least) {
    const double server = SumOf(*series, metric);
    if (at_least ? server >= client : server == client) return;
    metric_mismatches_.push_back(
        absl::StrFormat("%s = %.0f, clients saw %.0f", metric, server, client));
  };
  // The server counts drops the clients never heard of (cancelled streams' queues), not fewer.
  compare("derma_telemetry_samples_dropped_total",
          static_cast<double>(result_.fast.dropped + result_.slow.dropped), true);
  compare("derma_emergency_stops_total", static_cast<double>(result_.sessions.estops), false);
  compare("derma_lease_expirations_while_running_total",
          static_cast<double>(result_.sessions.dead_man_stops), false);
}

void SoakRunner::AddCheck(std::string what, std::string measured, std::string bound, bool pass) {
  result_.checks.push_back({std::move(what), std::move(measured), std::move(bound), pass});
}

void SoakRunner::AddChecks() {
  AddProcessChecks();
  AddCallChecks();
  AddTelemetryChecks();
  result_.failure_count = failures_.count();
  result_.failures = failures_.first();
}

void SoakRunner::AddProcessChecks() {
  AddCheck("load ran for the whole duration",
           absl::StrFormat("%.0f s", absl::ToDoubleSeconds(result_.elapsed)),
           absl::StrFormat("%.0f s (not interrupted)", absl::ToDoubleSeconds(options_.duration)),
           !interrupted_.load());
  AddCheck("dermad ran until SIGTERM", dermad_death_.empty() ? "yes" : dermad_death_, "yes",
           dermad_death_.empty());
  const uint64_t allowed = static_cast<uint64_t>(result_.rss_start * options_.rss_growth_fraction) +
                           options_.rss_growth_bytes;
  const int64_t growth =
      static_cast<int64_t>(result_.rss_end) - static_cast<int64_t>(result_.rss_start);
  AddCheck(
      "dermad RSS growth: end of the load over the warm-up's peak",
      absl::StrFormat("%s -> %s (%+.1f MiB)", FormatMiB(result_.rss_start),
                      FormatMiB(result_.rss_end), growth / 1048576.0),
      absl::StrFormat("<= %s (%.0f%% + %s)", FormatMiB(allowed), options_.rss_growth_fraction * 100,
                      FormatMiB(options_.rss_growth_bytes)),
      result_.rss_start > 0 && growth <= static_cast<int64_t>(allowed));
  AddCheck("SIGTERM: dermad exits 0", shutdown_outcome_,
           absl::StrCat("exit code 0 within ", absl::FormatDuration(options_.shutdown_timeout)),
           shutdown_ok_);
}

void SoakRunner::AddCallChecks() {
  const RpcCounts total = result_.calls.Total();
  AddCheck("unexpected statuses (any RPC, code, reason not in the table)",
           absl::StrCat(total.unexpected), "0", total.unexpected == 0);
  const uint64_t budget =
      static_cast<uint64_t>(std::floor(total.calls * options_.deadline_per_100k / 1e5));
  AddCheck("DEADLINE_EXCEEDED", absl::StrCat(total.deadline),
           absl::StrFormat("<= %d (%.1f per 100k calls)", budget, options_.deadline_per_100k),
           total.deadline <= budget);
  AddCheck("failures (unexpected statuses and broken expectations)",
           absl::StrCat(failures_.count()), "0", failures_.count() == 0);
  std::vector<std::string> idle;
  for (int i = 0; i < kRpcCount; ++i) {
    if (result_.calls.counts(static_cast<Rpc>(i)).ok == 0) {
      idle.push_back(RpcName(static_cast<Rpc>(i)));
    }
  }
  AddCheck("every RPC of the mix succeeded at least once",
           idle.empty() ? "yes" : absl::StrJoin(idle, ", "), "yes", idle.empty());
  const bool agree = final_scrape_ok_ && metric_mismatches_.empty();
  AddCheck("server metrics agree with the clients' counts",
           agree ? "yes" : absl::StrJoin(metric_mismatches_, "; "), "yes", agree);
  const SessionCounts& runs = result_.sessions;
  AddCheck("GetDevice shows a run's end as soon as WatchRun reports it",
           absl::StrFormat("%d stale (longest %.1f ms)", runs.stale_run_end_views,
                           absl::ToDoubleMilliseconds(runs.max_stale_lag)),
           options_.strict_run_end_view ? "0" : "reported only (--strict_run_end_view)",
           !options_.strict_run_end_view || runs.stale_run_end_views == 0);
}

void SoakRunner::AddTelemetryChecks() {
  const SubscriberCounts& f = result_.fast;
  const SubscriberCounts& s = result_.slow;
  AddCheck("lost telemetry events (sequence gaps)", absl::StrCat(f.event_gaps + s.event_gaps), "0",
           f.event_gaps + s.event_gaps == 0);
  const uint64_t lost = f.unexplained_missing + s.unexplained_missing;
  const uint64_t disorder = f.order_errors + s.order_errors;
  AddCheck("samples lost without a drop count, or out of order",
           absl::StrCat(lost, " / ", disorder), "0 / 0", lost == 0 && disorder == 0);
  AddCheck("slow subscribers had samples dropped (the drop path ran)", absl::StrCat(s.dropped),
           "> 0", s.dropped > 0 || s.streams == 0);
}

}  // namespace derma::soak
