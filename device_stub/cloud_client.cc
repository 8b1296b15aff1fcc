#include "device_stub/cloud_client.h"

#include <atomic>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "grpc_util/cq_pool.h"
#include "grpcpp/alarm.h"
#include "grpc_util/server_util.h"

namespace hr::device {
namespace {

// Balances over every address a target resolves to (a Kubernetes headless
// service, say) and checks each one's gRPC health service.
constexpr char kServiceConfig[] = R"({
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""}
})";

// One call on the completion-queue API: the start, each read and the finish come
// back as tags on the queue the call was started on, and so does the alarm that
// gives the call up when no text came within the first-text timeout. Keeps itself
// alive (self_) until every tag is back.
class QueueCall final : public CloudCall {
 public:
  // `ended` runs once, when the last tag is back.
  QueueCall(CloudCallbacks callbacks, absl::Time deadline, std::function<void()> ended)
      : callbacks_(std::move(callbacks)), ended_(std::move(ended)) {
    if (deadline != absl::InfiniteFuture()) context_.set_deadline(absl::ToChronoTime(deadline));
  }

  // `first_text_timeout`: how long the backend may take to send text (or its
  // final message); then the call is cancelled and ends UNAVAILABLE. Zero: no limit.
  void Begin(v1::CloudInference::Stub* stub, const v1::CloudRequest& request,
             grpc::CompletionQueue* queue, absl::Duration first_text_timeout,
             std::shared_ptr<QueueCall> self) {
    self_ = std::move(self);
    first_text_timeout_ = first_text_timeout;
    if (first_text_timeout > absl::ZeroDuration()) {
      refs_.fetch_add(1, std::memory_order_relaxed);
      alarm_.Set(queue, absl::ToChronoTime(absl::Now() + first_text_timeout), &alarm_tag_);
    }
    // The request is serialized here; it need not outlive this call.
    reader_ = stub->PrepareAsyncGenerate(&context_, request, queue);
    reader_->StartCall(&start_tag_);
    reader_->Read(&chunk_, &read_tag_);
  }

  void Cancel() override { context_.TryCancel(); }

 private:
  void OnStarted(bool /*ok*/) { Unref(); }  // a failed start shows in the read and finish

  // ok: the timeout passed (false: the alarm was cancelled).
  void OnAlarm(bool ok) {
    if (ok && !answered_.load(std::memory_order_acquire)) {
      timed_out_.store(true, std::memory_order_release);
      context_.TryCancel();
    }
    Unref();
  }

  // Text or the final message came: the backend is answering.
  void Answered() {
    if (answered_.exchange(true, std::memory_order_acq_rel)) return;
    if (first_text_timeout_ > absl::ZeroDuration()) alarm_.Cancel();
  }

  void OnRead(bool ok) {
    if (!ok) {  // the stream ended; the finish says how
      reader_->Finish(&status_, &finish_tag_);
      return;
    }
    // A message's parts in their order: start, text, done.
    if (chunk_.has_start()) callbacks_.on_start(chunk_.start());
    if (chunk_.has_done()) {
      // Text in the final message waits for the status, to leave with the end.
      Answered();
      last_text_ = std::move(*chunk_.mutable_text());
      done_ = std::move(*chunk_.mutable_done());
      got_done_ = true;
      // Nothing follows the final message: ask for the status at once rather
      // than after one more read that would only report the end of the stream.
      reader_->Finish(&status_, &finish_tag_);
      return;
    }
    if (!chunk_.text().empty()) {
      Answered();
      callbacks_.on_text(std::move(*chunk_.mutable_text()));
    }
    chunk_.Clear();
    reader_->Read(&chunk_, &read_tag_);
  }

  void OnFinished(bool /*ok*/) {
    Answered();  // nothing more to wait for
    if (timed_out_.load(std::memory_order_acquire) && !got_done_) {
      callbacks_.on_done(
          absl::UnavailableError(absl::StrCat("backend sent no text within ",
                                              absl::FormatDuration(first_text_timeout_))),
          "");
    } else if (!status_.ok()) {
      // The text still goes on first, as any text before a failure does.
      if (!last_text_.empty()) callbacks_.on_text(std::move(last_text_));
      callbacks_.on_done(grpc_util::FromGrpcStatus(status_), "");
    } else if (!got_done_) {
      callbacks_.on_done(absl::DataLossError("backend ended the stream without a final message"),
                         "");
    } else {
      callbacks_.on_done(std::move(done_), std::move(last_text_));
    }
    Unref();
  }

  void Unref() {
    // May delete this, if the caller dropped its handle.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    ended_();
    self_.reset();
  }

  CloudCallbacks callbacks_;
  const std::function<void()> ended_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReader<v1::CloudChunk>> reader_;
  v1::CloudChunk chunk_;
  v1::CloudDone done_;
  std::string last_text_;  // text in the final message
  bool got_done_ = false;
  grpc::Status status_;
  absl::Duration first_text_timeout_;
  grpc::Alarm alarm_;
  std::atomic<bool> answered_{false};
  std::atomic<bool> timed_out_{false};
  // The start tag, the read-then-finish chain, and the alarm when set.
  std::atomic<int> refs_{2};
  std::shared_ptr<QueueCall> self_;
  grpc_util::MemberTag<QueueCall> start_tag_{this, &QueueCall::OnStarted};
  grpc_util::MemberTag<QueueCall> read_tag_{this, &QueueCall::OnRead};
  grpc_util::MemberTag<QueueCall> finish_tag_{this, &QueueCall::OnFinished};
  grpc_util::MemberTag<QueueCall> alarm_tag_{this, &QueueCall::OnAlarm};
};

}  // namespace

std::shared_ptr<grpc::Channel> NewBackendChannel(const v1::Backend& backend) {
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(kServiceConfig);
  // Notice a backend that came back within a second, not after minutes of backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Failover is ours (RequestRun tries the next allowed backend); gRPC's retry
  // layer, which has no policy here, only costs about 3% of hr-device's
  // instructions per request (bench/device_cost.sh).
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (backend.has_tls()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = backend.tls().ca_pem();  // empty: gRPC's default roots
    credentials = grpc::SslCredentials(ssl);
    if (!backend.tls().server_name().empty()) {
      args.SetSslTargetNameOverride(backend.tls().server_name());
    }
  }
  return grpc::CreateCustomChannel(backend.address(), credentials, args);
}

GrpcCloudClient::Connection& GrpcCloudClient::ConnectionFor(const v1::Backend& backend) {
  const v1::BackendTls& tls = backend.tls();
  const std::string key = backend.has_tls() ? absl::StrCat(backend.address(), "|tls|",
                                                           tls.server_name(), "|", tls.ca_pem())
                                            : absl::StrCat(backend.address(), "|plaintext");
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Connection>& c = connections_[key];
  if (c != nullptr) return *c;
  c = std::make_unique<Connection>();
  c->channel = NewBackendChannel(backend);
  c->channel->GetState(/*try_to_connect=*/true);
  c->stub = v1::CloudInference::NewStub(c->channel);
  return *c;
}

std::shared_ptr<CloudCall> GrpcCloudClient::Start(const v1::Backend& backend,
                                                  const v1::CloudRequest& request,
                                                  absl::Time deadline, CloudCallbacks callbacks) {
  v1::CloudInference::Stub* stub = ConnectionFor(backend).stub.get();
  {
    absl::MutexLock lock(&calls_mu_);
    ++live_calls_;
  }
  auto call = std::make_shared<QueueCall>(std::move(callbacks), deadline, [this] {
    absl::MutexLock lock(&calls_mu_);
    --live_calls_;
  });
  call->Begin(stub, request, pick_queue_(), first_text_timeout_, call);
  return call;
}

bool GrpcCloudClient::WaitForCalls(absl::Duration timeout) {
  absl::MutexLock lock(&calls_mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(calls_mu_) { return live_calls_ == 0; };
  return calls_mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

bool GrpcCloudClient::IsDown(const v1::Backend& backend) {
  return ConnectionFor(backend).channel->GetState(/*try_to_connect=*/true) ==
         GRPC_CHANNEL_TRANSIENT_FAILURE;
}

}  // namespace hr::device
