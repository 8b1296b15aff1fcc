#include "grpc_util/health_service.h"

#include <string>

namespace hr::grpc_util {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using ServingStatus = HealthCheckResponse::ServingStatus;

// One Check: answers at once and deletes itself when the answer is out.
class QueueHealthService::CheckCall {
 public:
  CheckCall(QueueHealthService* service, CqPool* pool, grpc::ServerCompletionQueue* queue)
      : service_(service), pool_(pool), queue_(queue) {}

  void Listen() {
    service_->RequestCheck(&context_, &request_, &responder_, queue_, queue_, &request_tag_);
  }

 private:
  void OnRequest(bool ok) {
    if (!ok) {  // shutting down
      delete this;
      return;
    }
    (new CheckCall(service_, pool_, queue_))->Listen();
    if (!request_.service().empty()) {
      responder_.FinishWithError(
          grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service: " + request_.service()),
          &finish_tag_);
      return;
    }
    HealthCheckResponse response;
    {
      absl::MutexLock lock(&service_->mu_);
      response.set_status(service_->StatusLocked());
    }
    responder_.Finish(response, grpc::Status::OK, &finish_tag_);  // copies the response
  }

  void OnFinished(bool /*ok*/) { delete this; }

  QueueHealthService* const service_;
  CqPool* const pool_;
  grpc::ServerCompletionQueue* const queue_;
  const LiveCalls::Token live_{pool_->live_calls()};
  grpc::ServerContext context_;
  HealthCheckRequest request_;
  grpc::ServerAsyncResponseWriter<HealthCheckResponse> responder_{&context_};
  MemberTag<CheckCall> request_tag_{this, &CheckCall::OnRequest};
  MemberTag<CheckCall> finish_tag_{this, &CheckCall::OnFinished};
};

// One Watch: writes the status, then each change, one write in flight at a time
// (a change during a write is written after it, only the latest); ends when the
// service shuts down or the client hangs up. Its state is guarded by the
// service's mutex. Deletes itself when gRPC has handed back every tag: the done
// notification and each operation while in flight.
class QueueHealthService::WatchCall {
 public:
  WatchCall(QueueHealthService* service, CqPool* pool, grpc::ServerCompletionQueue* queue)
      : service_(service), pool_(pool), queue_(queue) {}

  void Listen() {
    context_.AsyncNotifyWhenDone(&done_tag_);
    service_->RequestWatch(&context_, &request_, &writer_, queue_, queue_, &request_tag_);
  }

  bool known() const { return known_; }

  // Makes `status` the next one to write. Requires the service's mutex.
  void SendLocked(ServingStatus status) {
    want_ = status;
    PumpLocked();
  }

  // Ends the stream after what is queued. Requires the service's mutex.
  void EndLocked() {
    end_ = true;
    PumpLocked();
  }

 private:
  void OnRequest(bool ok) {
    if (!ok) {  // shutting down; no call, so no done notification either
      delete this;
      return;
    }
    (new WatchCall(service_, pool_, queue_))->Listen();
    absl::MutexLock lock(&service_->mu_);
    refs_ = 1;  // the done notification
    known_ = request_.service().empty();
    service_->watches_.insert(this);
    SendLocked(known_ ? service_->StatusLocked() : HealthCheckResponse::SERVICE_UNKNOWN);
    if (service_->shut_down_) EndLocked();
  }

  // Starts the next operation when none is in flight: the status not yet
  // written, else the end of the stream when asked for.
  void PumpLocked() {
    if (in_flight_ || finished_) return;
    if (!cancelled_ && want_ != sent_) {
      sent_ = want_;
      response_.set_status(sent_);
      in_flight_ = true;
      ++refs_;
      writer_.Write(response_, &write_tag_);
    } else if (end_ || cancelled_) {
      finished_ = true;
      in_flight_ = true;
      ++refs_;
      writer_.Finish(cancelled_ ? grpc::Status::CANCELLED : grpc::Status::OK, &finish_tag_);
    }
  }

  void OnOperationDone(bool ok) {
    bool last;
    {
      absl::MutexLock lock(&service_->mu_);
      in_flight_ = false;
      if (!ok) cancelled_ = true;  // the client is gone: only the finish is left
      PumpLocked();
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  void OnDone(bool /*ok*/) {
    bool last;
    {
      absl::MutexLock lock(&service_->mu_);
      service_->watches_.erase(this);
      if (context_.IsCancelled()) cancelled_ = true;
      PumpLocked();
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  QueueHealthService* const service_;
  CqPool* const pool_;
  grpc::ServerCompletionQueue* const queue_;
  const LiveCalls::Token live_{pool_->live_calls()};
  grpc::ServerContext context_;
  HealthCheckRequest request_;
  HealthCheckResponse response_;  // the one being written
  grpc::ServerAsyncWriter<HealthCheckResponse> writer_{&context_};
  // Guarded by service_->mu_ once the call started.
  int refs_ = 0;
  bool known_ = false;
  ServingStatus want_ = HealthCheckResponse::UNKNOWN;
  ServingStatus sent_ = HealthCheckResponse::UNKNOWN;
  bool in_flight_ = false;
  bool end_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
  MemberTag<WatchCall> request_tag_{this, &WatchCall::OnRequest};
  MemberTag<WatchCall> write_tag_{this, &WatchCall::OnOperationDone};
  MemberTag<WatchCall> finish_tag_{this, &WatchCall::OnOperationDone};
  MemberTag<WatchCall> done_tag_{this, &WatchCall::OnDone};
};

namespace {

class HealthController final : public grpc::HealthCheckServiceInterface {
 public:
  explicit HealthController(QueueHealthService* service) : service_(service) {}
  void SetServingStatus(const std::string& service_name, bool serving) override {
    if (service_name.empty()) service_->SetServing(serving);
  }
  void SetServingStatus(bool serving) override { service_->SetServing(serving); }
  void Shutdown() override { service_->Shutdown(); }

 private:
  QueueHealthService* const service_;
};

}  // namespace

void QueueHealthService::Serve(CqPool* queues) {
  for (int i = 0; i < queues->size(); ++i) {
    (new CheckCall(this, queues, queues->queue(i)))->Listen();
    (new WatchCall(this, queues, queues->queue(i)))->Listen();
  }
}

ServingStatus QueueHealthService::StatusLocked() const {
  return serving_ && !shut_down_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

void QueueHealthService::SetServing(bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_ || serving_ == serving) return;
  serving_ = serving;
  for (WatchCall* w : watches_) {
    if (w->known()) w->SendLocked(StatusLocked());
  }
}

void QueueHealthService::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  for (WatchCall* w : watches_) {
    if (w->known()) w->SendLocked(HealthCheckResponse::NOT_SERVING);
    w->EndLocked();
  }
}

int QueueHealthService::WatchCount() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(watches_.size());
}

std::unique_ptr<grpc::HealthCheckServiceInterface> QueueHealthService::Controller() {
  return std::make_unique<HealthController>(this);
}

}  // namespace hr::grpc_util
