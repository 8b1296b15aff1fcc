#include "device_stub/router_service.h"

#include <atomic>
#include <chrono>

#include "grpc_util/server_util.h"
#include "grpc_util/stream_sink.h"

namespace hr::device {
namespace {

class SinkStream : public ResponseStream {
 public:
  explicit SinkStream(std::shared_ptr<grpc_util::StreamSink<v1::GenerateResponse>> sink)
      : sink_(std::move(sink)) {}
  bool Send(v1::GenerateResponse r) override { return sink_->Send(std::move(r)); }
  void Finish(const absl::Status& s) override { sink_->Finish(grpc_util::ToGrpcStatus(s)); }
  void FinishWith(v1::GenerateResponse last, const absl::Status& s) override {
    sink_->SendLast(std::move(last), grpc_util::ToGrpcStatus(s));
  }
  void OnCancel(std::function<void()> f) override { sink_->OnCancel(std::move(f)); }

 private:
  std::shared_ptr<grpc_util::StreamSink<v1::GenerateResponse>> sink_;
};

// What queued up behind a write in flight goes out as one message: text joins
// the text before it, and the final message joins the last text.
bool MergeResponses(v1::GenerateResponse& queued, v1::GenerateResponse& next) {
  if (queued.has_done() || next.has_route()) return false;
  if (next.has_chunk()) queued.mutable_chunk()->mutable_text()->append(next.chunk().text());
  if (next.has_done()) *queued.mutable_done() = std::move(*next.mutable_done());
  return true;
}

absl::Time DeadlineOf(const grpc::ServerContextBase* context) {
  auto d = context->deadline();
  // A call without a deadline reports the far future; absl::Time cannot hold it.
  if (d > std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(d);
}

// Calls each queue is ready to take at once; more arrivals wait in gRPC until
// one of these takes them.
constexpr int kWaitingCallsPerQueue = 4;

// One Generate call on the completion-queue API. Waits for a call, hands it to
// the router, and writes what the router sends through a StreamSink (one write in
// flight, text merged behind it, the last message with the status). Deletes itself
// once gRPC has handed back every tag it was given: the done notification and the
// operation that finished the call, plus each write while it is in flight.
class GenerateCall final : private grpc_util::StreamWriter<v1::GenerateResponse> {
 public:
  GenerateCall(RouterService* service, DeviceRouter* router, grpc_util::CqPool* pool,
               grpc::ServerCompletionQueue* queue)
      : service_(service),
        router_(router),
        pool_(pool),
        queue_(queue),
        sink_(std::make_shared<grpc_util::StreamSink<v1::GenerateResponse>>(&MergeResponses)) {
    sink_->Attach(this);
  }

  void Listen() {
    context_.AsyncNotifyWhenDone(&done_tag_);
    service_->RequestGenerate(&context_, &request_, &writer_, queue_, queue_, &request_tag_);
  }

 private:
  void OnRequest(bool ok) {
    if (!ok) {  // the server is shutting down; no call, so no done notification either
      delete this;
      return;
    }
    (new GenerateCall(service_, router_, pool_, queue_))->Listen();
    router_->Generate(request_, DeadlineOf(&context_), std::make_shared<SinkStream>(sink_));
  }

  void OnWriteDone(bool ok) {
    sink_->WriteDone(ok);
    Unref();
  }
  void OnFinished(bool /*ok*/) { Unref(); }
  void OnDone(bool /*ok*/) {
    if (context_.IsCancelled()) sink_->Cancelled();
    Unref();
  }

  void Write(const v1::GenerateResponse* message) override {
    refs_.fetch_add(1, std::memory_order_relaxed);
    writer_.Write(*message, &write_tag_);
  }
  void WriteLast(const v1::GenerateResponse* message, const grpc::Status& status) override {
    writer_.WriteAndFinish(*message, grpc::WriteOptions(), status, &finish_tag_);
  }
  void Close(const grpc::Status& status) override { writer_.Finish(status, &finish_tag_); }

  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    sink_->Detach();
    delete this;
  }

  RouterService* const service_;
  DeviceRouter* const router_;
  grpc_util::CqPool* const pool_;
  grpc::ServerCompletionQueue* const queue_;
  const grpc_util::LiveCalls::Token live_{pool_->live_calls()};
  grpc::ServerContext context_;
  v1::GenerateRequest request_;
  grpc::ServerAsyncWriter<v1::GenerateResponse> writer_{&context_};
  const std::shared_ptr<grpc_util::StreamSink<v1::GenerateResponse>> sink_;
  // Tags outstanding once the call started: the done notification and the
  // finishing operation; each write adds one while in flight.
  std::atomic<int> refs_{2};
  grpc_util::MemberTag<GenerateCall> request_tag_{this, &GenerateCall::OnRequest};
  grpc_util::MemberTag<GenerateCall> write_tag_{this, &GenerateCall::OnWriteDone};
  grpc_util::MemberTag<GenerateCall> finish_tag_{this, &GenerateCall::OnFinished};
  grpc_util::MemberTag<GenerateCall> done_tag_{this, &GenerateCall::OnDone};
};

// One Explain call: answers at once, deletes itself when the answer is out.
class ExplainCall {
 public:
  ExplainCall(RouterService* service, DeviceRouter* router, grpc_util::CqPool* pool,
              grpc::ServerCompletionQueue* queue)
      : service_(service), router_(router), pool_(pool), queue_(queue) {}

  void Listen() {
    service_->RequestExplain(&context_, &request_, &responder_, queue_, queue_, &request_tag_);
  }

 private:
  void OnRequest(bool ok) {
    if (!ok) {  // the server is shutting down
      delete this;
      return;
    }
    (new ExplainCall(service_, router_, pool_, queue_))->Listen();
    absl::StatusOr<v1::RouteInfo> info = router_->Explain(request_);
    if (info.ok()) {
      responder_.Finish(*info, grpc::Status::OK, &finish_tag_);  // copies the answer
    } else {
      responder_.FinishWithError(grpc_util::ToGrpcStatus(info.status()), &finish_tag_);
    }
  }

  void OnFinished(bool /*ok*/) { delete this; }

  RouterService* const service_;
  DeviceRouter* const router_;
  grpc_util::CqPool* const pool_;
  grpc::ServerCompletionQueue* const queue_;
  const grpc_util::LiveCalls::Token live_{pool_->live_calls()};
  grpc::ServerContext context_;
  v1::GenerateRequest request_;
  grpc::ServerAsyncResponseWriter<v1::RouteInfo> responder_{&context_};
  grpc_util::MemberTag<ExplainCall> request_tag_{this, &ExplainCall::OnRequest};
  grpc_util::MemberTag<ExplainCall> finish_tag_{this, &ExplainCall::OnFinished};
};

}  // namespace

void RouterService::Serve(grpc_util::CqPool* queues) {
  for (int i = 0; i < queues->size(); ++i) {
    for (int n = 0; n < kWaitingCallsPerQueue; ++n) {
      (new GenerateCall(this, router_, queues, queues->queue(i)))->Listen();
    }
    (new ExplainCall(this, router_, queues, queues->queue(i)))->Listen();
  }
}

}  // namespace hr::device
