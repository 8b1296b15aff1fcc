#include "device_stub/device_router.h"

#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/message_differencer.h"
#include "router/decision.h"
#include "router/redaction.h"
#include "spdlog/spdlog.h"
#include "util/log_format.h"

namespace hr::device {
namespace {

// Everything decided about a request before it runs.
struct Prepared {
  std::shared_ptr<const policy::ResidencyPolicy> policy;
  policy::Locale locale;
  const policy::JurisdictionRule* rule = nullptr;
  router::Classification classification;
  router::Decision decision;
  v1::RouteInfo info;  // the fields known before execution
};

router::RequestFacts Facts(const v1::GenerateRequest& request, const DeviceRouterOptions& options) {
  return {request.cloud_consent(), request.hint(), options.complexity_threshold};
}

// How much of an app's request id a log line shows.
constexpr size_t kLogIdBytes = 128;

std::string NewRequestId() {
  static absl::Mutex mu;
  static absl::BitGen* gen = new absl::BitGen();
  absl::MutexLock lock(&mu);
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(*gen));
}

}  // namespace

// One request in flight: owns its state until it completes. Callbacks from the
// local engine and the cloud client hold it by shared_ptr.
class RequestRun : public std::enable_shared_from_this<RequestRun> {
 public:
  RequestRun(const DeviceRouter* router, const v1::GenerateRequest& request, Prepared prepared,
             absl::Time arrival, absl::Time deadline, std::shared_ptr<ResponseStream> stream)
      : router_(router),
        request_(request),
        p_(std::move(prepared)),
        arrival_(arrival),
        decided_(absl::Now()),
        deadline_(deadline),
        stream_(std::move(stream)),
        log_id_(util::ForLog(p_.info.request_id(), kLogIdBytes)) {}

  void Start() {
    std::weak_ptr<RequestRun> weak = shared_from_this();
    stream_->OnCancel([weak] {
      if (auto run = weak.lock()) run->Cancel();
    });
    switch (p_.decision.route) {
      case router::Route::kDeny:
        Complete(p_.decision.deny_status, nullptr);
        return;
      case router::Route::kLocal:
        RunLocal();
        return;
      case router::Route::kCloud:
        PrepareCloud();
        TryNextBackend();
        return;
    }
  }

 private:
  void Cancel() {
    std::shared_ptr<CloudCall> call;
    std::shared_ptr<engine::GenerationJob> job;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      call = call_;
      job = job_;
    }
    if (call) call->Cancel();
    if (job) job->cancelled.store(true);
  }

  // --- local -------------------------------------------------------------------

  void RunLocal() {
    auto job = std::make_shared<engine::GenerationJob>();
    for (const v1::ChatMessage& m : request_.messages()) {
      job->messages.push_back({m.role(), m.content()});
    }
    FillOptions(job.get());
    job->deadline = deadline_;
    auto self = shared_from_this();
    job->on_text = [self](absl::string_view text) { self->SendText(v1::LOCAL, "", "", text); };
    job->on_done = [self](absl::StatusOr<engine::GenerationResult> r) {
      if (!r.ok()) {
        self->Complete(self->AfterFallback(r.status()), nullptr);
        return;
      }
      v1::GenerateResponse last = self->Answer(v1::LOCAL, "", "", "");
      v1::Done* done = last.mutable_done();
      done->mutable_usage()->set_prompt_tokens(r->prompt_tokens);
      done->mutable_usage()->set_completion_tokens(r->completion_tokens);
      done->set_finish_reason(r->finish_reason);
      self->Complete(absl::OkStatus(), &last);
    };
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) job->cancelled.store(true);
      job_ = job;
    }
    if (absl::Status s = router_->local_->Submit(job); !s.ok()) Complete(AfterFallback(s), nullptr);
  }

  // A local failure of a request that fell back from the cloud also says why
  // the cloud could not serve, since the app gets no RouteInfo with a failure.
  // (fell_back is set before the local job starts, and not changed after.)
  absl::Status AfterFallback(const absl::Status& local) {
    if (!p_.info.fell_back()) return local;
    absl::MutexLock lock(&mu_);
    return absl::Status(local.code(), absl::StrCat(local.message(), " (the request fell back to ",
                                                   "the local model because no allowed backend ",
                                                   "could serve: ", WhyNoBackendLocked(), ")"));
  }

  // Why no allowed backend served: each tried or skipped backend's reason.
  std::string WhyNoBackendLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return errors_.empty() ? "no backend is configured for these regions"
                           : absl::StrJoin(errors_, "; ");
  }

  void FillOptions(engine::GenerationJob* job) const {
    const v1::GenerationOptions& o = request_.options();
    job->max_tokens = o.max_tokens() > 0 ? o.max_tokens() : router_->options_.default_max_tokens;
    job->temperature = o.temperature();
    job->seed = o.seed();
    job->stop.assign(o.stop().begin(), o.stop().end());
  }

  // --- cloud -------------------------------------------------------------------

  void PrepareCloud() {
    std::vector<absl::string_view> contents;
    for (const v1::ChatMessage& m : request_.messages()) contents.push_back(m.content());
    router::Redacted redacted =
        router::Redact(contents, p_.classification.spans, p_.decision.redact);
    cloud_request_.set_request_id(log_id_);
    v1::ResidencyClaim* claim = cloud_request_.mutable_claim();
    claim->set_jurisdiction(p_.rule->id);
    for (const std::string& r : p_.rule->allowed_regions) claim->add_allowed_regions(r);
    claim->set_policy_version(p_.policy->version());
    claim->set_country(std::string(p_.locale.country()));
    for (int i = 0; i < request_.messages_size(); ++i) {
      v1::ChatMessage* m = cloud_request_.add_messages();
      m->set_role(request_.messages(i).role());
      m->set_content(std::move(redacted.contents[i]));
    }
    *cloud_request_.mutable_options() = request_.options();
    if (cloud_request_.options().max_tokens() == 0) {
      cloud_request_.mutable_options()->set_max_tokens(router_->options_.default_max_tokens);
    }
    restorer_ = std::make_unique<router::Restorer>(std::move(redacted.mapping));
    // Only backends the jurisdiction allows are ever candidates.
    candidates_ = router_->health_->Order(
        p_.policy->BackendsFor(*p_.rule),
        [this](const v1::Backend& b) { return router_->cloud_->IsDown(b); });
  }

  // Why the policy in force now would not send this request to `backend`, or ""
  // if it would. A reload after the decision applies to every attempt not yet
  // started: the backend must be one the current policy picks for this request,
  // with the same redactions (the request was redacted for the old decision).
  std::string NoLongerAllowed(const v1::Backend& backend, absl::Status* deny) const {
    std::shared_ptr<const policy::ResidencyPolicy> now = router_->policy();
    if (now == p_.policy) return "";
    const policy::JurisdictionRule& rule = now->RuleFor(p_.locale);
    router::Decision d =
        router::Decide(rule, p_.classification, Facts(request_, router_->options_));
    if (d.route == router::Route::kDeny) *deny = d.deny_status;
    if (d.route != router::Route::kCloud) {
      return absl::StrCat("policy version ", now->version(), " no longer sends it to the cloud");
    }
    if (d.redact != p_.decision.redact) {
      return absl::StrCat("policy version ", now->version(), " redacts other categories");
    }
    // The backend as the new configuration describes it: same address, region,
    // model family and transport.
    for (const v1::Backend* b : now->BackendsFor(rule)) {
      if (google::protobuf::util::MessageDifferencer::Equals(*b, backend)) return "";
    }
    return absl::StrCat("policy version ", now->version(), " no longer allows it");
  }

  void TryNextBackend() {
    size_t attempt;
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      attempt = attempt_;
      cancelled = cancelled_;
    }
    if (cancelled) {
      Complete(absl::CancelledError("cancelled by the client"), nullptr);
      return;
    }
    if (attempt >= candidates_.size()) {
      CloudExhausted();
      return;
    }
    const v1::Backend* backend = candidates_[attempt];
    absl::Status deny;
    if (std::string why = NoLongerAllowed(*backend, &deny); !why.empty()) {
      if (!deny.ok()) {
        Complete(deny, nullptr);
        return;
      }
      spdlog::info("backend={} skipped: {} request_id={}", backend->name(), why, log_id_);
      {
        absl::MutexLock lock(&mu_);
        errors_.push_back(absl::StrCat(backend->name(), " (", backend->region(), "): ", why));
        ++attempt_;
        ++skipped_;
      }
      TryNextBackend();
      return;
    }
    auto self = shared_from_this();
    CloudCallbacks cb;
    cb.on_start = [self, attempt](const v1::CloudStart& s) { self->OnCloudStart(attempt, s); };
    cb.on_text = [self, attempt, backend](std::string text) {
      // Only text of an attempt whose backend announced an allowed region goes
      // on: text before the announcement is dropped and the attempt given up,
      // and so is what it sent before a cancellation took effect.
      if (!self->RegionVerified(attempt)) return;
      self->SendText(v1::CLOUD, backend->region(), backend->name(), self->Restore(text));
    };
    cb.on_done = [self, attempt](absl::StatusOr<v1::CloudDone> d, std::string last_text) {
      self->OnCloudDone(attempt, std::move(d), last_text);
    };
    auto call = router_->cloud_->Start(*backend, cloud_request_, deadline_, std::move(cb));
    bool cancel_now;
    {
      absl::MutexLock lock(&mu_);
      // The call may have ended already, and the next attempt or the end of the
      // request have come: then it is not the current call (and holding it would
      // keep this run and the call alive through each other).
      if (attempt_ == attempt && !completed_) call_ = call;
      cancel_now = cancelled_ || (attempt_ == attempt && !region_problem_.empty());
    }
    if (cancel_now) call->Cancel();
  }

  // Whether the current attempt's backend announced an allowed region. Asked
  // before any of its text goes on: a backend that sends text first is given up.
  bool RegionVerified(size_t attempt) {
    {
      absl::MutexLock lock(&mu_);
      if (region_verified_) return true;
      if (!region_problem_.empty()) return false;
    }
    RejectRegion(attempt, "sent text before announcing its region");
    return false;
  }

  // Never uses the current attempt's answer: says why, and cancels the call.
  void RejectRegion(size_t attempt, std::string why) {
    const v1::Backend* backend = candidates_[attempt];
    spdlog::error("backend={} {}; dropping it request_id={}", backend->name(), why, log_id_);
    std::shared_ptr<CloudCall> call;
    {
      absl::MutexLock lock(&mu_);
      region_verified_ = false;
      if (region_problem_.empty()) region_problem_ = std::move(why);
      call = call_;
    }
    if (call) call->Cancel();
  }

  std::string Restore(absl::string_view text) {
    absl::MutexLock lock(&mu_);
    return restorer_->Feed(text);
  }

  void OnCloudStart(size_t attempt, const v1::CloudStart& start) {
    const v1::Backend* backend = candidates_[attempt];
    if (start.region() == backend->region() && p_.rule->AllowsRegion(start.region())) {
      absl::MutexLock lock(&mu_);
      if (region_problem_.empty()) region_verified_ = true;
      return;
    }
    // A backend that is not where the backends file says: never use its answer.
    RejectRegion(attempt, absl::StrCat("announced region '", util::ForLog(start.region()),
                                       "' but is configured in '", backend->region(), "'"));
  }

  // `last_text`: text that came with the final message; it leaves with it.
  void OnCloudDone(size_t attempt, absl::StatusOr<v1::CloudDone> done,
                   absl::string_view last_text) {
    const v1::Backend* backend = candidates_[attempt];
    bool committed, verified;
    std::string problem;
    {
      absl::MutexLock lock(&mu_);
      committed = route_sent_;
      verified = region_verified_;
      problem = std::move(region_problem_);
      region_verified_ = false;  // the next attempt starts unverified
      region_problem_.clear();
    }
    // A complete answer must come from a backend that announced an allowed
    // region and names the same one in its final message.
    if (done.ok() && problem.empty()) {
      if (!verified) {
        problem = "ended its answer without announcing its region";
      } else if (done->region() != backend->region()) {
        problem =
            absl::StrCat("named region '", util::ForLog(done->region()),
                         "' in its final message but is configured in '", backend->region(), "'");
      }
      if (!problem.empty()) {
        spdlog::error("backend={} {}; dropping it request_id={}", backend->name(), problem,
                      log_id_);
      }
    }
    if (done.ok() && problem.empty()) {
      router_->health_->RecordSuccess(backend->name());
      std::string rest;
      {
        absl::MutexLock lock(&mu_);
        rest = restorer_->Feed(last_text);
        rest += restorer_->Flush();
      }
      v1::GenerateResponse last = Answer(v1::CLOUD, backend->region(), backend->name(), rest);
      *last.mutable_done()->mutable_usage() = done->usage();
      last.mutable_done()->set_finish_reason(done->finish_reason());
      Complete(absl::OkStatus(), &last);
      return;
    }
    absl::Status status = problem.empty()
                              ? done.status()
                              : absl::FailedPreconditionError(absl::StrCat("backend ", problem));
    if (IsCancelled()) {
      Complete(absl::CancelledError("cancelled by the client"), nullptr);
      return;
    }
    if (status.code() == absl::StatusCode::kDeadlineExceeded && absl::Now() >= deadline_) {
      Complete(absl::DeadlineExceededError("deadline passed while the cloud backend answered"),
               nullptr);
      return;
    }
    if (status.code() == absl::StatusCode::kInvalidArgument) {
      Complete(status, nullptr);  // the request's fault, not the backend's
      return;
    }
    router_->health_->RecordFailure(backend->name());
    // The code only: a backend's message is not ours to vouch for (it could quote the prompt).
    spdlog::warn("backend={} region={} attempt failed code={} request_id={}", backend->name(),
                 backend->region(), absl::StatusCodeToString(status.code()), log_id_);
    if (committed) {
      // Text already reached the client: no retry, the answer would be spliced.
      Complete(absl::UnavailableError(absl::StrCat("cloud backend ", backend->name(),
                                                   " failed mid-answer: ", status.message())),
               nullptr);
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      errors_.push_back(absl::StrCat(backend->name(), " (", backend->region(),
                                     "): ", absl::StatusCodeToString(status.code()), " ",
                                     status.message()));
      ++attempt_;
      call_.reset();
    }
    TryNextBackend();
  }

  void CloudExhausted() {
    std::string why;
    {
      absl::MutexLock lock(&mu_);
      why = WhyNoBackendLocked();
    }
    const std::string& id = p_.rule->id;
    if (p_.rule->when_unavailable == v1::FALLBACK_LOCAL) {
      p_.info.set_fell_back(true);
      p_.info.add_rule_ids(absl::StrCat(id, ".when_unavailable"));
      p_.info.add_reasons(absl::StrCat("no allowed backend could serve (", why,
                                       "); the policy falls back to the local model"));
      RunLocal();
      return;
    }
    Complete(absl::UnavailableError(absl::StrCat(
                 "no backend in the regions allowed for jurisdiction '", id, "' (",
                 absl::StrJoin(p_.rule->allowed_regions, ", "),
                 ") could serve the request, and its policy is FAIL_CLOSED: ", why)),
             nullptr);
  }

  // --- output ------------------------------------------------------------------

  // A message of the answer: `text` (none when empty), preceded by RouteInfo if
  // this is the first message, which always carries it.
  v1::GenerateResponse Answer(v1::ExecutionTarget target, const std::string& region,
                              const std::string& backend, absl::string_view text) {
    v1::GenerateResponse r;
    {
      absl::MutexLock lock(&mu_);
      if (!route_sent_) {
        route_sent_ = true;
        target_ = target;
        region_ = region;
        backend_ = backend;
        *r.mutable_route() = p_.info;
      }
      if (!text.empty() && first_chunk_ == absl::InfinitePast()) first_chunk_ = absl::Now();
    }
    if (r.has_route()) {
      r.mutable_route()->set_target(target);
      r.mutable_route()->set_region(region);
      r.mutable_route()->set_backend(backend);
      if (target == v1::LOCAL) r.mutable_route()->clear_redactions();
    }
    if (!text.empty()) r.mutable_chunk()->set_text(std::string(text));
    return r;
  }

  void SendText(v1::ExecutionTarget target, const std::string& region, const std::string& backend,
                absl::string_view text) {
    if (text.empty()) return;
    stream_->Send(Answer(target, region, backend, text));
  }

  // Ends the call with `status`; with `last` (its `done` filled in but for the
  // timings) when the answer is complete.
  void Complete(const absl::Status& status, v1::GenerateResponse* last) {
    const std::shared_ptr<RequestRun> self = shared_from_this();  // alive to the log line
    absl::Time now = absl::Now();
    int failed;
    v1::ExecutionTarget target;
    std::string region, backend;
    absl::Time first_chunk;
    {
      absl::MutexLock lock(&mu_);
      if (completed_) return;
      completed_ = true;
      failed = static_cast<int>(errors_.size()) - skipped_;
      target = target_;
      region = region_.empty() ? "-" : region_;
      backend = backend_.empty() ? "-" : backend_;
      first_chunk = first_chunk_;
      // Break the cycles between this run and its job or call.
      job_.reset();
      call_.reset();
    }
    if (last != nullptr) {
      v1::Timings* t = last->mutable_done()->mutable_timings();
      t->set_decision_micros(absl::ToInt64Microseconds(decided_ - arrival_));
      if (first_chunk != absl::InfinitePast()) {
        t->set_first_chunk_micros(absl::ToInt64Microseconds(first_chunk - arrival_));
      }
      t->set_total_micros(absl::ToInt64Microseconds(now - arrival_));
      t->set_failed_attempts(failed);
    }
    if (last != nullptr) {
      stream_->FinishWith(std::move(*last), status);
    } else {
      stream_->Finish(status);
    }
    // Logged once the answer is on its way: the line (a write to the log file)
    // is not on the request's path.
    spdlog::info(
        "request_id={} jurisdiction={} target={} region={} backend={} code={} micros={} "
        "failed_attempts={} fell_back={} rules={}",
        log_id_, p_.rule ? p_.rule->id : "-",
        target == v1::EXECUTION_TARGET_UNSPECIFIED ? "-" : v1::ExecutionTarget_Name(target), region,
        backend, absl::StatusCodeToString(status.code()), absl::ToInt64Microseconds(now - arrival_),
        failed, p_.info.fell_back(), absl::StrJoin(p_.info.rule_ids(), ","));
  }

  bool IsCancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

  const DeviceRouter* const router_;
  const v1::GenerateRequest request_;
  Prepared p_;
  const absl::Time arrival_, decided_, deadline_;
  const std::shared_ptr<ResponseStream> stream_;
  const std::string log_id_;  // the request id as log lines show it (the app chose it)

  // Cloud state, set before the first attempt and read-only afterwards.
  v1::CloudRequest cloud_request_;
  std::vector<const v1::Backend*> candidates_;

  absl::Mutex mu_;
  std::unique_ptr<router::Restorer> restorer_ ABSL_GUARDED_BY(mu_);
  size_t attempt_ ABSL_GUARDED_BY(mu_) = 0;
  // Why each backend tried or skipped did not serve; `skipped_` of them were not
  // tried because a reload no longer allowed them.
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
  int skipped_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<CloudCall> call_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<engine::GenerationJob> job_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  // The current attempt's region: announced and allowed, or why its answer is
  // never used (then not verified, whatever it announces later).
  bool region_verified_ ABSL_GUARDED_BY(mu_) = false;
  std::string region_problem_ ABSL_GUARDED_BY(mu_);
  bool route_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool completed_ ABSL_GUARDED_BY(mu_) = false;
  v1::ExecutionTarget target_ ABSL_GUARDED_BY(mu_) = v1::EXECUTION_TARGET_UNSPECIFIED;
  std::string region_ ABSL_GUARDED_BY(mu_), backend_ ABSL_GUARDED_BY(mu_);
  absl::Time first_chunk_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

namespace {

absl::StatusOr<Prepared> Prepare(const v1::GenerateRequest& request,
                                 std::shared_ptr<const policy::ResidencyPolicy> policy,
                                 const router::Classifier& classifier,
                                 const DeviceRouterOptions& options) {
  absl::StatusOr<policy::Locale> locale = router::ValidateGenerateRequest(request, options.limits);
  if (!locale.ok()) return locale.status();
  Prepared p;
  p.policy = std::move(policy);
  p.locale = *std::move(locale);
  p.rule = &p.policy->RuleFor(p.locale);
  std::vector<router::MessageView> views;
  views.reserve(request.messages_size());
  for (const v1::ChatMessage& m : request.messages()) views.push_back({m.role(), m.content()});
  p.classification = classifier.Classify(views);
  p.decision = router::Decide(*p.rule, p.classification, Facts(request, options));

  v1::RouteInfo& info = p.info;
  info.set_request_id(request.request_id().empty() ? NewRequestId() : request.request_id());
  info.set_jurisdiction(p.rule->id);
  for (const std::string& r : p.rule->allowed_regions) info.add_allowed_regions(r);
  info.set_policy_version(p.policy->version());
  for (const std::string& id : p.decision.rule_ids) info.add_rule_ids(id);
  for (const std::string& reason : p.decision.reasons) info.add_reasons(reason);
  info.set_complexity_score(p.classification.complexity);
  info.set_complexity_threshold(options.complexity_threshold);
  for (int c = 1; c < policy::kNumCategories; ++c) {
    int n = p.classification.counts[c];
    if (n == 0) continue;
    v1::Redaction* d = info.add_detected();
    d->set_category(static_cast<v1::SensitiveCategory>(c));
    d->set_count(n);
    if (p.decision.route == router::Route::kCloud && p.decision.redact[c]) {
      *info.add_redactions() = *d;
    }
  }
  switch (p.decision.route) {
    case router::Route::kLocal: info.set_target(v1::LOCAL); break;
    case router::Route::kCloud: info.set_target(v1::CLOUD); break;
    case router::Route::kDeny: info.set_target(v1::DENIED); break;
  }
  return p;
}

}  // namespace

DeviceRouter::DeviceRouter(DeviceRouterOptions options,
                           std::shared_ptr<const policy::ResidencyPolicy> policy,
                           engine::EnginePool* local, CloudClient* cloud,
                           router::BackendHealth* health,
                           const router::ComplexityModel* complexity_model)
    : options_(options),
      local_(local),
      cloud_(cloud),
      health_(health),
      classifier_(complexity_model),
      policy_(std::move(policy)) {}

void DeviceRouter::SetPolicy(std::shared_ptr<const policy::ResidencyPolicy> policy) {
  absl::MutexLock lock(&mu_);
  policy_ = std::move(policy);
}

std::shared_ptr<const policy::ResidencyPolicy> DeviceRouter::policy() const {
  absl::MutexLock lock(&mu_);
  return policy_;
}

absl::StatusOr<v1::RouteInfo> DeviceRouter::Explain(const v1::GenerateRequest& request) const {
  absl::StatusOr<Prepared> p = Prepare(request, policy(), classifier_, options_);
  if (!p.ok()) return p.status();
  return std::move(p->info);
}

void DeviceRouter::Generate(const v1::GenerateRequest& request, absl::Time deadline,
                            std::shared_ptr<ResponseStream> stream) {
  absl::Time arrival = absl::Now();
  deadline = std::min(deadline, arrival + options_.default_deadline);
  absl::StatusOr<Prepared> p = Prepare(request, policy(), classifier_, options_);
  if (!p.ok()) {
    stream->Finish(p.status());  // the answer first, the log line after, as in Complete
    spdlog::info("request_id={} code={} rejected=\"{}\"",
                 util::ForLog(request.request_id(), kLogIdBytes),
                 absl::StatusCodeToString(p.status().code()), p.status().message());
    return;
  }
  auto run = std::make_shared<RequestRun>(this, request, *std::move(p), arrival, deadline,
                                          std::move(stream));
  run->Start();
}

}  // namespace hr::device
