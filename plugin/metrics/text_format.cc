#include "plugin/metrics/text_format.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace derma::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// A number as printf's "%.16g" writes it (prometheus-cpp's precision: 16 significant digits,
// which do not round-trip every double), or +Inf, -Inf, Nan.
void AppendNumber(double value, std::string& out) {
  if (std::isnan(value)) {
    out += "Nan";
  } else if (std::isinf(value)) {
    out += value < 0 ? "-Inf" : "+Inf";
  } else if (value == std::trunc(value) && std::fabs(value) < 1e15 && !std::signbit(value)) {
    absl::StrAppend(&out, static_cast<int64_t>(value));  // the common case: counts, 0, 1
  } else {
    char buffer[32];
    const std::to_chars_result end =
        std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::general, 16);
    out.append(buffer, end.ptr);
  }
}

// Escapes what a label value (and, without the quote, a help text) may not hold raw.
void AppendEscaped(absl::string_view text, bool quote, std::string& out) {
  if (text.find_first_of(quote ? absl::string_view("\\\n\"") : absl::string_view("\\\n")) ==
      absl::string_view::npos) {
    out.append(text.data(), text.size());  // the common case: nothing to escape
    return;
  }
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// name+suffix{labels[,extra="value"]} and the space before the value.
void AppendHead(const MetricFamily& family, const ClientMetric& metric, absl::string_view suffix,
                absl::string_view extra_name, absl::string_view extra_value, std::string& out) {
  absl::StrAppend(&out, family.name, suffix);
  if (!metric.label.empty() || !extra_name.empty()) {
    out += '{';
    const char* separator = "";
    for (const ClientMetric::Label& label : metric.label) {
      absl::StrAppend(&out, separator, label.name, "=\"");
      AppendEscaped(label.value, /*quote=*/true, out);
      out += '"';
      separator = ",";
    }
    if (!extra_name.empty()) absl::StrAppend(&out, separator, extra_name, "=\"", extra_value, "\"");
    out += '}';
  }
  out += ' ';
}

void AppendTail(const ClientMetric& metric, std::string& out) {
  if (metric.timestamp_ms != 0) absl::StrAppend(&out, " ", metric.timestamp_ms);
  out += '\n';
}

void AppendLine(const MetricFamily& family, const ClientMetric& metric, double value,
                std::string& out) {
  AppendHead(family, metric, "", "", "", out);
  AppendNumber(value, out);
  AppendTail(metric, out);
}

void AppendCountAndSum(const MetricFamily& family, const ClientMetric& metric, uint64_t count,
                       double sum, std::string& out) {
  AppendHead(family, metric, "_count", "", "", out);
  absl::StrAppend(&out, count);
  AppendTail(metric, out);
  AppendHead(family, metric, "_sum", "", "", out);
  AppendNumber(sum, out);
  AppendTail(metric, out);
}

void AppendSummary(const MetricFamily& family, const ClientMetric& metric, std::string& out) {
  const ClientMetric::Summary& summary = metric.summary;
  AppendCountAndSum(family, metric, summary.sample_count, summary.sample_sum, out);
  std::string quantile;
  for (const ClientMetric::Quantile& q : summary.quantile) {
    quantile.clear();
    AppendNumber(q.quantile, quantile);
    AppendHead(family, metric, "", "quantile", quantile, out);
    AppendNumber(q.value, out);
    AppendTail(metric, out);
  }
}

void AppendHistogram(const MetricFamily& family, const ClientMetric& metric, std::string& out) {
  const ClientMetric::Histogram& histogram = metric.histogram;
  AppendCountAndSum(family, metric, histogram.sample_count, histogram.sample_sum, out);
  double last = -std::numeric_limits<double>::infinity();
  std::string bound;
  for (const ClientMetric::Bucket& bucket : histogram.bucket) {
    bound.clear();
    AppendNumber(bucket.upper_bound, bound);
    AppendHead(family, metric, "_bucket", "le", bound, out);
    absl::StrAppend(&out, bucket.cumulative_count);
    AppendTail(metric, out);
    last = bucket.upper_bound;
  }
  if (last != std::numeric_limits<double>::infinity()) {
    AppendHead(family, metric, "_bucket", "le", "+Inf", out);
    absl::StrAppend(&out, histogram.sample_count);
    AppendTail(metric, out);
  }
}

absl::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::Counter:
      return "counter";
    case MetricType::Gauge:
      return "gauge";
    case MetricType::Summary:
      return "summary";
    case MetricType::Histogram:
      return "histogram";
    case MetricType::Untyped:
      break;
  }
  return "untyped";
}

}  // namespace

void AppendTextFormat(const std::vector<MetricFamily>& families, std::string& out) {
  for (const MetricFamily& family : families) {
    if (!family.help.empty()) {
      absl::StrAppend(&out, "# HELP ", family.name, " ");
      AppendEscaped(family.help, /*quote=*/false, out);
      out += '\n';
    }
    absl::StrAppend(&out, "# TYPE ", family.name, " ", TypeName(family.type), "\n");
    for (const ClientMetric& metric : family.metric) {
      switch (family.type) {
        case MetricType::Counter:
          AppendLine(family, metric, metric.counter.value, out);
          break;
        case MetricType::Gauge:
          AppendLine(family, metric, metric.gauge.value, out);
          break;
        case MetricType::Untyped:
          AppendLine(family, metric, metric.untyped.value, out);
          break;
        case MetricType::Summary:
          AppendSummary(family, metric, out);
          break;
        case MetricType::Histogram:
          AppendHistogram(family, metric, out);
          break;
      }
    }
  }
}

}  // namespace derma::metrics
