#include "plugin/host/protobuf_log.h"

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"

namespace derma::host {
namespace {

constexpr absl::Duration kInterval = absl::Seconds(1);

absl::Mutex g_mu(absl::kConstInit);
absl::Time g_last_printed ABSL_GUARDED_BY(g_mu) = absl::InfinitePast();
uint64_t g_suppressed ABSL_GUARDED_BY(g_mu) = 0;

const char* LevelName(google::protobuf::LogLevel level) {
  switch (level) {
    case google::protobuf::LOGLEVEL_INFO:
      return "INFO";
    case google::protobuf::LOGLEVEL_WARNING:
      return "WARNING";
    case google::protobuf::LOGLEVEL_ERROR:
      return "ERROR";
    case google::protobuf::LOGLEVEL_FATAL:
      return "FATAL";
  }
  return "?";
}

void RateLimitedLog(google::protobuf::LogLevel level, const char* filename, int line,
                    const std::string& message) {
  absl::MutexLock lock(&g_mu);
  const absl::Time now = absl::Now();
  if (level != google::protobuf::LOGLEVEL_FATAL && now - g_last_printed < kInterval) {
    ++g_suppressed;
    return;
  }
  g_last_printed = now;
  std::string suppressed;
  if (g_suppressed > 0) {
    suppressed = absl::StrFormat(" (%d more protobuf messages suppressed in the last second or so)",
                                 g_suppressed);
    g_suppressed = 0;
  }
  absl::FPrintF(stderr, "dermad: protobuf %s %s:%d: %s%s\n", LevelName(level), filename, line,
                message, suppressed);
}

}  // namespace

void InstallRateLimitedProtobufLog() { google::protobuf::SetLogHandler(&RateLimitedLog); }

}  // namespace derma::host
