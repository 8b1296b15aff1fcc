#include "device_stub/cloud_client.h"

#include "absl/status/status.h"
#include "grpc_util/server_util.h"

namespace hr::device {
namespace {

// Balances over every address a target resolves to (a Kubernetes headless
// service, say) and checks each one's gRPC health service.
constexpr char kServiceConfig[] = R"({
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""}
})";

class CallReactor : public grpc::ClientReadReactor<v1::CloudChunk>, public CloudCall {
 public:
  CallReactor(CloudCallbacks callbacks, absl::Time deadline) : callbacks_(std::move(callbacks)) {
    if (deadline != absl::InfiniteFuture()) context_.set_deadline(absl::ToChronoTime(deadline));
  }

  void Begin(v1::CloudInference::Stub* stub, const v1::CloudRequest& request,
             std::shared_ptr<CallReactor> self) {
    self_ = std::move(self);
    request_ = request;
    stub->async()->Generate(&context_, &request_, this);
    StartRead(&chunk_);
    StartCall();
  }

  void Cancel() override { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone reports how
    switch (chunk_.kind_case()) {
      case v1::CloudChunk::kStart:
        callbacks_.on_start(chunk_.start());
        break;
      case v1::CloudChunk::kText:
        callbacks_.on_text(std::move(*chunk_.mutable_text()));
        break;
      case v1::CloudChunk::kDone:
        done_ = std::move(*chunk_.mutable_done());
        got_done_ = true;
        break;
      default:
        break;
    }
    chunk_.Clear();
    StartRead(&chunk_);
  }

  void OnDone(const grpc::Status& status) override {
    if (!status.ok()) {
      callbacks_.on_done(grpc_util::FromGrpcStatus(status));
    } else if (!got_done_) {
      callbacks_.on_done(absl::DataLossError("backend ended the stream without a final message"));
    } else {
      callbacks_.on_done(std::move(done_));
    }
    self_.reset();  // may delete this, if the caller dropped its handle
  }

 private:
  CloudCallbacks callbacks_;
  grpc::ClientContext context_;
  v1::CloudRequest request_;
  v1::CloudChunk chunk_;
  v1::CloudDone done_;
  bool got_done_ = false;
  std::shared_ptr<CallReactor> self_;  // keeps the reactor alive until OnDone
};

}  // namespace

std::shared_ptr<grpc::Channel> GrpcCloudClient::ChannelFor(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto it = channels_.find(address);
  if (it != channels_.end()) return it->second;
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(kServiceConfig);
  // Notice a backend that came back within a second, not after minutes of backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  channel->GetState(/*try_to_connect=*/true);
  stubs_[address] = v1::CloudInference::NewStub(channel);
  channels_[address] = channel;
  return channel;
}

std::shared_ptr<CloudCall> GrpcCloudClient::Start(const v1::Backend& backend,
                                                  const v1::CloudRequest& request,
                                                  absl::Time deadline, CloudCallbacks callbacks) {
  ChannelFor(backend.address());
  v1::CloudInference::Stub* stub;
  {
    absl::MutexLock lock(&mu_);
    stub = stubs_[backend.address()].get();
  }
  auto call = std::make_shared<CallReactor>(std::move(callbacks), deadline);
  call->Begin(stub, request, call);
  return call;
}

bool GrpcCloudClient::IsDown(const v1::Backend& backend) {
  return ChannelFor(backend.address())->GetState(/*try_to_connect=*/true) ==
         GRPC_CHANNEL_TRANSIENT_FAILURE;
}

}  // namespace hr::device
