#include "router/complexity_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "router/complexity.h"
#include "util/text_proto.h"

namespace hr::router {

namespace v1 = ::hybridrouter::v1;

float HashedScale(const TextFeatures& f) {
  return f.hashes.empty() ? 0.0f : 1.0f / std::sqrt(static_cast<float>(f.hashes.size()));
}

ComplexityModel::ComplexityModel(v1::ComplexityModelWeights w)
    : weights_(std::move(w)), mask_((uint64_t{1} << weights_.hash_bits()) - 1) {}

absl::StatusOr<std::unique_ptr<ComplexityModel>> ComplexityModel::FromWeights(
    v1::ComplexityModelWeights w) {
  if (w.feature_version() != kFeatureVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights are for feature version ", w.feature_version(), "; this build extracts version ",
        kFeatureVersion, " (retrain with hr-train)"));
  }
  if (w.hash_bits() < kMinHashBits || w.hash_bits() > kMaxHashBits ||
      w.hashed_weights_size() != (1 << w.hash_bits()) ||
      w.dense_weights_size() != kNumDenseFeatures) {
    return absl::InvalidArgumentError("weights file has the wrong number of weights");
  }
  // A weight that is not a number makes every score NaN, which no threshold
  // compares with: the router would quietly keep everything local.
  if (!(w.threshold() >= 0 && w.threshold() <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threshold ", w.threshold(), " is not in [0, 1] (calibrate it with hr-train)"));
  }
  if (!std::isfinite(w.bias())) {
    return absl::InvalidArgumentError(absl::StrCat("bias ", w.bias(), " is not a finite number"));
  }
  for (const auto& [name, weights] :
       {std::pair{"hashed", &w.hashed_weights()}, std::pair{"dense", &w.dense_weights()}}) {
    for (int i = 0; i < weights->size(); ++i) {
      if (!std::isfinite(weights->Get(i))) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, " weight ", i, " is ", weights->Get(i), ", not a finite number"));
      }
    }
  }
  return std::unique_ptr<ComplexityModel>(new ComplexityModel(std::move(w)));
}

absl::StatusOr<std::unique_ptr<ComplexityModel>> ComplexityModel::Load(const std::string& path) {
  // No size limit beyond what the weights' shape allows (checked below).
  absl::StatusOr<std::string> data = util::ReadFile(path, {/*regular_file_only=*/true});
  if (!data.ok()) {
    return absl::Status(data.status().code(),
                        absl::StrCat("complexity model: ", data.status().message()));
  }
  v1::ComplexityModelWeights w;
  if (!w.ParseFromString(*data)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a complexity weights file"));
  }
  auto model = FromWeights(std::move(w));
  if (!model.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", model.status().message()));
  }
  return model;
}

double ComplexityModel::Logit(const TextFeatures& f) const {
  const float* w = weights_.hashed_weights().data();
  float sparse = 0;
  for (uint64_t h : f.hashes) sparse += w[h & mask_];
  double z = weights_.bias() + sparse * HashedScale(f);
  for (int i = 0; i < kNumDenseFeatures; ++i) z += weights_.dense_weights(i) * f.dense[i];
  return z;
}

double ComplexityModel::Score(const TextFeatures& f) const {
  return 1.0 / (1.0 + std::exp(-Logit(f)));
}

double ComplexityModel::Score(absl::string_view prompt, bool* heuristic) const {
  thread_local TextFeatures features;
  ExtractTextFeatures(prompt, &features);
  const bool fallback = !covers_cjk() && MostlyCjk(features);
  if (heuristic != nullptr) *heuristic = fallback;
  if (!fallback) return Score(features);
  // Clamped so that a threshold of 0 or 1, and a saturated heuristic, stay finite.
  auto logit = [](double p) {
    p = std::clamp(p, 1e-9, 1 - 1e-9);
    return std::log(p / (1 - p));
  };
  const double z = logit(HeuristicComplexityScore(prompt)) + logit(threshold());
  return 1.0 / (1.0 + std::exp(-z));
}

absl::Status CheckThresholdOverride(double threshold_override) {
  if (threshold_override == -1 || (threshold_override >= 0 && threshold_override <= 1)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--complexity_threshold must be in [0, 1], or -1 for the model file's; not ",
                   threshold_override));
}

absl::StatusOr<ComplexityConfig> LoadComplexityConfig(const std::string& model_path,
                                                      double threshold_override) {
  if (absl::Status checked = CheckThresholdOverride(threshold_override); !checked.ok()) {
    return checked;
  }
  ComplexityConfig config;
  if (!model_path.empty()) {
    absl::StatusOr<std::unique_ptr<ComplexityModel>> loaded = ComplexityModel::Load(model_path);
    if (!loaded.ok()) return loaded.status();
    config.model = *std::move(loaded);
    config.threshold = config.model->threshold();
  }
  if (threshold_override >= 0) config.threshold = threshold_override;
  return config;
}

absl::Status SaveComplexityWeights(const v1::ComplexityModelWeights& weights,
                                   const std::string& path) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !weights.SerializeToOstream(&out)) {
      return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

}  // namespace hr::router
