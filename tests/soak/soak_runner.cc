#include "tests/soak/soak_runner.h"

#include <sys/resource.h>

#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace derma::soak {
namespace {

using Stub = v1::DeviceControl::Stub;

constexpr absl::Duration kRssEvery = absl::Seconds(5);
constexpr absl::Duration kProgressEvery = absl::Seconds(10);
constexpr int kSubsetSize = 25;  // devices of the subscribers that stream a subset

absl::Duration OwnCpuTime() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return absl::DurationFromTimeval(usage.ru_utime) + absl::DurationFromTimeval(usage.ru_stime);
}

}  // namespace

absl::StatusOr<SoakResult> SoakRunner::Run() {
  absl::StatusOr<std::unique_ptr<DermadProcess>> dermad = DermadProcess::Start(options_.dermad);
  if (!dermad.ok()) return dermad.status();
  dermad_ = *std::move(dermad);
  std::cerr << "derma_soak: dermad pid " << dermad_->pid() << ": "
            << absl::StrJoin(dermad_->argv(), " ") << " (gRPC port " << dermad_->grpc_port()
            << ", metrics port " << dermad_->metrics_port() << ")\n";
  if (absl::Status loaded = LoadFleet(); !loaded.ok()) return loaded;
  result_.setup = absl::StrFormat(
      "%d clients (%d telemetry subscribers) for %s against %d devices; dermad %s",
      options_.clients, options_.subscribers, absl::FormatDuration(options_.duration),
      fleet_.size(), absl::StrJoin(dermad_->argv(), " "));

  const absl::Time start = absl::Now();
  const absl::Duration dermad_cpu = dermad_->CpuTime().value_or(absl::ZeroDuration());
  const absl::Duration soak_cpu = OwnCpuTime();
  deadline_ = start + options_.duration;
  scrape_gate_ = std::make_unique<ScrapeGate>(options_.scrape_interval);
  StartClients();
  Monitor(start);
  result_.elapsed = absl::Now() - start;
  result_.dermad_cpu = dermad_->CpuTime().value_or(dermad_cpu) - dermad_cpu;
  result_.soak_cpu = OwnCpuTime() - soak_cpu;
  StopClients();
  Collect();
  CompareFinalScrape();
  Shutdown();
  AddChecks();
  return std::move(result_);
}

absl::Status SoakRunner::LoadFleet() {
  std::shared_ptr<grpc::Channel> channel = MakeOwnChannel(dermad_->target());
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
    return absl::UnavailableError(absl::StrCat("cannot connect to dermad on ", dermad_->target()));
  }
  RpcCaller caller(channel, "setup", options_.rpc_deadline, setup_tally_, failures_, live_);
  v1::ListDevicesRequest request;
  v1::ListDevicesResponse response;
  grpc::Status status =
      caller.Call(Rpc::kListDevices, Expect::kNormal, "", &Stub::ListDevices, request, &response);
  if (!status.ok()) return absl::UnavailableError("ListDevices failed: " + status.error_message());
  for (const v1::Device& device : response.devices()) {
    if (device.state() != v1::DEVICE_STATE_IDLE) {
      return absl::FailedPreconditionError(
          absl::StrCat(device.name(), " starts ", v1::DeviceState_Name(device.state())));
    }
    fleet_.push_back({device.name(), device.kind(), device.capabilities(),
                      device.cartridge().needle_length_mm(),
                      device.latest_sample().microcurrent().electrode_impedance_ohm()});
    if (device.kind() == v1::DEVICE_KIND_MICROCURRENT &&
        fleet_.back().electrode_impedance_ohm <= 0) {
      fleet_.back().electrode_impedance_ohm = 5000;  // no sample yet: the simulator's default
    }
  }
  if (fleet_.empty()) return absl::FailedPreconditionError("the fleet has no devices");
  return absl::OkStatus();
}

std::unique_ptr<SoakRunner::Client> SoakRunner::MakeSubscriber(int index) {
  auto client = std::make_unique<Client>();
  client->slow = index % 2 == 1;
  SubscriberOptions options;
  options.label = absl::StrCat(client->slow ? "slow-" : "fast-", index);
  options.fleet_size = fleet_.size();
  options.seed = options_.seed * 1000 + index;
  options.min_stream_life = options_.stream_life / 2;
  options.max_stream_life = options_.stream_life * 3 / 2;
  // Every third subscriber streams a subset; of the fast ones that do, the samples are
  // decimated to one per 50 ms.
  if (index % 3 == 2) {
    for (int i = 0; i < kSubsetSize && i < static_cast<int>(fleet_.size()); ++i) {
      options.names.push_back(fleet_[(i * 4 + index) % fleet_.size()].name);
    }
    std::sort(options.names.begin(), options.names.end());
    options.names.erase(std::unique(options.names.begin(), options.names.end()),
                        options.names.end());
    if (!client->slow) options.sample_interval_s = 0.05;
  }
  if (client->slow) {
    options.read_time = options_.slow_read;
    options.stall_time = options_.slow_stall;
  }
  client->subscriber = std::make_unique<TelemetrySubscriber>(
      MakeOwnChannel(dermad_->target(), client->slow), options, client->tally, failures_, live_);
  return client;
}

std::unique_ptr<SoakRunner::Client> SoakRunner::MakeControl(int index, int control_index,
                                                            int controls) {
  auto client = std::make_unique<Client>();
  ControlOptions options;
  options.label = absl::StrCat("client-", index);
  options.fleet = &fleet_;
  for (size_t d = control_index; d < fleet_.size(); d += controls) options.home.push_back(d);
  options.think = options_.think;
  options.metrics_port = dermad_->metrics_port();
  options.seed = options_.seed * 1000 + index;
  client->caller =
      std::make_unique<RpcCaller>(MakeOwnChannel(dermad_->target()), options.label,
                                  options_.rpc_deadline, client->tally, failures_, live_);
  client->control = std::make_unique<ControlClient>(*client->caller, options, *scrape_gate_);
  return client;
}

void SoakRunner::StartClients() {
  const int subscribers = std::min(options_.subscribers, options_.clients);
  const int controls = options_.clients - subscribers;
  for (int i = 0; i < options_.clients; ++i) {
    clients_.push_back(i < subscribers ? MakeSubscriber(i)
                                       : MakeControl(i, i - subscribers, controls));
  }
  for (auto& client : clients_) {
    Client* c = client.get();
    c->thread = std::thread([this, c] {
      if (c->subscriber != nullptr) {
        c->subscriber->Run(stop_, deadline_);
      } else {
        c->control->Run(stop_, deadline_);
      }
    });
  }
}

void SoakRunner::Monitor(absl::Time start) {
  const absl::Time warm = start + options_.warmup;
  absl::Time next_rss = start;
  absl::Time next_progress = start + kProgressEvery;
  uint64_t last_calls = 0;
  bool baseline_taken = false;
  while (absl::Now() < deadline_ && !interrupted_.load()) {
    absl::SleepFor(absl::Milliseconds(100));
    const absl::Time now = absl::Now();
    if (std::optional<DermadExit> exit = dermad_->Poll(); exit.has_value()) {
      dermad_death_ = exit->Describe();
      failures_.Add(absl::StrCat("dermad ended during the soak (", dermad_death_,
                                 "); its last output:\n", dermad_->Output()));
      return;
    }
    // The baseline is the highest reading of the warm-up: dermad's RSS rises in steps as the
    // allocator's arenas see the load's peaks, and the peak so far is what a leak must exceed.
    const bool take_baseline = !baseline_taken && now >= warm;
    if (now >= next_rss || take_baseline) {
      next_rss = now + kRssEvery;
      if (absl::StatusOr<uint64_t> rss = dermad_->ResidentBytes(); rss.ok()) {
        result_.rss.push_back({now - start, *rss});
        if (!baseline_taken) result_.rss_start = std::max(result_.rss_start, *rss);
        baseline_taken = baseline_taken || take_baseline;
      }
    }
    if (now >= next_progress) {
      PrintProgress(now - start, live_.calls.load() - last_calls);
      last_calls = live_.calls.load();
      next_progress = now + kProgressEvery;
    }
  }
  if (absl::StatusOr<uint64_t> rss = dermad_->ResidentBytes(); rss.ok()) {
    result_.rss_end = *rss;
    result_.rss.push_back({absl::Now() - start, *rss});
  }
}

void SoakRunner::PrintProgress(absl::Duration elapsed, uint64_t recent_calls) {
  std::cerr << absl::StreamFormat(
      "derma_soak [%5.0f s] %d calls (%.0f/s), %d samples, %d dropped, RSS %s, %d failures\n",
      absl::ToDoubleSeconds(elapsed), live_.calls.load(),
      recent_calls / absl::ToDoubleSeconds(kProgressEvery), live_.samples.load(),
      live_.dropped.load(), result_.rss.empty() ? "?" : FormatMiB(result_.rss.back().second),
      failures_.count());
}

void SoakRunner::StopClients() {
  stop_ = true;
  const absl::Time start = absl::Now();
  for (auto& client : clients_) client->thread.join();
  std::cerr << "derma_soak: clients stopped in " << absl::FormatDuration(absl::Now() - start)
            << "\n";
  absl::SleepFor(absl::Seconds(1));  // let streams and leases settle before the idle reading
  if (absl::StatusOr<uint64_t> rss = dermad_->ResidentBytes(); rss.ok()) result_.rss_idle = *rss;
}

void SoakRunner::Collect() {
  result_.calls.Merge(setup_tally_);
  for (const auto& client : clients_) {
    result_.calls.Merge(client->tally);
    if (client->subscriber != nullptr) {
      (client->slow ? result_.slow : result_.fast).Add(client->subscriber->counts());
    } else {
      result_.sessions.Add(client->control->sessions());
      result_.reads.Add(client->control->reads());
    }
  }
}

void SoakRunner::Shutdown() {
  if (!dermad_death_.empty()) {
    shutdown_outcome_ = absl::StrCat("had already ended: ", dermad_death_);
    return;
  }
  absl::StatusOr<DermadExit> exit = dermad_->Terminate(options_.shutdown_timeout);
  if (!exit.ok()) {
    shutdown_outcome_ = std::string(exit.status().message());
    return;
  }
  shutdown_outcome_ = absl::StrFormat("%s after %.2f s", exit->Describe(),
                                      absl::ToDoubleSeconds(exit->after_sigterm));
  shutdown_ok_ = exit->exited && exit->code == 0;
  if (!shutdown_ok_) {
    failures_.Add(absl::StrCat("dermad's SIGTERM exit: ", shutdown_outcome_, "; last output:\n",
                               dermad_->Output()));
  }
}

}  // namespace derma::soak
