#ifndef HYBRID_ROUTER_ROUTER_ROUTING_EVAL_H_
#define HYBRID_ROUTER_ROUTER_ROUTING_EVAL_H_

#include <cstdint>
#include <vector>

namespace hr::router {

// One prompt's outcome and a router's score for it (higher: more in need of the
// strong model).
struct Outcome {
  double score = 0;
  bool weak_correct = false;
  bool strong_correct = false;
};

// The RouteLLM measures, for prompts sorted by score (the top k go to the strong
// model, the rest to the weak one):
struct RoutingMetrics {
  int n = 0;
  double weak_accuracy = 0;    // k = 0
  double strong_accuracy = 0;  // k = n
  // Mean over k = 1..n of (accuracy(k) - weak) / (strong - weak).
  double apgr = 0;
  // 1 - (smallest k whose accuracy reaches 95% of strong) / n.
  double saved_at_95 = 0;
};

// Computes the metrics. Ties in score are broken by input order. Requires n > 0;
// when strong == weak, apgr is 0.
RoutingMetrics EvaluateRouting(std::vector<Outcome> outcomes);

// The same metrics for random orderings: the mean over `trials` shuffles.
RoutingMetrics EvaluateRandomRouting(const std::vector<Outcome>& outcomes, int trials,
                                     uint64_t seed);

// The score threshold that sends `cloud_share` of `scores` to the cloud (scores at
// or above it); 1.01 when the share is 0.
double ThresholdForCloudShare(std::vector<double> scores, double cloud_share);

// The highest threshold whose routing keeps `quality` (e.g. 0.95) of the strong
// model's accuracy: the score of the k-th highest prompt for the smallest such k
// (1.01 when k is 0). Sets *local_share to the share of prompts below it.
double ThresholdForQuality(std::vector<Outcome> outcomes, double quality, double* local_share);

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_ROUTING_EVAL_H_
