#ifndef HYBRID_ROUTER_DEVICE_STUB_ROUTER_SERVICE_H_
#define HYBRID_ROUTER_DEVICE_STUB_ROUTER_SERVICE_H_

#include "device_stub/device_router.h"
#include "hybridrouter/v1/router.grpc.pb.h"

namespace hr::device {

// The gRPC face of DeviceRouter: converts calls and statuses, nothing else.
class RouterService final : public v1::Router::CallbackService {
 public:
  // `router` must outlive the service.
  explicit RouterService(DeviceRouter* router) : router_(router) {}

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Explain(grpc::CallbackServerContext* context,
                                    const v1::GenerateRequest* request,
                                    v1::RouteInfo* response) override;

 private:
  DeviceRouter* const router_;
};

}  // namespace hr::device

#endif  // HYBRID_ROUTER_DEVICE_STUB_ROUTER_SERVICE_H_
