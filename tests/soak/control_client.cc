#include "tests/soak/control_client.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/soak/metrics_scrape.h"

namespace derma::soak {
namespace {

using Stub = v1::DeviceControl::Stub;

constexpr absl::Duration kScrapeTimeout = absl::Seconds(5);

}  // namespace

bool ScrapeGate::TryTake(absl::Time now) {
  const int64_t now_ns = absl::ToUnixNanos(now);
  int64_t next = next_ns_.load();
  return now_ns >= next && next_ns_.compare_exchange_strong(next, now_ns + interval_ns_);
}

void ReadCounts::Add(const ReadCounts& o) {
  scrapes += o.scrapes;
  scrape_bytes += o.scrape_bytes;
  scrape_series += o.scrape_series;
  contender_stops += o.contender_stops;
  foreign_sessions += o.foreign_sessions;
}

ControlClient::ControlClient(RpcCaller& caller, ControlOptions options, ScrapeGate& scrapes)
    : caller_(caller),
      options_(std::move(options)),
      scrapes_(scrapes),
      random_(options_.seed),
      sessions_(caller_, random_) {}

void ControlClient::Run(const std::atomic<bool>& stop, absl::Time deadline) {
  const int64_t think_us = absl::ToInt64Microseconds(options_.think);
  std::uniform_int_distribution<int64_t> pause_us(0, 2 * think_us);
  while (!stop.load() && absl::Now() < deadline) {
    Step();
    if (think_us > 0) absl::SleepFor(absl::Microseconds(pause_us(random_)));
  }
}

void ControlClient::Step() {
  if (options_.metrics_port != 0 && scrapes_.TryTake(absl::Now())) return Scrape();
  // Weights: home session 40, any-device session 6, contender Stop 2, GetDevice 24,
  // ListDevices 6, ListRuns 5, GetRun 5.
  const int pick = std::uniform_int_distribution<int>(0, 87)(random_);
  if (pick < 40 && !options_.home.empty()) {
    return sessions_.Run((*options_.fleet)[options_.home[random_() % options_.home.size()]]);
  }
  if (pick < 46) {
    ++reads_.foreign_sessions;
    return sessions_.Run(AnyDevice());
  }
  if (pick < 48) return InterfereStop();
  if (pick < 72) return GetDevice();
  if (pick < 78) return ListDevices();
  if (pick < 83) return ListRuns();
  return GetRun();
}

const FleetDevice& ControlClient::AnyDevice() {
  return (*options_.fleet)[random_() % options_.fleet->size()];
}

void ControlClient::InterfereStop() {
  const FleetDevice& device = AnyDevice();
  v1::StopRequest request;
  request.set_name(device.name);
  v1::StopResponse response;
  if (caller_.Call(Rpc::kStop, Expect::kNormal, device.name, &Stub::Stop, request, &response)
          .ok()) {
    ++reads_.contender_stops;
  }
}

void ControlClient::GetDevice() {
  const FleetDevice& device = AnyDevice();
  v1::GetDeviceRequest request;
  request.set_name(device.name);
  v1::GetDeviceResponse response;
  if (!caller_
           .Call(Rpc::kGetDevice, Expect::kNormal, device.name, &Stub::GetDevice, request,
                 &response)
           .ok()) {
    return;
  }
  if (response.device().name() != device.name || response.device().kind() != device.kind) {
    caller_.Fail(absl::StrCat("GetDevice ", device.name, " returned ", response.device().name(),
                              " of kind ", response.device().kind()));
  }
}

void ControlClient::ListDevices() {
  const bool paged = random_() % 2 == 0;
  v1::ListDevicesRequest request;
  request.set_page_size(paged ? 17 : 0);
  std::vector<std::string> names;
  for (int page = 0; page < 100; ++page) {
    v1::ListDevicesResponse response;
    if (!caller_
             .Call(Rpc::kListDevices, Expect::kNormal, "", &Stub::ListDevices, request, &response)
             .ok()) {
      return;
    }
    for (const v1::Device& device : response.devices()) names.push_back(device.name());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  std::vector<std::string> want;
  for (const FleetDevice& device : *options_.fleet) want.push_back(device.name);
  std::sort(want.begin(), want.end());
  if (names != want) {
    caller_.Fail(absl::StrCat("ListDevices", paged ? " (pages of 17)" : "", " returned ",
                              names.size(), " names, not the fleet's ", want.size(),
                              " in name order"));
  }
}

void ControlClient::ListRuns() {
  const bool all = random_() % 2 == 0;
  v1::ListRunsRequest request;
  request.set_parent(all ? "devices/-" : AnyDevice().name);
  request.set_page_size(20);
  v1::ListRunsResponse response;
  if (!caller_
           .Call(Rpc::kListRuns, Expect::kNormal, request.parent(), &Stub::ListRuns, request,
                 &response)
           .ok()) {
    return;
  }
  for (int i = 0; i < response.runs_size(); ++i) {
    const v1::Run& run = response.runs(i);
    const bool wrong_device = !all && run.device() != request.parent();
    // One device's runs start one after another on its strand, so newest first is start-time
    // order; across devices, runs published at once may differ by a tick.
    const bool out_of_order =
        !all && i > 0 &&
        run.start_time().seconds() * 1'000'000'000LL + run.start_time().nanos() >
            response.runs(i - 1).start_time().seconds() * 1'000'000'000LL +
                response.runs(i - 1).start_time().nanos();
    if (wrong_device || out_of_order) {
      caller_.Fail(
          absl::StrCat("ListRuns ", request.parent(), ": run ", i, " ", run.name(),
                       wrong_device ? " of another device" : " is newer than the one before"));
      return;
    }
  }
}

void ControlClient::GetRun() {
  const std::vector<std::string>& runs = sessions_.recent_runs();
  if (runs.empty()) return GetDevice();
  v1::GetRunRequest request;
  request.set_name(runs[random_() % runs.size()]);
  v1::GetRunResponse response;
  if (caller_.Call(Rpc::kGetRun, Expect::kNormal, request.name(), &Stub::GetRun, request, &response)
          .ok() &&
      response.run().name() != request.name()) {
    caller_.Fail(absl::StrCat("GetRun ", request.name(), " returned ", response.run().name()));
  }
}

void ControlClient::Scrape() {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> body = HttpGetMetrics(options_.metrics_port, kScrapeTimeout);
  absl::StatusOr<std::vector<Series>> series =
      body.ok() ? ParseMetricsText(*body) : absl::StatusOr<std::vector<Series>>(body.status());
  const absl::Duration took = absl::Now() - start;
  if (!series.ok()) {
    // A scrape that fails while dermad is up is as unexpected as an UNAVAILABLE call.
    caller_.Record(
        Rpc::kScrape, Expect::kNormal, "/metrics",
        grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(series.status().message())), took);
    return;
  }
  caller_.Record(Rpc::kScrape, Expect::kNormal, "/metrics", grpc::Status::OK, took);
  ++reads_.scrapes;
  reads_.scrape_bytes += body->size();
  reads_.scrape_series += series->size();
  const size_t fleet = options_.fleet->size();
  const size_t up_series = CountOf(*series, "derma_device_up");
  const double up = SumOf(*series, "derma_device_up");
  if (up_series != fleet || up != static_cast<double>(fleet) ||
      CountOf(*series, "derma_build_info") != 1) {
    caller_.Fail(absl::StrCat("scrape: derma_device_up has ", up_series, " series summing to ", up,
                              " (fleet of ", fleet, "), derma_build_info ",
                              CountOf(*series, "derma_build_info"), " series"));
  }
}

}  // namespace derma::soak
