#include "cloud_backend/inference_service.h"

#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "grpc_util/server_util.h"
#include "grpc_util/stream_sink.h"
#include "policy/residency_policy.h"
#include "spdlog/spdlog.h"
#include "util/log_format.h"
#include "util/utf8.h"

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
  if (r.messages().empty()) {
    return absl::InvalidArgumentError("messages: at least one message is required");
  }
  for (int i = 0; i < r.messages_size(); ++i) {
    const v1::ChatMessage& m = r.messages(i);
    if (m.role() != "system" && m.role() != "user" && m.role() != "assistant") {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "].role: must be system, user or assistant"));
    }
    size_t bad = util::FindInvalidUtf8(m.content());
    if (bad != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "].content: not valid UTF-8 at byte ", bad));
    }
  }
  if (r.options().max_tokens() < 0 || r.options().max_tokens() > 4096) {
    return absl::InvalidArgumentError("options.max_tokens: must be in [0, 4096]");
  }
  if (!(r.options().temperature() >= 0 && r.options().temperature() <= 2)) {
    return absl::InvalidArgumentError("options.temperature: must be in [0, 2]");
  }
  return absl::OkStatus();
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

grpc::ServerWriteReactor<v1::CloudChunk>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const v1::CloudRequest* request) {
  auto* reactor = new SinkReactor<v1::CloudChunk>(&MergeChunks);
  auto sink = reactor->sink();
  const absl::Time start = absl::Now();
  const std::string& id = request->request_id();

  // The residency check comes before anything else looks at the request.
  std::vector<std::string> allowed(request->claim().allowed_regions().begin(),
                                   request->claim().allowed_regions().end());
  absl::Status status = policy::CheckResidencyClaim(allowed, options_.region);
  if (status.ok() && draining_.load()) {
    status = absl::UnavailableError("backend is draining for shutdown");
  }
  if (status.ok()) status = ValidateCloudRequest(*request);
  if (!status.ok()) {
    spdlog::warn("refused request_id={} jurisdiction={} code={} reason=\"{}\"", id,
                 request->claim().jurisdiction(), absl::StatusCodeToString(status.code()),
                 status.message());
    sink->Finish(ToGrpcStatus(status));
    return reactor;
  }
  Record(*request);

  auto job = std::make_shared<engine::GenerationJob>();
  for (const v1::ChatMessage& m : request->messages()) {
    job->messages.push_back({m.role(), m.content()});
  }
  const v1::GenerationOptions& o = request->options();
  job->max_tokens = o.max_tokens() > 0 ? o.max_tokens() : options_.max_tokens_default;
  job->temperature = o.temperature();
  job->seed = o.seed();
  job->stop.assign(o.stop().begin(), o.stop().end());
  job->deadline = absl::FromChrono(context->deadline());

  v1::CloudStart start_message;
  start_message.set_region(options_.region);
  start_message.set_model(options_.model);
  auto start_once = std::make_shared<StartOnce>(std::move(start_message));

  std::weak_ptr<engine::GenerationJob> weak_job = job;
  sink->OnCancel([weak_job] {
    if (auto j = weak_job.lock()) j->cancelled.store(true);
  });
  job->on_text = [sink, start_once](absl::string_view text) {
    v1::CloudChunk chunk;
    start_once->AddTo(chunk);
    chunk.set_text(std::string(text));
    sink->Send(std::move(chunk));
  };
  std::string region = options_.region;
  std::string jurisdiction = request->claim().jurisdiction();
  job->on_done = [sink, start_once, id, region, jurisdiction,
                  start](absl::StatusOr<engine::GenerationResult> r) {
    absl::Status s = r.status();
    spdlog::info("served request_id={} jurisdiction={} region={} code={} completion_tokens={} "
                 "micros={}",
                 id, jurisdiction, region, absl::StatusCodeToString(s.code()),
                 r.ok() ? r->completion_tokens : 0, absl::ToInt64Microseconds(absl::Now() - start));
    if (!r.ok()) {
      sink->Finish(ToGrpcStatus(s));
      return;
    }
    v1::CloudChunk done;
    start_once->AddTo(done);
    done.mutable_done()->mutable_usage()->set_prompt_tokens(r->prompt_tokens);
    done.mutable_done()->mutable_usage()->set_completion_tokens(r->completion_tokens);
    done.mutable_done()->set_finish_reason(r->finish_reason);
    done.mutable_done()->set_region(region);
    sink->SendLast(std::move(done), grpc::Status::OK);
  };

  if (absl::Status submitted = pool_->Submit(job); !submitted.ok()) {
    spdlog::warn("refused request_id={} code={}", id,
                 absl::StatusCodeToString(submitted.code()));
    sink->Finish(ToGrpcStatus(submitted));
  }
  return reactor;
}

}  // namespace hr::cloud
