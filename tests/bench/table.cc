#include "tests/bench/table.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace derma::bench {
namespace {

// Display width: counts UTF-8 code points, so "µ", "×" and "≤" take one column.
size_t Width(const std::string& s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; });
}

std::string Pad(const std::string& s, size_t width) {
  return s + std::string(width > Width(s) ? width - Width(s) : 0, ' ');
}

}  // namespace

Percentiles ComputePercentiles(std::vector<absl::Duration> latencies) {
  std::sort(latencies.begin(), latencies.end());
  auto rank = [&](double q) {
    size_t r = static_cast<size_t>(std::ceil(q * latencies.size()));
    return latencies[std::clamp<size_t>(r, 1, latencies.size()) - 1];
  };
  return {rank(0.50), rank(0.99), latencies.size()};
}

std::string FormatLatency(absl::Duration d) {
  const double us = absl::ToDoubleMicroseconds(d);
  if (us < 1000) return absl::StrFormat("%.1f µs", us);
  return absl::StrFormat("%.2f ms", us / 1000);
}

std::string FormatCount(double n) {
  if (n >= 1e6) return absl::StrFormat("%.2f M", n / 1e6);
  if (n >= 1e4) return absl::StrFormat("%.0f k", n / 1e3);
  return absl::StrFormat("%.0f", n);
}

std::string FormatInteger(uint64_t n) {
  const std::string digits = absl::StrCat(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string FormatRatio(double r) { return absl::StrFormat("%.2f×", r); }

void Table::AddGoal(std::string metric, std::string value, std::string goal, bool met) {
  rows_.push_back({std::move(metric), std::move(value), std::move(goal), met ? "PASS" : "FAIL"});
}

void Table::AddInfo(std::string metric, std::string value, std::string note) {
  rows_.push_back({std::move(metric), std::move(value), std::move(note), "-"});
}

void Table::Print(std::ostream& out) const {
  Row header{"metric", "value", "goal", "result"};
  size_t w[3] = {Width(header.metric), Width(header.value), Width(header.goal)};
  for (const Row& row : rows_) {
    w[0] = std::max(w[0], Width(row.metric));
    w[1] = std::max(w[1], Width(row.value));
    w[2] = std::max(w[2], Width(row.goal));
  }
  auto print = [&](const Row& row) {
    out << Pad(row.metric, w[0]) << " | " << Pad(row.value, w[1]) << " | " << Pad(row.goal, w[2])
        << " | " << row.result << "\n";
  };
  print(header);
  out << std::string(w[0], '-') << "-|-" << std::string(w[1], '-') << "-|-"
      << std::string(w[2], '-') << "-|-------\n";
  for (const Row& row : rows_) print(row);
}

}  // namespace derma::bench
