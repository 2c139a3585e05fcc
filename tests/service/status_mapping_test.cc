// The one absl → gRPC status mapping: code and message kept, ErrorInfo and BadRequest carried
// as google.rpc.Status details that a client can decode.
#include "plugin/service/status_mapping.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "plugin/errors/errors.h"

namespace derma::service {
namespace {

google::rpc::Status Details(const grpc::Status& status) {
  google::rpc::Status details;
  EXPECT_TRUE(details.ParseFromString(status.error_details()));
  return details;
}

TEST(StatusMappingTest, OkIsOk) { EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok()); }

TEST(StatusMappingTest, KeepsCodeMessageReasonDomainAndMetadata) {
  const grpc::Status status =
      ToGrpcStatus(MakeError(absl::StatusCode::kFailedPrecondition, v1::ERROR_REASON_ESTOP_LATCHED,
                             "devices/pen-1 is ESTOPPED", {{"device", "devices/pen-1"}}));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(), "devices/pen-1 is ESTOPPED");
  const google::rpc::Status details = Details(status);
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "ESTOP_LATCHED");
  EXPECT_EQ(info.domain(), "derma");
  EXPECT_EQ(info.metadata().at("device"), "devices/pen-1");
}

TEST(StatusMappingTest, OneBadRequestListsEveryViolation) {
  const grpc::Status status = ToGrpcStatus(MakeError(
      absl::StatusCode::kInvalidArgument, v1::ERROR_REASON_SETTING_OUT_OF_RANGE, "bad", {},
      {{"settings.microneedling.needle_depth_mm", "9 mm is outside 0–2.5 mm"},
       {"settings.microneedling.stroke_rate_hz", "1000 Hz is outside 50–150 Hz"}}));
  const google::rpc::Status details = Details(status);
  ASSERT_EQ(details.details_size(), 2);
  google::rpc::BadRequest bad;
  ASSERT_TRUE(details.details(1).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 2);
  EXPECT_EQ(bad.field_violations(0).field(), "settings.microneedling.needle_depth_mm");
  EXPECT_EQ(bad.field_violations(1).field(), "settings.microneedling.stroke_rate_hz");
}

TEST(StatusMappingTest, StatusWithoutErrorInfoStillCarriesAReason) {
  const grpc::Status status = ToGrpcStatus(absl::InternalError("boom"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(Details(status).details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "UNSPECIFIED");
  EXPECT_EQ(info.domain(), "derma");
}

}  // namespace
}  // namespace derma::service
