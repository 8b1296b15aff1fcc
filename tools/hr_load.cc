// hr-load: puts a device router (or a cloud backend, or a proxy in front of one)
// under load over gRPC and reports latency, throughput and residency per route.
#include <signal.h>

#include <algorithm>
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

ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "address to load: hr-device (--api router), or "
          "hr-cloud or a proxy in front of it (--api cloud, cloud_stream)");
ABSL_FLAG(std::string, api, "router",
          "router (hybridrouter.v1.Router), cloud "
          "(hybridrouter.v1.CloudInference.Generate, with a residency claim made from --policy) "
          "or cloud_stream (the same over one GenerateStream a channel, as hr-device's "
          "shared_stream sends them)");
ABSL_FLAG(std::string, workload, "",
          "workload file (hybridrouter.tools.LoadWorkload: textproto, or JSON if named *.json); "
          "required");
ABSL_FLAG(std::string, policy, "deploy/local/policy.textproto",
          "policy file for the independent "
          "residency check (and the claims of --api cloud and cloud_stream)");
ABSL_FLAG(std::string, mode, "closed", "closed (--concurrency streams, each sends its next "
          "request when the last ends) or open (Poisson arrivals at --rps)");
ABSL_FLAG(int, concurrency, 8, "closed loop: concurrent streams");
ABSL_FLAG(double, rps, 100, "open loop: mean requests per second");
ABSL_FLAG(int64_t, requests, 0, "stop after this many requests (0: no count limit)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "stop sending after this long (0: no "
          "time limit); requests in flight then finish");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "deadline of each request");
ABSL_FLAG(int, channels, 1, "gRPC connections to spread the requests over");
ABSL_FLAG(absl::Duration, stream_max_age, absl::Seconds(30),
          "--api cloud_stream: after this long a channel's new requests go on a new stream, "
          "and the old one closes once its requests have ended, as hr-device renews a "
          "shared stream (0: one stream a channel for the whole run, which a backend's "
          "--max_connection_age ends under its requests)");
ABSL_FLAG(int64_t, break_streams_every, 0,
          "--api cloud_stream, fault injection: before every Nth call is added to the stream "
          "it was handed, break that stream (cancel it, as a lost connection would) unless "
          "other calls are waiting on it; the call then goes on a new stream, as after a "
          "real break. Tests hr-load's retry and a backend's handling of cancelled streams "
          "(0: never)");
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

// How long after a streamed call's deadline hr-load waits for the backend to
// end it (it should, DEADLINE_EXCEEDED) before ending it itself.
constexpr absl::Duration kStreamedCallGrace = absl::Seconds(1);

// How many of a channel's streams a call is offered before it ends UNAVAILABLE:
// the stream a call was given may break before the call is added to it.
constexpr int kStreamAttempts = 2;

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

// One GenerateStream to a backend, carrying many calls as a device's shared
// stream does (--api cloud_stream). Calls end as their answers or statuses
// arrive, all at once with the stream's status if it ends, or here when the
// backend has not answered by their deadline and a grace period.
//
// Calls are added from the driver's threads, outside gRPC's reactions (and
// before StartCall, which gRPC allows once the stream is bound), so the
// stream holds gRPC's call open (AddHold) until nothing will start another
// write on it: gRPC frees the call before OnDone, and a write started on a
// finished call would touch freed memory.
class CallStream : public grpc::ClientBidiReactor<v1::CloudStreamRequests, v1::CloudStreamChunks> {
 public:
  explicit CallStream(Driver* driver) : driver_(driver) {}

  // Binds the stream to a call on `stub`: from then on calls may be added; they
  // wait for Start. `self` owns the stream until gRPC is done with it (OnDone).
  void Bind(v1::CloudInference::Stub* stub, std::shared_ptr<CallStream> self) {
    self_ = std::move(self);
    stub->async()->GenerateStream(&context_, this);
    AddHold();
    StartRead(&in_);
  }
  void Start() { StartCall(); }

  // Promises the stream one more call: Close() waits for it to be added, so a
  // stream retired by another thread in between still takes it.
  void HandOut() {
    absl::MutexLock lock(&mu_);
    ++handed_out_;
  }

  // Sends `call`, handed out before, which ends as its answer arrives. False,
  // with `call` and `tracker` left as they were, once the stream is ending (it
  // broke or the backend ended it): the call needs another stream then.
  bool Add(v1::CloudStreamCall& call, AnswerTracker& tracker, absl::Time deadline);

  // Ends, DEADLINE_EXCEEDED, the calls still waiting `grace` after their
  // deadline, and tells the backend to stop them.
  void Expire(absl::Duration grace);

  // No more calls but those handed out: closes the sending side once they are
  // added and what is queued is written.
  void Close() {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    WriteNextLocked();
  }
  void Cancel() { context_.TryCancel(); }
  // --break_streams_every: unless a call is waiting on the stream, or it is
  // ending already, ends it as a failed write does (Add refuses calls from now
  // on) and cancels it. True if it did.
  bool BreakIfIdle() {
    {
      absl::MutexLock lock(&mu_);
      if (!waiting_.empty() || releasing_) return false;
      releasing_ = true;
      WriteNextLocked();
    }
    context_.TryCancel();
    return true;
  }
  // False once the stream is closed or ending: new calls need a new stream.
  bool usable() {
    absl::MutexLock lock(&mu_);
    return !closing_ && !releasing_;
  }
  // Why Add refused a call: the stream is ending.
  std::string refusal() {
    absl::MutexLock lock(&mu_);
    if (!end_message_.empty()) return absl::StrCat("the stream ended: ", end_message_);
    return "the stream is ending";
  }
  // Waits for the stream to end; false after `timeout`.
  bool WaitDone(absl::Duration timeout) {
    return ended_note_.WaitForNotificationWithTimeout(timeout);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) releasing_ = true;  // the stream broke
    WriteNextLocked();
  }
  void OnWritesDoneDone(bool /*ok*/) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    releasing_ = true;  // nothing more to send
    WriteNextLocked();
  }
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  struct Waiting {
    AnswerTracker tracker;
    absl::Time deadline;
  };

  // Starts the next write (the calls and cancellations queued since the last
  // one, all in one message, or the close) unless one is in flight; once the
  // stream is ending and no write is in flight, lets the call finish. gRPC may
  // run a reaction inside StartWrite, so the write starts after mu_ is released.
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || !held_) return;
    if (releasing_) {
      held_ = false;
      mu_.Unlock();
      RemoveHold();
      mu_.Lock();
    } else if (queued_.calls_size() > 0 || queued_.cancel_size() > 0) {
      writing_ = true;
      out_ = std::move(queued_);
      queued_.Clear();
      mu_.Unlock();
      StartWrite(&out_);
      mu_.Lock();
    } else if (closing_ && handed_out_ == 0) {
      writing_ = true;
      mu_.Unlock();
      StartWritesDone();
      mu_.Lock();
    }
  }

  void Report(std::vector<Outcome> ended);

  Driver* const driver_;
  std::shared_ptr<CallStream> self_;  // from Bind to the end of OnDone
  grpc::ClientContext context_;
  v1::CloudStreamChunks in_;
  v1::CloudStreamRequests out_;  // the message being written
  absl::Notification ended_note_;
  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  v1::CloudStreamRequests queued_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;  // a write or the close is being started or in flight
  bool closing_ ABSL_GUARDED_BY(mu_) = false;  // Close() was called
  int handed_out_ ABSL_GUARDED_BY(mu_) = 0;    // calls promised by HandOut, not yet added
  bool releasing_ ABSL_GUARDED_BY(mu_) = false;  // ending: no more writes, the hold goes
  bool held_ ABSL_GUARDED_BY(mu_) = true;        // the hold Bind() took is still there
  std::string end_message_ ABSL_GUARDED_BY(mu_);
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
    cloud_api_ = absl::GetFlag(FLAGS_api) != "router";
    streamed_ = absl::GetFlag(FLAGS_api) == "cloud_stream";
    stream_max_age_ = absl::GetFlag(FLAGS_stream_max_age);
    closed_loop_ = absl::GetFlag(FLAGS_mode) == "closed";
    timeout_ = absl::GetFlag(FLAGS_timeout);
    max_requests_ = absl::GetFlag(FLAGS_requests);
    break_streams_every_ = absl::GetFlag(FLAGS_break_streams_every);
  }

  // Waits for every channel to connect (the first requests should not pay for it).
  bool Connect(absl::Duration timeout) {
    for (auto& c : channels_) {
      if (!c->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) return false;
    }
    if (streamed_) {
      for (size_t i = 0; i < channels_.size(); ++i) StreamOn(i, /*hand_out=*/false);
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
    const absl::Condition all_ended(
        +[](Driver* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
          return d->in_flight_.empty() && d->streamed_in_flight_ == 0;
        },
        this);
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(all_ended, absl::Milliseconds(100))) {
          end_ = absl::Now();
          break;
        }
      }
      // A backend that stopped answering must not hold the run up forever.
      for (const auto& s : Streams()) s->Expire(kStreamedCallGrace);
    }
    for (const auto& s : Streams()) s->Close();
    for (const auto& s : Streams()) {
      if (s->WaitDone(absl::Seconds(5))) continue;
      s->Cancel();
      s->WaitDone(absl::InfiniteDuration());
    }
  }

  // Stops sending and cancels what is in flight (SIGINT/SIGTERM); the cancelled
  // calls are reported as CANCELLED.
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    for (grpc::ClientContext* c : in_flight_) c->TryCancel();
    for (const auto& s : Streams()) s->Cancel();
  }

  void Finished(grpc::ClientContext* context, const Outcome& outcome) {
    report_->Add(outcome);
    // Closed loop: the next request starts before this one leaves in_flight_, so
    // that Run() never sees an empty set while the loop still goes on.
    if (closed_loop_) StartNext(absl::Now());
    absl::MutexLock lock(&mu_);
    in_flight_.erase(context);
  }

  // A call of a CallStream ended.
  void FinishedStreamed(const Outcome& outcome) {
    report_->Add(outcome);
    if (closed_loop_) StartNext(absl::Now());
    absl::MutexLock lock(&mu_);
    --streamed_in_flight_;
  }

  absl::Duration elapsed() const {
    absl::MutexLock lock(&mu_);
    return (end_ == absl::InfinitePast() ? absl::Now() : end_) - start_;
  }
  // The streams --break_streams_every broke.
  int64_t broken_streams() const { return broken_streams_.load(std::memory_order_relaxed); }
  int64_t in_flight() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(in_flight_.size()) + streamed_in_flight_;
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
      if (streamed_) ++streamed_in_flight_;
    }
    const absl::Time deadline = absl::Now() + timeout_;
    if (streamed_) {
      v1::CloudStreamCall call;
      call.set_call_id(next_call_id_.fetch_add(1, std::memory_order_relaxed));
      *call.mutable_request() = ToCloudRequest(request);
      call.set_timeout_micros(absl::ToInt64Microseconds(timeout_));
      AnswerTracker tracker(scheduled, request.request_id(), request.locale());
      // A stream that broke since StreamOn gave it: the call goes on the
      // channel's next stream; when kStreamAttempts streams in a row will not
      // take it, it ends UNAVAILABLE. (A stream retired in between still takes it.)
      std::shared_ptr<CallStream> stream = StreamOn(channel);
      if (break_streams_every_ > 0 && call.call_id() % break_streams_every_ == 0 &&
          stream->BreakIfIdle()) {
        broken_streams_.fetch_add(1, std::memory_order_relaxed);
      }
      bool added = stream->Add(call, tracker, deadline);
      for (int attempt = 1; !added && attempt < kStreamAttempts; ++attempt) {
        stream = StreamOn(channel);
        added = stream->Add(call, tracker, deadline);
      }
      if (!added) FinishedStreamed(tracker.End(grpc::StatusCode::UNAVAILABLE, stream->refusal()));
    } else if (cloud_api_) {
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

  // The open stream of `channel`; a new one, as a device opens, when the last
  // one has ended or is older than --stream_max_age. An old stream is closed:
  // its calls finish on it. With `hand_out`, the stream is promised the call the
  // caller adds next (CallStream::HandOut), before another thread can retire it.
  std::shared_ptr<CallStream> StreamOn(size_t channel, bool hand_out = true) {
    std::shared_ptr<CallStream> fresh;
    std::shared_ptr<CallStream> retired;
    {
      absl::MutexLock lock(&streams_mu_);
      if (current_streams_.size() <= channel) current_streams_.resize(channel + 1);
      OpenStream& open = current_streams_[channel];
      const absl::Time now = absl::Now();
      if (open.stream != nullptr && open.stream->usable()) {
        if (stream_max_age_ <= absl::ZeroDuration() || now - open.opened < stream_max_age_) {
          if (hand_out) open.stream->HandOut();
          return open.stream;
        }
        retired = open.stream;
      }
      // Streams that ended are gone: against a backend that is down, a closed
      // loop opens one stream per attempt.
      all_streams_.erase(std::remove_if(all_streams_.begin(), all_streams_.end(),
                                        [](const auto& s) { return s.expired(); }),
                         all_streams_.end());
      fresh = open.stream = std::make_shared<CallStream>(this);
      open.opened = now;
      all_streams_.push_back(fresh);
      fresh->Bind(cloud_stubs_[channel].get(), fresh);  // before another thread can add to it
      if (hand_out) fresh->HandOut();
    }
    // Outside the lock: a stream that fails at once, or one whose close lets it
    // end, may call back from here.
    fresh->Start();
    if (retired != nullptr) retired->Close();
    return fresh;
  }

  // The streams gRPC is not done with yet, and the current ones.
  std::vector<std::shared_ptr<CallStream>> Streams() {
    absl::MutexLock lock(&streams_mu_);
    std::vector<std::shared_ptr<CallStream>> out;
    for (const auto& weak : all_streams_) {
      if (auto s = weak.lock()) out.push_back(std::move(s));
    }
    return out;
  }

  struct OpenStream {
    std::shared_ptr<CallStream> stream;
    absl::Time opened;
  };

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
  std::atomic<uint64_t> next_call_id_{1};
  int64_t break_streams_every_ = 0;
  std::atomic<int64_t> broken_streams_{0};
  bool cloud_api_ = false;
  bool streamed_ = false;
  absl::Duration stream_max_age_;
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
  int64_t streamed_in_flight_ ABSL_GUARDED_BY(mu_) = 0;

  // --api cloud_stream: the stream of each channel, and every stream gRPC is
  // not done with yet (each owns itself until its OnDone), to expire and close.
  absl::Mutex streams_mu_;
  std::vector<OpenStream> current_streams_ ABSL_GUARDED_BY(streams_mu_);
  std::vector<std::weak_ptr<CallStream>> all_streams_ ABSL_GUARDED_BY(streams_mu_);
};

bool CallStream::Add(v1::CloudStreamCall& call, AnswerTracker& tracker, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  --handed_out_;
  if (releasing_) {
    WriteNextLocked();  // the hold may go now
    return false;
  }
  waiting_.emplace(call.call_id(), Waiting{std::move(tracker), deadline});
  *queued_.add_calls() = std::move(call);
  WriteNextLocked();
  return true;
}

void CallStream::Expire(absl::Duration grace) {
  std::vector<Outcome> ended;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (now - it->second.deadline < grace) {
        ++it;
        continue;
      }
      ended.push_back(it->second.tracker.End(grpc::StatusCode::DEADLINE_EXCEEDED,
                                             "the backend did not end the call by its deadline"));
      queued_.add_cancel(it->first);
      waiting_.erase(it++);
    }
    if (!ended.empty()) WriteNextLocked();
  }
  Report(std::move(ended));
}

void CallStream::OnReadDone(bool ok) {
  if (!ok) {  // the stream is ending: OnDone follows once the hold is gone
    absl::MutexLock lock(&mu_);
    releasing_ = true;
    WriteNextLocked();
    return;
  }
  std::vector<Outcome> ended;
  {
    absl::MutexLock lock(&mu_);
    for (const v1::CloudStreamChunk& c : in_.chunks()) {
      auto it = waiting_.find(c.call_id());
      if (it == waiting_.end()) continue;  // a call given up on here
      if (c.code() == 0) {
        it->second.tracker.Observe(c.chunk());
        if (!it->second.tracker.done()) continue;
      }
      ended.push_back(it->second.tracker.End(c.code(), c.message()));
      waiting_.erase(it);
    }
  }
  Report(std::move(ended));
  StartRead(&in_);
}

void CallStream::OnDone(const grpc::Status& status) {
  // gRPC is done with the stream: it lives on while someone else holds it, at
  // most to the end of this reaction otherwise.
  const std::shared_ptr<CallStream> self = std::move(self_);
  std::vector<Outcome> ended;
  {
    absl::MutexLock lock(&mu_);
    end_message_ = status.ok() ? "the backend closed it" : status.error_message();
    // OK with calls still waiting is the backend ending the stream under them.
    const int code = status.ok() ? grpc::StatusCode::UNAVAILABLE : status.error_code();
    for (auto& [id, w] : waiting_) {
      ended.push_back(w.tracker.End(code, absl::StrCat("the stream ended: ", end_message_)));
    }
    waiting_.clear();
  }
  Report(std::move(ended));
  ended_note_.Notify();
}

void CallStream::Report(std::vector<Outcome> ended) {
  for (const Outcome& o : ended) driver_->FinishedStreamed(o);
}

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
workload; each request carries the residency claim --policy gives its locale.
--api cloud_stream sends those requests over one GenerateStream a channel
(--channels), as hr-device does for a shared_stream backend; a stream that ends
ends its requests (UNAVAILABLE) and the next request opens a new one. After
--stream_max_age new requests go on a new stream, as hr-device's do.)";

int RealMain() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const std::string api = absl::GetFlag(FLAGS_api);
  hr::util::FlagChecks check;
  check.Require(mode == "closed" || mode == "open",
                absl::StrCat("--mode must be closed or open, not '", mode, "'"));
  check.Require(api == "router" || api == "cloud" || api == "cloud_stream",
                absl::StrCat("--api must be router, cloud or cloud_stream, not '", api, "'"));
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
  // Each channel is a connection of its own, with its buffers: many thousands
  // take gigabytes and end in a connect timeout that names no flag.
  constexpr int kMaxChannels = 1024;
  check.Require(absl::GetFlag(FLAGS_channels) >= 1 && absl::GetFlag(FLAGS_channels) <= kMaxChannels,
                absl::StrCat("--channels must be 1 to ", kMaxChannels));
  check.Require(absl::GetFlag(FLAGS_stream_max_age) >= absl::ZeroDuration(),
                "--stream_max_age must not be negative");
  check.Require(absl::GetFlag(FLAGS_break_streams_every) >= 0,
                "--break_streams_every must not be negative");
  check.Require(absl::GetFlag(FLAGS_break_streams_every) == 0 || api == "cloud_stream",
                "--break_streams_every needs --api cloud_stream");
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
  if (api != "router") {
    for (const tools::LocaleMix& mix : workload->spec.locales()) {
      auto allowed = oracle->Allowed(mix.locale());
      if (allowed.ok() && allowed->regions.empty()) {
        std::cerr << "error: --api " << api << ": locale " << mix.locale()
                  << " is local only under " << absl::GetFlag(FLAGS_policy)
                  << "; use cloud-bound locales\n";
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
  if (absl::GetFlag(FLAGS_break_streams_every) > 0) {
    std::cerr << "streams broken before a call was added to them (--break_streams_every): "
              << driver.broken_streams() << "\n";
  }

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
  hr::util::ParseCommandLine(argc, argv, kUsage);
  // Debian's Abseil checks every mutex acquisition for lock-order cycles; that
  // costs more than the locking itself on the request path. Tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return RealMain();
}
