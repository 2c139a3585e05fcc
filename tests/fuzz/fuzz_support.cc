#include "tests/fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "sim/registry.h"

namespace derma::fuzz {

void Check(bool condition, const char* expression, const std::string& what, const char* file,
           int line) {
  if (condition) return;
  std::fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n  %s\n", file, line, expression,
               what.c_str());
  std::abort();
}

const std::vector<config::v1::DeviceConfig>& CatalogueDevices() {
  static const std::vector<config::v1::DeviceConfig>* devices = [] {
    auto* out = new std::vector<config::v1::DeviceConfig>();
    const struct {
      const char* id;
      v1::DeviceKind kind;
      const char* model;
    } kModels[] = {{"pen-1", v1::DEVICE_KIND_MICRONEEDLING, "DP-100"},
                   {"pen-2", v1::DEVICE_KIND_MICRONEEDLING, "DP-300"},
                   {"stim-1", v1::DEVICE_KIND_MICROCURRENT, "MC-10"},
                   {"stim-2", v1::DEVICE_KIND_MICROCURRENT, "MC-5"}};
    for (const auto& m : kModels) {
      config::v1::DeviceConfig& config = out->emplace_back();
      config.set_id(m.id);
      config.set_kind(m.kind);
      config.set_model(m.model);
    }
    return out;
  }();
  return *devices;
}

SimBench::SimBench(const config::v1::DeviceConfig& config) {
  absl::StatusOr<std::unique_ptr<sim::SimDevice>> driver =
      sim::CreateSimDevice({config, /*seed=*/1});
  DERMA_FUZZ_CHECK(driver.ok(), driver.status().ToString());
  device_ = std::make_unique<Device>(0, config.id(), *std::move(driver),
                                     DeviceContext{clock_, fanout_, runs_});
  device_->Initialize();
  Advance(absl::Milliseconds(10));
  DERMA_FUZZ_CHECK(device_->state() == v1::DEVICE_STATE_IDLE,
                   v1::DeviceState_Name(device_->state()));
  absl::StatusOr<LeaseGrant> grant = device_->AcquireLease("fuzz", absl::Seconds(60));
  DERMA_FUZZ_CHECK(grant.ok(), grant.status().ToString());
  lease_ = grant->lease_id;
}

void SimBench::Advance(absl::Duration delta) {
  clock_.Advance(delta);
  device_->Tick();
}

namespace {

class IgnoreErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
};

}  // namespace

bool ParseText(std::string_view data, google::protobuf::Message* out) {
  IgnoreErrors errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  return parser.ParseFromString(std::string(data), out);
}

bool ParseTextOrJson(std::string_view data, google::protobuf::Message* out) {
  const std::string body(data);
  if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(body), "{")) {
    return google::protobuf::util::JsonStringToMessage(body, out).ok();
  }
  return ParseText(body, out);  // the same parser as TextFormat::ParseFromString, silent
}

bool SameMessage(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

}  // namespace derma::fuzz
