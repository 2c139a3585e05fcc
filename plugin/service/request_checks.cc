#include "plugin/service/request_checks.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "plugin/errors/errors.h"

namespace derma::service {

absl::Status InvalidField(const std::string& field, const std::string& what) {
  return MakeError(absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_INVALID_FIELD,
                   absl::StrCat(field, ": ", what), {}, {{field, what}});
}

absl::Status ParsePage(int32_t page_size, const std::string& page_token, int default_size,
                       int max_size, size_t item_count, size_t* size, size_t* offset) {
  if (page_size < 0) {
    return InvalidField("page_size", absl::StrCat("must be ≥ 0, got ", page_size));
  }
  *size = page_size == 0 ? default_size : std::min(page_size, max_size);
  *offset = 0;
  if (!page_token.empty() && (!absl::SimpleAtoi(page_token, offset) || *offset > item_count)) {
    // Past the end too: no response ever gives such a token, and an offset near 2^64 would
    // wrap into a small next token that a client following tokens loops on.
    return InvalidField("page_token", "is not a token from a previous response");
  }
  return absl::OkStatus();
}

}  // namespace derma::service
