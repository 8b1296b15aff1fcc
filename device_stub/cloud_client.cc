#include "device_stub/cloud_client.h"

#include <algorithm>
#include <atomic>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "grpc_util/cq_pool.h"
#include "grpc_util/server_util.h"
#include "grpc_util/write_batches.h"
#include "grpcpp/alarm.h"

namespace hr::device {
namespace {

// Balances over every address a target resolves to (a Kubernetes headless
// service, say) and checks each one's gRPC health service.
constexpr char kServiceConfig[] = R"({
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""}
})";

// How a call ends whose backend sent no text within the first-text timeout.
absl::Status NoTextWithin(absl::Duration first_text_timeout) {
  return absl::UnavailableError(
      absl::StrCat("backend sent no text within ", absl::FormatDuration(first_text_timeout)));
}

// One call on the completion-queue API: the start, each read and the finish come
// back as tags on the queue the call was started on, and so does the alarm that
// gives the call up when no text came within the first-text timeout. Keeps itself
// alive (self_) until every tag is back.
class QueueCall final : public CloudCall {
 public:
  // Counted in `live` until the last tag is back.
  QueueCall(CloudCallbacks callbacks, absl::Time deadline, grpc_util::LiveCalls* live)
      : callbacks_(std::move(callbacks)), live_(std::in_place, live) {
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
      callbacks_.on_done(NoTextWithin(first_text_timeout_), "");
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
    live_.reset();
    self_.reset();
  }

  CloudCallbacks callbacks_;
  std::optional<grpc_util::LiveCalls::Token> live_;
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

class StreamCall;

// One GenerateStream to a backend, shared by the calls that GrpcCloudClient
// starts on it: writes their requests (one write in flight; what queues up
// behind it leaves in one message), reads the chunks and hands each to its call.
// When the stream ends, every call still on it ends UNAVAILABLE, so the router
// can try another backend, and the next call opens a new stream. A retired
// stream takes no new calls but those handed out to it before (HandOut); once
// the calls on it have ended it closes its side, and the backend ends it. Runs
// on one completion queue; keeps itself alive (self_) until every tag is back.
class CallStream final : public std::enable_shared_from_this<CallStream> {
 public:
  // Counted in `live` until the last tag is back.
  explicit CallStream(grpc_util::LiveCalls* live) : live_(std::in_place, live) {}

  void Begin(v1::CloudInference::Stub* stub, grpc::CompletionQueue* queue) {
    self_ = shared_from_this();
    stream_ = stub->PrepareAsyncGenerateStream(&context_, queue);
    stream_->StartCall(&start_tag_);
    stream_->Read(&in_, &read_tag_);
  }

  // Promises the stream one more call, which Add or Withdraw then settles: a
  // stream retired in between (it grew old) still takes it, and does not close
  // before. Given out under GrpcCloudClient's lock, which retiring needs.
  void HandOut() {
    absl::MutexLock lock(&mu_);
    ++handed_out_;
  }
  // Sends `request` as call `id`, handed out before, with what is left of
  // `deadline`. False when the stream has ended or its backend was dropped by a
  // reload; the call is not taken then.
  bool Add(uint64_t id, std::shared_ptr<StreamCall> call, const v1::CloudRequest& request,
           absl::Time deadline);
  // The call handed out will not be added after all.
  void Withdraw() {
    absl::MutexLock lock(&mu_);
    --handed_out_;
    WriteNextLocked();
  }
  // The call gave up (cancelled, or out of time): the backend is told to stop it.
  void Forget(uint64_t id);
  uint64_t NextId() { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  bool ended() {
    absl::MutexLock lock(&mu_);
    return ended_stream_;
  }
  // Takes no new calls from now on but those handed out already, none at all
  // when `dropped` (a reload took its backend out); the stream closes once its
  // calls have ended.
  void Retire(bool dropped) {
    absl::MutexLock lock(&mu_);
    retired_ = true;
    dropped_ = dropped_ || dropped;
    WriteNextLocked();
  }
  // For shutdown, once no call is left: ends the stream.
  void Close() { context_.TryCancel(); }

 private:
  // Adds to the message being gathered (`fill` writes into it, `bytes` about its
  // size); starts a write if none is in flight.
  template <typename Fill>
  void Queue(size_t bytes, Fill fill) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    fill(out_.Gather(bytes));
    WriteNextLocked();
  }

  // Starts the next write, unless one is in flight or nothing waits. A retired
  // stream with no call left closes its side instead: nothing can follow then
  // (no call to add, none to cancel).
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (starting_) return;  // OnStarted comes back here
    if (const v1::CloudStreamRequests* next = out_.Next(); next != nullptr) {
      refs_.fetch_add(1, std::memory_order_relaxed);
      stream_->Write(*next, &write_tag_);
      return;
    }
    if (retired_ && calls_.empty() && handed_out_ == 0 && !out_.in_flight() && !ended_stream_ &&
        !closing_) {
      closing_ = true;
      refs_.fetch_add(1, std::memory_order_relaxed);
      stream_->WritesDone(&writes_done_tag_);
    }
  }

  // The start's operation (the headers) and writes share one slot: nothing is
  // written before it is back. A failed start shows in the read and the finish.
  void OnStarted(bool /*ok*/) {
    {
      absl::MutexLock lock(&mu_);
      starting_ = false;
      if (ended_stream_) out_.Clear();  // the finish is asked for: nothing more goes out
      WriteNextLocked();
    }
    Unref();
  }
  void OnRead(bool ok);
  void OnWritten(bool ok) {
    {
      absl::MutexLock lock(&mu_);
      out_.WriteDone();
      // The stream is over (the read says so), or its finish is asked for.
      if (!ok || ended_stream_) out_.Clear();
      WriteNextLocked();
    }
    Unref();
  }
  void OnWritesDone(bool /*ok*/) { Unref(); }  // a failure shows in the read and finish
  void OnFinished(bool ok);
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    live_.reset();
    self_.reset();
  }

  std::optional<grpc_util::LiveCalls::Token> live_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::CloudStreamRequests, v1::CloudStreamChunks>>
      stream_;
  v1::CloudStreamChunks in_;  // only the read chain touches it
  grpc::Status status_;
  std::atomic<uint64_t> next_id_{1};
  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<StreamCall>> calls_ ABSL_GUARDED_BY(mu_);
  // Requests and cancellations; a message carries up to about 256 kB.
  grpc_util::WriteBatches<v1::CloudStreamRequests> out_ ABSL_GUARDED_BY(mu_){256 * 1024};
  bool starting_ ABSL_GUARDED_BY(mu_) = true;  // until the start is back
  bool ended_stream_ ABSL_GUARDED_BY(mu_) = false;
  bool retired_ ABSL_GUARDED_BY(mu_) = false;
  bool dropped_ ABSL_GUARDED_BY(mu_) = false;  // retired by a reload: refuses every call
  int handed_out_ ABSL_GUARDED_BY(mu_) = 0;    // calls promised by HandOut, not yet settled
  bool closing_ ABSL_GUARDED_BY(mu_) = false;  // WritesDone started
  // The start tag, the read-then-finish chain, and a write or WritesDone when in flight.
  std::atomic<int> refs_{2};
  std::shared_ptr<CallStream> self_;
  grpc_util::MemberTag<CallStream> start_tag_{this, &CallStream::OnStarted};
  grpc_util::MemberTag<CallStream> read_tag_{this, &CallStream::OnRead};
  grpc_util::MemberTag<CallStream> write_tag_{this, &CallStream::OnWritten};
  grpc_util::MemberTag<CallStream> writes_done_tag_{this, &CallStream::OnWritesDone};
  grpc_util::MemberTag<CallStream> finish_tag_{this, &CallStream::OnFinished};
};

// One call on a CallStream. Reports to its callbacks as QueueCall does, one at a
// time (under its mutex): the stream's thread delivers the backend's chunks; its
// two alarms, on the queue of the thread that started it, give it up when no
// text came within the first-text timeout and when the deadline passes, and
// carry cancellation (Cancel cancels the deadline alarm, which then ends the
// call on that queue, never inside the caller).
class StreamCall final : public CloudCall {
 public:
  // Counted in `live` until the last tag is back.
  StreamCall(CloudCallbacks callbacks, grpc_util::LiveCalls* live)
      : callbacks_(std::move(callbacks)), live_(std::in_place, live) {}

  // Starts the alarms, then hands the call to the stream `stream_for` returns.
  // When that stream has ended or a reload dropped its backend in between (one
  // that grew old still takes it), asks once more; when the next one will not
  // take it either, or there is none (null), the call ends UNAVAILABLE (on the
  // queue).
  void Begin(const std::function<std::shared_ptr<CallStream>()>& stream_for,
             const v1::CloudRequest& request, grpc::CompletionQueue* queue, absl::Time deadline,
             absl::Duration first_text_timeout, std::shared_ptr<StreamCall> self) {
    self_ = std::move(self);
    first_text_timeout_ = first_text_timeout;
    if (first_text_timeout > absl::ZeroDuration()) {
      refs_.fetch_add(1, std::memory_order_relaxed);
      first_text_alarm_.Set(queue, absl::ToChronoTime(absl::Now() + first_text_timeout),
                            &first_text_tag_);
    }
    if (deadline == absl::InfiniteFuture()) {
      deadline_alarm_.Set(queue, gpr_inf_future(GPR_CLOCK_MONOTONIC), &deadline_tag_);
    } else {
      deadline_alarm_.Set(queue, absl::ToChronoTime(deadline), &deadline_tag_);
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::shared_ptr<CallStream> stream = stream_for();
      if (stream == nullptr) break;  // the backend's connection was dropped
      absl::MutexLock lock(&mu_);
      if (ended_call_) {  // the deadline passed already
        stream->Withdraw();
        return;
      }
      stream_ = std::move(stream);
      id_ = stream_->NextId();
      if (stream_->Add(id_, self_, request, deadline)) return;
    }
    GiveUp(absl::UnavailableError("the stream to the backend ended"));
  }

  void Cancel() override { GiveUp(absl::CancelledError("cancelled")); }

  // A chunk of this call's answer, from the stream's thread.
  void Deliver(v1::CloudStreamChunk& c) {
    absl::MutexLock lock(&mu_);
    if (ended_call_) return;
    v1::CloudChunk& chunk = *c.mutable_chunk();
    if (c.code() != 0) {
      EndLocked(absl::Status(static_cast<absl::StatusCode>(c.code()), c.message()), "", false);
      return;
    }
    if (chunk.has_start()) callbacks_.on_start(chunk.start());
    if (chunk.has_done()) {
      EndLocked(std::move(*chunk.mutable_done()), std::move(*chunk.mutable_text()), false);
      return;
    }
    if (!chunk.text().empty()) {
      Answered();
      callbacks_.on_text(std::move(*chunk.mutable_text()));
    }
  }

  // The stream ended under the call.
  void StreamEnded(absl::Status status) {
    absl::MutexLock lock(&mu_);
    if (!ended_call_) EndLocked(std::move(status), "", false);
  }

 private:
  // Ends the call with `status` on its queue, where the deadline alarm reports.
  void GiveUp(absl::Status status) {
    {
      absl::MutexLock lock(&give_up_mu_);
      if (give_up_.ok()) give_up_ = std::move(status);
    }
    deadline_alarm_.Cancel();
  }

  void Answered() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (answered_) return;
    answered_ = true;
    if (first_text_timeout_ > absl::ZeroDuration()) first_text_alarm_.Cancel();
  }

  // ok: the timeout passed (false: the alarm was cancelled).
  void OnFirstTextAlarm(bool ok) {
    {
      absl::MutexLock lock(&mu_);
      if (ok && !answered_ && !ended_call_) {
        EndLocked(NoTextWithin(first_text_timeout_), "", true);
      }
    }
    Unref();
  }

  // ok: the deadline passed; false: the alarm was cancelled, by GiveUp or by the end.
  void OnDeadlineAlarm(bool ok) {
    {
      absl::MutexLock lock(&mu_);
      if (!ended_call_) {
        absl::Status status;
        if (ok) {
          status = absl::DeadlineExceededError("deadline passed while the cloud backend answered");
        } else {
          absl::MutexLock give_up_lock(&give_up_mu_);
          status = give_up_;
        }
        if (!status.ok()) EndLocked(std::move(status), "", true);
      }
    }
    Unref();
  }

  // Reports the end; `tell_backend`: the backend still runs the call and is told to stop.
  void EndLocked(absl::StatusOr<v1::CloudDone> done, std::string last_text, bool tell_backend)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ended_call_ = true;
    answered_ = true;
    callbacks_.on_done(std::move(done), std::move(last_text));
    if (first_text_timeout_ > absl::ZeroDuration()) first_text_alarm_.Cancel();
    deadline_alarm_.Cancel();
    if (tell_backend && stream_ != nullptr) stream_->Forget(id_);
  }

  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    live_.reset();
    {
      absl::MutexLock lock(&mu_);
      stream_.reset();
    }
    self_.reset();
  }

  CloudCallbacks callbacks_;
  std::optional<grpc_util::LiveCalls::Token> live_;
  absl::Mutex mu_;
  // The stream that took the call (null until then).
  std::shared_ptr<CallStream> stream_ ABSL_GUARDED_BY(mu_);
  uint64_t id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration first_text_timeout_;
  grpc::Alarm first_text_alarm_;
  grpc::Alarm deadline_alarm_;
  bool answered_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_call_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex give_up_mu_;
  absl::Status give_up_ ABSL_GUARDED_BY(give_up_mu_);
  // The deadline alarm, and the first-text alarm when set.
  std::atomic<int> refs_{1};
  std::shared_ptr<StreamCall> self_;
  grpc_util::MemberTag<StreamCall> first_text_tag_{this, &StreamCall::OnFirstTextAlarm};
  grpc_util::MemberTag<StreamCall> deadline_tag_{this, &StreamCall::OnDeadlineAlarm};
};

bool CallStream::Add(uint64_t id, std::shared_ptr<StreamCall> call, const v1::CloudRequest& request,
                     absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  --handed_out_;
  if (ended_stream_ || dropped_) {
    WriteNextLocked();  // a retired stream may close now
    return false;
  }
  calls_.emplace(id, std::move(call));
  int64_t timeout = 0;
  if (deadline != absl::InfiniteFuture()) {
    timeout = std::max<int64_t>(1, absl::ToInt64Microseconds(deadline - absl::Now()));
  }
  Queue(request.ByteSizeLong() + 32, [&](v1::CloudStreamRequests& m) {
    v1::CloudStreamCall* c = m.add_calls();
    c->set_call_id(id);
    *c->mutable_request() = request;
    c->set_timeout_micros(timeout);
  });
  return true;
}

void CallStream::Forget(uint64_t id) {
  absl::MutexLock lock(&mu_);
  if (calls_.erase(id) == 0 || ended_stream_) return;
  Queue(8, [id](v1::CloudStreamRequests& m) { m.add_cancel(id); });
}

void CallStream::OnRead(bool ok) {
  if (!ok) {  // the stream ended; the finish says how
    {
      absl::MutexLock lock(&mu_);
      ended_stream_ = true;
    }
    stream_->Finish(&status_, &finish_tag_);
    return;
  }
  for (v1::CloudStreamChunk& c : *in_.mutable_chunks()) {
    std::shared_ptr<StreamCall> call;
    {
      absl::MutexLock lock(&mu_);
      auto it = calls_.find(c.call_id());
      if (it == calls_.end()) continue;  // a call that gave up
      if (c.code() != 0 || c.chunk().has_done()) {
        call = std::move(it->second);
        calls_.erase(it);
        if (retired_) WriteNextLocked();  // the last call may have ended
      } else {
        call = it->second;
      }
    }
    call->Deliver(c);
  }
  in_.Clear();
  stream_->Read(&in_, &read_tag_);
}

void CallStream::OnFinished(bool /*ok*/) {
  absl::flat_hash_map<uint64_t, std::shared_ptr<StreamCall>> calls;
  {
    absl::MutexLock lock(&mu_);
    ended_stream_ = true;
    calls.swap(calls_);
  }
  // Whatever ended the stream, the calls on it failed on the way, not by their own
  // fault: UNAVAILABLE lets the router try another allowed backend.
  absl::Status status = absl::UnavailableError(
      status_.ok() ? std::string("backend ended the stream")
                   : absl::StrCat("stream to the backend ended: ",
                                  absl::StatusCodeToString(
                                      static_cast<absl::StatusCode>(status_.error_code())),
                                  ": ", status_.error_message()));
  for (auto& [id, call] : calls) call->StreamEnded(status);
  Unref();
}

std::shared_ptr<grpc::Channel> NewBackendChannel(const v1::Backend& backend,
                                                 const BackendKeepalive& keepalive) {
  grpc::ChannelArguments args;
  if (keepalive.time > absl::ZeroDuration()) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, grpc_util::ChannelArgMillis(keepalive.time));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, grpc_util::ChannelArgMillis(keepalive.timeout));
  }
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
    // Empty both: no client certificate (checked together at load).
    ssl.pem_cert_chain = backend.tls().cert_pem();
    ssl.pem_private_key = backend.tls().key_pem();
    credentials = grpc::SslCredentials(ssl);
    if (!backend.tls().server_name().empty()) {
      args.SetSslTargetNameOverride(backend.tls().server_name());
    }
  }
  return grpc::CreateCustomChannel(backend.address(), credentials, args);
}

namespace {

// What tells connections apart: the address and the TLS settings.
std::string ConnectionKey(const v1::Backend& backend) {
  const v1::BackendTls& tls = backend.tls();
  return backend.has_tls() ? absl::StrCat(backend.address(), "|tls|", tls.server_name(), "|",
                                          tls.ca_pem(), "|", tls.cert_pem(), "|", tls.key_pem())
                           : absl::StrCat(backend.address(), "|plaintext");
}

}  // namespace

std::shared_ptr<GrpcCloudClient::Connection> GrpcCloudClient::ConnectionFor(
    const v1::Backend& backend) {
  const std::string key = ConnectionKey(backend);
  absl::MutexLock lock(&mu_);
  std::shared_ptr<Connection>& c = connections_[key];
  if (c != nullptr) return c;
  c = std::make_shared<Connection>();
  c->channel = NewBackendChannel(backend, options_.keepalive);
  c->channel->GetState(/*try_to_connect=*/true);
  c->stub = v1::CloudInference::NewStub(c->channel);
  return c;
}

void GrpcCloudClient::KeepOnly(const v1::Backends& backends) {
  absl::flat_hash_set<std::string> keep;
  for (const v1::Backend& b : backends.backends()) keep.insert(ConnectionKey(b));
  absl::MutexLock lock(&mu_);
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (keep.contains(it->first)) {
      ++it;
      continue;
    }
    RetireStreamLocked(*it->second, /*dropped=*/true);
    it->second->dropped = true;
    connections_.erase(it++);
  }
}

void GrpcCloudClient::RetireStreamLocked(Connection& connection, bool dropped) {
  if (connection.stream == nullptr) return;
  connection.stream->Retire(dropped);
  retired_streams_.erase(
      std::remove_if(retired_streams_.begin(), retired_streams_.end(),
                     [](const std::weak_ptr<CallStream>& s) { return s.expired(); }),
      retired_streams_.end());
  retired_streams_.push_back(connection.stream);
  connection.stream = nullptr;
}

std::shared_ptr<CloudCall> GrpcCloudClient::Start(const v1::Backend& backend,
                                                  const v1::CloudRequest& request,
                                                  absl::Time deadline, CloudCallbacks callbacks) {
  // Held for the start: a reload may drop it from connections_ meanwhile.
  std::shared_ptr<Connection> connection = ConnectionFor(backend);
  // A request too big for one message of a stream goes in a call of its own.
  if (backend.shared_stream() && request.ByteSizeLong() <= kMaxStreamedRequestBytes) {
    auto call = std::make_shared<StreamCall>(std::move(callbacks), &live_calls_);
    call->Begin([this, &connection] { return StreamFor(*connection); }, request, pick_queue_(),
                deadline, options_.first_text_timeout, call);
    return call;
  }
  auto call = std::make_shared<QueueCall>(std::move(callbacks), deadline, &live_calls_);
  call->Begin(connection->stub.get(), request, pick_queue_(), options_.first_text_timeout, call);
  return call;
}

std::shared_ptr<CallStream> GrpcCloudClient::StreamFor(Connection& connection) {
  absl::MutexLock lock(&mu_);
  // A reload dropped it after the call picked it: a stream opened now would
  // stay open, as nothing would retire or close it.
  if (connection.dropped) return nullptr;
  const absl::Time now = absl::Now();
  if (connection.stream != nullptr && !connection.stream->ended() &&
      options_.stream_max_age > absl::ZeroDuration() &&
      now - connection.stream_opened >= options_.stream_max_age) {
    // Too old: its calls finish where they are; the next stream is placed anew.
    RetireStreamLocked(connection, /*dropped=*/false);
  }
  if (connection.stream == nullptr || connection.stream->ended()) {
    connection.stream = std::make_shared<CallStream>(&live_streams_);
    connection.stream->Begin(connection.stub.get(), pick_queue_());
    connection.stream_opened = now;
  }
  connection.stream->HandOut();
  return connection.stream;
}

bool GrpcCloudClient::CloseStreams(absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, connection] : connections_) {
      if (connection->stream != nullptr) connection->stream->Close();
      connection->stream = nullptr;
    }
    for (const std::weak_ptr<CallStream>& retired : retired_streams_) {
      if (std::shared_ptr<CallStream> s = retired.lock()) s->Close();
    }
    retired_streams_.clear();
  }
  return live_streams_.WaitForNone(absl::Now() + timeout);
}

bool GrpcCloudClient::WaitForCalls(absl::Duration timeout) {
  return live_calls_.WaitForNone(absl::Now() + timeout);
}

bool GrpcCloudClient::IsDown(const v1::Backend& backend) {
  return ConnectionFor(backend)->channel->GetState(/*try_to_connect=*/true) ==
         GRPC_CHANNEL_TRANSIENT_FAILURE;
}

}  // namespace hr::device
