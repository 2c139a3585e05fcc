// AppendTextFormat against prometheus-cpp's TextSerializer (the exposition an embedding host's
// Exposer serves): byte for byte, over every metric type and the values that format
// differently (fractions, exponents, negative zero, huge and tiny numbers, infinities, NaN),
// escaped label values and timestamps. Help texts are the one difference: derma escapes a
// backslash and a newline in them, as the format requires; TextSerializer writes them raw.
#include "plugin/metrics/text_format.h"

#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace derma::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::string Derma(const std::vector<MetricFamily>& families) {
  std::string out;
  AppendTextFormat(families, out);
  return out;
}

std::string Reference(const std::vector<MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

ClientMetric Series(std::vector<ClientMetric::Label> labels) {
  ClientMetric metric;
  metric.label = std::move(labels);
  return metric;
}

const std::vector<double>& AwkwardValues() {
  static const std::vector<double> values = {0,
                                             -0.0,
                                             1,
                                             -1,
                                             0.1,
                                             1.0 / 3,
                                             2.5e-7,
                                             1e-6,
                                             123.456,
                                             1e15,
                                             1e16 - 2,
                                             123456789012345678.0,
                                             -4.2e300,
                                             5e-324,
                                             0.005,
                                             std::numeric_limits<double>::infinity(),
                                             -std::numeric_limits<double>::infinity(),
                                             std::numeric_limits<double>::quiet_NaN(),
                                             9007199254740993.0,
                                             16.25};
  return values;
}

TEST(TextFormatTest, CountersGaugesAndUntypedMatchTheReferenceForAwkwardValues) {
  std::vector<MetricFamily> families;
  for (MetricType type : {MetricType::Counter, MetricType::Gauge, MetricType::Untyped}) {
    MetricFamily family{
        "derma_x_" + std::to_string(static_cast<int>(type)), "Help text.", type, {}};
    for (double value : AwkwardValues()) {
      ClientMetric metric = Series({{"device", "pen-1"}, {"kind", "microneedling"}});
      metric.counter.value = value;
      metric.gauge.value = value;
      metric.untyped.value = value;
      family.metric.push_back(metric);
    }
    family.metric.push_back(Series({}));  // no labels at all
    families.push_back(family);
  }
  EXPECT_EQ(Derma(families), Reference(families));
}

TEST(TextFormatTest, LabelValuesAreEscapedAndTimestampsWritten) {
  MetricFamily family{"derma_escaped", "", MetricType::Gauge, {}};
  ClientMetric metric = Series({{"a", "back\\slash"}, {"b", "new\nline"}, {"c", "a \"quote\""}});
  metric.gauge.value = 2;
  metric.timestamp_ms = 1733570000123;
  family.metric.push_back(metric);
  const std::vector<MetricFamily> families = {family};
  EXPECT_EQ(Derma(families), Reference(families));
  EXPECT_EQ(Derma(families),
            "# TYPE derma_escaped gauge\n"
            "derma_escaped{a=\"back\\\\slash\",b=\"new\\nline\",c=\"a \\\"quote\\\"\"} 2 "
            "1733570000123\n");
}

TEST(TextFormatTest, HistogramsAndSummariesMatchTheReference) {
  MetricFamily histogram{"derma_h_seconds", "A histogram.", MetricType::Histogram, {}};
  ClientMetric finite = Series({{"kind", "microcurrent"}});  // no +Inf bucket given
  finite.histogram.sample_count = 7;
  finite.histogram.sample_sum = 12.75;
  finite.histogram.bucket = {{1, 0.005}, {3, 0.1}, {6, 2.5}};
  ClientMetric closed = Series({});  // its own +Inf bucket
  closed.histogram.sample_count = 4;
  closed.histogram.sample_sum = 1e-3;
  closed.histogram.bucket = {{2, 1}, {4, std::numeric_limits<double>::infinity()}};
  histogram.metric = {finite, closed};

  MetricFamily summary{"derma_s_seconds", "A summary.", MetricType::Summary, {}};
  ClientMetric quantiles = Series({{"method", "GetDevice"}});
  quantiles.summary.sample_count = 100;
  quantiles.summary.sample_sum = 0.0123;
  quantiles.summary.quantile = {{0.5, 1e-4}, {0.99, 2.5e-3}};
  summary.metric = {quantiles};

  const std::vector<MetricFamily> families = {histogram, summary};
  EXPECT_EQ(Derma(families), Reference(families));
}

TEST(TextFormatTest, HelpTextsEscapeBackslashAndNewline) {
  MetricFamily family{"derma_help", "one\\two\nthree \"quoted\"", MetricType::Counter, {}};
  family.metric.push_back(Series({}));
  EXPECT_EQ(Derma({family}),
            "# HELP derma_help one\\\\two\\nthree \"quoted\"\n"
            "# TYPE derma_help counter\n"
            "derma_help 0\n");
}

TEST(TextFormatTest, AppendsToWhatIsThere) {
  MetricFamily family{"derma_a", "", MetricType::Gauge, {Series({})}};
  std::string out = "kept\n";
  AppendTextFormat({family}, out);
  EXPECT_EQ(out, "kept\n# TYPE derma_a gauge\nderma_a 0\n");
}

}  // namespace
}  // namespace derma::metrics
