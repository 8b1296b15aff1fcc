#ifndef HYBRID_ROUTER_CLOUD_BACKEND_INFERENCE_SERVICE_H_
#define HYBRID_ROUTER_CLOUD_BACKEND_INFERENCE_SERVICE_H_

#include <atomic>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/engine_pool.h"
#include "grpc_util/cq_pool.h"
#include "hybridrouter/v1/cloud.grpc.pb.h"
#include "policy/residency_policy.h"

namespace hr::cloud {

namespace v1 = ::hybridrouter::v1;

struct InferenceServiceOptions {
  // The one region this backend runs in. Requests whose claim omits it are refused.
  std::string region;
  // Name of the model, reported in CloudStart.
  std::string model;
  // The model family this backend runs (`qwen`), checked against the policy's
  // allowed families when the service has a policy; empty: not checked.
  std::string model_family;
  // For tests only: append every accepted request (its messages included) to this
  // file, one text-format line each. Empty: off. Never set it in production.
  std::string record_path;
  int max_tokens_default = 128;
};

// Serves CloudInference: checks the residency claim first (against this
// backend's region and, with SetPolicy, against the policy), then validates the
// request and streams the engine's answer. Logs request ids, sizes and statuses,
// never message text. Thread-safe.
class InferenceService final : public v1::CloudInference::CallbackService {
 public:
  // `pool` must outlive the service.
  InferenceService(InferenceServiceOptions options, engine::EnginePool* pool);

  grpc::ServerWriteReactor<v1::CloudChunk>* Generate(
      grpc::CallbackServerContext* context, const v1::CloudRequest* request) override;

  // Many requests on one stream (see cloud.proto), each served as Generate
  // serves one.
  grpc::ServerBidiReactor<v1::CloudStreamRequests, v1::CloudStreamChunks>* GenerateStream(
      grpc::CallbackServerContext* context) override;

  // Checks every claim from now on also against `policy`, the operators' copy
  // of the residency policy (CheckClaimAgainstPolicy); null: only against the
  // claim's own regions. Requests already accepted go on.
  void SetPolicy(std::shared_ptr<const policy::ResidencyPolicy> policy);
  std::shared_ptr<const policy::ResidencyPolicy> policy() const;

  // From now on, new requests fail with UNAVAILABLE; running ones go on. Open
  // GenerateStreams end with UNAVAILABLE once their last call has ended.
  void StartDraining();

  // Counts the Generate calls and GenerateStreams gRPC has not yet let go of,
  // for grpc_util::DrainServer.
  grpc_util::LiveCalls* live_calls() { return &live_calls_; }

  // Where one call's answer goes: Generate's own stream, or its share of a
  // GenerateStream. `send` takes a message of the answer, `send_last` the last
  // one (the call then ends OK), `fail` ends the call with that status.
  struct CallOutput {
    std::function<void(v1::CloudChunk)> send;
    std::function<void(v1::CloudChunk)> send_last;
    std::function<void(absl::Status)> fail;
  };
  class Stream;

 private:
  // Checks the claim, then the request, and starts the engine on it; answers
  // through `out`. Returns the job, to cancel it, or null when the call already
  // ended (refused). `via` names the RPC in the log: "call" (Generate) or "stream";
  // `client` who called, "-" for no one known (ClientOf in the .cc).
  std::shared_ptr<engine::GenerationJob> Serve(const v1::CloudRequest& request, absl::Time deadline,
                                               const char* via, const std::string& client,
                                               CallOutput out);
  void Record(const v1::CloudRequest& request);
  // Warns, once for each version, that a claim was decided under a policy
  // version other than `own`'s (a device not yet on the operators' policy, or
  // on a newer one). Remembers at most kMaxPolicySkews versions until the
  // policy changes, so a client that makes versions up cannot flood the log.
  void NoteVersionSkew(const policy::ResidencyPolicy& own, const v1::ResidencyClaim& claim);
  static constexpr size_t kMaxPolicySkews = 16;

  const InferenceServiceOptions options_;
  engine::EnginePool* const pool_;
  std::atomic<bool> draining_{false};
  mutable absl::Mutex policy_mu_;
  std::shared_ptr<const policy::ResidencyPolicy> policy_ ABSL_GUARDED_BY(policy_mu_);
  // The claims' policy versions warned about since the policy last changed.
  absl::flat_hash_set<std::string> skews_seen_ ABSL_GUARDED_BY(policy_mu_);
  grpc_util::LiveCalls live_calls_;
  absl::Mutex streams_mu_;
  // Open GenerateStreams, to be told when the service drains.
  absl::flat_hash_map<Stream*, std::weak_ptr<Stream>> streams_ ABSL_GUARDED_BY(streams_mu_);
  absl::Mutex record_mu_;
  std::ofstream record_ ABSL_GUARDED_BY(record_mu_);
};

// Checks what a backend needs of a request besides the claim. InvalidArgument
// naming the field.
absl::Status ValidateCloudRequest(const v1::CloudRequest& request);

}  // namespace hr::cloud

#endif  // HYBRID_ROUTER_CLOUD_BACKEND_INFERENCE_SERVICE_H_
