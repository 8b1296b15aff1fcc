#ifndef HYBRID_ROUTER_ROUTER_COMPLEXITY_TRAINER_H_
#define HYBRID_ROUTER_ROUTER_COMPLEXITY_TRAINER_H_

#include <cstdint>
#include <functional>
#include <string>
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
  // Called after each epoch with its mean log loss (cross-entropy).
  std::function<void(int epoch, double log_loss)> progress;
};

// Mixes each example's label with the mean label of its group:
//   label = (1 - weight) * label + weight * mean(labels of the group).
// `groups[i]` is example i's group; "" leaves it as it is (and out of every
// mean). Outcome labels of single prompts are mostly noise (whether one model got
// one question right); the mean over prompts of the same kind (a subject, an
// app's feature) is a steadier target, which the prompt's words can learn.
// Requires groups.size() == examples->size() and weight in [0, 1].
void ShrinkTowardGroupMeans(const std::vector<std::string>& groups, double weight,
                            std::vector<TrainingExample>* examples);

// Trains logistic regression with Adagrad. Deterministic for the same examples,
// options and seed. The result has threshold 0.5 (calibrate it afterwards) and
// counts the examples that are mostly CJK text (cjk_training_prompts).
hybridrouter::v1::ComplexityModelWeights TrainComplexityModel(
    const std::vector<TrainingExample>& examples, const TrainOptions& options);

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_COMPLEXITY_TRAINER_H_
