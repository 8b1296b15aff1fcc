#include "device_stub/router_service.h"

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

// Text that queued up behind a write in flight goes out as one chunk.
bool MergeText(v1::GenerateResponse& queued, v1::GenerateResponse& next) {
  if (!queued.has_chunk() || !next.has_chunk()) return false;
  queued.mutable_chunk()->mutable_text()->append(next.chunk().text());
  return true;
}

absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  auto d = context->deadline();
  // A call without a deadline reports the far future; absl::Time cannot hold it.
  if (d > std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(d);
}

}  // namespace

grpc::ServerWriteReactor<v1::GenerateResponse>* RouterService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  auto* reactor = new grpc_util::SinkReactor<v1::GenerateResponse>(&MergeText);
  router_->Generate(*request, DeadlineOf(context), std::make_shared<SinkStream>(reactor->sink()));
  return reactor;
}

grpc::ServerUnaryReactor* RouterService::Explain(grpc::CallbackServerContext* context,
                                                 const v1::GenerateRequest* request,
                                                 v1::RouteInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<v1::RouteInfo> info = router_->Explain(*request);
  if (info.ok()) *response = *std::move(info);
  reactor->Finish(grpc_util::ToGrpcStatus(info.status()));
  return reactor;
}

}  // namespace hr::device
