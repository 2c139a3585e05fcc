#include "plugin/errors/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "google/rpc/error_details.pb.h"

namespace derma {

std::string ReasonName(v1::ErrorReason reason) {
  std::string name = v1::ErrorReason_Name(reason);
  constexpr absl::string_view kPrefix = "ERROR_REASON_";
  if (absl::StartsWith(name, kPrefix)) name.erase(0, kPrefix.size());
  return name;
}

namespace {

// Length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when it does not start with one.
size_t Utf8SequenceLength(absl::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

// `s` with every byte that is not part of valid UTF-8 replaced by U+FFFD. ErrorInfo and
// BadRequest strings are proto3 strings: a request's bytes quoted into them (a name from a
// text-format file, say) must not make the details unparsable and the error lose its reason.
std::string ValidUtf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    const size_t length = Utf8SequenceLength(s);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      s.remove_prefix(1);
    } else {
      out.append(s.data(), length);
      s.remove_prefix(length);
    }
  }
  return out;
}

}  // namespace

absl::Status MakeError(absl::StatusCode code, v1::ErrorReason reason, absl::string_view message,
                       const ErrorMetadata& metadata,
                       const std::vector<FieldViolation>& violations) {
  absl::Status status(code, message);
  google::rpc::ErrorInfo info;
  info.set_reason(ReasonName(reason));
  info.set_domain(std::string(kErrorDomain));
  for (const auto& [key, value] : metadata) {
    (*info.mutable_metadata())[ValidUtf8(key)] = ValidUtf8(value);
  }
  status.SetPayload(kErrorInfoUrl, absl::Cord(info.SerializeAsString()));
  if (!violations.empty()) {
    google::rpc::BadRequest bad_request;
    for (const FieldViolation& v : violations) {
      google::rpc::BadRequest::FieldViolation* out = bad_request.add_field_violations();
      out->set_field(ValidUtf8(v.field));
      out->set_description(ValidUtf8(v.description));
    }
    status.SetPayload(kBadRequestUrl, absl::Cord(bad_request.SerializeAsString()));
  }
  return status;
}

namespace {
bool ReadInfo(const absl::Status& status, google::rpc::ErrorInfo* info) {
  absl::optional<absl::Cord> payload = status.GetPayload(kErrorInfoUrl);
  return payload.has_value() && info->ParseFromString(std::string(*payload));
}
}  // namespace

v1::ErrorReason ReasonOf(const absl::Status& status) {
  google::rpc::ErrorInfo info;
  if (!ReadInfo(status, &info)) return v1::ERROR_REASON_UNSPECIFIED;
  v1::ErrorReason reason = v1::ERROR_REASON_UNSPECIFIED;
  v1::ErrorReason_Parse("ERROR_REASON_" + info.reason(), &reason);
  return reason;
}

ErrorMetadata MetadataOf(const absl::Status& status) {
  google::rpc::ErrorInfo info;
  if (!ReadInfo(status, &info)) return {};
  return ErrorMetadata(info.metadata().begin(), info.metadata().end());
}

std::vector<FieldViolation> ViolationsOf(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kBadRequestUrl);
  google::rpc::BadRequest bad_request;
  if (!payload.has_value() || !bad_request.ParseFromString(std::string(*payload))) return {};
  std::vector<FieldViolation> out;
  for (const auto& v : bad_request.field_violations()) {
    out.push_back({v.field(), v.description()});
  }
  return out;
}

}  // namespace derma
