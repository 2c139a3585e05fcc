// Client-side reading of derma's error model: a grpc::Status whose binary details are a
// google.rpc.Status carrying one google.rpc.ErrorInfo (domain "derma", reason from
// derma.v1.ErrorReason) and, for bad fields, one google.rpc.BadRequest. Helpers and gmock
// matchers for the integration tests. Layer: tests/integration.
#ifndef DERMA_TESTS_INTEGRATION_RPC_STATUS_H_
#define DERMA_TESTS_INTEGRATION_RPC_STATUS_H_

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "derma/v1/errors.pb.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "grpcpp/support/status.h"

namespace derma::testing {

// The ErrorInfo in the status details; nullopt when there are none (or they do not parse).
std::optional<google::rpc::ErrorInfo> ErrorInfoOf(const grpc::Status& status);
// ErrorInfo.reason, e.g. "LEASE_HELD"; empty without an ErrorInfo.
std::string ReasonOf(const grpc::Status& status);
// ErrorInfo.metadata; empty without an ErrorInfo.
std::map<std::string, std::string> MetadataOf(const grpc::Status& status);
// Every BadRequest field violation in the details, in order.
std::vector<google::rpc::BadRequest::FieldViolation> ViolationsOf(const grpc::Status& status);
// The fields named by ViolationsOf.
std::vector<std::string> ViolatedFieldsOf(const grpc::Status& status);
// "NAME" for ERROR_REASON_NAME.
std::string ReasonName(v1::ErrorReason reason);
// Code, message, reason and violated fields, for failure messages.
std::string Describe(const grpc::Status& status);

// The status is OK.
MATCHER(IsOk, "is OK") {
  if (arg.ok()) return true;
  *result_listener << Describe(arg);
  return false;
}

// The status has `code` and an ErrorInfo with domain "derma" and `reason`.
MATCHER_P2(IsError, code, reason,
           "fails with code " + ::testing::PrintToString(static_cast<int>(code)) + " and reason " +
               ReasonName(reason)) {
  std::optional<google::rpc::ErrorInfo> info = ErrorInfoOf(arg);
  *result_listener << Describe(arg);
  return arg.error_code() == code && info.has_value() && info->domain() == "derma" &&
         info->reason() == ReasonName(reason);
}

// The status has an ErrorInfo with `reason` (any code).
MATCHER_P(HasReason, reason, "has ErrorInfo reason " + ReasonName(reason)) {
  *result_listener << Describe(arg);
  return ReasonOf(arg) == ReasonName(reason);
}

// The status carries a BadRequest whose violations name `field`.
MATCHER_P(HasViolation, field, "has a BadRequest violation of field " + std::string(field)) {
  *result_listener << Describe(arg);
  for (const std::string& f : ViolatedFieldsOf(arg)) {
    if (f == field) return true;
  }
  return false;
}

}  // namespace derma::testing

namespace grpc {
// gtest prints a grpc::Status as code, message, reason and violated fields.
inline void PrintTo(const Status& status, std::ostream* os) {
  *os << derma::testing::Describe(status);
}
}  // namespace grpc

#endif  // DERMA_TESTS_INTEGRATION_RPC_STATUS_H_
