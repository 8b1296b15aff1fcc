// hr-load: puts a device router (or a cloud backend, or a proxy in front of one)
// under load over gRPC and reports latency, throughput and residency per route.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "grpc_util/server_util.h"
#include "grpcpp/grpcpp.h"
#include "hybridrouter/v1/cloud.grpc.pb.h"
#include "hybridrouter/v1/router.grpc.pb.h"
#include "load_lib.h"
#include "util/flags.h"
#include "util/pem.h"
#include "util/text_proto.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "address to load: hr-device (--api router), or "
          "hr-cloud or a proxy in front of it (--api cloud)");
ABSL_FLAG(std::string, api, "router", "router (hybridrouter.v1.Router) or cloud "
          "(hybridrouter.v1.CloudInference, with a residency claim made from --policy)");
ABSL_FLAG(std::string, workload, "",
          "workload file (hybridrouter.tools.LoadWorkload: textproto, or JSON if named *.json); "
          "required");
ABSL_FLAG(std::string, policy, "deploy/local/policy.textproto", "policy file for the independent "
          "residency check (and the claims of --api cloud)");
ABSL_FLAG(std::string, mode, "closed", "closed (--concurrency streams, each sends its next "
          "request when the last ends) or open (Poisson arrivals at --rps)");
ABSL_FLAG(int, concurrency, 8, "closed loop: concurrent streams");
ABSL_FLAG(double, rps, 100, "open loop: mean requests per second");
ABSL_FLAG(int64_t, requests, 0, "stop after this many requests (0: no count limit)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "stop sending after this long (0: no "
          "time limit); requests in flight then finish");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "deadline of each request");
ABSL_FLAG(int, channels, 1, "gRPC connections to spread the requests over");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(10),
          "how long to wait for the connections before giving up (exit 2)");
ABSL_FLAG(bool, tls, false, "connect over TLS (a backend or load balancer that serves it)");
ABSL_FLAG(std::string, tls_ca_file, "",
          "with --tls: PEM certificate authorities to trust (empty: the system's)");
ABSL_FLAG(std::string, tls_server_name, "",
          "with --tls: the name the certificate must carry (empty: the host of --target)");
ABSL_FLAG(std::string, tls_cert_file, "",
          "with --tls: a PEM client certificate to show (with --tls_key_file), for a backend "
          "that asks for one (hr-cloud --tls_client_ca_file)");
ABSL_FLAG(std::string, tls_key_file, "", "the PEM private key of --tls_cert_file");
ABSL_FLAG(uint64_t, seed, 1, "seed for the request mix and the arrivals");
ABSL_FLAG(std::string, json, "", "also write the report as JSON to this file ('-': stdout, "
          "replacing the table)");
ABSL_FLAG(bool, progress, true, "print progress to stderr once a second");

namespace {

namespace v1 = ::hybridrouter::v1;
namespace tools = ::hybridrouter::tools;
using hr::load::Outcome;

// The signals that stop a run: blocked in every thread, awaited by one.
sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

int64_t MicrosSince(absl::Time t) { return absl::ToInt64Microseconds(absl::Now() - t); }

class Driver;

// What one request's answer said, checked against the API's message order
// (route or start, then text, then done).
class AnswerTracker {
 public:
  AnswerTracker(absl::Time scheduled, std::string request_id, std::string locale)
      : scheduled_(scheduled) {
    outcome_.request_id = std::move(request_id);
    outcome_.locale = std::move(locale);
  }

  void Observe(const v1::GenerateResponse& r) {
    if (done_) return Protocol("a message after done");
    if (!r.has_route() && !r.has_chunk() && !r.has_done()) return Protocol("an empty message");
    if (r.has_route()) {
      Routed(r.route().target() == v1::CLOUD, r.route().region(), r.route().fell_back(), "route");
    }
    if (r.has_chunk()) Text("text before the route");
    if (r.has_done()) Done(r.done().usage(), "done before the route");
  }
  void Observe(const v1::CloudChunk& c) {
    if (done_) return Protocol("a message after done");
    if (!c.has_start() && c.text().empty() && !c.has_done()) return Protocol("an empty message");
    if (c.has_start()) Routed(/*cloud=*/true, c.start().region(), /*fell_back=*/false, "start");
    if (!c.text().empty()) Text("text before start");
    if (c.has_done()) Done(c.done().usage(), "done before start");
  }
  bool done() const { return done_; }

  // The outcome of a request that ended now with status `code` and `message`.
  Outcome End(int code, std::string message) {
    outcome_.latency_us = MicrosSince(scheduled_);
    outcome_.code = code;
    outcome_.message = std::move(message);
    if (code == 0 && !done_) Protocol("the stream ended without done");
    if (code == 0 && !protocol_error_.empty()) {
      outcome_.code = hr::load::kProtocolError;
      outcome_.message = protocol_error_;
    }
    return outcome_;
  }

 private:
  void Protocol(absl::string_view what) {
    if (protocol_error_.empty()) protocol_error_ = std::string(what);
  }
  // A second route is a protocol error and leaves the first one's outcome alone.
  void Routed(bool cloud, const std::string& region, bool fell_back, absl::string_view what) {
    if (outcome_.routed) return Protocol(absl::StrCat("a second ", what));
    outcome_.routed = true;
    outcome_.cloud = cloud;
    outcome_.region = region;
    outcome_.fell_back = fell_back;
  }
  void Text(absl::string_view too_early) {
    if (!outcome_.routed) return Protocol(too_early);
    if (outcome_.first_chunk_us < 0) outcome_.first_chunk_us = MicrosSince(scheduled_);
  }
  void Done(const v1::Usage& usage, absl::string_view too_early) {
    if (!outcome_.routed) return Protocol(too_early);
    done_ = true;
    outcome_.completion_tokens = usage.completion_tokens();
  }

  absl::Time scheduled_;
  Outcome outcome_;
  bool done_ = false;
  std::string protocol_error_;
};

// One call in flight. Owns itself: deleted in OnDone after reporting.
template <typename Request, typename Response>
class Call : public grpc::ClientReadReactor<Response> {
 public:
  Call(Driver* driver, absl::Time scheduled, absl::Time deadline, Request request,
       std::string locale)
      : driver_(driver),
        request_(std::move(request)),
        tracker_(scheduled, request_.request_id(), std::move(locale)) {
    context_.set_deadline(absl::ToChronoTime(deadline));
  }
  grpc::ClientContext* context() { return &context_; }

  // Starts the call on `stub` (Router or CloudInference).
  template <typename Stub>
  void Go(Stub* stub) {
    stub->async()->Generate(&context_, &request_, this);
    this->StartRead(&response_);
    this->StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    tracker_.Observe(response_);
    this->StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override;

 private:
  Driver* driver_;
  grpc::ClientContext context_;
  Request request_;
  Response response_;
  AnswerTracker tracker_;
};

// Starts calls by the chosen discipline, tracks those in flight, and collects
// their outcomes.
class Driver {
 public:
  Driver(const hr::load::Workload& workload, const hr::load::ResidencyOracle& oracle,
         std::shared_ptr<grpc::ChannelCredentials> credentials, hr::load::ReportBuilder* report)
      : oracle_(oracle), sampler_(workload, absl::GetFlag(FLAGS_seed)), report_(report) {
    const std::string target = absl::GetFlag(FLAGS_target);
    for (int i = 0; i < absl::GetFlag(FLAGS_channels); ++i) {
      grpc::ChannelArguments args;
      // A channel of its own per connection, not one shared subchannel.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("hr.load.channel", i);
      const std::string server_name = absl::GetFlag(FLAGS_tls_server_name);
      if (absl::GetFlag(FLAGS_tls) && !server_name.empty()) {
        args.SetSslTargetNameOverride(server_name);
      }
      auto channel = grpc::CreateCustomChannel(target, credentials, args);
      router_stubs_.push_back(v1::Router::NewStub(channel));
      cloud_stubs_.push_back(v1::CloudInference::NewStub(channel));
      channels_.push_back(std::move(channel));
    }
    cloud_api_ = absl::GetFlag(FLAGS_api) == "cloud";
    closed_loop_ = absl::GetFlag(FLAGS_mode) == "closed";
    timeout_ = absl::GetFlag(FLAGS_timeout);
    max_requests_ = absl::GetFlag(FLAGS_requests);
  }

  // Waits for every channel to connect (the first requests should not pay for it).
  bool Connect(absl::Duration timeout) {
    for (auto& c : channels_) {
      if (!c->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) return false;
    }
    return true;
  }

  void Run() {
    const absl::Time start = absl::Now();
    {
      absl::MutexLock lock(&mu_);
      start_ = start;
      const absl::Duration duration = absl::GetFlag(FLAGS_duration);
      stop_sending_at_ =
          duration > absl::ZeroDuration() ? start + duration : absl::InfiniteFuture();
    }
    if (closed_loop_) {
      for (int i = 0; i < absl::GetFlag(FLAGS_concurrency); ++i) {
        if (!StartNext(absl::Now())) break;
      }
    } else {
      RunOpenLoop();
    }
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Driver* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) { return d->in_flight_.empty(); },
        this));
    end_ = absl::Now();
  }

  // Stops sending and cancels what is in flight (SIGINT/SIGTERM); the cancelled
  // calls are reported as CANCELLED.
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    for (grpc::ClientContext* c : in_flight_) c->TryCancel();
  }

  void Finished(grpc::ClientContext* context, const Outcome& outcome) {
    report_->Add(outcome);
    // Closed loop: the next request starts before this one leaves in_flight_, so
    // that Run() never sees an empty set while the loop still goes on.
    if (closed_loop_) StartNext(absl::Now());
    absl::MutexLock lock(&mu_);
    in_flight_.erase(context);
  }

  absl::Duration elapsed() const {
    absl::MutexLock lock(&mu_);
    return (end_ == absl::InfinitePast() ? absl::Now() : end_) - start_;
  }
  int64_t in_flight() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(in_flight_.size());
  }

 private:
  // Starts one request scheduled at `scheduled` unless a limit is reached.
  bool StartNext(absl::Time scheduled) {
    v1::GenerateRequest request;
    size_t channel = 0;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_ || (max_requests_ > 0 && sent_ >= max_requests_) ||
          absl::Now() >= stop_sending_at_) {
        return false;
      }
      ++sent_;
      request = sampler_.Next();
      channel = static_cast<size_t>(sent_) % channels_.size();
    }
    const absl::Time deadline = absl::Now() + timeout_;
    if (cloud_api_) {
      auto* call = new Call<v1::CloudRequest, v1::CloudChunk>(
          this, scheduled, deadline, ToCloudRequest(request), request.locale());
      Track(call->context());
      call->Go(cloud_stubs_[channel].get());
    } else {
      std::string locale = request.locale();
      auto* call = new Call<v1::GenerateRequest, v1::GenerateResponse>(
          this, scheduled, deadline, std::move(request), std::move(locale));
      Track(call->context());
      call->Go(router_stubs_[channel].get());
    }
    return true;
  }

  void Track(grpc::ClientContext* context) {
    absl::MutexLock lock(&mu_);
    in_flight_.insert(context);
    if (stopped_) context->TryCancel();
  }

  v1::CloudRequest ToCloudRequest(const v1::GenerateRequest& r) const {
    v1::CloudRequest c;
    c.set_request_id(r.request_id());
    if (auto allowed = oracle_.Allowed(r.locale()); allowed.ok()) {
      c.mutable_claim()->set_jurisdiction(allowed->jurisdiction);
      c.mutable_claim()->set_country(allowed->country);
      for (const std::string& region : allowed->regions) c.mutable_claim()->add_allowed_regions(region);
    }
    c.mutable_claim()->set_policy_version(oracle_.version());
    *c.mutable_messages() = r.messages();
    *c.mutable_options() = r.options();
    return c;
  }

  void RunOpenLoop() {
    hr::load::ArrivalSchedule schedule(absl::GetFlag(FLAGS_rps), absl::GetFlag(FLAGS_seed) + 1);
    absl::Time next = absl::Now();
    while (true) {
      next += schedule.NextGap();
      const absl::Time now = absl::Now();
      if (next > now) absl::SleepFor(next - now);
      if (absl::Now() - next > absl::Milliseconds(1)) report_->AddLateStart();
      if (!StartNext(next)) break;
    }
  }

  const hr::load::ResidencyOracle& oracle_;
  hr::load::RequestSampler sampler_ ABSL_GUARDED_BY(mu_);
  hr::load::ReportBuilder* report_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::Router::Stub>> router_stubs_;
  std::vector<std::unique_ptr<v1::CloudInference::Stub>> cloud_stubs_;
  bool cloud_api_ = false;
  bool closed_loop_ = true;
  absl::Duration timeout_;
  int64_t max_requests_ = 0;

  mutable absl::Mutex mu_;
  absl::Time stop_sending_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time end_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<grpc::ClientContext*> in_flight_ ABSL_GUARDED_BY(mu_);
};

template <typename Request, typename Response>
void Call<Request, Response>::OnDone(const grpc::Status& status) {
  driver_->Finished(&context_, tracker_.End(status.error_code(), status.error_message()));
  delete this;
}

constexpr char kUsage[] = R"(Loads a device router over gRPC and reports per route.

  hr-load --workload W.textproto [--target 127.0.0.1:50051] [--policy P.textproto]
          [--mode closed --concurrency 8 | --mode open --rps 100]
          [--requests N] [--duration 10s] [--json report.json]

Each request draws a locale (by weight) and a prompt from the workload. The run stops
sending at --requests or --duration, whichever comes first, then waits for the
requests in flight (each has --timeout). Every request ends in the report: OK, a
gRPC status, or PROTOCOL (the stream broke the API's message order).

Residency: every response's region is checked against --policy, read independently
of the router. The exit status is 1 when any response was served in a region the
locale does not allow, 0 otherwise (failed requests alone do not fail the run); 2,
with no report, for bad flags or input or a target it cannot connect to.

--api cloud loads a CloudInference backend (or a proxy to one) with the same
workload; each request carries the residency claim --policy gives its locale.)";

int RealMain() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const std::string api = absl::GetFlag(FLAGS_api);
  hr::util::FlagChecks check;
  check.Require(mode == "closed" || mode == "open",
                absl::StrCat("--mode must be closed or open, not '", mode, "'"));
  check.Require(api == "router" || api == "cloud",
                absl::StrCat("--api must be router or cloud, not '", api, "'"));
  check.Require(!absl::GetFlag(FLAGS_workload).empty(), "--workload is required (see --help)");
  check.Require(absl::GetFlag(FLAGS_requests) >= 0, "--requests must not be negative");
  check.Require(absl::GetFlag(FLAGS_duration) >= absl::ZeroDuration(),
                "--duration must not be negative");
  check.Require(
      absl::GetFlag(FLAGS_requests) > 0 || absl::GetFlag(FLAGS_duration) > absl::ZeroDuration(),
      "give --requests or --duration, or the run never ends");
  check.Require(mode != "closed" || absl::GetFlag(FLAGS_concurrency) >= 1,
                "--concurrency must be at least 1");
  check.Require(mode != "open" || absl::GetFlag(FLAGS_rps) > 0, "--rps must be positive");
  check.Require(absl::GetFlag(FLAGS_channels) >= 1, "--channels must be at least 1");
  check.Require(absl::GetFlag(FLAGS_timeout) > absl::ZeroDuration(), "--timeout must be positive");
  check.Require(absl::GetFlag(FLAGS_connect_timeout) > absl::ZeroDuration(),
                "--connect_timeout must be positive");
  if (!check.ok()) {
    for (const std::string& problem : check.problems()) std::cerr << "error: " << problem << "\n";
    return 2;
  }
  auto workload = hr::load::LoadWorkloadFile(absl::GetFlag(FLAGS_workload));
  if (!workload.ok()) {
    std::cerr << "error: " << workload.status().message() << "\n";
    return 2;
  }
  auto oracle = hr::load::ResidencyOracle::FromFile(absl::GetFlag(FLAGS_policy));
  if (!oracle.ok()) {
    std::cerr << "error: " << oracle.status().message() << "\n";
    return 2;
  }
  if (api == "cloud") {
    for (const tools::LocaleMix& mix : workload->spec.locales()) {
      auto allowed = oracle->Allowed(mix.locale());
      if (allowed.ok() && allowed->regions.empty()) {
        std::cerr << "error: --api cloud: locale " << mix.locale() << " is local only under "
                  << absl::GetFlag(FLAGS_policy) << "; use cloud-bound locales\n";
        return 2;
      }
    }
  }

  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  const std::string cert = absl::GetFlag(FLAGS_tls_cert_file);
  const std::string key = absl::GetFlag(FLAGS_tls_key_file);
  if (absl::GetFlag(FLAGS_tls)) {
    if (absl::Status pair = hr::util::CheckCertificateAndKeyFlags(cert, key); !pair.ok()) {
      std::cerr << "error: " << pair.message() << "\n";
      return 2;
    }
    grpc::SslCredentialsOptions ssl;
    using hr::util::PemKind;
    for (auto [flag, file, out, kind] :
         {std::tuple{"--tls_ca_file", absl::GetFlag(FLAGS_tls_ca_file), &ssl.pem_root_certs,
                     PemKind::kCertificate},
          std::tuple{"--tls_cert_file", cert, &ssl.pem_cert_chain, PemKind::kCertificate},
          std::tuple{"--tls_key_file", key, &ssl.pem_private_key, PemKind::kPrivateKey}}) {
      if (file.empty()) continue;
      auto pem = hr::util::ReadPemFile(file, kind);
      if (!pem.ok()) {
        std::cerr << "error: " << flag << ": " << pem.status().message() << "\n";
        return 2;
      }
      *out = *std::move(pem);
    }
    credentials = grpc::SslCredentials(ssl);
  } else if (!absl::GetFlag(FLAGS_tls_ca_file).empty() ||
             !absl::GetFlag(FLAGS_tls_server_name).empty() || !cert.empty() || !key.empty()) {
    std::cerr << "error: --tls_ca_file, --tls_server_name, --tls_cert_file and --tls_key_file "
                 "need --tls\n";
    return 2;
  }

  hr::load::ReportBuilder report(&*oracle);
  Driver driver(*workload, *oracle, credentials, &report);
  if (!driver.Connect(absl::GetFlag(FLAGS_connect_timeout))) {
    std::cerr << "error: cannot connect to " << absl::GetFlag(FLAGS_target)
              << (absl::GetFlag(FLAGS_tls) ? " over TLS" : "") << " within "
              << absl::FormatDuration(absl::GetFlag(FLAGS_connect_timeout)) << "\n";
    return 2;
  }

  // SIGINT/SIGTERM: stop sending, cancel what is in flight, still report.
  const sigset_t signals = StopSignals();
  absl::Notification finished;
  std::thread signal_thread([&] {
    timespec tick{0, 200 * 1000 * 1000};
    while (!finished.HasBeenNotified()) {
      if (sigtimedwait(&signals, nullptr, &tick) > 0) {
        std::cerr << "hr-load: signal received, cancelling requests in flight\n";
        driver.Stop();
      }
    }
  });
  std::thread progress_thread([&] {
    if (!absl::GetFlag(FLAGS_progress)) return;
    int64_t last_done = 0;
    while (!finished.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      auto p = report.progress();
      std::cerr << absl::StrFormat(
          "[%5.1fs] done %d (ok %d, failed %d), in flight %d, %d/s, violations %d\n",
          absl::ToDoubleSeconds(driver.elapsed()), p.done, p.ok, p.failed, driver.in_flight(),
          p.done - last_done, p.violations);
      last_done = p.done;
    }
  });

  driver.Run();
  finished.Notify();
  signal_thread.join();
  progress_thread.join();

  tools::LoadReport r = report.Build(driver.elapsed());
  r.set_target(absl::GetFlag(FLAGS_target));
  r.set_api(api);
  r.set_mode(mode);
  if (mode == "closed") r.set_concurrency(absl::GetFlag(FLAGS_concurrency));
  if (mode == "open") r.set_target_rps(absl::GetFlag(FLAGS_rps));

  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) {
    std::string json;
    google::protobuf::util::JsonPrintOptions opts;
    opts.add_whitespace = true;
    opts.always_print_primitive_fields = true;
    opts.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(r, &json, opts);
    if (json_path == "-") {
      std::cout << json;
    } else {
      std::ofstream out(json_path);
      out << json;
      if (!out) {
        std::cerr << "error: cannot write " << json_path << "\n";
        return 1;
      }
    }
  }
  if (json_path != "-") std::cout << hr::load::FormatReport(r);
  return r.residency_violations() > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  hr::grpc_util::KeepTlsAliveUntilExit();
  // Block termination signals in every thread; a thread of ours waits for them.
  const sigset_t signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  hr::util::ListOwnFlagsInHelp();
  absl::SetProgramUsageMessage(kUsage);
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil checks every mutex acquisition for lock-order cycles; that
  // costs more than the locking itself on the request path. Tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return RealMain();
}
