#ifndef HYBRID_ROUTER_DEVICE_STUB_CLOUD_CLIENT_H_
#define HYBRID_ROUTER_DEVICE_STUB_CLOUD_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpc_util/cq_pool.h"
#include "grpcpp/grpcpp.h"
#include "hybridrouter/v1/cloud.grpc.pb.h"
#include "hybridrouter/v1/config.pb.h"

namespace hr::device {

namespace v1 = ::hybridrouter::v1;

class CallStream;

// One streaming call to a cloud backend.
class CloudCall {
 public:
  virtual ~CloudCall() = default;
  // Asks the call to end early; on_done still follows (with CANCELLED).
  // Safe from any thread, also after the call ended.
  virtual void Cancel() = 0;
};

// What a call reports, in order: on_start once (unless the call fails first), then
// on_text for each piece, then on_done exactly once with the backend's final
// message or the call's error. Text that came in one message with the final one
// is handed to on_done with it (`last_text`), so that the two can go on together;
// with an error it is always empty. Called on gRPC threads: they must not block.
struct CloudCallbacks {
  std::function<void(const v1::CloudStart&)> on_start;
  std::function<void(std::string)> on_text;
  std::function<void(absl::StatusOr<v1::CloudDone> done, std::string last_text)> on_done;
};

// Talks to cloud backends. An interface so that the routing code can be tested
// with a fake; hr-device uses GrpcCloudClient.
class CloudClient {
 public:
  virtual ~CloudClient() = default;
  // Starts a call to `backend`. Never blocks.
  virtual std::shared_ptr<CloudCall> Start(const v1::Backend& backend,
                                           const v1::CloudRequest& request,
                                           absl::Time deadline, CloudCallbacks callbacks) = 0;
  // Whether the transport knows the backend to be down right now (connection
  // failing, or its health service reports NOT_SERVING).
  virtual bool IsDown(const v1::Backend& backend) = 0;
};

// Keepalive pings on a backend connection: after `time` without anything read
// from the backend, a ping; no answer within `timeout` and the connection is
// closed, ending its calls UNAVAILABLE. Finds a backend
// that stopped answering without closing its connection (a frozen process, a
// dropped network path). Zero `time`: no pings. gRPC sends no more than two
// pings before hr-device next writes to the connection, so a quiet connection
// is pinged at most twice until the next request.
struct BackendKeepalive {
  absl::Duration time = absl::ZeroDuration();
  absl::Duration timeout = absl::Seconds(10);
};

// A channel to `backend` as hr-device makes it: to its address, over TLS with the
// roots, name and client certificate of its `tls` block (plaintext without one),
// with gRPC's health checking and round-robin over the addresses a name resolves
// to, reconnecting within seconds, and `keepalive`. Not connected yet.
std::shared_ptr<grpc::Channel> NewBackendChannel(const v1::Backend& backend,
                                                 const BackendKeepalive& keepalive = {});

// CloudClient over gRPC: one channel per backend address (and TLS settings: a
// backend with `tls` is reached over TLS with the roots and name it gives, never in
// plaintext), created on first use and reused by every call, with gRPC's client-side health
// checking (so a draining or unhealthy backend is known down without a failed call). Calls run on
// gRPC's completion-queue API: each on the queue `pick_queue` returns when it starts (CqPool::Pick:
// the starting thread's own queue, so a call's callbacks run on the thread that serves the
// request), and the callbacks run on the thread that drives that queue. A backend that sends no
// text (nor its final message) within `first_text_timeout` of the call's start is given up: the
// call is cancelled and ends UNAVAILABLE, so the router can try another allowed backend or the
// policy's fallback instead of waiting for the request's deadline (zero: no limit). A
// `shared_stream` backend's calls all travel on one GenerateStream per connection instead,
// with the same callbacks, timeout and deadline (the deadline by an alarm of their own).
// Once that stream is `stream_max_age` old, new calls go on a new one, which gRPC's
// round-robin places on the next of the backend's addresses; the old one closes when its
// calls have ended. Thread-safe.
struct GrpcCloudClientOptions {
  // How long a backend may take to send text (or its final message); zero: no limit.
  absl::Duration first_text_timeout = absl::ZeroDuration();
  // How long a shared stream takes new calls; zero: until it ends.
  absl::Duration stream_max_age = absl::ZeroDuration();
  BackendKeepalive keepalive;
};

class GrpcCloudClient : public CloudClient {
 public:
  explicit GrpcCloudClient(std::function<grpc::CompletionQueue*()> pick_queue,
                           GrpcCloudClientOptions options = {})
      : pick_queue_(std::move(pick_queue)), options_(options) {}
  std::shared_ptr<CloudCall> Start(const v1::Backend& backend, const v1::CloudRequest& request,
                                   absl::Time deadline, CloudCallbacks callbacks) override;
  bool IsDown(const v1::Backend& backend) override;

  // Waits until no call is in flight, at most `timeout`; false if some still are.
  // For shutdown: once the server's calls are over, their backend calls end soon
  // (they are cancelled with them), and only then may the queues they run on be
  // shut down.
  bool WaitForCalls(absl::Duration timeout);

  // Drops the connections to backends (and TLS settings) no longer in
  // `backends`, after a reload: their channels close, health checks and
  // reconnection attempts included, and their shared streams close once their
  // calls have ended. Calls running on them go on.
  void KeepOnly(const v1::Backends& backends);

  // Ends the backends' shared streams and waits until they are over, at most
  // `timeout`; false if some are not. For shutdown, after WaitForCalls and
  // before the queues are shut down.
  bool CloseStreams(absl::Duration timeout);

  // A request bigger than this goes to a `shared_stream` backend in a call of
  // its own, so that a message of the stream stays far below gRPC's 4 MB limit.
  static constexpr size_t kMaxStreamedRequestBytes = 1024 * 1024;

 private:
  struct Connection {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::CloudInference::Stub> stub;
    // The GenerateStream for `shared_stream` backends, opened on first use, again
    // after it ended, and when it is stream_max_age old.
    std::shared_ptr<CallStream> stream;  // guarded by mu_
    absl::Time stream_opened;            // guarded by mu_
    bool dropped = false;                // by KeepOnly; guarded by mu_
  };
  // The connection to `backend`'s address with its TLS settings, made on first use.
  std::shared_ptr<Connection> ConnectionFor(const v1::Backend& backend);
  // The connection's open stream, opened when there is none or it ended, and
  // handed out for one call (CallStream::HandOut); null once KeepOnly dropped
  // the connection.
  std::shared_ptr<CallStream> StreamFor(Connection& connection);
  // Takes no new calls on the connection's stream (but those handed out, unless
  // `dropped`), which closes once its calls end.
  void RetireStreamLocked(Connection& connection, bool dropped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<grpc::CompletionQueue*()> pick_queue_;
  const GrpcCloudClientOptions options_;
  absl::Mutex mu_;
  // By address and TLS settings; until KeepOnly drops them.
  absl::flat_hash_map<std::string, std::shared_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
  // Streams replaced (for their age, or by KeepOnly) whose calls may still run; for shutdown.
  std::vector<std::weak_ptr<CallStream>> retired_streams_ ABSL_GUARDED_BY(mu_);
  // The calls and the shared streams whose tags are not all back yet.
  grpc_util::LiveCalls live_calls_;
  grpc_util::LiveCalls live_streams_;
};

}  // namespace hr::device

#endif  // HYBRID_ROUTER_DEVICE_STUB_CLOUD_CLIENT_H_
