#ifndef HYBRID_ROUTER_ROUTER_COMPLEXITY_MODEL_H_
#define HYBRID_ROUTER_ROUTER_COMPLEXITY_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hybridrouter/v1/complexity.pb.h"
#include "router/text_features.h"

namespace hr::router {

// The feature buckets (2^hash_bits) a weights file may have: what Load accepts,
// and so what hr-train may train.
inline constexpr int kMinHashBits = 8;
inline constexpr int kMaxHashBits = 24;

// A model scores prompts that are mostly CJK text (router/text_features.h,
// MostlyCjk) itself only if at least this many of its training prompts were.
inline constexpr int64_t kMinCjkTrainingPrompts = 100;

// The learned complexity model: logistic regression over TextFeatures. Its score
// in [0, 1] estimates how likely the small local model is to fail on a prompt;
// prompts scoring at least threshold() prefer the cloud. Immutable; thread-safe.
//
// A model trained on too little CJK text (covers_cjk() false) has learned
// nothing about it, and would score all of it alike. Such prompts get the
// heuristic score of router/complexity.h instead, placed on the model's scale:
// logit(score) = logit(heuristic) + logit(threshold()), so that the heuristic's
// own threshold of 0.5 falls on the model's calibrated one.
//
// Example:
//   auto model = ComplexityModel::Load("models/complexity.pb");
//   if (model.ok() && (*model)->Score(prompt) >= (*model)->threshold()) ...
class ComplexityModel {
 public:
  // NotFound for a missing file; InvalidArgument for a file that does not parse,
  // was made for another feature version, or has the wrong number of weights.
  static absl::StatusOr<std::unique_ptr<ComplexityModel>> Load(const std::string& path);
  static absl::StatusOr<std::unique_ptr<ComplexityModel>> FromWeights(
      hybridrouter::v1::ComplexityModelWeights weights);

  // The score hr-device routes by. `*heuristic` (when given) is set to whether it
  // is the heuristic's, for a prompt the model has not learned to score.
  double Score(absl::string_view prompt, bool* heuristic = nullptr) const;
  // The model's own score of the features, whatever their script.
  double Score(const TextFeatures& features) const;
  // The raw logit, for training.
  double Logit(const TextFeatures& features) const;

  double threshold() const { return weights_.threshold(); }
  // Whether the model was trained on enough mostly-CJK prompts to score them.
  bool covers_cjk() const { return weights_.cjk_training_prompts() >= kMinCjkTrainingPrompts; }
  const hybridrouter::v1::ComplexityModelWeights& weights() const { return weights_; }

 private:
  explicit ComplexityModel(hybridrouter::v1::ComplexityModelWeights w);
  hybridrouter::v1::ComplexityModelWeights weights_;
  uint64_t mask_;
};

// The complexity scoring a program runs with, chosen the same way by hr-device
// and `hrctl score`: without a model file (empty path) the heuristic score and a
// threshold of 0.5; otherwise the model and its calibrated threshold. A
// `threshold_override` in [0, 1] replaces the threshold either way; -1 keeps it,
// and any other value is InvalidArgument.
struct ComplexityConfig {
  std::unique_ptr<ComplexityModel> model;  // null: the heuristic
  double threshold = 0.5;
};
// The check LoadComplexityConfig makes of `threshold_override`, for a program to
// make with its other flags before it loads anything.
absl::Status CheckThresholdOverride(double threshold_override);
// Other errors are ComplexityModel::Load's.
absl::StatusOr<ComplexityConfig> LoadComplexityConfig(const std::string& model_path,
                                                      double threshold_override);

// Writes `weights` to `path` (atomically, via a temporary file).
absl::Status SaveComplexityWeights(const hybridrouter::v1::ComplexityModelWeights& weights,
                                   const std::string& path);

// The scale of the hashed features' sum: 1/sqrt(count), so that long and short
// prompts weigh alike. Shared by scoring and training.
float HashedScale(const TextFeatures& f);

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_COMPLEXITY_MODEL_H_
