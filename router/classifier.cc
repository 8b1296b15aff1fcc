#include "absl/strings/string_view.h"
#include "router/classifier.h"

#include "router/complexity.h"

namespace hr::router {

Classification Classifier::Classify(const std::vector<MessageView>& messages) const {
  Classification c;
  c.spans.reserve(messages.size());
  bool health = false, finance = false;
  absl::string_view last_user;
  for (const MessageView& m : messages) {
    Detectors::Findings found = detectors_.Analyze(m.content);
    for (const Span& s : found.spans) ++c.counts[s.category];
    c.spans.push_back(std::move(found.spans));
    health = health || found.health;
    finance = finance || found.finance;
    if (m.role == "user") last_user = m.content;
  }
  c.counts[v1::HEALTH] = health ? 1 : 0;
  c.counts[v1::FINANCIAL] = finance ? 1 : 0;
  c.complexity = model_ != nullptr ? model_->Score(last_user, &c.complexity_by_heuristic_fallback)
                                   : HeuristicComplexityScore(last_user);
  return c;
}

}  // namespace hr::router
