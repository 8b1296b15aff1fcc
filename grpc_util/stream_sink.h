#ifndef HYBRID_ROUTER_GRPC_UTIL_STREAM_SINK_H_
#define HYBRID_ROUTER_GRPC_UTIL_STREAM_SINK_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"

namespace hr::grpc_util {

// Merges `next` into `queued` (a message not yet handed to gRPC) when the two
// can travel as one, such as two pieces of text; returns false to keep them apart.
template <typename Response>
using MergeFn = bool (*)(Response& queued, Response& next);

// The transport side of one server-streaming call, as a StreamSink drives it: at
// most one of these operations is in flight at a time, and the transport reports
// each Write's completion back with StreamSink::WriteDone. Implemented by
// SinkReactor (gRPC's callback API) and by completion-queue calls.
template <typename Response>
class StreamWriter {
 public:
  virtual void Write(const Response* message) = 0;
  // Writes `message` and ends the call with `status` in one operation.
  virtual void WriteLast(const Response* message, const grpc::Status& status) = 0;
  virtual void Close(const grpc::Status& status) = 0;

 protected:
  ~StreamWriter() = default;
};

// The producer's side of a server-streaming call: any thread may Send() messages
// and then Finish() once; they are written in order, one write in flight at a time,
// without blocking the caller. Messages that queue up behind a write in flight
// are merged by the MergeFn, when there is one, so a fast producer costs fewer
// writes; the last message goes out together with the status (one operation,
// not two) when the producer says which is last (SendLast). Once the call is
// cancelled or finished, Send() and Finish() do nothing. Thread-safe; shared by
// the reactor and the producers, so it outlives the reactor.
template <typename Response>
class StreamSink {
 public:
  explicit StreamSink(MergeFn<Response> merge = nullptr) : merge_(merge) {}

  // Queues a message. Returns false when the stream is closed (the client went
  // away or Finish was called), so the producer can stop.
  bool Send(Response response) { return Enqueue(std::move(response), std::nullopt); }

  // Queues the last message and ends the call with `status` after it. Returns
  // false, sending nothing, when the stream is already closed.
  bool SendLast(Response response, grpc::Status status) {
    return Enqueue(std::move(response), std::move(status));
  }

  // Ends the call with `status` after the queued messages. First call wins.
  void Finish(grpc::Status status) {
    StreamWriter<Response>* finish = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (finish_.has_value()) return;
      finish_ = std::move(status);
      if (!write_in_flight_ && writer_ != nullptr && !finish_started_) {
        finish_started_ = true;
        finish = writer_;
      }
    }
    if (finish != nullptr) finish->Close(*finish_);
  }

  // Runs `f` (once) when the client cancels; immediately if it already has.
  void OnCancel(std::function<void()> f) {
    bool now = false;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) {
        now = true;
      } else {
        on_cancel_ = std::move(f);
      }
    }
    if (now) f();
  }

  bool closed() const {
    absl::MutexLock lock(&mu_);
    return closed_ || finish_.has_value();
  }

  // The transport's side, called by the StreamWriter's owner.

  // Connects the writer, before anything is sent.
  void Attach(StreamWriter<Response>* writer) {
    absl::MutexLock lock(&mu_);
    writer_ = writer;
  }

  // The Write in flight completed; ok is false when the client is gone.
  void WriteDone(bool ok) {
    StreamWriter<Response>* writer = nullptr;
    const Response* next = nullptr;
    bool finish = false;
    bool and_finish = false;
    {
      absl::MutexLock lock(&mu_);
      queue_.pop_front();
      if (!ok) {  // the client is gone: nothing more will be written
        closed_ = true;
        queue_.clear();
        if (!finish_.has_value()) finish_ = grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
      if (!queue_.empty()) {
        next = &queue_.front();
        if (finish_.has_value() && queue_.size() == 1 && !finish_started_) {
          finish_started_ = true;
          and_finish = true;
        }
      } else {
        write_in_flight_ = false;
        if (finish_.has_value() && !finish_started_) {
          finish_started_ = true;
          finish = true;
        }
      }
      writer = writer_;
    }
    if (next != nullptr) StartWrite(writer, next, and_finish);
    if (finish) writer->Close(*finish_);
  }

  // The client cancelled the call: runs the OnCancel function and ends the call.
  void Cancelled() {
    std::function<void()> f;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      f = std::move(on_cancel_);
    }
    if (f) f();
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }

  // The call is over: the writer is gone and nothing more is written.
  void Detach() {
    absl::MutexLock lock(&mu_);
    writer_ = nullptr;
    closed_ = true;
  }

 private:
  bool Enqueue(Response response, std::optional<grpc::Status> last) {
    StreamWriter<Response>* start = nullptr;
    const Response* message = nullptr;
    bool and_finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (closed_ || finish_.has_value()) return false;
      // Only a message not yet handed to gRPC may change: the front is in flight.
      const size_t started = write_in_flight_ ? 1 : 0;
      if (merge_ == nullptr || queue_.size() <= started || !merge_(queue_.back(), response)) {
        queue_.push_back(std::move(response));
      }
      if (last.has_value()) finish_ = std::move(last);
      if (!write_in_flight_ && writer_ != nullptr) {
        write_in_flight_ = true;
        start = writer_;
        message = &queue_.front();
        and_finish = finish_.has_value() && queue_.size() == 1;
        finish_started_ = and_finish;
      }
    }
    // A deque keeps references valid across push_back, and only WriteDone pops
    // the message in flight, so it is safe to hand out outside the lock.
    if (start != nullptr) StartWrite(start, message, and_finish);
    return true;
  }

  // The last message of the call carries the status with it.
  void StartWrite(StreamWriter<Response>* writer, const Response* message, bool and_finish) {
    if (and_finish) {
      writer->WriteLast(message, *finish_);
    } else {
      writer->Write(message);
    }
  }

  const MergeFn<Response> merge_;
  mutable absl::Mutex mu_;
  StreamWriter<Response>* writer_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::deque<Response> queue_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_;  // written once under mu_, then read-only
  std::function<void()> on_cancel_ ABSL_GUARDED_BY(mu_);
};

// The reactor that gRPC drives for a StreamSink. Return it from a callback
// service's streaming method; it deletes itself when the call is done.
template <typename Response>
class SinkReactor : public grpc::ServerWriteReactor<Response>, private StreamWriter<Response> {
 public:
  explicit SinkReactor(MergeFn<Response> merge = nullptr)
      : sink_(std::make_shared<StreamSink<Response>>(merge)) {
    sink_->Attach(this);
  }
  const std::shared_ptr<StreamSink<Response>>& sink() const { return sink_; }

  void OnWriteDone(bool ok) override { sink_->WriteDone(ok); }
  void OnCancel() override { sink_->Cancelled(); }
  void OnDone() override {
    sink_->Detach();
    delete this;
  }

 private:
  void Write(const Response* message) override { this->StartWrite(message); }
  // The status travels with the message; gRPC then calls OnDone without an
  // OnWriteDone for it.
  void WriteLast(const Response* message, const grpc::Status& status) override {
    this->StartWriteAndFinish(message, grpc::WriteOptions(), status);
  }
  void Close(const grpc::Status& status) override { this->Finish(status); }

  std::shared_ptr<StreamSink<Response>> sink_;
};

}  // namespace hr::grpc_util

#endif  // HYBRID_ROUTER_GRPC_UTIL_STREAM_SINK_H_
