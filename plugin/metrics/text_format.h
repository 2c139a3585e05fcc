// Prometheus' text exposition format (version 0.0.4) written straight into a string: what
// dermad's /metrics serves. The output is byte for byte what prometheus-cpp 1.0's
// TextSerializer writes (same lines, label order and number formatting: printf's "%.16g",
// "+Inf", "-Inf", "Nan"), except that a help text's backslashes and newlines are escaped as the
// format requires (TextSerializer writes help texts raw). Several times faster: no stream, and
// numbers formatted with std::to_chars. Layer: plugin/metrics. Thread-safe (no state).
#ifndef DERMA_PLUGIN_METRICS_TEXT_FORMAT_H_
#define DERMA_PLUGIN_METRICS_TEXT_FORMAT_H_

#include <string>
#include <vector>

#include "prometheus/metric_family.h"

namespace derma::metrics {

// The Content-Type of the text exposition.
inline constexpr char kTextFormatContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Appends every family in order: "# HELP" (when it has help) and "# TYPE" lines, then its
// series: counters, gauges and untyped as name{labels} value; summaries as _count, _sum, then
// one line per quantile with "quantile"; histograms as _count, _sum, then one _bucket line per
// bound with "le", and a "+Inf" bucket when the last bound is not +Inf. Each line ends with
// " timestamp_ms" when the metric has one. Label values escape backslash, newline and double
// quote; help texts backslash and newline.
void AppendTextFormat(const std::vector<prometheus::MetricFamily>& families, std::string& out);

}  // namespace derma::metrics

#endif  // DERMA_PLUGIN_METRICS_TEXT_FORMAT_H_
