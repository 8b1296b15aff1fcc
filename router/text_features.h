#ifndef HYBRID_ROUTER_ROUTER_TEXT_FEATURES_H_
#define HYBRID_ROUTER_ROUTER_TEXT_FEATURES_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"

namespace hr::router {

// Bumped whenever the features below change meaning; weights files record it.
inline constexpr int kFeatureVersion = 2;
inline constexpr int kNumDenseFeatures = 8;

// The cheap features of a prompt that the complexity model reads.
struct TextFeatures {
  // Hashes (64-bit, stable across runs and machines) of the sparse features:
  // lower-cased ASCII words and word bigrams, digit-shape tokens (a number's
  // length class), runs of ASCII punctuation ("?", "==", "{", "```"), CJK
  // characters and character bigrams. Unmasked; the model reduces them to its
  // bucket count. Duplicates are kept (counts).
  std::vector<uint64_t> hashes;
  // ln(1+bytes/100), digit share, math markers (= + * / ^ % and symbols such as
  // ∫ √ ≤), questions (? and ？), CJK share, ln(1+numbers), lines, mean word
  // length: each scaled to about [0, 1].
  std::array<float, kNumDenseFeatures> dense{};
};

// A 64-bit FNV-1a hash, stable across processes and machines (unlike
// absl::Hash); used for features and for deterministic data splits.
uint64_t StableHash(absl::string_view s);

// Extracts the features in one pass over the text: linear in its length, a few
// nanoseconds a byte, no allocation once `out` has held a prompt as long.
void ExtractTextFeatures(absl::string_view prompt, TextFeatures* out);

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_TEXT_FEATURES_H_
