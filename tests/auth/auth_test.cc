// The authorization table as a matrix (every role × every RPC), the tokens file, and the
// per-call check on a server context.
#include <set>
#include <string>

#include "derma/sim/v1/simulator.pb.h"
#include "derma/v1/device_control.pb.h"
#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "grpcpp/server_context.h"
#include "gtest/gtest.h"
#include "plugin/auth/authorizer.h"
#include "plugin/auth/credentials_store.h"
#include "plugin/auth/policy.h"
#include "plugin/errors/errors.h"

namespace derma::auth {
namespace {

// What each role may call: the table written out by hand, so a change to policy.cc must be
// made twice on purpose.
const std::set<std::string> kViewerMethods = {
    "/derma.v1.DeviceControl/ListDevices",  "/derma.v1.DeviceControl/GetDevice",
    "/derma.v1.DeviceControl/GetRun",       "/derma.v1.DeviceControl/ListRuns",
    "/derma.v1.DeviceControl/WatchRun",     "/derma.v1.DeviceControl/StreamTelemetry",
    "/derma.v1.DeviceControl/EmergencyStop"};
const std::set<std::string> kOperatorMethods = {
    "/derma.v1.DeviceControl/AcquireLease", "/derma.v1.DeviceControl/RenewLease",
    "/derma.v1.DeviceControl/ReleaseLease", "/derma.v1.DeviceControl/Configure",
    "/derma.v1.DeviceControl/Start",        "/derma.v1.DeviceControl/Pause",
    "/derma.v1.DeviceControl/Resume",       "/derma.v1.DeviceControl/Stop",
    "/derma.v1.DeviceControl/ResetFault",   "/derma.v1.DeviceControl/StartRun",
    "/derma.v1.DeviceControl/CancelRun"};

bool Allowed(Role role, const std::string& method) {
  std::optional<Role> required = RequiredRole(method);
  return !required.has_value() || role >= *required;
}

TEST(PolicyMatrixTest, EveryRoleTimesEveryRpc) {
  const std::vector<std::string> methods = KnownMethods();
  ASSERT_EQ(methods.size(), 28u) << "21 DeviceControl + 7 Simulator methods";
  for (const std::string& method : methods) {
    const bool viewer = kViewerMethods.contains(method);
    const bool op = viewer || kOperatorMethods.contains(method);
    EXPECT_EQ(Allowed(Role::kViewer, method), viewer) << method;
    EXPECT_EQ(Allowed(Role::kOperator, method), op) << method;
    EXPECT_TRUE(Allowed(Role::kAdmin, method)) << method;
  }
}

TEST(PolicyMatrixTest, TheTableNamesEveryMethodTheServicesDeclare) {
  std::set<std::string> declared;
  for (const google::protobuf::ServiceDescriptor* service :
       {v1::ListDevicesRequest::descriptor()->file()->FindServiceByName("DeviceControl"),
        sim::v1::InjectFaultRequest::descriptor()->file()->FindServiceByName("Simulator")}) {
    ASSERT_NE(service, nullptr);
    for (int i = 0; i < service->method_count(); ++i) {
      declared.insert("/" + service->full_name() + "/" + service->method(i)->name());
    }
  }
  const std::vector<std::string> known = KnownMethods();
  EXPECT_EQ(declared, std::set<std::string>(known.begin(), known.end()));
}

TEST(PolicyMatrixTest, EmergencyStopIsOpenToEveryRoleAndResetIsAdminOnly) {
  EXPECT_EQ(RequiredRole("/derma.v1.DeviceControl/EmergencyStop"), Role::kViewer);
  EXPECT_EQ(RequiredRole("/derma.v1.DeviceControl/ResetEmergencyStop"), Role::kAdmin);
  EXPECT_EQ(RequiredRole("/derma.sim.v1.Simulator/AdvanceClock"), Role::kAdmin);
}

TEST(PolicyMatrixTest, TheAuditTrailIsForAdminsOnly) {
  EXPECT_EQ(RequiredRole("/derma.v1.DeviceControl/ListAuditEvents"), Role::kAdmin);
  EXPECT_EQ(RequiredRole("/derma.v1.DeviceControl/VerifyAuditTrail"), Role::kAdmin);
}

TEST(PolicyMatrixTest, HealthNeedsNoCredentialsAndUnknownMethodsNeedAdmin) {
  EXPECT_EQ(RequiredRole("/grpc.health.v1.Health/Check"), std::nullopt);
  EXPECT_EQ(RequiredRole("/derma.v1.DeviceControl/SomethingNew"), Role::kAdmin);
}

TEST(CredentialsStoreTest, FindsTokensByHashAndCertificatesByCommonName) {
  const std::string text =
      "# comment\n"
      "token sha256:" +
      Sha256Hex("s3cret") +
      " alice operator\n"
      "cert robot-7 robot-7 viewer  # mTLS\n";
  absl::StatusOr<CredentialsStore> store = CredentialsStore::Parse(text, "tokens");
  ASSERT_TRUE(store.ok()) << store.status();
  std::optional<Principal> alice = store->FindToken("s3cret");
  ASSERT_TRUE(alice.has_value());
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kOperator);
  EXPECT_FALSE(store->FindToken("wrong").has_value());
  ASSERT_TRUE(store->FindCertificate("robot-7").has_value());
  EXPECT_EQ(store->FindCertificate("robot-7")->role, Role::kViewer);
}

TEST(CredentialsStoreTest, PlainTokensAndBadLinesAreRejectedWithFileAndLine) {
  absl::StatusOr<CredentialsStore> plain =
      CredentialsStore::Parse("token s3cret alice operator\n", "tokens.txt");
  EXPECT_THAT(plain.status().message(), ::testing::HasSubstr("tokens.txt:1:"));
  EXPECT_THAT(plain.status().message(), ::testing::HasSubstr("never a plain token"));
  absl::StatusOr<CredentialsStore> role = CredentialsStore::Parse(
      "\ntoken sha256:" + Sha256Hex("x") + " bob superuser\n", "tokens.txt");
  EXPECT_THAT(role.status().message(), ::testing::HasSubstr("tokens.txt:2:"));
}

TEST(CredentialsStoreTest, ErrorsNameTheTokensFile) {
  absl::StatusOr<CredentialsStore> bad =
      CredentialsStore::Parse("bogus line here now\n", "/etc/derma/tokens");
  EXPECT_THAT(std::string(bad.status().message()), ::testing::StartsWith("tokens file /etc/derma/tokens:1:"));
  absl::StatusOr<CredentialsStore> missing = CredentialsStore::Load("/nonexistent/tokens");
  EXPECT_THAT(std::string(missing.status().message()),
              ::testing::StartsWith("tokens file /nonexistent/tokens: cannot read it"));
}

TEST(CredentialsStoreTest, AHashOrCommonNameListedTwiceIsRefusedNamingBothLines) {
  const std::string hash = Sha256Hex("s3cret");
  absl::StatusOr<CredentialsStore> twice = CredentialsStore::Parse(
      "token sha256:" + hash + " alice operator\n# comment\ntoken sha256:" +
          absl::AsciiStrToUpper(hash) + " mallory admin\n",
      "tokens");
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(twice.status().message(), ::testing::HasSubstr("tokens:3:"));
  EXPECT_THAT(twice.status().message(), ::testing::HasSubstr("already listed on line 1"));
  absl::StatusOr<CredentialsStore> cert =
      CredentialsStore::Parse("cert robot-7 a viewer\ncert robot-7 b admin\n", "tokens");
  EXPECT_THAT(cert.status().message(), ::testing::HasSubstr("tokens:2:"));
  EXPECT_THAT(cert.status().message(), ::testing::HasSubstr("already listed on line 1"));
}

TEST(CredentialsStoreTest, CrlfLineEndsReadLikeLf) {
  absl::StatusOr<CredentialsStore> store = CredentialsStore::Parse(
      "# written on Windows\r\ntoken sha256:" + Sha256Hex("s3cret") + " alice admin\r\n", "tokens");
  ASSERT_TRUE(store.ok()) << store.status();
  std::optional<Principal> alice = store->FindToken("s3cret");
  ASSERT_TRUE(alice.has_value());
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kAdmin);
}

TEST(CredentialsStoreTest, Sha256MatchesSha256sum) {
  // printf %s abc | sha256sum
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(AuthorizerTest, WithoutCredentialsEveryCallIsLocalAdmin) {
  Authorizer open(std::nullopt);
  grpc::ServerContext context;
  absl::StatusOr<Principal> caller =
      open.Authorize(context, "/derma.sim.v1.Simulator/AdvanceClock");
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->role, Role::kAdmin);
}

TEST(AuthorizerTest, NoTokenIsUnauthenticatedAndCountedHealthStaysOpen) {
  absl::StatusOr<CredentialsStore> store =
      CredentialsStore::Parse("token sha256:" + Sha256Hex("t") + " alice admin\n", "tokens");
  ASSERT_TRUE(store.ok());
  Authorizer authorizer(*std::move(store));
  grpc::ServerContext context;  // no authorization metadata
  absl::StatusOr<Principal> caller =
      authorizer.Authorize(context, "/derma.v1.DeviceControl/GetDevice");
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ReasonOf(caller.status()), v1::ERROR_REASON_UNAUTHENTICATED);
  EXPECT_EQ(authorizer.unauthenticated_count(), 1u);
  EXPECT_TRUE(authorizer.Authorize(context, "/grpc.health.v1.Health/Check").ok());
  EXPECT_EQ(authorizer.unauthenticated_count(), 1u);
}

}  // namespace
}  // namespace derma::auth
