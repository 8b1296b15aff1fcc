#include "router/routing_eval.h"

#include <algorithm>
#include <random>

namespace hr::router {

namespace {
void SortByScore(std::vector<Outcome>* o) {
  std::stable_sort(o->begin(), o->end(),
                   [](const Outcome& a, const Outcome& b) { return a.score > b.score; });
}
}  // namespace

RoutingMetrics EvaluateRouting(std::vector<Outcome> o) {
  RoutingMetrics m;
  m.n = static_cast<int>(o.size());
  if (m.n == 0) return m;
  SortByScore(&o);
  int weak = 0, strong = 0;
  for (const Outcome& x : o) {
    weak += x.weak_correct;
    strong += x.strong_correct;
  }
  m.weak_accuracy = static_cast<double>(weak) / m.n;
  m.strong_accuracy = static_cast<double>(strong) / m.n;
  const double target = 0.95 * m.strong_accuracy;
  int correct = weak;  // k = 0: everything on the weak model
  int first_k = -1;
  if (m.weak_accuracy >= target) first_k = 0;
  double gap = m.strong_accuracy - m.weak_accuracy;
  double sum = 0;
  for (int k = 1; k <= m.n; ++k) {
    const Outcome& x = o[k - 1];
    correct += static_cast<int>(x.strong_correct) - static_cast<int>(x.weak_correct);
    double acc = static_cast<double>(correct) / m.n;
    if (gap != 0) sum += (acc - m.weak_accuracy) / gap;
    if (first_k < 0 && acc >= target) first_k = k;
  }
  m.apgr = sum / m.n;
  m.saved_at_95 = first_k < 0 ? 0 : 1.0 - static_cast<double>(first_k) / m.n;
  return m;
}

RoutingMetrics EvaluateRandomRouting(const std::vector<Outcome>& outcomes, int trials,
                                     uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Outcome> o = outcomes;
  RoutingMetrics mean;
  double apgr = 0, saved = 0;
  for (int t = 0; t < trials; ++t) {
    std::shuffle(o.begin(), o.end(), rng);
    for (size_t i = 0; i < o.size(); ++i) o[i].score = -static_cast<double>(i);
    mean = EvaluateRouting(o);  // n and the accuracies do not depend on the order
    apgr += mean.apgr;
    saved += mean.saved_at_95;
  }
  mean.apgr = apgr / trials;
  mean.saved_at_95 = saved / trials;
  return mean;
}

double ThresholdForCloudShare(std::vector<double> scores, double cloud_share) {
  if (scores.empty() || cloud_share <= 0) return 1.01;
  std::sort(scores.begin(), scores.end(), std::greater<double>());
  size_t k = std::min(scores.size(), static_cast<size_t>(cloud_share * scores.size() + 0.5));
  if (k == 0) return 1.01;
  return scores[k - 1];
}

double ThresholdForQuality(std::vector<Outcome> o, double quality, double* local_share) {
  SortByScore(&o);
  int strong = 0, correct = 0;
  for (const Outcome& x : o) {
    strong += x.strong_correct;
    correct += x.weak_correct;
  }
  double threshold = 1.01;
  size_t k = 0;
  while (k < o.size() && correct < quality * strong) {
    correct += static_cast<int>(o[k].strong_correct) - static_cast<int>(o[k].weak_correct);
    threshold = o[k].score;
    ++k;
  }
  *local_share = o.empty() ? 1.0 : static_cast<double>(o.size() - k) / o.size();
  return threshold;
}

}  // namespace hr::router
