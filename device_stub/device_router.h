#ifndef HYBRID_ROUTER_DEVICE_STUB_DEVICE_ROUTER_H_
#define HYBRID_ROUTER_DEVICE_STUB_DEVICE_ROUTER_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_stub/cloud_client.h"
#include "engine/engine_pool.h"
#include "hybridrouter/v1/router.pb.h"
#include "policy/residency_policy.h"
#include "router/backend_health.h"
#include "router/classifier.h"
#include "router/request_validation.h"

namespace hr::device {

// Where one request's answer goes. Implemented over a gRPC stream by the service,
// and by tests. Thread-safe.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // Returns false when the client is gone.
  virtual bool Send(v1::GenerateResponse response) = 0;
  // Ends the stream; the first call wins.
  virtual void Finish(const absl::Status& status) = 0;
  // Sends `last` and ends the stream with `status`, as one step where the
  // transport can (the final message and the status travel together).
  virtual void FinishWith(v1::GenerateResponse last, const absl::Status& status) {
    Send(std::move(last));
    Finish(status);
  }
  // Runs `f` once if the client cancels (at once if it already has).
  virtual void OnCancel(std::function<void()> f) = 0;
};

struct DeviceRouterOptions {
  router::RequestLimits limits;
  // Requests whose complexity score is at least this prefer the cloud.
  double complexity_threshold = 0.5;
  int default_max_tokens = 128;
  // For calls that arrive without a deadline.
  absl::Duration default_deadline = absl::Seconds(120);
};

// The device router: validates, classifies, decides by the residency policy and
// runs each request on the local model or on an allowed cloud backend, failing
// over among allowed backends only before the first text reached the client, then
// falling back locally or failing closed as the policy says. No request is ever
// sent to a backend whose region the request's jurisdiction does not allow: the
// candidates come only from ResidencyPolicy::BackendsFor, a backend's text is
// forwarded only after it announced its configured, allowed region (one that
// announces another, sends text first, or names another region in its final
// message is dropped), and after a reload no attempt starts on a backend the new
// policy would not pick.
//
// Thread-safe. `local`, `cloud` and `health` must outlive it.
class DeviceRouter {
 public:
  // `complexity_model` may be null (the heuristic score is used); it must
  // outlive the router, like `local`, `cloud` and `health`.
  DeviceRouter(DeviceRouterOptions options, std::shared_ptr<const policy::ResidencyPolicy> policy,
               engine::EnginePool* local, CloudClient* cloud, router::BackendHealth* health,
               const router::ComplexityModel* complexity_model = nullptr);

  // Swaps in a new policy. Requests already running keep the decision they
  // started with, and an answer already streaming finishes where it is; but a
  // backend attempt (a failover) that starts after the swap must also be one the
  // new policy picks for the request, with the same redactions, or it is skipped
  // (and the old policy's FALLBACK_LOCAL or FAIL_CLOSED applies when none is
  // left; a request the new policy denies is ended with its PERMISSION_DENIED).
  void SetPolicy(std::shared_ptr<const policy::ResidencyPolicy> policy);
  std::shared_ptr<const policy::ResidencyPolicy> policy() const;

  // The decision for `request` without running it (no backend is chosen).
  // InvalidArgument for a malformed request.
  absl::StatusOr<v1::RouteInfo> Explain(const v1::GenerateRequest& request) const;

  // Runs `request`, writing RouteInfo, text chunks and Done to `stream`, or ending
  // it with an error status. Returns at once; the work goes on elsewhere.
  void Generate(const v1::GenerateRequest& request, absl::Time deadline,
                std::shared_ptr<ResponseStream> stream);

 private:
  friend class RequestRun;

  const DeviceRouterOptions options_;
  engine::EnginePool* const local_;
  CloudClient* const cloud_;
  router::BackendHealth* const health_;
  router::Classifier classifier_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const policy::ResidencyPolicy> policy_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hr::device

#endif  // HYBRID_ROUTER_DEVICE_STUB_DEVICE_ROUTER_H_
