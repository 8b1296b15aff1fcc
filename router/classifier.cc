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
    c.spans.push_back(detectors_.FindSpans(m.content));
    for (const Span& s : c.spans.back()) ++c.counts[s.category];
    health = health || detectors_.MentionsHealth(m.content);
    finance = finance || detectors_.MentionsFinance(m.content);
    if (m.role == "user") last_user = m.content;
  }
  c.counts[v1::HEALTH] = health ? 1 : 0;
  c.counts[v1::FINANCIAL] = finance ? 1 : 0;
  c.complexity = model_ != nullptr ? model_->Score(last_user) : HeuristicComplexityScore(last_user);
  return c;
}

}  // namespace hr::router
