#include "tests/bench/audit_latency.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "tests/bench/derma_server.h"
#include "tests/bench/echo.grpc.pb.h"
#include "tests/bench/pen_client.h"

namespace derma::bench {

absl::Status MeasureFdatasync(const std::string& dir, int count, std::vector<absl::Duration>& out,
                              const std::string& echo_address) {
  std::unique_ptr<Echo::Stub> echo;
  if (!echo_address.empty()) echo = Echo::NewStub(NewChannel(echo_address));
  const std::string path = absl::StrCat(dir, "/fdatasync-probe");
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  const std::string record(256, 'r');  // about an audit row with its index entries
  absl::Status status;
  for (int i = 0; i < count && status.ok(); ++i) {
    if (echo != nullptr) {
      grpc::ClientContext context;
      SetDeadline(context);
      EchoMessage request, response;
      request.set_payload("devices/pen-1");
      status = CallStatus(echo->Echo(&context, request, &response), "Echo");
      if (!status.ok()) break;
    }
    const auto start = std::chrono::steady_clock::now();
    if (write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size()) ||
        fdatasync(fd) != 0) {
      status =
          absl::InternalError(absl::StrCat("write/fdatasync ", path, ": ", std::strerror(errno)));
    }
    out.push_back(absl::FromChrono(std::chrono::steady_clock::now() - start));
  }
  close(fd);
  unlink(path.c_str());
  return status;
}

absl::StatusOr<ConcurrentConfigureResult> MeasureConcurrentConfigure(
    const std::string& derma_address, const std::vector<std::string>& pens, int warmup, int calls,
    const AuditTrail& trail) {
  absl::Mutex mu;
  std::vector<absl::Duration> latencies;
  absl::Status first_error;
  int ready = 0;
  bool go = false;
  uint64_t commits_before = 0;
  std::chrono::steady_clock::time_point start;
  std::vector<std::thread> threads;
  for (const std::string& pen : pens) {
    threads.emplace_back([&, pen] {
      PenClient client(derma_address, pen);
      absl::Status status = client.AcquireLease();
      for (int i = 0; i < warmup && status.ok(); ++i) status = client.Configure();
      {
        absl::MutexLock lock(&mu);
        ++ready;
        // The measured part starts when every client has warmed up.
        mu.Await(absl::Condition(&go));
      }
      std::vector<absl::Duration> mine;
      mine.reserve(calls);
      for (int i = 0; i < calls && status.ok(); ++i) {
        if (status = client.RenewLeaseIfOld(); !status.ok()) break;
        const auto call_start = std::chrono::steady_clock::now();
        status = client.Configure();
        mine.push_back(absl::FromChrono(std::chrono::steady_clock::now() - call_start));
      }
      client.ReleaseLease();
      absl::MutexLock lock(&mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
      if (!status.ok() && first_error.ok()) first_error = status;
    });
  }
  {
    absl::MutexLock lock(&mu);
    const auto all_ready = [&] { return static_cast<size_t>(ready) == pens.size(); };
    mu.Await(absl::Condition(&all_ready));
    commits_before = trail.commits();
    start = std::chrono::steady_clock::now();
    go = true;
  }
  for (std::thread& thread : threads) thread.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double commits = static_cast<double>(trail.commits() - commits_before);
  if (!first_error.ok()) return first_error;
  if (latencies.empty()) return absl::InternalError("no Configure call was measured");
  ConcurrentConfigureResult result;
  result.clients = static_cast<int>(pens.size());
  result.calls_per_s = static_cast<double>(latencies.size()) / seconds;
  result.commits_per_s = commits / seconds;
  result.records_per_commit = commits > 0 ? static_cast<double>(latencies.size()) / commits : 0;
  result.configure = ComputePercentiles(std::move(latencies));
  return result;
}

}  // namespace derma::bench
