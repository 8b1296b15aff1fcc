#include "router/complexity_trainer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "router/complexity_model.h"

namespace hr::router {

namespace v1 = ::hybridrouter::v1;

void ShrinkTowardGroupMeans(const std::vector<std::string>& groups, double weight,
                            std::vector<TrainingExample>* examples) {
  if (weight <= 0) return;
  absl::flat_hash_map<std::string, std::pair<double, int>> sums;  // label sum, count
  for (size_t i = 0; i < examples->size(); ++i) {
    if (groups[i].empty()) continue;
    auto& [sum, n] = sums[groups[i]];
    sum += (*examples)[i].label;
    ++n;
  }
  for (size_t i = 0; i < examples->size(); ++i) {
    if (groups[i].empty()) continue;
    const auto& [sum, n] = sums[groups[i]];
    float& label = (*examples)[i].label;
    label = static_cast<float>((1 - weight) * label + weight * sum / n);
  }
}

v1::ComplexityModelWeights TrainComplexityModel(const std::vector<TrainingExample>& examples,
                                                const TrainOptions& o) {
  const size_t buckets = size_t{1} << o.hash_bits;
  const uint64_t mask = buckets - 1;
  std::vector<float> w(buckets, 0.0f), g2(buckets, 0.0f);
  std::vector<float> dw(kNumDenseFeatures, 0.0f), dg2(kNumDenseFeatures, 0.0f);
  // Start the bias at the base rate, so early epochs learn the features.
  double positives = 0;
  for (const auto& e : examples) positives += e.label;
  double rate = examples.empty() ? 0.5 : std::clamp(positives / examples.size(), 0.01, 0.99);
  float bias = static_cast<float>(std::log(rate / (1 - rate))), bg2 = 0;
  constexpr float kEps = 1e-6f;
  const float lr = static_cast<float>(o.learning_rate), l2 = static_cast<float>(o.l2);

  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(o.seed);
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    double loss = 0;
    for (size_t idx : order) {
      const TrainingExample& e = examples[idx];
      const float scale = HashedScale(e.features);
      float z = bias;
      for (uint64_t h : e.features.hashes) z += w[h & mask] * scale;
      for (int i = 0; i < kNumDenseFeatures; ++i) z += dw[i] * e.features.dense[i];
      float p = 1.0f / (1.0f + std::exp(-z));
      // Cross-entropy, also for labels between 0 and 1 (ShrinkTowardGroupMeans).
      loss -=
          e.label * std::log(std::max(p, 1e-7f)) + (1 - e.label) * std::log(std::max(1 - p, 1e-7f));
      const float g = p - e.label;
      for (uint64_t h : e.features.hashes) {
        float& wi = w[h & mask];
        float grad = g * scale + l2 * wi;
        float& acc = g2[h & mask];
        acc += grad * grad;
        wi -= lr * grad / std::sqrt(acc + kEps);
      }
      for (int i = 0; i < kNumDenseFeatures; ++i) {
        float grad = g * e.features.dense[i] + l2 * dw[i];
        dg2[i] += grad * grad;
        dw[i] -= lr * grad / std::sqrt(dg2[i] + kEps);
      }
      bg2 += g * g;
      bias -= lr * g / std::sqrt(bg2 + kEps);
    }
    if (o.progress) o.progress(epoch, examples.empty() ? 0 : loss / examples.size());
  }
  v1::ComplexityModelWeights out;
  out.set_feature_version(kFeatureVersion);
  out.set_hash_bits(o.hash_bits);
  out.mutable_hashed_weights()->Add(w.begin(), w.end());
  out.mutable_dense_weights()->Add(dw.begin(), dw.end());
  out.set_bias(bias);
  out.set_threshold(0.5);
  out.set_cjk_training_prompts(
      std::count_if(examples.begin(), examples.end(),
                    [](const TrainingExample& e) { return MostlyCjk(e.features); }));
  return out;
}

}  // namespace hr::router
