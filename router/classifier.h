#ifndef HYBRID_ROUTER_ROUTER_CLASSIFIER_H_
#define HYBRID_ROUTER_ROUTER_CLASSIFIER_H_

#include <array>
#include "absl/strings/string_view.h"
#include <vector>

#include "policy/residency_policy.h"
#include "router/complexity_model.h"
#include "router/detectors.h"

namespace hr::router {

// What the router knows about a request's content.
struct Classification {
  // Identifier spans per message, indexed like the request's messages.
  std::vector<std::vector<Span>> spans;
  // Per v1::SensitiveCategory: number of spans for identifiers, 1 when the topic
  // is mentioned for HEALTH and FINANCIAL, else 0.
  std::array<int, policy::kNumCategories> counts{};
  // Complexity of the last user message, in [0, 1]; higher means harder: the
  // learned model's score when there is one, else the heuristic's.
  double complexity = 0;
  // The heuristic scored it although there is a model: the message is mostly CJK
  // text, which the model was not trained on (ComplexityModel::Score).
  bool complexity_by_heuristic_fallback = false;
};

struct MessageView {
  absl::string_view role;
  absl::string_view content;
};

// Classifies a conversation. Thread-safe; holds no per-request state.
class Classifier {
 public:
  // `model` (may be null: use the heuristic score) must outlive the classifier.
  explicit Classifier(const ComplexityModel* model = nullptr) : model_(model) {}
  Classification Classify(const std::vector<MessageView>& messages) const;
  const Detectors& detectors() const { return detectors_; }

 private:
  Detectors detectors_;
  const ComplexityModel* model_;
};

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_CLASSIFIER_H_
