#ifndef HYBRID_ROUTER_ROUTER_COMPLEXITY_H_
#define HYBRID_ROUTER_ROUTER_COMPLEXITY_H_

#include "absl/strings/string_view.h"

namespace hr::router {

// The cheap text features the heuristic score is made of. Exposed for tests.
struct ComplexityFeatures {
  double approx_tokens = 0;      // bytes / 4 for ASCII, 1 per CJK character or hangul syllable
  double digit_share = 0;        // digits / non-space characters
  int math_markers = 0;          // = + * / ^ % and symbols such as ∫ √ ≤
  int code_markers = 0;          // ``` { } ; () == -> def class #include ..., up to 8
  int multi_step_markers = 0;    // "step by step", "prove", "explain why", 证明 ..., up to 3
  int questions = 0;             // ? and ？
};

ComplexityFeatures ExtractComplexityFeatures(absl::string_view prompt);

// A heuristic score in [0, 1] of how likely the small local model is to fail on
// `prompt` where a large cloud model would succeed; higher means harder.
//
// It is a logistic function of a hand-weighted sum:
//   z = -2.2 + 0.9*ln(1 + tokens/40) + 2.5*digit_share + 0.35*min(math, 8)
//       + 0.25*min(code, 8) + 0.8*min(multi_step, 3) + 0.2*min(questions, 3)
// so a short greeting scores about 0.1, a multi-step word problem with numbers
// well above 0.5. The learned model replaces it (router/complexity_model.h),
// except on mostly-CJK text the model was not trained on.
// Cost: one pass over the text, and one per kind of marker (RE2).
double HeuristicComplexityScore(absl::string_view prompt);
double HeuristicComplexityScore(const ComplexityFeatures& f);

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_COMPLEXITY_H_
