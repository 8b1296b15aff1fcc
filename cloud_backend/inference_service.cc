#include "cloud_backend/inference_service.h"

#include <atomic>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "grpc_util/server_util.h"
#include "grpc_util/stream_sink.h"
#include "grpc_util/write_batches.h"
#include "policy/residency_policy.h"
#include "router/request_validation.h"
#include "spdlog/spdlog.h"
#include "util/log_format.h"

namespace hr::cloud {

using grpc_util::SinkReactor;
using grpc_util::ToGrpcStatus;

namespace {

// What queued up behind a write in flight goes out as one message: text joins
// the text before it, and the final message joins the last text.
bool MergeChunks(v1::CloudChunk& queued, v1::CloudChunk& next) {
  if (queued.has_done() || next.has_start()) return false;
  queued.mutable_text()->append(next.text());
  if (next.has_done()) *queued.mutable_done() = std::move(*next.mutable_done());
  return true;
}

// The answer's start travels in its first message, together with the first text
// (or the final message), rather than in a message of its own.
class StartOnce {
 public:
  explicit StartOnce(v1::CloudStart start) : start_(std::move(start)) {}
  void AddTo(v1::CloudChunk& chunk) {
    if (!sent_.exchange(true, std::memory_order_acq_rel)) *chunk.mutable_start() = start_;
  }

 private:
  const v1::CloudStart start_;
  std::atomic<bool> sent_{false};
};

}  // namespace

absl::Status ValidateCloudRequest(const v1::CloudRequest& r) {
  if (absl::Status messages = router::ValidateChatMessages(r.messages()); !messages.ok()) {
    return messages;
  }
  // The device's own limits: what it forwards, it has checked against them.
  return router::ValidateGenerationOptions(r.options(), router::RequestLimits{});
}

InferenceService::InferenceService(InferenceServiceOptions options, engine::EnginePool* pool)
    : options_(std::move(options)), pool_(pool) {
  if (!options_.record_path.empty()) {
    absl::MutexLock lock(&record_mu_);
    record_.open(options_.record_path, std::ios::app);
  }
}

void InferenceService::Record(const v1::CloudRequest& request) {
  if (options_.record_path.empty()) return;
  absl::MutexLock lock(&record_mu_);
  record_ << request.ShortDebugString() << "\n";
  record_.flush();
}

namespace {

// gRPC's side of a Generate call, counted in the service's live calls until gRPC
// is done with it.
class GenerateReactor final : public SinkReactor<v1::CloudChunk> {
 public:
  explicit GenerateReactor(grpc_util::LiveCalls* calls)
      : SinkReactor<v1::CloudChunk>(&MergeChunks), token_(calls) {}

 private:
  grpc_util::LiveCalls::Token token_;
};

// Who the caller proved to be: the names of its client certificate under mutual
// TLS (its subject alternative names, or else its common name), "-" otherwise.
std::string ClientOf(const grpc::CallbackServerContext* context) {
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "-";
  std::vector<absl::string_view> names;
  for (const grpc::string_ref& name : auth->GetPeerIdentity()) {
    names.emplace_back(name.data(), name.size());
  }
  return names.empty() ? "-" : absl::StrJoin(names, ",");
}

}  // namespace

void InferenceService::SetPolicy(std::shared_ptr<const policy::ResidencyPolicy> policy) {
  absl::MutexLock lock(&policy_mu_);
  policy_ = std::move(policy);
  skews_seen_.clear();
}

void InferenceService::NoteVersionSkew(const policy::ResidencyPolicy& own,
                                       const v1::ResidencyClaim& claim) {
  if (claim.policy_version() == own.version()) return;
  std::string theirs = util::ForLog(claim.policy_version());
  {
    absl::MutexLock lock(&policy_mu_);
    if (skews_seen_.size() >= kMaxPolicySkews || !skews_seen_.insert(theirs).second) return;
  }
  spdlog::warn(
      "a request was decided under policy version={} and this backend enforces version={}; "
      "requests are checked against this backend's (said once per version)",
      theirs, own.version());
}

std::shared_ptr<const policy::ResidencyPolicy> InferenceService::policy() const {
  absl::MutexLock lock(&policy_mu_);
  return policy_;
}

grpc::ServerWriteReactor<v1::CloudChunk>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const v1::CloudRequest* request) {
  auto* reactor = new GenerateReactor(&live_calls_);
  auto sink = reactor->sink();
  CallOutput out;
  out.send = [sink](v1::CloudChunk chunk) { sink->Send(std::move(chunk)); };
  out.send_last = [sink](v1::CloudChunk chunk) {
    sink->SendLast(std::move(chunk), grpc::Status::OK);
  };
  out.fail = [sink](absl::Status status) { sink->Finish(ToGrpcStatus(status)); };
  std::shared_ptr<engine::GenerationJob> job = Serve(
      *request, absl::FromChrono(context->deadline()), "call", ClientOf(context), std::move(out));
  if (job != nullptr) {
    std::weak_ptr<engine::GenerationJob> weak_job = job;
    sink->OnCancel([weak_job] {
      if (auto j = weak_job.lock()) j->cancelled.store(true);
    });
  }
  return reactor;
}

std::shared_ptr<engine::GenerationJob> InferenceService::Serve(const v1::CloudRequest& request,
                                                               absl::Time deadline, const char* via,
                                                               const std::string& client,
                                                               CallOutput out) {
  const absl::Time start = absl::Now();
  const std::string id = util::ForLog(request.request_id(), 128);

  // The residency check comes before anything else looks at the request.
  std::vector<std::string> allowed(request.claim().allowed_regions().begin(),
                                   request.claim().allowed_regions().end());
  absl::Status status = policy::CheckResidencyClaim(allowed, options_.region);
  if (status.ok()) {
    if (std::shared_ptr<const policy::ResidencyPolicy> own = policy(); own != nullptr) {
      const v1::ResidencyClaim& claim = request.claim();
      NoteVersionSkew(*own, claim);
      status = policy::CheckClaimAgainstPolicy(*own, claim.jurisdiction(), claim.country(),
                                               options_.region, options_.model_family);
    }
  }
  if (status.ok() && draining_.load()) {
    status = absl::UnavailableError("backend is draining for shutdown");
  }
  if (status.ok()) status = ValidateCloudRequest(request);
  if (!status.ok()) {
    spdlog::warn(
        "refused request_id={} via={} client={} jurisdiction={} device_policy={} code={} "
        "reason=\"{}\"",
        id, via, client, util::ForLog(request.claim().jurisdiction()),
        util::ForLog(request.claim().policy_version()), absl::StatusCodeToString(status.code()),
        status.message());
    out.fail(status);
    return nullptr;
  }
  Record(request);

  auto job = std::make_shared<engine::GenerationJob>();
  for (const v1::ChatMessage& m : request.messages()) {
    job->messages.push_back({m.role(), m.content()});
  }
  const v1::GenerationOptions& o = request.options();
  job->max_tokens = o.max_tokens() > 0 ? o.max_tokens() : options_.max_tokens_default;
  job->temperature = o.temperature();
  job->seed = o.seed();
  job->stop.assign(o.stop().begin(), o.stop().end());
  job->deadline = deadline;

  v1::CloudStart start_message;
  start_message.set_region(options_.region);
  start_message.set_model(options_.model);
  auto start_once = std::make_shared<StartOnce>(std::move(start_message));
  auto output = std::make_shared<CallOutput>(std::move(out));

  job->on_text = [output, start_once](absl::string_view text) {
    v1::CloudChunk chunk;
    start_once->AddTo(chunk);
    chunk.set_text(std::string(text));
    output->send(std::move(chunk));
  };
  std::string region = options_.region;
  std::string jurisdiction = util::ForLog(request.claim().jurisdiction());
  std::string device_policy = util::ForLog(request.claim().policy_version());
  // The job holds this callback, so it refers to the job weakly; the pool keeps
  // the job while it calls it.
  std::weak_ptr<engine::GenerationJob> weak_job = job;
  job->on_done = [output, start_once, id, via, client, region, jurisdiction, device_policy, start,
                  weak_job](absl::StatusOr<engine::GenerationResult> r) {
    absl::Status s = r.status();
    // An answer that ended early (cancelled, say) cost the tokens made until then.
    int tokens = 0;
    if (r.ok()) {
      tokens = r->completion_tokens;
    } else if (std::shared_ptr<engine::GenerationJob> j = weak_job.lock(); j != nullptr) {
      tokens = j->tokens_generated.load(std::memory_order_relaxed);
    }
    // Logged before the answer leaves, unlike hr-device's line: every answer a
    // backend gives has its served line (region, jurisdiction), even if the
    // process dies just after.
    spdlog::info(
        "served request_id={} via={} client={} jurisdiction={} device_policy={} region={} code={} "
        "completion_tokens={} micros={}",
        id, via, client, jurisdiction, device_policy, region, absl::StatusCodeToString(s.code()),
        tokens, absl::ToInt64Microseconds(absl::Now() - start));
    if (!r.ok()) {
      output->fail(s);
      return;
    }
    v1::CloudChunk done;
    start_once->AddTo(done);
    done.mutable_done()->mutable_usage()->set_prompt_tokens(r->prompt_tokens);
    done.mutable_done()->mutable_usage()->set_completion_tokens(r->completion_tokens);
    done.mutable_done()->set_finish_reason(r->finish_reason);
    done.mutable_done()->set_region(region);
    output->send_last(std::move(done));
  };

  if (absl::Status submitted = pool_->Submit(job); !submitted.ok()) {
    spdlog::warn("refused request_id={} via={} client={} code={}", id, via, client,
                 absl::StatusCodeToString(submitted.code()));
    output->fail(submitted);
    return nullptr;
  }
  return job;
}

// One GenerateStream: reads calls and cancellations, serves each call as Generate
// would, and writes what the calls send, one write in flight at a time, with
// whatever queued up behind it in one message. The calls' callbacks hold it by
// shared_ptr, so it outlives the reactor; gRPC operations are started outside the
// lock (a reaction may run inline), and the stream is finished only when no read
// is being started and no write is in flight, so nothing starts after Finish.
class InferenceService::Stream : public std::enable_shared_from_this<Stream> {
 public:
  using Reactor = grpc::ServerBidiReactor<v1::CloudStreamRequests, v1::CloudStreamChunks>;

  // `client`: who the caller proved to be, for the log (ClientOf).
  Stream(InferenceService* service, Reactor* reactor, std::string client)
      : service_(service), client_(std::move(client)), reactor_(reactor) {}

  // Starts reading calls; for a service already draining, ends the stream instead.
  void Begin(bool draining) {
    spdlog::debug("stream opened client={}", client_);
    {
      absl::MutexLock lock(&mu_);
      draining_ = draining;
      starting_read_ = true;
    }
    ReadNext();
  }

  void OnReadDone(bool ok) {
    if (!ok) {  // the caller closed its side, or the stream is over
      absl::MutexLock lock(&mu_);
      reading_done_ = true;
      // Unlocks before Finish: see FinishIfDone.
      return FinishIfDone(lock);
    }
    {
      absl::MutexLock lock(&mu_);
      starting_read_ = true;  // no Finish until the next read is started
    }
    for (uint64_t id : in_.cancel()) {
      std::shared_ptr<engine::GenerationJob> job;
      {
        absl::MutexLock lock(&mu_);
        auto it = live_.find(id);
        if (it == live_.end()) continue;
        job = it->second.lock();
        live_.erase(it);  // nothing more is sent for it
      }
      if (job) job->cancelled.store(true);
    }
    for (v1::CloudStreamCall& call : *in_.mutable_calls()) StartCall(call);
    in_.Clear();
    ReadNext();
  }

  void OnWriteDone(bool ok) {
    const v1::CloudStreamChunks* next = nullptr;
    Reactor* reactor;
    {
      absl::MutexLock lock(&mu_);
      out_.WriteDone();
      if (!ok) {  // the caller is gone
        closed_ = true;
        out_.Clear();
      }
      next = out_.Next();
      if (next == nullptr) return FinishIfDone(lock);
      reactor = reactor_;
    }
    reactor->StartWrite(next);
  }

  void OnCancel() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    cancelled_ = true;
    for (auto& job : TakeLiveJobsLocked()) job->cancelled.store(true);
    FinishIfDone(lock);
  }

  // Logs how the stream ended here rather than at Finish: a caller that cancels
  // a stream with no call on it fails its read before gRPC reports the cancel,
  // so the stream may finish OK and learn only later that nobody heard it.
  void OnDone() {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
    closed_ = true;
    spdlog::debug("stream ended client={} code={}", client_,
                  cancelled_ ? "CANCELLED" : absl::StatusCodeToString(finish_code_));
  }

  // The service drains: Serve refuses new calls, and the stream ends once its
  // last call has.
  void Drain() {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    FinishIfDone(lock);
  }

 private:
  // Starts the next read, or ends the stream if it is done.
  void ReadNext() {
    Reactor* reactor;
    {
      absl::MutexLock lock(&mu_);
      if (finish_started_ || closed_ || !broken_.ok() || (draining_ && live_.empty())) {
        starting_read_ = false;
        return FinishIfDone(lock);
      }
      reactor = reactor_;
    }
    reactor->StartRead(&in_);
    absl::MutexLock lock(&mu_);
    starting_read_ = false;
    FinishIfDone(lock);
  }

  void StartCall(v1::CloudStreamCall& call) {
    const uint64_t id = call.call_id();
    std::vector<std::shared_ptr<engine::GenerationJob>> running;
    bool duplicate = false;
    {
      absl::MutexLock lock(&mu_);
      if (closed_ || finish_started_ || !broken_.ok()) return;
      if (!live_.try_emplace(id).second) {
        // Answers are told apart by their call id alone, so the caller could not
        // tell these two calls' answers apart: the stream ends, as an HTTP/2
        // connection does when a stream id is used twice.
        spdlog::warn("GenerateStream: call id {} sent again while in use; the stream ends", id);
        duplicate = true;
        broken_ = grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("call id ", id, " was sent again while that call was still running"));
        running = TakeLiveJobsLocked();
      }
    }
    if (duplicate) {
      for (auto& job : running) job->cancelled.store(true);
      return;  // ReadNext, after this message's calls, ends the stream
    }
    const absl::Time deadline = call.timeout_micros() > 0
                                    ? absl::Now() + absl::Microseconds(call.timeout_micros())
                                    : absl::InfiniteFuture();
    auto self = shared_from_this();
    CallOutput out;
    out.send = [self, id](v1::CloudChunk chunk) { self->Add(id, std::move(chunk), false); };
    out.send_last = [self, id](v1::CloudChunk chunk) { self->Add(id, std::move(chunk), true); };
    out.fail = [self, id](absl::Status status) {
      v1::CloudStreamChunk failed;
      failed.set_call_id(id);
      failed.set_code(static_cast<int>(status.code()));
      failed.set_message(std::string(status.message()));
      self->Add(std::move(failed), true);
    };
    std::shared_ptr<engine::GenerationJob> job =
        service_->Serve(call.request(), deadline, "stream", client_, std::move(out));
    if (job == nullptr) return;
    bool cancel = false;
    {
      absl::MutexLock lock(&mu_);
      auto it = live_.find(id);
      if (it != live_.end()) {
        it->second = job;
      } else {
        cancel = closed_;  // the stream went while the call started
      }
    }
    if (cancel) job->cancelled.store(true);
  }

  // Forgets the calls still running (nothing more is sent for them) and returns
  // their jobs, for the caller to cancel.
  std::vector<std::shared_ptr<engine::GenerationJob>> TakeLiveJobsLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::shared_ptr<engine::GenerationJob>> jobs;
    for (auto& [id, weak] : live_) {
      if (auto job = weak.lock()) jobs.push_back(std::move(job));
    }
    live_.clear();
    return jobs;
  }

  // A message of call `id`'s answer; `last`: the call ends with it.
  void Add(uint64_t id, v1::CloudChunk chunk, bool last) {
    v1::CloudStreamChunk c;
    c.set_call_id(id);
    *c.mutable_chunk() = std::move(chunk);
    Add(std::move(c), last);
  }

  void Add(v1::CloudStreamChunk chunk, bool last) {
    const v1::CloudStreamChunks* start = nullptr;
    Reactor* reactor;
    {
      absl::MutexLock lock(&mu_);
      auto it = live_.find(chunk.call_id());
      // The stream is over, or the caller cancelled the call.
      if (closed_ || finish_started_ || it == live_.end()) return;
      if (last) live_.erase(it);
      v1::CloudStreamChunks& message =
          out_.Gather(chunk.chunk().text().size() + chunk.message().size() + 16);
      const int n = message.chunks_size();
      v1::CloudStreamChunk* previous = n == 0 ? nullptr : message.mutable_chunks(n - 1);
      if (previous == nullptr || previous->call_id() != chunk.call_id() || previous->code() != 0 ||
          chunk.code() != 0 || !MergeChunks(*previous->mutable_chunk(), *chunk.mutable_chunk())) {
        *message.add_chunks() = std::move(chunk);
      }
      start = out_.Next();
      if (start == nullptr) return;  // OnWriteDone starts the next one
      reactor = reactor_;
    }
    // Only OnWriteDone takes the message in flight away, so it may go out unlocked.
    reactor->StartWrite(start);
  }

  // Ends the stream when nothing more can be written: the caller went, or its
  // side is closed (or the service drains) and every call has ended and been
  // written. Releases `lock` first: Finish may run OnDone inline.
  void FinishIfDone(absl::MutexLock& lock) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    (void)lock;
    if (finish_started_ || out_.in_flight() || starting_read_ || reactor_ == nullptr) return;
    grpc::Status status;
    if (closed_) {
      status = grpc::Status(grpc::StatusCode::CANCELLED, "the caller went away");
    } else if (!broken_.ok()) {
      status = broken_;
    } else if (live_.empty() && reading_done_) {
      status = grpc::Status::OK;
    } else if (live_.empty() && draining_) {
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "backend is draining for shutdown");
    } else {
      return;
    }
    finish_started_ = true;
    finish_code_ = static_cast<absl::StatusCode>(status.error_code());
    Reactor* reactor = reactor_;
    mu_.Unlock();
    reactor->Finish(status);
    mu_.Lock();
  }

  InferenceService* const service_;
  const std::string client_;
  v1::CloudStreamRequests in_;  // only the reading side touches it
  absl::Mutex mu_;
  Reactor* reactor_ ABSL_GUARDED_BY(mu_);
  // Calls whose end is not queued yet, with their jobs once started.
  absl::flat_hash_map<uint64_t, std::weak_ptr<engine::GenerationJob>> live_ ABSL_GUARDED_BY(mu_);
  // The calls' chunks; a message carries up to about 256 kB.
  grpc_util::WriteBatches<v1::CloudStreamChunks> out_ ABSL_GUARDED_BY(mu_){256 * 1024};
  bool starting_read_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_done_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusCode finish_code_ ABSL_GUARDED_BY(mu_) = absl::StatusCode::kUnknown;
  // gRPC reported the stream cancelled: the caller did not hear how it ended.
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  // Not OK once the caller broke the stream's rules; the stream ends with it.
  grpc::Status broken_ ABSL_GUARDED_BY(mu_);
};

namespace {

// gRPC's side of a GenerateStream; the Stream does the work. Counted in the
// service's live calls until gRPC is done with it.
class StreamReactor final
    : public grpc::ServerBidiReactor<v1::CloudStreamRequests, v1::CloudStreamChunks> {
 public:
  explicit StreamReactor(grpc_util::LiveCalls* calls) : token_(calls) {}

  void Attach(std::shared_ptr<InferenceService::Stream> stream, std::function<void()> on_done) {
    stream_ = std::move(stream);
    on_done_ = std::move(on_done);
  }

  void OnReadDone(bool ok) override { stream_->OnReadDone(ok); }
  void OnWriteDone(bool ok) override { stream_->OnWriteDone(ok); }
  void OnCancel() override { stream_->OnCancel(); }
  void OnDone() override {
    stream_->OnDone();
    on_done_();
    delete this;
  }

 private:
  grpc_util::LiveCalls::Token token_;
  std::shared_ptr<InferenceService::Stream> stream_;
  std::function<void()> on_done_;
};

}  // namespace

grpc::ServerBidiReactor<v1::CloudStreamRequests, v1::CloudStreamChunks>*
InferenceService::GenerateStream(grpc::CallbackServerContext* context) {
  auto* reactor = new StreamReactor(&live_calls_);
  auto stream = std::make_shared<Stream>(this, reactor, ClientOf(context));
  Stream* key = stream.get();
  reactor->Attach(stream, [this, key] {
    absl::MutexLock lock(&streams_mu_);
    streams_.erase(key);
  });
  bool draining;
  {
    absl::MutexLock lock(&streams_mu_);
    draining = draining_.load();
    streams_.emplace(key, stream);
  }
  stream->Begin(draining);
  return reactor;
}

void InferenceService::StartDraining() {
  std::vector<std::shared_ptr<Stream>> streams;
  {
    absl::MutexLock lock(&streams_mu_);
    draining_.store(true);
    for (auto& [key, weak] : streams_) {
      if (auto s = weak.lock()) streams.push_back(std::move(s));
    }
  }
  for (auto& s : streams) s->Drain();
}

}  // namespace hr::cloud
