// MetricsEndpoint over real loopback sockets: what a scraper gets (GET, HEAD, the exposition
// and its headers), what a bad or hostile client gets (404, 405, 400, 431, 408, a client that
// never reads), that such clients never keep a scrape from being answered, address errors, and
// that Stop is prompt with connections open. Waits are for the server's answers (blocking
// reads with a generous safety timeout), never sleeps.
#include "plugin/metrics/metrics_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/metrics/text_format.h"

namespace derma::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// `series` gauges, the first one derma_test_value{device="pen-1"} 42.
class FixedCollectable : public prometheus::Collectable {
 public:
  explicit FixedCollectable(int series = 1) : series_(series) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily family{
        "derma_test_value", "A test value.", prometheus::MetricType::Gauge, {}};
    for (int i = 0; i < series_; ++i) {
      family.metric.emplace_back().gauge.value = 42 + i;
      family.metric.back().label.push_back({"device", absl::StrCat("pen-", i + 1)});
    }
    return {family};
  }

 private:
  const int series_;
};

// A connected client socket; reads time out after 60 s so a broken server fails the test
// instead of hanging it (generous: under ThreadSanitizer a large scrape takes seconds).
// `receive_buffer` > 0 makes a slow reader: the kernel takes little of the response on its behalf.
int Connect(int port, int receive_buffer = 0) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (receive_buffer > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
  }
  timeval timeout{60, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

void Send(int fd, const std::string& bytes) {
  ASSERT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

// Everything until the server closes the connection.
std::string ReadToEnd(int fd) {
  std::string out;
  char buffer[65536];
  for (;;) {
    const ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got <= 0) break;
    out.append(buffer, static_cast<size_t>(got));
  }
  return out;
}

std::string Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  Send(fd, request);
  std::string response = ReadToEnd(fd);
  close(fd);
  return response;
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void StartEndpoint(MetricsEndpointOptions options = {}) {
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
        MetricsEndpoint::Start("127.0.0.1:0", {collectable_}, options);
    ASSERT_TRUE(endpoint.ok()) << endpoint.status();
    endpoint_ = *std::move(endpoint);
    ASSERT_GT(endpoint_->port(), 0);
  }
  std::string Body() const {
    std::string body;
    AppendTextFormat(collectable_->Collect(), body);
    return body;
  }

  std::shared_ptr<prometheus::Collectable> collectable_ = std::make_shared<FixedCollectable>();
  std::unique_ptr<MetricsEndpoint> endpoint_;
};

TEST_F(MetricsEndpointTest, GetServesTheTextExpositionAndCloses) {
  StartEndpoint();
  const std::string response =
      Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
  const std::string body = Body();
  EXPECT_EQ(response, absl::StrCat("HTTP/1.1 200 OK\r\nContent-Type: ", kTextFormatContentType,
                                   "\r\nContent-Length: ", body.size(),
                                   "\r\nConnection: close\r\n\r\n", body));
  EXPECT_THAT(body, HasSubstr("derma_test_value{device=\"pen-1\"} 42\n"));
  // A query string is ignored, and a bare-LF head is accepted.
  EXPECT_THAT(Exchange(endpoint_->port(), "GET /metrics?x=1 HTTP/1.0\n\n"),
              StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST_F(MetricsEndpointTest, HeadGivesTheLengthWithoutTheBody) {
  StartEndpoint();
  const std::string response = Exchange(endpoint_->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(response, HasSubstr(absl::StrCat("Content-Length: ", Body().size(), "\r\n")));
  EXPECT_TRUE(absl::EndsWith(response, "\r\n\r\n")) << response;
}

TEST_F(MetricsEndpointTest, BadRequestsGetTheirStatus) {
  StartEndpoint();
  EXPECT_THAT(Exchange(endpoint_->port(), "GET / HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 404 Not Found\r\n"));
  const std::string post = Exchange(endpoint_->port(), "POST /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(post, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(post, HasSubstr("Allow: GET, HEAD\r\n"));
  EXPECT_THAT(Exchange(endpoint_->port(), "hello\r\n\r\n"),
              StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(Exchange(endpoint_->port(), "GET /metrics SMTP\r\n\r\n"),
              StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(Exchange(endpoint_->port(), "GET /metrics HTTP/1.banana\r\n\r\n"),
              StartsWith("HTTP/1.1 400 Bad Request\r\n"));
}

TEST_F(MetricsEndpointTest, AHeadRequestGetsNoBodyEvenForAnError) {
  StartEndpoint();
  const std::string missing = Exchange(endpoint_->port(), "HEAD /nothing HTTP/1.1\r\n\r\n");
  EXPECT_THAT(missing, StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_TRUE(absl::EndsWith(missing, "\r\n\r\n")) << missing;
}

// A client may send its request and half-close at once (nc -N, shutdown(SHUT_WR)): it still
// gets its answer. One that half-closes before its head is complete gets nothing.
TEST_F(MetricsEndpointTest, ARequestFollowedByAHalfCloseIsAnswered) {
  StartEndpoint();
  int fd = Connect(endpoint_->port());
  Send(fd, "GET /metrics HTTP/1.0\r\n\r\n");
  shutdown(fd, SHUT_WR);
  EXPECT_THAT(ReadToEnd(fd), StartsWith("HTTP/1.1 200 OK\r\n"));
  close(fd);
  fd = Connect(endpoint_->port());
  Send(fd, "GET /metrics HTTP/1.0\r\n");
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(ReadToEnd(fd), "");
  close(fd);
}

// Bytes that arrive after the head (a body, a pipelined request) while a large response is
// still being sent are read and discarded: closing with them unread would reset the connection
// and throw away what the server's kernel had not sent yet. The client reads slowly (a small
// receive buffer), so most of the response is still unsent when its extra bytes arrive.
TEST_F(MetricsEndpointTest, BytesAfterTheHeadDoNotCutTheResponseShort) {
  collectable_ = std::make_shared<FixedCollectable>(100000);  // about 3 MB
  StartEndpoint();
  const int fd = Connect(endpoint_->port(), /*receive_buffer=*/16384);
  Send(fd, "GET /metrics HTTP/1.1\r\n\r\n");
  char first[1024];
  const ssize_t got = recv(fd, first, sizeof(first), 0);  // the response has started
  ASSERT_GT(got, 0);
  Send(fd, "GET /metrics HTTP/1.1\r\n\r\nextra");
  const std::string response = std::string(first, static_cast<size_t>(got)) + ReadToEnd(fd);
  close(fd);
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_TRUE(absl::EndsWith(response, Body()))
      << "the whole body, once: got " << response.size() << " bytes";
}

TEST_F(MetricsEndpointTest, SlotsFreedByFinishedClientsAreReused) {
  MetricsEndpointOptions options;
  options.max_connections = 3;
  StartEndpoint(options);
  const int holding = Connect(endpoint_->port());  // holds one slot throughout
  for (int i = 0; i < 20; ++i) {
    EXPECT_THAT(Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\n\r\n"),
                StartsWith("HTTP/1.1 200 OK\r\n"))
        << "scrape " << i;
  }
  close(holding);
}

TEST_F(MetricsEndpointTest, AnOversizedHeadGets431) {
  MetricsEndpointOptions options;
  options.max_request_bytes = 1024;
  StartEndpoint(options);
  const std::string response = Exchange(
      endpoint_->port(),
      absl::StrCat("GET /metrics HTTP/1.1\r\nX-Filler: ", std::string(4000, 'a'), "\r\n\r\n"));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  EXPECT_THAT(response, HasSubstr("over 1024 bytes"));
}

TEST_F(MetricsEndpointTest, AnIncompleteHeadTimesOutWith408) {
  MetricsEndpointOptions options;
  options.request_timeout = absl::Milliseconds(200);
  StartEndpoint(options);
  const int fd = Connect(endpoint_->port());
  Send(fd, "GET /metrics HTTP/1.1\r\nHost: slow");  // never finished
  EXPECT_THAT(ReadToEnd(fd), StartsWith("HTTP/1.1 408 Request Timeout\r\n"));
  close(fd);
}

// A client holding the only connection slot without finishing its request delays a scrape
// only until its request timeout and the drain after its 408 (at most 2 s, it never closes).
TEST_F(MetricsEndpointTest, ASilentClientDelaysAScrapeOnlyUntilItsRequestTimeout) {
  MetricsEndpointOptions options;
  options.max_connections = 1;
  options.request_timeout = absl::Milliseconds(300);
  StartEndpoint(options);
  const int silent = Connect(endpoint_->port());
  EXPECT_THAT(Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(ReadToEnd(silent), StartsWith("HTTP/1.1 408 Request Timeout\r\n"));
  close(silent);
}

// A client that asks and never reads a response larger than the sockets' buffers holds the
// only slot until the send timeout, then its connection is reset (nothing more is sent to it);
// the next scrape is answered.
TEST_F(MetricsEndpointTest, AClientThatNeverReadsIsDroppedAtTheSendTimeout) {
  // About 8.9 MB: twice what the socket buffers can hold (the sender's grows to 4 MiB here),
  // so the send to the non-reader blocks.
  collectable_ = std::make_shared<FixedCollectable>(200000);
  MetricsEndpointOptions options;
  options.max_connections = 1;
  // The reading client must take the whole body within the same timeout: under
  // ThreadSanitizer with another test binary on the other core, 18 MB once took over 500 ms.
  options.send_timeout = absl::Seconds(3);
  StartEndpoint(options);
  const int not_reading = Connect(endpoint_->port(), /*receive_buffer=*/4096);
  Send(not_reading, "GET /metrics HTTP/1.1\r\n\r\n");
  const std::string scrape = Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(scrape, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_GT(scrape.size(), Body().size()) << "the whole body";
  EXPECT_LT(ReadToEnd(not_reading).size(), scrape.size()) << "its connection was reset";
  close(not_reading);
}

TEST_F(MetricsEndpointTest, ACollectableGoneIsSkipped) {
  StartEndpoint();
  collectable_.reset();
  const std::string response = Exchange(endpoint_->port(), "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(response, HasSubstr("Content-Length: 0\r\n"));
}

TEST_F(MetricsEndpointTest, StopIsPromptWithConnectionsOpen) {
  StartEndpoint();
  const int idle = Connect(endpoint_->port());
  Send(idle, "GET /met");
  const absl::Time start = absl::Now();
  endpoint_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "the default request timeout is 10 s";
  EXPECT_EQ(ReadToEnd(idle), "") << "closed without an answer";
  close(idle);
  endpoint_->Stop();  // idempotent
}

TEST_F(MetricsEndpointTest, ConcurrentStopsAllReturn) {
  StartEndpoint();
  std::vector<std::thread> stoppers;
  for (int i = 0; i < 4; ++i) stoppers.emplace_back([this] { endpoint_->Stop(); });
  for (std::thread& t : stoppers) t.join();
}

TEST(MetricsEndpointAddressTest, ErrorsNameTheAddress) {
  for (const std::string bad : {"9464", "127.0.0.1:http", "127.0.0.1:70000", ":9464"}) {
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint = MetricsEndpoint::Start(bad, {});
    EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(endpoint.status().message(), HasSubstr(absl::StrCat("\"", bad, "\""))) << bad;
  }
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> taken =
      MetricsEndpoint::Start("127.0.0.1:0", {});
  ASSERT_TRUE(taken.ok()) << taken.status();
  const std::string same = absl::StrCat("127.0.0.1:", (*taken)->port());
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> again = MetricsEndpoint::Start(same, {});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(again.status().message(), HasSubstr("cannot listen: Address already in use"));
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> v6 = MetricsEndpoint::Start("[::1]:0", {});
  if (v6.ok()) EXPECT_GT((*v6)->port(), 0);  // where the machine has IPv6 loopback
}

}  // namespace
}  // namespace derma::metrics
