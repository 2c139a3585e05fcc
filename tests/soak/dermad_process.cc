#include "tests/soak/dermad_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace derma::soak {
namespace {

constexpr size_t kKeptOutputBytes = 64 << 10;

absl::Status ErrnoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

DermadExit FromWaitStatus(int status) {
  DermadExit exit;
  exit.exited = WIFEXITED(status);
  exit.code = exit.exited ? WEXITSTATUS(status) : WTERMSIG(status);
  return exit;
}

// The N of "dermad: serving ... port N (...": the line dermad prints once it serves.
std::optional<int> PortFromOutput(absl::string_view output) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (!absl::StartsWith(line, "dermad: serving")) continue;
    size_t at = line.find(", port ");
    if (at == absl::string_view::npos) continue;
    absl::string_view rest = line.substr(at + 7);
    rest = rest.substr(0, rest.find(' '));
    int port = 0;
    if (absl::SimpleAtoi(rest, &port) && port > 0) return port;
  }
  return std::nullopt;
}

}  // namespace

std::string DermadExit::Describe() const {
  if (!exited) return absl::StrCat("killed by signal ", code, " (", strsignal(code), ")");
  return absl::StrCat("exit code ", code);
}

absl::StatusOr<int> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return ErrnoError("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    absl::Status error = ErrnoError("bind 127.0.0.1:0");
    close(fd);
    return error;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

absl::StatusOr<std::unique_ptr<DermadProcess>> DermadProcess::Start(const DermadOptions& options) {
  absl::StatusOr<std::unique_ptr<DermadProcess>> process;
  for (int attempt = 0; attempt < 3; ++attempt) {
    process = StartOnce(options);
    if (process.ok() || !absl::StrContains(process.status().message(), "cannot serve metrics")) {
      break;
    }
  }
  return process;
}

absl::StatusOr<std::unique_ptr<DermadProcess>> DermadProcess::StartOnce(
    const DermadOptions& options) {
  std::unique_ptr<DermadProcess> process(new DermadProcess());
  absl::StatusOr<int> metrics_port = PickFreePort();
  if (!metrics_port.ok()) return metrics_port.status();
  process->metrics_port_ = *metrics_port;
  if (absl::Status spawned = process->Spawn(options); !spawned.ok()) return spawned;
  if (absl::Status up = process->WaitForPortLine(options.start_timeout); !up.ok()) return up;
  return process;
}

absl::Status DermadProcess::Spawn(const DermadOptions& options) {
  argv_ = {options.binary,
           absl::StrCat("--config=", options.config),
           "--listen=127.0.0.1:0",
           absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port_),
           "--log_level=error",
           // The soak's clients share one principal (no tokens file), as one station's many
           // lab scripts would not: only the server-wide stream limit applies to them.
           "--max_streams_per_principal=0",
           "--mutex_deadlock_detection"};  // lock-order checks on, as in every test
  argv_.insert(argv_.end(), options.extra.begin(), options.extra.end());
  std::vector<char*> args;
  for (std::string& arg : argv_) args.push_back(arg.data());
  args.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe");
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) return ErrnoError("fork");
  if (pid_ == 0) {
    // The child: dies with the soak test (even when it is killed), output into the pipe.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    execv(args[0], args.data());
    std::fprintf(stderr, "cannot exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  out_fd_ = fds[0];
  drain_thread_ = std::thread([this] { Drain(); });
  return absl::OkStatus();
}

void DermadProcess::Drain() {
  char buffer[4096];
  while (true) {
    ssize_t n = read(out_fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    absl::MutexLock lock(&mu_);
    if (n <= 0) {
      output_closed_ = true;
      return;
    }
    output_.append(buffer, n);
    if (output_.size() > 2 * kKeptOutputBytes) output_.erase(0, output_.size() - kKeptOutputBytes);
  }
}

absl::Status DermadProcess::WaitForPortLine(absl::Duration timeout) {
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return output_closed_ || PortFromOutput(output_).has_value();
  };
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (std::optional<int> port = PortFromOutput(output_); port.has_value()) {
    grpc_port_ = *port;
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat("dermad did not print its port line within ", absl::FormatDuration(timeout),
                   output_closed_ ? " (it exited)" : "", "; its output:\n", output_));
}

DermadProcess::~DermadProcess() {
  if (pid_ > 0 && !Poll().has_value()) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  if (drain_thread_.joinable()) drain_thread_.join();
  if (out_fd_ >= 0) close(out_fd_);
}

std::string DermadProcess::target() const { return absl::StrCat("127.0.0.1:", grpc_port_); }

absl::StatusOr<uint64_t> DermadProcess::ResidentBytes() const {
  std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "VmRSS:")) continue;
    rest = absl::StripAsciiWhitespace(rest);
    uint64_t kib = 0;
    if (absl::ConsumeSuffix(&rest, "kB") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kib)) {
      return kib * 1024;
    }
  }
  return absl::NotFoundError(absl::StrCat("no VmRSS in /proc/", pid_, "/status"));
}

absl::StatusOr<absl::Duration> DermadProcess::CpuTime() const {
  std::ifstream stat(absl::StrCat("/proc/", pid_, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return absl::NotFoundError("no /proc stat");
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(text).substr(close + 2), ' ', absl::SkipEmpty());
  uint64_t utime = 0;
  uint64_t stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return absl::DataLossError("unexpected /proc stat");
  }
  return absl::Seconds(static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK));
}

std::optional<DermadExit> DermadProcess::Poll() {
  absl::MutexLock lock(&mu_);
  if (exit_.has_value()) return exit_;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) exit_ = FromWaitStatus(status);
  return exit_;
}

absl::StatusOr<DermadExit> DermadProcess::Terminate(absl::Duration timeout) {
  if (std::optional<DermadExit> already = Poll(); already.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("dermad had already ended (", already->Describe(), ")"));
  }
  const absl::Time start = absl::Now();
  kill(pid_, SIGTERM);
  while (absl::Now() - start < timeout) {
    if (std::optional<DermadExit> exit = Poll(); exit.has_value()) {
      exit->after_sigterm = absl::Now() - start;
      return *exit;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  kill(pid_, SIGKILL);
  {
    absl::MutexLock lock(&mu_);
    int status = 0;
    if (!exit_.has_value() && waitpid(pid_, &status, 0) == pid_) exit_ = FromWaitStatus(status);
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "dermad did not exit within ", absl::FormatDuration(timeout), " of SIGTERM (killed)"));
}

std::string DermadProcess::Output() const {
  absl::MutexLock lock(&mu_);
  return output_.size() > kKeptOutputBytes ? output_.substr(output_.size() - kKeptOutputBytes)
                                           : output_;
}

}  // namespace derma::soak
