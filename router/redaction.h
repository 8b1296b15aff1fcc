#ifndef HYBRID_ROUTER_ROUTER_REDACTION_H_
#define HYBRID_ROUTER_ROUTER_REDACTION_H_

#include <array>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "policy/residency_policy.h"
#include "router/detectors.h"

namespace hr::router {

// The result of redacting a conversation: the texts to send, and how to undo it.
struct Redacted {
  std::vector<std::string> contents;  // one per message
  // Placeholder -> original value. The same value always gets the same placeholder.
  std::vector<std::pair<std::string, std::string>> mapping;
  // Distinct values replaced, per v1::SensitiveCategory.
  std::array<int, policy::kNumCategories> counts{};
};

// Replaces each span whose category is marked in `redact` by a typed placeholder
// `[CATEGORY_N]` (`[CN_RESIDENT_ID_1]`, `[EMAIL_2]`...), numbered from 1 but
// skipping any that `contents` already hold, so that restoring the answer turns
// only the placeholders made here into values. `spans[i]` are the sorted,
// non-overlapping spans of `contents[i]`.
Redacted Redact(const std::vector<absl::string_view>& contents,
                const std::vector<std::vector<Span>>& spans,
                const std::array<bool, policy::kNumCategories>& redact);

// Puts the original values back into a streamed answer. A placeholder may arrive
// split across chunks, so text that could be the start of one is held back until
// it is known. Not thread-safe: one per stream.
class Restorer {
 public:
  explicit Restorer(std::vector<std::pair<std::string, std::string>> mapping);

  // Returns the text that can be emitted now; it may be empty.
  std::string Feed(absl::string_view chunk);
  // Returns whatever is still held back, at the end of the stream.
  std::string Flush();

 private:
  std::vector<std::pair<std::string, std::string>> mapping_;
  std::string pending_;
};

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_REDACTION_H_
