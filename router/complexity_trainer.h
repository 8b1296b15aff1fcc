#ifndef HYBRID_ROUTER_ROUTER_COMPLEXITY_TRAINER_H_
#define HYBRID_ROUTER_ROUTER_COMPLEXITY_TRAINER_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "hybridrouter/v1/complexity.pb.h"
#include "router/text_features.h"

namespace hr::router {

struct TrainingExample {
  TextFeatures features;
  float label = 0;  // 1: the prompt needs the strong model
};

struct TrainOptions {
  int hash_bits = 16;
  int epochs = 10;
  double learning_rate = 0.2;  // Adagrad step size
  double l2 = 1e-5;            // per-update weight decay
  uint64_t seed = 1;           // example order
  // Called after each epoch with its mean log loss.
  std::function<void(int epoch, double log_loss)> progress;
};

// Trains logistic regression with Adagrad. Deterministic for the same examples,
// options and seed. The result has threshold 0.5 (calibrate it afterwards).
hybridrouter::v1::ComplexityModelWeights TrainComplexityModel(
    const std::vector<TrainingExample>& examples, const TrainOptions& options);

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_COMPLEXITY_TRAINER_H_
