#include "tests/soak/report.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace derma::soak {
namespace {

std::string Rate(uint64_t n, absl::Duration over) {
  const double s = absl::ToDoubleSeconds(over);
  return absl::StrFormat("%.1f", s > 0 ? n / s : 0.0);
}

std::string Ms(absl::Duration d) { return absl::StrFormat("%.2f", absl::ToDoubleMilliseconds(d)); }

const char* VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kOk:
      return "ok";
    case Verdict::kExpected:
      return "expected";
    case Verdict::kDeadline:
      return "deadline budget";
    case Verdict::kUnexpected:
      return "UNEXPECTED";
  }
  return "?";
}

void PrintCalls(const SoakResult& r, std::ostream& out) {
  TextTable table(
      {"rpc", "calls", "per s", "ok", "expected err", "unexpected", "p50 ms", "p99 ms", "max ms"});
  for (int i = 0; i < kRpcCount; ++i) {
    const Rpc rpc = static_cast<Rpc>(i);
    const RpcCounts& c = r.calls.counts(rpc);
    if (c.calls == 0) continue;
    const LatencyHistogram& l = r.calls.latency(rpc);
    table.Add({RpcName(rpc), absl::StrCat(c.calls), Rate(c.calls, r.elapsed), absl::StrCat(c.ok),
               absl::StrCat(c.expected), absl::StrCat(c.unexpected + c.deadline),
               Ms(l.Quantile(0.5)), Ms(l.Quantile(0.99)), Ms(l.max())});
  }
  const RpcCounts total = r.calls.Total();
  table.Add({"total", absl::StrCat(total.calls), Rate(total.calls, r.elapsed),
             absl::StrCat(total.ok), absl::StrCat(total.expected),
             absl::StrCat(total.unexpected + total.deadline), "", "", ""});
  out << "\nCalls (streams: latency is the time to the first message; GET /metrics is HTTP)\n";
  table.Print(out);
}

void PrintErrors(const SoakResult& r, std::ostream& out) {
  TextTable table({"rpc", "code", "reason", "count", "verdict"});
  for (const auto& [key, count] : r.calls.errors()) {
    table.Add({RpcName(key.rpc), CodeName(key.code), key.reason.empty() ? "-" : key.reason,
               absl::StrCat(count), VerdictName(key.verdict)});
  }
  out << "\nErrors by RPC, code and ErrorInfo reason\n";
  table.Print(out);
}

void PrintTelemetry(const SoakResult& r, std::ostream& out) {
  TextTable table({"subscribers", "streams", "messages", "samples", "samples/s", "dropped",
                   "events", "lost events", "lost samples", "order errors", "same-time", "stalls"});
  for (const auto& [name, c] : {std::pair{"fast", r.fast}, std::pair{"slow", r.slow}}) {
    table.Add({name, absl::StrCat(c.streams), absl::StrCat(c.messages), absl::StrCat(c.samples),
               Rate(c.samples, r.elapsed), absl::StrCat(c.dropped), absl::StrCat(c.events),
               absl::StrCat(c.event_gaps), absl::StrCat(c.unexplained_missing),
               absl::StrCat(c.order_errors), absl::StrCat(c.same_time), absl::StrCat(c.stalls)});
  }
  out << "\nTelemetry (lost = a sequence gap the stream did not report as dropped; same-time = "
         "consecutive samples with one device time)\n";
  table.Print(out);
}

void PrintSessions(const SoakResult& r, std::ostream& out) {
  const SessionCounts& s = r.sessions;
  TextTable table({"what", "count"});
  table.Add({"leased sessions", absl::StrCat(s.sessions)});
  table.Add({"lease held by another client (acquire lost)", absl::StrCat(s.lease_held)});
  table.Add({"sessions on a device of another client", absl::StrCat(r.reads.foreign_sessions)});
  table.Add({"Stops of a device of another client", absl::StrCat(r.reads.contender_stops)});
  table.Add({"runs started", absl::StrCat(s.runs_started)});
  table.Add({"runs completed (ledger checked)", absl::StrCat(s.runs_completed)});
  table.Add({"runs ended by a contender's Stop", absl::StrCat(s.runs_stopped)});
  table.Add({"runs cancelled", absl::StrCat(s.runs_cancelled)});
  table.Add({"dead-man stops (2 s lease expired while running)", absl::StrCat(s.dead_man_stops)});
  table.Add({"request_id retries checked", absl::StrCat(s.retries_checked)});
  table.Add({"emergency stops", absl::StrCat(s.estops)});
  table.Add({"WatchRun messages", absl::StrCat(s.watch_messages)});
  table.Add(
      {"metrics scrapes",
       absl::StrCat(r.reads.scrapes, " (",
                    FormatMiB(r.reads.scrapes == 0 ? 0 : r.reads.scrape_bytes / r.reads.scrapes),
                    " and ", r.reads.scrapes == 0 ? 0 : r.reads.scrape_series / r.reads.scrapes,
                    " series each)")});
  out << "\nSessions, runs and reads\n";
  table.Print(out);
}

void PrintMemory(const SoakResult& r, std::ostream& out) {
  TextTable table({"t (s)", "dermad VmRSS"});
  // About ten points of the timeline, always with the last.
  const size_t step = std::max<size_t>(1, r.rss.size() / 10);
  for (size_t i = 0; i < r.rss.size(); ++i) {
    if (i % step != 0 && i + 1 != r.rss.size()) continue;
    table.Add({absl::StrFormat("%.0f", absl::ToDoubleSeconds(r.rss[i].first)),
               FormatMiB(r.rss[i].second)});
  }
  out << "\ndermad memory: " << FormatMiB(r.rss_start) << " at most during the warm-up, "
      << FormatMiB(r.rss_end) << " at the end of the load, " << FormatMiB(r.rss_idle)
      << " once the clients stopped\n";
  table.Print(out);
  const double load_s = absl::ToDoubleSeconds(r.elapsed);
  out << absl::StreamFormat(
      "CPU during the load: dermad %.1f s (%.0f%% of one core), the soak's clients %.1f s "
      "(%.0f%%), on %d cores\n",
      absl::ToDoubleSeconds(r.dermad_cpu), 100 * absl::ToDoubleSeconds(r.dermad_cpu) / load_s,
      absl::ToDoubleSeconds(r.soak_cpu), 100 * absl::ToDoubleSeconds(r.soak_cpu) / load_s,
      std::thread::hardware_concurrency());
}

}  // namespace

std::string FormatMiB(uint64_t bytes) {
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

void TextTable::Print(std::ostream& out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (size_t r = 0; r < rows_.size(); ++r) {
    std::string line;
    for (size_t i = 0; i < rows_[r].size(); ++i) {
      if (i > 0) line += " | ";
      line += rows_[r][i] + std::string(widths[i] - rows_[r][i].size(), ' ');
    }
    out << line << "\n";
    if (r == 0) {
      std::string rule;
      for (size_t i = 0; i < widths.size(); ++i) rule += std::string(widths[i] + (i ? 3 : 0), '-');
      out << rule << "\n";
    }
  }
}

void PrintReport(const SoakResult& r, std::ostream& out) {
  out << "\nderma_soak: " << r.setup << "\n";
  PrintCalls(r, out);
  PrintErrors(r, out);
  PrintTelemetry(r, out);
  PrintSessions(r, out);
  PrintMemory(r, out);
  if (!r.failures.empty()) {
    out << "\nFailures (" << r.failure_count << "; the first " << r.failures.size() << "):\n";
    for (const std::string& failure : r.failures) out << "  " << failure << "\n";
  }
  TextTable checks({"check", "measured", "bound", "result"});
  bool pass = true;
  for (const Check& check : r.checks) {
    checks.Add({check.what, check.measured, check.bound, check.pass ? "PASS" : "FAIL"});
    pass = pass && check.pass;
  }
  out << "\nChecks\n";
  checks.Print(out);
  out << "\nderma_soak: " << (pass ? "PASS" : "FAIL") << "\n";
}

}  // namespace derma::soak
