#include "plugin/host/config_loader.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "plugin/backends/registry.h"
#include "plugin/errors/errors.h"

namespace derma::host {
namespace {

using ::derma::config::v1::DeviceConfig;
using ::derma::config::v1::FleetConfig;

constexpr size_t kMaxIdLength = 63;
constexpr uint32_t kMaxGroupCount = 100000;
constexpr uint32_t kMaxExecutorThreads = 256;
constexpr int kProblemsInMessage = 3;

absl::Status ConfigError(absl::StatusCode code, const std::string& path, absl::string_view message,
                         ErrorMetadata metadata = {}) {
  metadata["file"] = path;
  return MakeError(code, v1::ERROR_REASON_INVALID_FIELD, message, metadata);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (file == nullptr) {
    const int error = errno;
    const absl::StatusCode code = error == ENOENT   ? absl::StatusCode::kNotFound
                                  : error == EACCES ? absl::StatusCode::kPermissionDenied
                                                    : absl::StatusCode::kFailedPrecondition;
    return ConfigError(code, path,
                       absl::StrCat("cannot open fleet config ", path, ": ", std::strerror(error)));
  }
  std::string contents;
  char buffer[1 << 14];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) contents.append(buffer, n);
  if (std::ferror(file.get())) {  // e.g. the path is a directory
    return ConfigError(absl::StatusCode::kFailedPrecondition, path,
                       absl::StrCat("cannot read fleet config ", path, ": ", std::strerror(errno)));
  }
  return contents;
}

// Keeps the first parser error, positioned 1-based as "path:line:column: message".
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!has_error_) {
      has_error_ = true;
      line_ = line + 1;
      column_ = column + 1;
      message_ = message;
    }
  }
  bool has_error() const { return has_error_; }
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& message() const { return message_; }

 private:
  bool has_error_ = false;
  int line_ = 0;
  int column_ = 0;
  std::string message_;
};

// The parser reports an unknown field after reading its name; point at the name itself so the
// column is where an editor should jump. Returns the 1-based column to report.
int UnknownFieldColumn(const std::string& text, int line, int column, const std::string& message) {
  constexpr std::string_view kMarker = "has no field named \"";
  const size_t start = message.find(kMarker);
  if (start == std::string::npos) return column;
  const size_t name_start = start + kMarker.size();
  const std::string name = message.substr(name_start, message.find('"', name_start) - name_start);
  size_t line_start = 0;
  for (int i = 1; i < line && line_start != std::string::npos; ++i) {
    line_start = text.find('\n', line_start);
    if (line_start != std::string::npos) ++line_start;
  }
  if (line_start == std::string::npos) return column;
  const std::string_view line_text =
      std::string_view(text).substr(line_start, text.find('\n', line_start) - line_start);
  const size_t at = line_text.rfind(name, column > 0 ? column - 1 : 0);
  return at == std::string_view::npos ? column : static_cast<int>(at) + 1;
}

absl::StatusOr<FleetConfig> ParseText(const std::string& path, const std::string& text) {
  FleetConfig config;
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (parser.ParseFromString(text, &config)) return config;
  if (!errors.has_error()) {
    return ConfigError(absl::StatusCode::kInvalidArgument, path,
                       absl::StrCat(path, ": not a valid FleetConfig text file"));
  }
  const int column = UnknownFieldColumn(text, errors.line(), errors.column(), errors.message());
  return ConfigError(absl::StatusCode::kInvalidArgument, path,
                     absl::StrFormat("%s:%d:%d: %s", path, errors.line(), column, errors.message()),
                     {{"line", absl::StrCat(errors.line())}, {"column", absl::StrCat(column)}});
}

absl::StatusOr<FleetConfig> ParseJson(const std::string& path, const std::string& json) {
  FleetConfig config;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &config);
  if (status.ok()) return config;
  return ConfigError(
      absl::StatusCode::kInvalidArgument, path,
      absl::StrCat(path, ": invalid JSON FleetConfig: ", std::string(status.message())));
}

bool IsIdChar(char c) { return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-'; }

// [a-z0-9][a-z0-9-]{0,62}
bool IsValidId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength || id.front() == '-') return false;
  for (char c : id) {
    if (!IsIdChar(c)) return false;
  }
  return true;
}

std::string GroupId(const std::string& prefix, uint32_t i) { return absl::StrCat(prefix, i); }

bool IsValidRate(double value, double min, double max) {
  return value == 0 || (value >= min && value <= max);  // false for NaN
}

class Violations {
 public:
  void Add(std::string field, std::string description) {
    list_.push_back({std::move(field), std::move(description)});
  }
  // The violations `status` carries (a backend's validation).
  void AddAll(const absl::Status& status) {
    for (FieldViolation& v : ViolationsOf(status)) list_.push_back(std::move(v));
    if (!status.ok() && ViolationsOf(status).empty()) list_.push_back({"", std::string(status.message())});
  }
  absl::Status ToStatus() const;

 private:
  std::vector<FieldViolation> list_;
};

absl::Status Violations::ToStatus() const {
  if (list_.empty()) return absl::OkStatus();
  std::vector<std::string> first;
  for (size_t i = 0; i < list_.size() && i < kProblemsInMessage; ++i) {
    first.push_back(absl::StrCat(list_[i].field, ": ", list_[i].description));
  }
  std::string message =
      absl::StrCat("invalid fleet config (", list_.size(),
                   list_.size() == 1 ? " problem): " : " problems): ", absl::StrJoin(first, "; "));
  if (list_.size() > kProblemsInMessage) {
    absl::StrAppend(&message, "; and ", list_.size() - kProblemsInMessage, " more");
  }
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD, message, {},
                   list_);
}

void CheckGlobals(const FleetConfig& config, Violations& out) {
  if (!config::v1::ClockMode_IsValid(config.clock().mode())) {
    out.Add("clock.mode", absl::StrCat("unknown clock mode ", config.clock().mode()));
  }
  if (!IsValidRate(config.clock().speed_factor(), 0.01, 1000)) {
    out.Add("clock.speed_factor",
            absl::StrCat("must be 0 (= 1) or 0.01–1000, got ", config.clock().speed_factor()));
  }
  if (!IsValidRate(config.sample_rate_hz(), 1, 1000)) {
    out.Add("sample_rate_hz",
            absl::StrCat("must be 0 (= 100) or 1–1000 Hz, got ", config.sample_rate_hz()));
  }
  if (config.executor_threads() > kMaxExecutorThreads) {
    out.Add("executor_threads", absl::StrCat("must be at most ", kMaxExecutorThreads, ", got ",
                                             config.executor_threads()));
  }
  if (config.devices().empty() && config.groups().empty()) {
    out.Add("devices", "the fleet has no devices: declare at least one in devices or groups");
  }
}

// Checks everything about one device but its id. `where` is its field path.
void CheckDevice(const DeviceConfig& device, const std::string& where, Violations& out) {
  if (device.kind() == v1::DEVICE_KIND_UNSPECIFIED || !v1::DeviceKind_IsValid(device.kind())) {
    out.Add(absl::StrCat(where, ".kind"),
            "must be DEVICE_KIND_MICRONEEDLING or DEVICE_KIND_MICROCURRENT");
  }
  if (!config::v1::Backend_IsValid(device.backend())) {
    out.Add(absl::StrCat(where, ".backend"), absl::StrCat("unknown backend ", device.backend()));
  }
  if (device.has_pen() && device.kind() != v1::DEVICE_KIND_MICRONEEDLING) {
    out.Add(absl::StrCat(where, ".pen"), "pen setup on a device that is not a microneedling pen");
  }
  if (device.has_stimulator() && device.kind() != v1::DEVICE_KIND_MICROCURRENT) {
    out.Add(absl::StrCat(where, ".stimulator"),
            "stimulator setup on a device that is not a microcurrent stimulator");
  }
}

// Checks count and prefix; true when the group's ids can be generated.
bool CheckGroup(const config::v1::DeviceGroup& group, const std::string& where, Violations& out) {
  bool ok = true;
  if (group.count() < 1 || group.count() > kMaxGroupCount) {
    out.Add(absl::StrCat(where, ".count"),
            absl::StrCat("must be 1–", kMaxGroupCount, ", got ", group.count()));
    ok = false;
  }
  const uint32_t last = ok ? group.count() : 1;
  if (!IsValidId(GroupId(group.id_prefix(), 1)) || !IsValidId(GroupId(group.id_prefix(), last))) {
    out.Add(absl::StrCat(where, ".id_prefix"),
            absl::StrCat("\"", group.id_prefix(),
                         "\" does not make valid ids ([a-z0-9][a-z0-9-]{0,62} with the number)"));
    ok = false;
  }
  CheckDevice(group.device(), absl::StrCat(where, ".device"), out);
  return ok;
}

// Every id is unique across devices and generated group ids; one violation per bad device and
// at most one per group (a colliding group would otherwise report thousands).
void CheckUniqueIds(const FleetConfig& config, const std::vector<bool>& group_ok, Violations& out) {
  absl::flat_hash_map<std::string, std::string> owner;  // id → where it was first declared
  for (int i = 0; i < config.devices_size(); ++i) {
    const std::string where = absl::StrCat("devices[", i, "]");
    const std::string& id = config.devices(i).id();
    if (!IsValidId(id)) continue;  // reported by ValidateFleetConfig
    if (auto [it, inserted] = owner.try_emplace(id, where); !inserted) {
      out.Add(where + ".id", absl::StrCat("duplicate id \"", id, "\" (also ", it->second, ")"));
    }
  }
  for (int g = 0; g < config.groups_size(); ++g) {
    if (!group_ok[g]) continue;
    const auto& group = config.groups(g);
    const std::string where = absl::StrCat("groups[", g, "]");
    std::string first_clash;
    uint32_t clashes = 0;
    for (uint32_t i = 1; i <= group.count(); ++i) {
      std::string id = GroupId(group.id_prefix(), i);
      auto [it, inserted] = owner.try_emplace(id, where);
      if (!inserted && clashes++ == 0) {
        first_clash = absl::StrCat("\"", id, "\" (also ", it->second, ")");
      }
    }
    if (clashes > 0) {
      out.Add(where + ".id_prefix",
              absl::StrCat("generates ", clashes, " duplicate id(s), first ", first_clash));
    }
  }
}

}  // namespace

absl::StatusOr<FleetConfig> LoadFleetConfig(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  if (!contents.ok()) return contents.status();
  const size_t first = contents->find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (*contents)[first] == '{') return ParseJson(path, *contents);
  return ParseText(path, *contents);
}

absl::Status ValidateFleetConfig(const FleetConfig& config) {
  Violations violations;
  CheckGlobals(config, violations);
  for (int i = 0; i < config.devices_size(); ++i) {
    const std::string where = absl::StrCat("devices[", i, "]");
    if (!IsValidId(config.devices(i).id())) {
      violations.Add(where + ".id", absl::StrCat("\"", config.devices(i).id(),
                                                 "\" is not [a-z0-9][a-z0-9-]{0,62}"));
    }
    CheckDevice(config.devices(i), where, violations);
  }
  std::vector<bool> group_ok(config.groups_size());
  for (int g = 0; g < config.groups_size(); ++g) {
    group_ok[g] = CheckGroup(config.groups(g), absl::StrCat("groups[", g, "]"), violations);
  }
  CheckUniqueIds(config, group_ok, violations);
  for (const BackendRegistration& backend : RegisteredBackends()) {
    if (backend.validate_fleet != nullptr) violations.AddAll(backend.validate_fleet(config));
  }
  return violations.ToStatus();
}

std::vector<DeviceConfig> ExpandFleet(const FleetConfig& config) {
  std::vector<DeviceConfig> out(config.devices().begin(), config.devices().end());
  for (const auto& group : config.groups()) {
    for (uint32_t i = 1; i <= group.count(); ++i) {
      DeviceConfig& device = out.emplace_back(group.device());
      device.set_id(GroupId(group.id_prefix(), i));
      // A group on a Modbus link takes consecutive unit ids from the template's (config.proto).
      if (device.has_modbus()) device.mutable_modbus()->set_unit_id(device.modbus().unit_id() + i - 1);
    }
  }
  return out;
}

double EffectiveSampleRateHz(const FleetConfig& config) {
  return config.sample_rate_hz() == 0 ? kDefaultSampleRateHz : config.sample_rate_hz();
}

double EffectiveSpeedFactor(const FleetConfig& config) {
  return config.clock().speed_factor() == 0 ? kDefaultSpeedFactor : config.clock().speed_factor();
}

}  // namespace derma::host
