// Request checks shared by the service's handlers: INVALID_FIELD errors and List paging.
// Layer: plugin/service. Thread-safe (pure functions).
#ifndef DERMA_PLUGIN_SERVICE_REQUEST_CHECKS_H_
#define DERMA_PLUGIN_SERVICE_REQUEST_CHECKS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace derma::service {

// INVALID_ARGUMENT (INVALID_FIELD) naming `field`, with one BadRequest violation.
absl::Status InvalidField(const std::string& field, const std::string& what);

// Page size and offset from a List request whose tokens are the decimal offset of the next
// item. INVALID_FIELD for a negative page_size or a token that is not such an offset, or is
// past `item_count` (the number of items there are, or an upper bound of it).
absl::Status ParsePage(int32_t page_size, const std::string& page_token, int default_size,
                       int max_size, size_t item_count, size_t* size, size_t* offset);

}  // namespace derma::service

#endif  // DERMA_PLUGIN_SERVICE_REQUEST_CHECKS_H_
