#ifndef HYBRID_ROUTER_DEVICE_STUB_ROUTER_SERVICE_H_
#define HYBRID_ROUTER_DEVICE_STUB_ROUTER_SERVICE_H_

#include "device_stub/device_router.h"
#include "grpc_util/cq_pool.h"
#include "hybridrouter/v1/router.grpc.pb.h"

namespace hr::device {

// The gRPC face of DeviceRouter: converts calls and statuses, nothing else.
//
// Served on gRPC's completion-queue API by the threads of a CqPool: a call's
// arrival, the backend call it starts and the answer it streams back are all
// handled on one thread, without the hand-offs between gRPC's callback threads.
// (So that no callback threads poll the server's sockets at all, the server's
// health service runs on the pool too: grpc_util::QueueHealthService.)
class RouterService final : public v1::Router::AsyncService {
 public:
  // `router` must outlive the service.
  explicit RouterService(DeviceRouter* router) : router_(router) {}

  // Starts taking calls on every queue of `queues`: call once, after the server
  // started (the queues belong to its builder) and the pool's threads run.
  void Serve(grpc_util::CqPool* queues);

 private:
  DeviceRouter* const router_;
};

}  // namespace hr::device

#endif  // HYBRID_ROUTER_DEVICE_STUB_ROUTER_SERVICE_H_
