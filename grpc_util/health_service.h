#ifndef HYBRID_ROUTER_GRPC_UTIL_HEALTH_SERVICE_H_
#define HYBRID_ROUTER_GRPC_UTIL_HEALTH_SERVICE_H_

#include <memory>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc_util/cq_pool.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

namespace hr::grpc_util {

// The standard health service (grpc.health.v1.Health: Check and Watch) on the
// completion-queue API, driven by a CqPool. For a server that serves its hot path
// on a CqPool: gRPC's own health service runs on the callback API, whose threads
// would poll the same sockets as the pool's and hand calls between threads.
//
// Knows one service name, "" (the server as a whole): other names get NOT_FOUND
// from Check and SERVICE_UNKNOWN from Watch.
class QueueHealthService final : public grpc::health::v1::Health::AsyncService {
 public:
  QueueHealthService() = default;
  QueueHealthService(const QueueHealthService&) = delete;
  QueueHealthService& operator=(const QueueHealthService&) = delete;

  // Starts taking calls on every queue of `queues`: once, after the server
  // started and the pool's threads run.
  void Serve(CqPool* queues);

  // SERVING (the start) or NOT_SERVING; every Watch hears of a change.
  void SetServing(bool serving);

  // NOT_SERVING from now on, and every Watch ends after saying so, so that
  // watchers do not hold up the server's shutdown. Call before it.
  void Shutdown();

  // For ServerBuilder (grpc::HealthCheckServiceServerBuilderOption): then
  // server->GetHealthCheckService() controls this service and gRPC starts no
  // health service of its own.
  std::unique_ptr<grpc::HealthCheckServiceInterface> Controller();

  // Watch calls open now.
  int WatchCount();

 private:
  class CheckCall;
  class WatchCall;
  friend class CheckCall;
  friend class WatchCall;

  grpc::health::v1::HealthCheckResponse::ServingStatus StatusLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Guards the status and every watch's state; gRPC never completes an
  // operation inside the call that starts it, so starting one under it is safe.
  absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = true;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<WatchCall*> watches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hr::grpc_util

#endif  // HYBRID_ROUTER_GRPC_UTIL_HEALTH_SERVICE_H_
