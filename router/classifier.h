#ifndef HYBRID_ROUTER_ROUTER_CLASSIFIER_H_
#define HYBRID_ROUTER_ROUTER_CLASSIFIER_H_

#include <array>
#include "absl/strings/string_view.h"
#include <vector>

#include "policy/residency_policy.h"
#include "router/detectors.h"

namespace hr::router {

// What the router knows about a request's content.
struct Classification {
  // Identifier spans per message, indexed like the request's messages.
  std::vector<std::vector<Span>> spans;
  // Per v1::SensitiveCategory: number of spans for identifiers, 1 when the topic
  // is mentioned for HEALTH and FINANCIAL, else 0.
  std::array<int, policy::kNumCategories> counts{};
  // Complexity of the last user message, in [0, 1]; higher means harder.
  double complexity = 0;
};

struct MessageView {
  absl::string_view role;
  absl::string_view content;
};

// Classifies a conversation. Thread-safe; holds no per-request state.
class Classifier {
 public:
  Classifier() = default;
  Classification Classify(const std::vector<MessageView>& messages) const;

 private:
  Detectors detectors_;
};

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_CLASSIFIER_H_
