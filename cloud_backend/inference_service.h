#ifndef HYBRID_ROUTER_CLOUD_BACKEND_INFERENCE_SERVICE_H_
#define HYBRID_ROUTER_CLOUD_BACKEND_INFERENCE_SERVICE_H_

#include <atomic>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "engine/engine_pool.h"
#include "hybridrouter/v1/cloud.grpc.pb.h"

namespace hr::cloud {

namespace v1 = ::hybridrouter::v1;

struct InferenceServiceOptions {
  // The one region this backend runs in. Requests whose claim omits it are refused.
  std::string region;
  // Name of the model, reported in CloudStart.
  std::string model;
  // For tests only: append every accepted request (its messages included) to this
  // file, one text-format line each. Empty: off. Never set it in production.
  std::string record_path;
  int max_tokens_default = 128;
};

// Serves CloudInference: checks the residency claim first, then validates the
// request and streams the engine's answer. Logs request ids, sizes and statuses,
// never message text. Thread-safe.
class InferenceService final : public v1::CloudInference::CallbackService {
 public:
  // `pool` must outlive the service.
  InferenceService(InferenceServiceOptions options, engine::EnginePool* pool);

  grpc::ServerWriteReactor<v1::CloudChunk>* Generate(
      grpc::CallbackServerContext* context, const v1::CloudRequest* request) override;

  // From now on, new requests fail with UNAVAILABLE; running ones go on.
  void StartDraining() { draining_.store(true); }

 private:
  void Record(const v1::CloudRequest& request);

  const InferenceServiceOptions options_;
  engine::EnginePool* const pool_;
  std::atomic<bool> draining_{false};
  absl::Mutex record_mu_;
  std::ofstream record_ ABSL_GUARDED_BY(record_mu_);
};

// Checks what a backend needs of a request besides the claim. InvalidArgument
// naming the field.
absl::Status ValidateCloudRequest(const v1::CloudRequest& request);

}  // namespace hr::cloud

#endif  // HYBRID_ROUTER_CLOUD_BACKEND_INFERENCE_SERVICE_H_
