#ifndef HYBRID_ROUTER_ROUTER_TEXT_FEATURES_H_
#define HYBRID_ROUTER_ROUTER_TEXT_FEATURES_H_

#include <array>
#include <cstddef>
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
  // CJK characters (Chinese, Japanese kana, Korean hangul) over them and the ASCII
  // letters: which script the prompt is written in, whatever its digits, symbols
  // and spaces. Not a model input (MostlyCjk below).
  float cjk_share_of_letters = 0;
};

// A prompt at least half of whose letters (CJK characters and ASCII letters) are
// CJK is "mostly CJK": the model scores it itself only if it was trained on
// enough such prompts (router/complexity_model.h).
inline constexpr float kMostlyCjkShare = 0.5f;
inline bool MostlyCjk(const TextFeatures& f) { return f.cjk_share_of_letters >= kMostlyCjkShare; }

// Decodes the UTF-8 character at s[i] into *cp and returns its length in bytes;
// for a truncated or stray byte, U+FFFD and 1. Expects UTF-8 that has been
// validated (continuation bytes are not checked).
inline int DecodeUtf8(absl::string_view s, size_t i, uint32_t* cp) {
  unsigned char c = s[i];
  int len = c >= 0xF0 ? 4 : (c >= 0xE0 ? 3 : 2);
  if (i + len > s.size() || c < 0xC0) {
    *cp = 0xFFFD;
    return 1;
  }
  uint32_t v = c & (0x3F >> (len - 1));
  for (int k = 1; k < len; ++k) v = (v << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *cp = v;
  return len;
}

// The characters counted as math markers, by the learned features and by the
// heuristic of router/complexity.h alike: = + * / ^ % ∫ √ ≤ ≥ ≠ ∑ π × ÷.
constexpr bool IsMathSymbol(uint32_t cp) {
  switch (cp) {
    case '=': case '+': case '*': case '/': case '^': case '%':
    case 0x222B: case 0x221A: case 0x2264: case 0x2265: case 0x2260:  // ∫ √ ≤ ≥ ≠
    case 0x2211: case 0x03C0: case 0x00D7: case 0x00F7:               // ∑ π × ÷
      return true;
    default:
      return false;
  }
}

// A 64-bit FNV-1a hash, stable across processes and machines (unlike
// absl::Hash); used for features and for deterministic data splits.
uint64_t StableHash(absl::string_view s);

// Extracts the features in one pass over the text: linear in its length, a few
// nanoseconds a byte, no allocation once `out` has held a prompt as long.
void ExtractTextFeatures(absl::string_view prompt, TextFeatures* out);

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_TEXT_FEATURES_H_
