#include "tests/soak/metrics_scrape.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace derma::soak {
namespace {

// Connected socket with send and receive timeouts, or an error.
absl::StatusOr<int> Connect(int port, absl::Duration timeout) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    absl::Status error = absl::UnavailableError(
        absl::StrCat("connect 127.0.0.1:", port, ": ", std::strerror(errno)));
    close(fd);
    return error;
  }
  return fd;
}

absl::StatusOr<std::string> Exchange(int fd, absl::string_view request, absl::Time deadline) {
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
    sent += n;
  }
  std::string response;
  char buffer[65536];
  while (true) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::DeadlineExceededError(absl::StrCat("recv: ", std::strerror(errno)));
    if (n == 0) return response;
    response.append(buffer, n);
    if (absl::Now() > deadline) return absl::DeadlineExceededError("scrape took too long");
  }
}

absl::StatusOr<std::string> Unchunk(absl::string_view body) {
  std::string out;
  while (true) {
    size_t eol = body.find("\r\n");
    if (eol == absl::string_view::npos) return absl::DataLossError("truncated chunk header");
    absl::string_view size_hex = body.substr(0, eol);
    size_hex = size_hex.substr(0, size_hex.find(';'));
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(size_hex, &size)) return absl::DataLossError("bad chunk size");
    body.remove_prefix(eol + 2);
    if (size == 0) return out;
    if (body.size() < size + 2) return absl::DataLossError("truncated chunk");
    out.append(body.data(), size);
    body.remove_prefix(size + 2);
  }
}

// Parses `key="value",...` (the text between the braces) into `labels`.
bool ParseLabels(absl::string_view text, std::map<std::string, std::string>* labels) {
  while (!text.empty()) {
    size_t eq = text.find("=\"");
    if (eq == absl::string_view::npos) return false;
    std::string key(absl::StripAsciiWhitespace(text.substr(0, eq)));
    text.remove_prefix(eq + 2);
    std::string value;
    size_t i = 0;
    for (; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\' && i + 1 < text.size()) ++i;
      value.push_back(text[i]);
    }
    if (i == text.size()) return false;
    (*labels)[key] = std::move(value);
    text.remove_prefix(i + 1);
    absl::ConsumePrefix(&text, ",");
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> HttpGetMetrics(int port, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<int> fd = Connect(port, timeout);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<std::string> response = Exchange(
      *fd, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", deadline);
  close(*fd);
  if (!response.ok()) return response.status();
  const size_t header_end = response->find("\r\n\r\n");
  if (header_end == std::string::npos) return absl::DataLossError("no end of HTTP headers");
  absl::string_view head = absl::string_view(*response).substr(0, header_end);
  absl::string_view body = absl::string_view(*response).substr(header_end + 4);
  if (!absl::StartsWith(head, "HTTP/1.1 200") && !absl::StartsWith(head, "HTTP/1.0 200")) {
    return absl::UnavailableError(absl::StrCat("HTTP status: ", head.substr(0, head.find('\r'))));
  }
  if (absl::StrContains(absl::AsciiStrToLower(head), "transfer-encoding: chunked")) {
    return Unchunk(body);
  }
  return std::string(body);
}

absl::StatusOr<std::vector<Series>> ParseMetricsText(absl::string_view body) {
  std::vector<Series> out;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    Series series;
    size_t name_end = line.find_first_of("{ ");
    if (name_end == absl::string_view::npos) name_end = line.size();
    series.name = std::string(line.substr(0, name_end));
    absl::string_view rest = line.substr(name_end);
    if (absl::ConsumePrefix(&rest, "{")) {
      const size_t close = rest.rfind('}');
      if (close == absl::string_view::npos || !ParseLabels(rest.substr(0, close), &series.labels)) {
        return absl::InvalidArgumentError(absl::StrCat("metrics line ", line_number, ": ", line));
      }
      rest.remove_prefix(close + 1);
    }
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::StripAsciiWhitespace(rest), ' ', absl::SkipEmpty());
    if (fields.empty() || !absl::SimpleAtod(fields[0], &series.value)) {
      return absl::InvalidArgumentError(absl::StrCat("metrics line ", line_number, ": ", line));
    }
    out.push_back(std::move(series));
  }
  return out;
}

double SumOf(const std::vector<Series>& series, absl::string_view name,
             const std::map<std::string, std::string>& match) {
  double sum = 0;
  for (const Series& s : series) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& [key, value] : match) {
      auto it = s.labels.find(key);
      all = all && it != s.labels.end() && it->second == value;
    }
    if (all) sum += s.value;
  }
  return sum;
}

size_t CountOf(const std::vector<Series>& series, absl::string_view name) {
  size_t n = 0;
  for (const Series& s : series) n += s.name == name;
  return n;
}

}  // namespace derma::soak
