// What a hostile or clumsy client sends that a valid one never does, through the public gRPC
// API of a real server: names longer than any valid name, page tokens no response gave, and a
// NaN lease TTL. Each is refused with INVALID_FIELD naming the field, and the service keeps
// answering.
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/integration/server_fixture.h"

namespace derma::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using Stub = v1::DeviceControl::Stub;
using grpc::StatusCode;

using HostileInputTest = ServerFixture;

// A name far longer than any valid one, whose echo would overflow an 8 KiB metadata limit.
const std::string kLongName = "devices/" + std::string(3000, 'x');

TEST_F(HostileInputTest, ALongDeviceNameIsRefusedUnechoedNamingTheField) {
  v1::GetDeviceRequest get;
  get.set_name(kLongName);
  v1::GetDeviceResponse device;
  const grpc::Status status = Invoke(*control_, &Stub::GetDevice, get, &device);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolatedFieldsOf(status), UnorderedElementsAre("name"));
  EXPECT_THAT(status.error_message(), HasSubstr("3008 bytes long"));
  EXPECT_THAT(status.error_message(), Not(HasSubstr("xxxxxxxx")));
  EXPECT_LT(status.error_details().size(), 1024u);

  v1::ConfigureRequest configure;
  configure.set_name(kLongName);
  configure.set_lease_id("x");
  *configure.mutable_settings() = PenSettings(0.5, 100);
  v1::ConfigureResponse configured;
  EXPECT_THAT(Invoke(*control_, &Stub::Configure, configure, &configured),
              IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));

  v1::ListRunsRequest runs;
  runs.set_parent(kLongName);
  v1::ListRunsResponse listed;
  const grpc::Status parent = Invoke(*control_, &Stub::ListRuns, runs, &listed);
  EXPECT_THAT(parent, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolatedFieldsOf(parent), UnorderedElementsAre("parent"));

  // The longest valid name is still looked up: an unknown one is DEVICE_NOT_FOUND.
  get.set_name("devices/" + std::string(63, 'a'));
  EXPECT_THAT(Invoke(*control_, &Stub::GetDevice, get, &device),
              IsError(StatusCode::NOT_FOUND, v1::ERROR_REASON_DEVICE_NOT_FOUND));
  EXPECT_EQ(GetDevice(kPen).name(), kPen);  // and the service keeps answering
}

TEST_F(HostileInputTest, ALongRunNameIsRefusedUnechoed) {
  v1::GetRunRequest request;
  request.set_name(absl::StrCat(kPen, "/runs/", std::string(3000, '0')));
  v1::GetRunResponse response;
  const grpc::Status status = Invoke(*control_, &Stub::GetRun, request, &response);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(status.error_message(), HasSubstr("a run name is at most 89 bytes"));
  EXPECT_THAT(status.error_message(), Not(HasSubstr("00000000")));
}

TEST_F(HostileInputTest, ALongNameInATelemetryRequestNamesItsIndex) {
  std::unique_ptr<TelemetryReader> reader = StreamTelemetry({kPen, kLongName});
  EXPECT_FALSE(reader->Next().has_value());
  const std::optional<grpc::Status> finished = reader->Finish();
  ASSERT_TRUE(finished.has_value());
  const grpc::Status& status = *finished;
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolatedFieldsOf(status), UnorderedElementsAre("names[1]"));
}

TEST_F(HostileInputTest, APageTokenPastTheEndIsRefusedInsteadOfWrapping) {
  v1::ListDevicesRequest request;
  request.set_page_size(4);
  v1::ListDevicesResponse response;
  // 2^64 - 4: offset + page_size wraps to 0, which used to come back as the next token.
  request.set_page_token(absl::StrCat(std::numeric_limits<uint64_t>::max() - 3));
  const grpc::Status wrapped = Invoke(*control_, &Stub::ListDevices, request, &response);
  EXPECT_THAT(wrapped, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolatedFieldsOf(wrapped), UnorderedElementsAre("page_token"));
  request.set_page_token(absl::StrCat(kDeviceCount + 1));
  EXPECT_THAT(Invoke(*control_, &Stub::ListDevices, request, &response),
              IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  // At the end exactly: an empty last page.
  request.set_page_token(absl::StrCat(kDeviceCount));
  response.Clear();
  ASSERT_THAT(Invoke(*control_, &Stub::ListDevices, request, &response), IsOk());
  EXPECT_EQ(response.devices_size(), 0);
  EXPECT_TRUE(response.next_page_token().empty());

  v1::ListRunsRequest runs;
  runs.set_parent("devices/-");
  runs.set_page_token(absl::StrCat(std::numeric_limits<uint64_t>::max() - 99));
  v1::ListRunsResponse listed;
  EXPECT_THAT(Invoke(*control_, &Stub::ListRuns, runs, &listed),
              IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  runs.set_page_token("1000000");  // past the last run: an empty last page, no token
  ASSERT_THAT(Invoke(*control_, &Stub::ListRuns, runs, &listed), IsOk());
  EXPECT_EQ(listed.runs_size(), 0);
  EXPECT_TRUE(listed.next_page_token().empty());
}

TEST_F(HostileInputTest, ANanLeaseTtlIsReportedAsNan) {
  v1::AcquireLeaseRequest request;
  request.set_name(kPen);
  request.set_holder("it");
  request.set_ttl_s(std::nan(""));
  v1::AcquireLeaseResponse response;
  const grpc::Status status = Invoke(*control_, &Stub::AcquireLease, request, &response);
  EXPECT_THAT(status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(ViolatedFieldsOf(status), UnorderedElementsAre("ttl_s"));
  EXPECT_THAT(status.error_message(), HasSubstr("NaN"));
  EXPECT_THAT(status.error_message(), Not(HasSubstr("inf")));

  const std::string lease = Lease(kPen);
  v1::RenewLeaseRequest renew;
  renew.set_name(kPen);
  renew.set_lease_id(lease);
  renew.set_ttl_s(std::nan(""));
  v1::RenewLeaseResponse renewed;
  const grpc::Status renew_status = Invoke(*control_, &Stub::RenewLease, renew, &renewed);
  EXPECT_THAT(renew_status, IsError(StatusCode::INVALID_ARGUMENT, v1::ERROR_REASON_INVALID_FIELD));
  EXPECT_THAT(renew_status.error_message(), HasSubstr("NaN"));
}

}  // namespace
}  // namespace derma::testing
