// Prometheus' text exposition format (version 0.0.4) written straight into a string: what
// dermad's /metrics serves. The output is the same exposition as prometheus-cpp's
// TextSerializer (same lines, label order and number formatting: up to 16 significant
// digits, "+Inf", "-Inf", "Nan"), several times faster, since it writes with no stream and
// formats numbers with std::to_chars. Layer: plugin/metrics. Thread-safe (no state).
#ifndef DERMA_PLUGIN_METRICS_TEXT_FORMAT_H_
#define DERMA_PLUGIN_METRICS_TEXT_FORMAT_H_

#include <string>
#include <vector>

#include "prometheus/metric_family.h"

namespace derma::metrics {

// The Content-Type of the text exposition.
inline constexpr char kTextFormatContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Appends every family in order: "# HELP" and "# TYPE" lines, then one line per series
// (counters, gauges and untyped: name{labels} value; summaries: one line per quantile, then
// _sum and _count; histograms: one _bucket line per bound with "le", then _sum and _count),
// each followed by " timestamp_ms" when the metric has one. Label values and help texts are
// escaped as the format requires (backslash, newline, and double quote in label values).
void AppendTextFormat(const std::vector<prometheus::MetricFamily>& families, std::string& out);

}  // namespace derma::metrics

#endif  // DERMA_PLUGIN_METRICS_TEXT_FORMAT_H_
